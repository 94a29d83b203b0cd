"""Every API error in one shape: {"error": {"code", "message", "details"}}.

`code` is stable and machine-readable (e.g. "not_authenticated", "permission_denied",
"not_found", "invalid", "session_finished"); `message` is for a person; `details`
holds the fields at fault for "invalid", else {}.
"""

from __future__ import annotations

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApiError(exceptions.APIException):
    """An error of the API's own, with its code and HTTP status."""

    def __init__(self, *, code: str, message: str, status_code: int = status.HTTP_400_BAD_REQUEST):
        super().__init__(detail=message, code=code)
        self.status_code = status_code


def api_exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Nothing found here (or not yours to see).")
    response = exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500, logged
    if isinstance(exc, exceptions.ValidationError):
        body = {"code": "invalid", "message": "The request is not valid; see details.",
                "details": exc.detail if isinstance(exc.detail, dict) else {"nonField": exc.detail}}
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        body = {"code": str(code), "message": str(detail), "details": {}}
    return Response({"error": body}, status=response.status_code, headers=_kept_headers(response))


def _kept_headers(response) -> dict:
    return {name: response[name] for name in ("WWW-Authenticate", "Retry-After", "Allow") if name in response}
