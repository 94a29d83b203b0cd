"""Reads of interview state."""

from __future__ import annotations

import uuid

from .models import InterviewSession, Turn


class SessionAccessError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def session_get_for_owner(*, session_id: str, user_id: str) -> InterviewSession:
    """The session a candidate may join, or SessionAccessError saying why not."""
    try:
        key = uuid.UUID(str(session_id))
    except (TypeError, ValueError):
        raise SessionAccessError("session_not_found", "No interview session has that id.") from None
    session = InterviewSession.objects.select_related("interview").filter(pk=key).first()
    if session is None:
        raise SessionAccessError("session_not_found", "No interview session has that id.")
    if str(session.owner_id) != str(uuid.UUID(user_id)):
        raise SessionAccessError("session_forbidden", "This interview session belongs to another user.")
    if session.is_finished:
        raise SessionAccessError("session_finished", "This interview session has already ended.")
    return session


def session_turns(*, session_id) -> list[Turn]:
    return list(Turn.objects.filter(session_id=session_id).order_by("sequence"))


def session_exists(*, session_id: str) -> bool:
    return InterviewSession.objects.filter(pk=session_id).exists()
