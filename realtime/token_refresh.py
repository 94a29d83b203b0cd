"""The demo auth server's one call: renew an access token with a refresh token.

With Supabase (`SUPABASE_URL` set) the candidate's page renews its token at Supabase's
auth server (GoTrue). Without it this project answers the same request, so the page has
one code path:

    POST /auth/v1/token?grant_type=refresh_token
    Content-Type: application/json
    {"refresh_token": "<demo refresh token>"}

    200 {"access_token", "token_type": "bearer", "expires_in", "expires_at",
         "refresh_token", "user": {"id", "aud", "role"}}
    4xx {"error": "<code>", "error_description": "<what went wrong>"}   (GoTrue's OAuth shape)

A demo refresh token (realtime/auth.py) names its user and expires after 14 days. Each
use spends it and returns the next one (rotation, as GoTrue does); a spent token is
refused. Spent tokens are remembered in the database (`interviews.SpentRefreshToken`,
one row each, pruned once they would have expired), so every worker of a cluster refuses
a reuse; two workers offered the same token at once cannot both take it (the row's key).

The endpoint needs no other credential, so it is bounded like one anyone can call: a
body of at most 2 KiB, JSON only, and request rates per client address and per user.
With SUPABASE_URL set it does not exist (404).
"""

from __future__ import annotations

import collections
import datetime
import json
import logging
import math
import threading
import time

import jwt
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from interviews.models import SpentRefreshToken

from .auth import (
    DEMO_ACCESS_TOKEN_TTL_SECONDS,
    REQUIRED_ROLE,
    AuthError,
    demo_refresh_token_issue,
    demo_refresh_token_read,
    demo_token_issue,
)
from .limits import TokenBucket

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 2048
# Per client address: a page renews about once an hour, so this only stops a flood.
ADDRESS_RATE_PER_SECOND, ADDRESS_BURST = 0.5, 20
# Per user (counted once the token's signature is good): a few renewals a minute at most.
USER_RATE_PER_SECOND, USER_BURST = 0.1, 5
MAX_TRACKED_KEYS = 10_000  # rate-limit buckets kept, oldest dropped first


def _error(status: int, error: str, description: str, **headers) -> JsonResponse:
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    response["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


class _Buckets:
    """Token buckets by key, bounded: the least recently used are dropped first."""

    def __init__(self, *, rate: float, burst: float, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: collections.OrderedDict[str, TokenBucket] = collections.OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        with self._lock:
            bucket = self._buckets.pop(key, None)
            if bucket is None:
                bucket = TokenBucket(rate=self.rate, capacity=self.burst, clock=self.clock)
            self._buckets[key] = bucket
            while len(self._buckets) > MAX_TRACKED_KEYS:
                self._buckets.popitem(last=False)
            return bucket.take(1)

    def retry_after(self) -> int:
        return max(1, math.ceil(1 / self.rate))


def _spend(token_id: str, expires_at: int) -> bool:
    """True the first time a token id is spent, by any worker; False when it was spent before."""
    with transaction.atomic():  # a failure leaves nothing half done (DatabaseError goes to the caller)
        SpentRefreshToken.objects.filter(expires_at__lte=timezone.now()).delete()  # refused as expired anyway
        try:
            with transaction.atomic():
                SpentRefreshToken.objects.create(
                    token_id=token_id, expires_at=datetime.datetime.fromtimestamp(expires_at, tz=datetime.timezone.utc))
        except IntegrityError:
            return False
    return True


_by_address = _Buckets(rate=ADDRESS_RATE_PER_SECOND, burst=ADDRESS_BURST)
_by_user = _Buckets(rate=USER_RATE_PER_SECOND, burst=USER_BURST)


def reset_state() -> None:
    """Forget the rate limits (tests)."""
    global _by_address, _by_user
    _by_address = _Buckets(rate=ADDRESS_RATE_PER_SECOND, burst=ADDRESS_BURST)
    _by_user = _Buckets(rate=USER_RATE_PER_SECOND, burst=USER_BURST)


def _rate_limited(buckets: _Buckets) -> JsonResponse:
    return _error(429, "over_request_rate_limit", "Too many token requests; try again shortly.",
                  Retry_After=str(buckets.retry_after()))


@csrf_exempt
def token(request):
    if settings.SUPABASE_URL:
        return _error(404, "not_found", "Tokens are renewed by Supabase's auth server, not here.")
    if request.method != "POST":
        return _error(405, "invalid_request", "Use POST.", Allow="POST")
    if not _by_address.allow(request.META.get("REMOTE_ADDR") or "-"):
        return _rate_limited(_by_address)
    grant_type = request.GET.get("grant_type", "")
    if grant_type != "refresh_token":
        return _error(400, "unsupported_grant_type",
                      "Only grant_type=refresh_token is served here (the demo auth server).")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = MAX_BODY_BYTES + 1
    if length > MAX_BODY_BYTES:
        return _error(413, "request_too_large", f"The request body is over {MAX_BODY_BYTES} bytes.")
    body = request.body
    if len(body) > MAX_BODY_BYTES:
        return _error(413, "request_too_large", f"The request body is over {MAX_BODY_BYTES} bytes.")
    if request.content_type != "application/json":
        return _error(400, "invalid_request", "Send the body as JSON (Content-Type: application/json).")
    try:
        params = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _error(400, "invalid_request", "The body is not valid JSON.")
    if not isinstance(params, dict):
        return _error(400, "invalid_request", 'The body must be a JSON object: {"refresh_token": "..."}.')
    try:
        grant = demo_refresh_token_read(params.get("refresh_token"))
    except AuthError as error:
        if error.code == "refresh_token_missing":
            return _error(400, "invalid_request", error.message)
        return _error(400, "invalid_grant", error.message)
    if not _by_user.allow(grant.user_id):
        return _rate_limited(_by_user)
    try:
        spent_now = _spend(grant.token_id, grant.expires_at)
    except DatabaseError:
        log.warning("token renewal for user %s: the database is unavailable", grant.user_id)
        return _error(503, "temporarily_unavailable", "Tokens cannot be renewed right now; try again shortly.",
                      Retry_After="2")
    if not spent_now:
        log.warning("a spent demo refresh token was offered again (user %s)", grant.user_id)
        return _error(400, "invalid_grant", "Invalid Refresh Token: Already Used")
    ttl = DEMO_ACCESS_TOKEN_TTL_SECONDS
    access = demo_token_issue(user_id=grant.user_id, ttl_seconds=ttl)
    expires_at = int(jwt.decode(access, options={"verify_signature": False})["exp"])
    response = JsonResponse({
        "access_token": access,
        "token_type": "bearer",
        "expires_in": ttl,
        "expires_at": expires_at,
        "refresh_token": demo_refresh_token_issue(user_id=grant.user_id),
        "user": {"id": grant.user_id, "aud": settings.JWT_AUDIENCE, "role": REQUIRED_ROLE},
    })
    response["Cache-Control"] = "no-store"
    return response
