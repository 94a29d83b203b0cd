"""Who may do what through the API.

Staff (session or service token) need the admin's own model permissions: view for
reads, add to create a session, change to end one. A candidate (realtime/api_auth.py)
may only read, and the views narrow what it reads to its own sessions (another's is a
404, so ids cannot be probed).
"""

from rest_framework.permissions import SAFE_METHODS, BasePermission

PERMISSIONS = {
    "read": "interviews.view_interviewsession",
    "create": "interviews.add_interviewsession",
    "end": "interviews.change_interviewsession",
}


def is_candidate(user) -> bool:
    return bool(getattr(user, "is_candidate", False))


class StaffOrCandidate(BasePermission):
    message = "You do not have permission to do this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        if is_candidate(user):
            return request.method in SAFE_METHODS and getattr(view, "candidate_may_read", False)
        if not (user.is_active and user.is_staff):
            return False
        action = "read" if request.method in SAFE_METHODS else getattr(view, "write_action", "end")
        return user.has_perm(PERMISSIONS[action])
