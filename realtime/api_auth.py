"""The REST API's authentication for candidates: their Supabase (or demo) access token.

`Authorization: Bearer <jwt>`, verified by the same verifier as the socket's client-auth
(realtime/auth.py: signature through the JWKS, exp, aud, iss, sub, role). It lives here,
beside the verifier, and is named in settings.REST_FRAMEWORK, so `interviews` never
imports the transport. A candidate is not a Django user: it has no permissions, and the
API's views give it its own sessions only, read-only (interviews/api/permissions.py).
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from .auth import AuthError, Identity, get_token_verifier


class Candidate:
    """The user behind a verified access token."""

    is_candidate = True
    is_staff = False
    is_superuser = False
    is_active = True
    is_authenticated = True
    is_anonymous = False
    pk = None

    def __init__(self, identity: Identity):
        self.identity = identity
        self.user_id = identity.user_id

    def has_perm(self, perm, obj=None) -> bool:
        return False

    def __str__(self) -> str:
        return f"candidate {self.user_id}"


class CandidateTokenAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None  # not ours: the next class may know it
        if len(parts) != 2:
            raise AuthenticationFailed("Send 'Authorization: Bearer <access token>'.", code="token_malformed")
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("The token is not a well-formed JWT.", code="token_malformed") from None
        try:
            identity = async_to_sync(get_token_verifier().verify)(token)
        except AuthError as error:
            raise AuthenticationFailed(error.message, code=error.code) from None
        return Candidate(identity), identity

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


try:  # the OpenAPI schema names the scheme (drf-spectacular finds subclasses on import)
    from drf_spectacular.extensions import OpenApiAuthenticationExtension

    class CandidateTokenScheme(OpenApiAuthenticationExtension):
        target_class = "realtime.api_auth.CandidateTokenAuthentication"
        name = "candidateToken"

        def get_security_definition(self, auto_schema):
            return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "A candidate's Supabase (or demo) access token: reads their own sessions."}
except ImportError:  # pragma: no cover
    pass
