"""Where token-verification keys come from, and how they are cached.

Two sources share one interface (``async fetch() -> dict``, a JWKS document):

* ``HTTPJWKSSource``  - Supabase's ``/auth/v1/.well-known/jwks.json``;
* ``LocalKeySource``  - the public half of the local demo key (no Supabase configured).

``KeyCache`` sits in front of either one, so demo tokens and Supabase tokens go through
the same verification path: TTL cache, rate-limited refetch on an unknown ``kid``
(key rotation), one fetch in flight at a time, and "serve stale on failure".
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

logger = logging.getLogger(__name__)

JWKS_PATH = "/auth/v1/.well-known/jwks.json"
# A JWKS larger than this is not a JWKS; don't parse megabytes from a misbehaving server.
MAX_JWKS_BYTES = 256 * 1024
MIN_RSA_BITS = 2048


class JWKSFetchError(Exception):
    """The key set could not be obtained (network, HTTP status, or not a JWKS)."""


class JWKSSource(Protocol):
    async def fetch(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    algorithm: str  # decided from the key type, never from a token header
    key: Any  # a cryptography public key object


# --- Sources ----------------------------------------------------------------------------


class HTTPJWKSSource:
    def __init__(self, url: str, timeout: float):
        self.url = url
        self.timeout = timeout

    async def fetch(self) -> dict[str, Any]:
        # A client per fetch: fetches are rare, and this keeps no connection bound to a loop.
        try:
            async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
                response = await client.get(self.url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise JWKSFetchError(f"{type(exc).__name__} fetching {self.url}") from exc
        if response.status_code != 200:
            raise JWKSFetchError(f"HTTP {response.status_code} from {self.url}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise JWKSFetchError(f"oversized JWKS from {self.url}")
        try:
            document = response.json()
        except ValueError as exc:
            raise JWKSFetchError(f"non-JSON JWKS from {self.url}") from exc
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise JWKSFetchError(f"no 'keys' list in JWKS from {self.url}")
        return document


class LocalKeySource:
    """Serves the public half of the local demo signing key as a one-key JWKS."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    async def fetch(self) -> dict[str, Any]:
        try:
            local = load_or_create_local_key(self.path)
        except (OSError, ValueError, RuntimeError) as exc:
            raise JWKSFetchError(f"local key {self.path}: {exc}") from exc
        return {"keys": [local.public_jwk]}


# --- The local demo key -----------------------------------------------------------------


@dataclass(frozen=True)
class LocalKey:
    private_key: ec.EllipticCurvePrivateKey
    kid: str
    public_jwk: dict[str, Any]


_local_keys: dict[Path, LocalKey] = {}
_local_keys_lock = threading.Lock()


def load_or_create_local_key(path: Path | str) -> LocalKey:
    """The EC P-256 demo key at ``path``, generated (mode 0600) on first use."""
    path = Path(path).resolve()
    with _local_keys_lock:
        cached = _local_keys.get(path)
        if cached is None:
            cached = _local_keys[path] = _build_local_key(_read_or_create_pem(path))
        return cached


def _read_or_create_pem(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Write a 0600 temp file, then hard-link it into place: the link is atomic and fails if
    # another process got there first, in which case its key wins (tokens it issued stay valid).
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".jwt-key-")  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_bytes()
    finally:
        os.unlink(tmp)
    return pem


def _build_local_key(pem: bytes) -> LocalKey:
    private_key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
        private_key.curve, ec.SECP256R1
    ):
        raise RuntimeError("JWT_LOCAL_KEY_PATH must hold an EC P-256 private key")
    jwk = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    kid = jwk_thumbprint(jwk)
    jwk.update(kid=kid, alg="ES256", use="sig")
    return LocalKey(private_key=private_key, kid=kid, public_jwk=jwk)


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint: SHA-256 of the required members, sorted, no whitespace."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- Parsing a JWKS ---------------------------------------------------------------------


def parse_jwks(document: dict[str, Any]) -> dict[str, VerificationKey]:
    """Usable signing keys by kid. Anything we would not verify with is skipped, notably
    symmetric ("oct") keys: a JWKS must never turn a public value into an HMAC secret."""
    keys: dict[str, VerificationKey] = {}
    for jwk in document.get("keys", []):
        try:
            parsed = _parse_jwk(jwk)
        except Exception as exc:  # one bad entry must not take the whole set down
            logger.warning("skipping unusable JWKS entry: %s", type(exc).__name__)
            continue
        if parsed is not None:
            keys[parsed.kid] = parsed
    return keys


