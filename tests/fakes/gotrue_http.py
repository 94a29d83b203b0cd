"""Supabase's auth server (GoTrue), the part a signed-in page uses during an interview.

- `GET /auth/v1/.well-known/jwks.json`: the public key its access tokens are signed with
  (ES256, `kid`), as the interview server fetches it to verify tokens;
- `POST /auth/v1/token?grant_type=refresh_token`, JSON `{"refresh_token": "..."}`: a new
  access token and the next refresh token (`{access_token, token_type, expires_in,
  expires_at, refresh_token, user}`); a spent or unknown refresh token gets 400
  `{"error": "invalid_grant", "error_description": "Invalid Refresh Token: ..."}`;
- CORS as Supabase answers it, so a page on another origin may call it (preflight
  `OPTIONS`, `Access-Control-Allow-Origin` on answers).

Access tokens carry `iss` `<origin>/auth/v1`, `aud` and `role` `authenticated`, `sub` the
user. Strict: anything else a page sends is recorded in `errors`.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from .http_server import FakeHttpServer, HttpRequest, HttpResponse, json_body_or_error

CORS_HEADERS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, POST, PUT, DELETE, OPTIONS",
    "access-control-allow-headers": "apikey, authorization, content-type, x-client-info, x-supabase-api-version",
    "access-control-max-age": "600",
}


class FakeGoTrue(FakeHttpServer):
    name = "fake-gotrue"

    def __init__(self, *, access_ttl: int = 3600) -> None:
        super().__init__()
        self.access_ttl = access_ttl
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.kid = uuid.uuid4().hex[:16]
        self._refresh: dict[str, dict] = {}  # refresh token -> {"user": id, "spent": bool}
        self.refreshes: list[dict] = []  # {"refresh_token", "apikey"} of each good renewal

    @property
    def issuer(self) -> str:
        return f"{self.origin}/auth/v1"

    def access_token(self, user_id: str, ttl: int) -> str:
        now = int(time.time())
        claims = {"sub": user_id, "aud": "authenticated", "role": "authenticated", "iss": self.issuer,
                  "iat": now, "exp": now + ttl, "session_id": str(uuid.uuid4())}
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid})

    def sign_in(self, user_id: str, *, ttl: int) -> dict:
        """What a sign-in redirect carries: an access token living `ttl` seconds and a refresh token."""
        access = self.access_token(user_id, ttl)
        refresh = secrets.token_urlsafe(16)
        with self._lock:
            self._refresh[refresh] = {"user": user_id, "spent": False}
        return {"access_token": access, "refresh_token": refresh, "expires_in": ttl,
                "expires_at": jwt.decode(access, options={"verify_signature": False})["exp"], "token_type": "bearer"}

    def _jwks(self) -> dict:
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "alg": "ES256", "use": "sig"}]}

    async def handle(self, request: HttpRequest, response: HttpResponse) -> None:
        if request.method == "OPTIONS":
            await response.send_bytes(204, b"", "text/plain", CORS_HEADERS)
            return
        if request.method == "GET" and request.path == "/auth/v1/.well-known/jwks.json":
            await response.send_json(200, self._jwks(), CORS_HEADERS)
            return
        if request.method == "POST" and request.path == "/auth/v1/token":
            await self._token(request, response)
            return
        self.record_error(f"unexpected {request.method} {request.target}")
        await response.send_json(404, {"code": 404, "error_code": "not_found", "msg": "Not found"}, CORS_HEADERS)

    async def _token(self, request: HttpRequest, response: HttpResponse) -> None:
        grant = request.query.get("grant_type", [""])[0]
        if grant != "refresh_token":
            self.record_error(f"grant_type {grant!r}")
            await response.send_json(400, {"error": "unsupported_grant_type", "error_description": ""}, CORS_HEADERS)
            return
        body = json_body_or_error(self, request)
        token = body.get("refresh_token") if body else None
        if not isinstance(token, str) or not token:
            self.record_error("refresh_token missing")
            await response.send_json(400, {"error": "invalid_request", "error_description": "refresh_token required"},
                                     CORS_HEADERS)
            return
        with self._lock:
            entry = self._refresh.get(token)
            reused = bool(entry and entry["spent"])
            if entry and not reused:
                entry["spent"] = True
                next_token = secrets.token_urlsafe(16)
                self._refresh[next_token] = {"user": entry["user"], "spent": False}
        if entry is None or reused:
            why = "Already Used" if reused else "Refresh Token Not Found"
            error = {"error": "invalid_grant", "error_description": f"Invalid Refresh Token: {why}"}
            await response.send_json(400, error, CORS_HEADERS)
            return
        self.refreshes.append({"refresh_token": token, "apikey": request.headers.get("apikey")})
        access = self.access_token(entry["user"], self.access_ttl)
        expires_at = jwt.decode(access, options={"verify_signature": False})["exp"]
        await response.send_json(200, {
            "access_token": access, "token_type": "bearer", "expires_in": self.access_ttl, "expires_at": expires_at,
            "refresh_token": next_token,
            "user": {"id": entry["user"], "aud": "authenticated", "role": "authenticated"},
        }, CORS_HEADERS)
