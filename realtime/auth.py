"""Verification of Supabase access tokens (JWTs).

ES256/RS256 tokens are checked against a JWKS (Supabase's, or the local demo key's, see
``realtime.jwks``); legacy HS256 only when ``SUPABASE_JWT_SECRET`` is configured. The
algorithm comes from the key, never from the token header alone. Errors carry a stable
``code`` for the client and a short message; neither ever contains the token.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import jwt
from django.conf import settings

from realtime.jwks import (
    JWKS_PATH,
    HTTPJWKSSource,
    JWKSFetchError,
    KeyCache,
    LocalKeySource,
    load_or_create_local_key,
)

logger = logging.getLogger(__name__)

LEEWAY_SECONDS = 30
UNKNOWN_KID_REFETCH_SECONDS = 30.0
MAX_TOKEN_CHARS = 8192  # Supabase tokens are ~1 KB; anything this big is not one
REQUIRED_ROLE = "authenticated"
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


class AuthError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Identity:
    user_id: str
    role: str
    email: str | None
    expires_at: int


_UNSUPPORTED_MESSAGE = "The token's signing algorithm is not accepted; sign in again."

# PyJWT exception -> (code, message). Order matters: subclasses before their bases.
_JWT_ERRORS: list[tuple[type[Exception], str, str]] = [
    (jwt.ExpiredSignatureError, "token_expired", "The token has expired; sign in again."),
    (jwt.InvalidAudienceError, "token_wrong_audience", "The token is not meant for this service."),
    (jwt.InvalidIssuerError, "token_wrong_issuer", "The token comes from another auth server."),
    (jwt.InvalidSignatureError, "token_invalid_signature", "The token signature is not valid."),
    (jwt.InvalidAlgorithmError, "token_unsupported_algorithm", _UNSUPPORTED_MESSAGE),
    (jwt.MissingRequiredClaimError, "token_bad_claims", "The token lacks a required claim."),
    (jwt.ImmatureSignatureError, "token_bad_claims", "The token is not valid yet; check the clock."),
    (jwt.DecodeError, "token_malformed", "The token is not a well-formed JWT."),
    (jwt.InvalidTokenError, "token_bad_claims", "The token's claims are not valid."),
]


class TokenVerifier:
    def __init__(
        self,
        *,
        keys: KeyCache,
        audience: str,
        issuer: str,
        hs256_secret: str = "",
        leeway: int = LEEWAY_SECONDS,
    ):
        self.keys = keys
        self.audience = audience
        self.issuer = issuer
        self.hs256_secret = hs256_secret
        self.leeway = leeway

    async def verify(self, token: str) -> Identity:
        token = _check_shape(token)
        key, algorithm = await self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],  # exactly one, chosen by us
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise _map_jwt_error(exc) from None  # `from None`: keep PyJWT's context out of logs
        return _identity(claims)

    async def _key_for(self, token: str) -> tuple[Any, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("token_malformed", "The token is not a well-formed JWT.") from None
        alg = header.get("alg")
        if alg == "HS256":
            if not self.hs256_secret:
                # Also what defeats "HS256 keyed with the public key" confusion.
                raise _unsupported()
            return self.hs256_secret, "HS256"
        if alg not in ("ES256", "RS256"):
            raise _unsupported()  # none, HS384, PS256, ...
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("token_unknown_key", "The token does not name a signing key.")
        try:
            found = await self.keys.get(kid)
        except JWKSFetchError:
            raise AuthError(
                "jwks_unavailable", "Signing keys are unavailable right now; try again shortly."
            ) from None
        if found is None:
            raise AuthError("token_unknown_key", "The token's signing key is unknown; sign in again.")
        if found.algorithm != alg:
            raise _unsupported()  # e.g. RS256 claimed for an EC key
        return found.key, found.algorithm


def _check_shape(token: Any) -> str:
    if token is None or (isinstance(token, str) and not token.strip()):
        raise AuthError("token_missing", "An access token is required.")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise AuthError("token_malformed", "The token is not a well-formed JWT.")
    return token.strip()


def _unsupported() -> AuthError:
    return AuthError("token_unsupported_algorithm", _UNSUPPORTED_MESSAGE)


def _map_jwt_error(exc: Exception) -> AuthError:
    for exc_type, code, message in _JWT_ERRORS:
        if isinstance(exc, exc_type):
            return AuthError(code, message)
    # InvalidKeyError and the like: our configuration, not the client's token.
    logger.error("token verification failed on the server side: %s", type(exc).__name__)
    return AuthError("token_invalid_signature", "The token signature could not be verified.")


def _identity(claims: dict[str, Any]) -> Identity:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not _UUID_RE.fullmatch(sub):
        raise AuthError("token_bad_claims", "The token's subject is not a user id.")
    role = claims.get("role")
    if role != REQUIRED_ROLE:
        raise AuthError("token_bad_claims", "The token is not for a signed-in user.")
    email = claims.get("email")
    return Identity(
        user_id=sub.lower(),
        role=role,
        email=email if isinstance(email, str) and email else None,
        expires_at=int(claims["exp"]),
    )


# --- Process-wide instance --------------------------------------------------------------

_verifier: TokenVerifier | None = None
_verifier_lock = threading.Lock()


def build_token_verifier(*, clock: Callable[[], float] | None = None) -> TokenVerifier:
    """A verifier from the current settings (read now, so override_settings works)."""
    if settings.SUPABASE_URL:
        source = HTTPJWKSSource(
            settings.SUPABASE_URL.rstrip("/") + JWKS_PATH,
            timeout=settings.JWKS_FETCH_TIMEOUT_SECONDS,
        )
    else:
        source = LocalKeySource(settings.JWT_LOCAL_KEY_PATH)
    keys = KeyCache(
        source,
        ttl=settings.JWKS_CACHE_SECONDS,
        min_refetch_interval=UNKNOWN_KID_REFETCH_SECONDS,
        clock=clock,
    )
    return TokenVerifier(
        keys=keys,
        audience=settings.JWT_AUDIENCE,
        issuer=settings.JWT_ISSUER,
        hs256_secret=settings.SUPABASE_JWT_SECRET,
    )


def get_token_verifier() -> TokenVerifier:
    global _verifier
    with _verifier_lock:
        if _verifier is None:
            _verifier = build_token_verifier()
        return _verifier


def reset_token_verifier() -> None:
    global _verifier
    with _verifier_lock:
        _verifier = None


def demo_token_issue(*, user_id: str, ttl_seconds: int = 3600, email: str | None = None) -> str:
    """A token signed by the local demo key, shaped like a Supabase access token."""
    if not _UUID_RE.fullmatch(user_id):
        raise ValueError("user_id must be a UUID")
    local = load_or_create_local_key(settings.JWT_LOCAL_KEY_PATH)
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id.lower(),
        "role": REQUIRED_ROLE,
        "aud": settings.JWT_AUDIENCE,
        "iss": settings.JWT_ISSUER,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if email is not None:
        claims["email"] = email
    return jwt.encode(claims, local.private_key, algorithm="ES256", headers={"kid": local.kid})


# --- Demo refresh tokens (no Supabase) --------------------------------------------------
#
# With SUPABASE_URL unset this project stands in for Supabase's auth server in one
# respect: a page renews its access token with `POST /auth/v1/token?grant_type=
# refresh_token` (realtime/token_refresh.py). A demo refresh token is not a JWT (so it
# can never pass for an access token): it is a django.core.signing token under its own
# salt, naming the user, a random id and its expiry. Each use spends it and issues the
# next one (rotation); a spent one is refused (see token_refresh.py for where that is
# remembered).

DEMO_REFRESH_SALT = "realtime.demo-refresh-token"
DEMO_REFRESH_TOKEN_TTL_SECONDS = 14 * 24 * 3600  # a link is opened days later, then renewed
DEMO_ACCESS_TOKEN_TTL_SECONDS = 3600  # what a refresh issues: Supabase's default JWT expiry
MAX_REFRESH_TOKEN_CHARS = 512  # ours are ~150 characters


@dataclass(frozen=True)
class DemoRefreshGrant:
    user_id: str
    token_id: str
    expires_at: int


def demo_refresh_token_issue(*, user_id: str, ttl_seconds: int = DEMO_REFRESH_TOKEN_TTL_SECONDS) -> str:
    """A signed refresh token for the demo auth endpoint, bound to `user_id`."""
    import secrets

    from django.core import signing

    if not _UUID_RE.fullmatch(user_id):
        raise ValueError("user_id must be a UUID")
    payload = {"sub": user_id.lower(), "jti": secrets.token_urlsafe(12), "exp": int(time.time()) + ttl_seconds}
    return signing.dumps(payload, salt=DEMO_REFRESH_SALT, compress=False)


def demo_refresh_token_read(token: Any, *, now: float | None = None) -> DemoRefreshGrant:
    """The grant a demo refresh token carries; AuthError (code, message) when it is not one."""
    from django.core import signing

    if not isinstance(token, str) or not token.strip():
        raise AuthError("refresh_token_missing", "refresh_token required")
    if len(token) > MAX_REFRESH_TOKEN_CHARS:
        raise AuthError("refresh_token_invalid", "Invalid Refresh Token: not one this server issued")
    try:
        payload = signing.loads(token.strip(), salt=DEMO_REFRESH_SALT)
    except signing.BadSignature:
        raise AuthError("refresh_token_invalid", "Invalid Refresh Token: not one this server issued") from None
    sub, jti, exp = (payload.get(k) for k in ("sub", "jti", "exp")) if isinstance(payload, dict) else (None,) * 3
    if not (isinstance(sub, str) and _UUID_RE.fullmatch(sub) and isinstance(jti, str) and isinstance(exp, int)):
        raise AuthError("refresh_token_invalid", "Invalid Refresh Token: not one this server issued")
    if exp <= (time.time() if now is None else now):
        raise AuthError("refresh_token_expired",
                        "Invalid Refresh Token: it has expired; open the invitation link again")
    return DemoRefreshGrant(user_id=sub, token_id=jti, expires_at=exp)


def demo_link_fragment(*, user_id: str, ttl_seconds: int) -> tuple[str, dict[str, Any]]:
    """The fragment of a demo candidate link, shaped like the one Supabase's auth server puts
    in a redirect (`access_token=...&expires_at=...&expires_in=...&refresh_token=...&token_type=bearer`),
    and the tokens it holds."""
    from urllib.parse import urlencode

    access = demo_token_issue(user_id=user_id, ttl_seconds=ttl_seconds)
    refresh = demo_refresh_token_issue(user_id=user_id)
    expires_at = int(jwt.decode(access, options={"verify_signature": False})["exp"])
    tokens = {
        "access_token": access,
        "expires_at": expires_at,
        "expires_in": ttl_seconds,
        "refresh_token": refresh,
        "token_type": "bearer",
    }
    return urlencode(tokens), tokens