def _parse_jwk(jwk: Any) -> VerificationKey | None:
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
        return None
    if jwk.get("use", "sig") != "sig":
        return None
    kty = jwk.get("kty")
    if kty == "EC" and jwk.get("crv") == "P-256":
        algorithm, key = "ES256", ECAlgorithm.from_jwk(jwk)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            key = key.public_key()
    elif kty == "RSA":
        algorithm, key = "RS256", RSAAlgorithm.from_jwk(jwk)
        if isinstance(key, rsa.RSAPrivateKey):
            key = key.public_key()
        if key.key_size < MIN_RSA_BITS:
            return None
    else:
        return None
    # A key that declares a different algorithm than its type implies is not ours to guess.
    if jwk.get("alg") not in (None, algorithm):
        return None
    return VerificationKey(kid=jwk["kid"], algorithm=algorithm, key=key)


# --- The cache --------------------------------------------------------------------------


class KeyCache:
    """Caches a source's keys.

    * fresh for ``ttl`` seconds; a failed refresh is retried at most once per
      ``min_refetch_interval`` seconds;
    * key rotation: a kid never seen before triggers one refetch at once (the new key
      may have been published since our last fetch); a kid that is still unknown after
      that is refused without another fetch. Refetches for unknown kids are at most one
      per ``min_refetch_interval`` seconds, so garbage kids can't hammer the auth server;
    * concurrent callers share one in-flight fetch;
    * on fetch failure the previous keys stay in use (a short outage of the endpoint goes
      unnoticed); with none, ``JWKSFetchError``.
    """

    MAX_TRIED_KIDS = 1024  # unknown kids remembered (bounded: forgotten all at once when full)
    JUST_FETCHED_SECONDS = 1.0

    def __init__(
        self,
        source: JWKSSource,
        *,
        ttl: float,
        min_refetch_interval: float = 30.0,
        clock: Callable[[], float] | None = None,
    ):
        self.source = source
        self.ttl = ttl
        self.min_refetch_interval = min_refetch_interval
        self.clock = clock or time.monotonic
        self._keys: dict[str, VerificationKey] | None = None
        self._fetched_at = 0.0  # last successful fetch
        self._attempted_at: float | None = None  # last fetch attempt, successful or not
        self._inflight: asyncio.Task | None = None
        self._tried_kids: set[str] = set()  # unknown kids that already had their refetch
        self._unknown_refetch_at: float | None = None  # last refetch for an unknown kid

    async def get(self, kid: str) -> VerificationKey | None:
        """The key named ``kid``, or None if the source doesn't have it."""
        now = self.clock()
        if self._keys is None:
            await self._refresh()  # raises JWKSFetchError if there is nothing to fall back on
        elif now - self._fetched_at >= self.ttl and self._may_fetch(now):
            await self._refresh()
        key = self._keys.get(kid)
        if key is None and self._may_refetch_for(kid, self.clock()):
            await self._refresh()  # maybe the key was rotated in since our last fetch
            key = self._keys.get(kid)
        return key

    def _may_fetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self.min_refetch_interval

    def _may_refetch_for(self, kid: str, now: float) -> bool:
        if kid in self._tried_kids:
            return False  # it had its refetch and was still unknown
        if now - self._fetched_at < self.JUST_FETCHED_SECONDS:
            return False  # the keys we hold are as new as a refetch would give
        if self._unknown_refetch_at is not None and now - self._unknown_refetch_at < self.min_refetch_interval:
            return False
        if len(self._tried_kids) >= self.MAX_TRIED_KIDS:
            self._tried_kids.clear()
        self._tried_kids.add(kid)
        self._unknown_refetch_at = now
        return True

    async def _refresh(self) -> None:
        loop = asyncio.get_running_loop()
        task = self._inflight
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._inflight = loop.create_task(self._fetch())
            # Mark the outcome as seen even if every waiter was cancelled meanwhile.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        # shield: a caller giving up (auth timeout) must not cancel the fetch for the others.
        await asyncio.shield(task)

    async def _fetch(self) -> None:
        self._attempted_at = self.clock()
        try:
            keys = parse_jwks(await self.source.fetch())
        except JWKSFetchError as exc:
            if self._keys is None:
                logger.warning("JWKS unavailable: %s", exc)
                raise
            logger.warning("JWKS refresh failed, keeping cached keys: %s", exc)
            return
        self._keys, self._fetched_at = keys, self.clock()
