"""Access-token verification, with real keys and a real JWKS server on 127.0.0.1.

Each rejection test asserts the error code a client would see, and that the token
never leaks into the error.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import stat
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.test import override_settings
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from realtime.auth import (
    AuthError,
    Identity,
    build_token_verifier,
    demo_token_issue,
    get_token_verifier,
    reset_token_verifier,
)
from realtime.jwks import jwk_thumbprint
from tests.realtime.jwks_server import JWKSServer

LOCAL_ISSUER = "http://localhost/auth/v1"
USER = "3f1c2b8e-1d2a-4c5b-9e8f-0a1b2c3d4e5f"
LEGACY_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
DROP = object()  # claim value meaning "leave this claim out"


# --- Helpers ------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict, claims: dict, signature: bytes = b"") -> str:
    """A token built without PyJWT, for what PyJWT refuses to produce."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64url(signature)}"


def hs256(claims: dict, secret: bytes, **header) -> str:
    header = {"alg": "HS256", "typ": "JWT", **header}
    unsigned = hand_made(header, claims)[:-1]  # drop the trailing "."
    signature = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64url(signature)}"


def claims_for(issuer: str, **overrides) -> dict:
    now = int(time.time())
    claims = {
        "sub": USER,
        "role": "authenticated",
        "aud": "authenticated",
        "iss": issuer,
        "iat": now,
        "exp": now + 3600,
        "email": "candidate@example.com",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not DROP}


class Signer:
    """A key pair the test signs with, as Supabase's auth server would."""

    def __init__(self, private_key, kid: str | None = None):
        self.private_key = private_key
        if isinstance(private_key, rsa.RSAPrivateKey):
            self.alg, jwk = "RS256", RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        else:
            self.alg, jwk = "ES256", ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        self.kid = kid or jwk_thumbprint(jwk)
        self.jwk = {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    @classmethod
    def es256(cls, kid: str | None = None) -> "Signer":
        return cls(ec.generate_private_key(ec.SECP256R1()), kid)

    def token(self, issuer: str, *, headers: dict | None = None, **claims) -> str:
        return jwt.encode(
            claims_for(issuer, **claims),
            self.private_key,
            algorithm=self.alg,
            headers={"kid": self.kid, **(headers or {})},
        )

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


async def rejected(verifier, token, code: str) -> AuthError:
    with pytest.raises(AuthError) as info:
        await verifier.verify(token)
    err = info.value
    assert err.code == code, f"expected {code}, got {err.code}: {err.message}"
    assert err.message
    if isinstance(token, str) and token.strip():
        assert token not in err.message and token not in str(err)
    return err


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- Fixtures -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def local_settings(tmp_path):
    key_path = tmp_path / "keys" / "demo-jwt-key.pem"
    with override_settings(
        SUPABASE_URL="",
        SUPABASE_JWT_SECRET="",
        JWT_ISSUER=LOCAL_ISSUER,
        JWT_AUDIENCE="authenticated",
        JWT_LOCAL_KEY_PATH=key_path,
        JWKS_CACHE_SECONDS=600,
        JWKS_FETCH_TIMEOUT_SECONDS=2.0,
    ):
        reset_token_verifier()
        yield key_path
    reset_token_verifier()


@pytest.fixture
def server():
    srv = JWKSServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def supabase(server):
    """Settings pointing at the local JWKS server, as if it were a Supabase project."""
    with override_settings(SUPABASE_URL=server.url, JWT_ISSUER=f"{server.url}/auth/v1"):
        reset_token_verifier()
        server.issuer = f"{server.url}/auth/v1"
        yield server
    reset_token_verifier()


@pytest.fixture(scope="module")
def rsa_private_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def es(supabase) -> Signer:
    signer = Signer.es256()
    supabase.set_keys(signer.jwk)
    return signer


# --- Local demo tokens --------------------------------------------------------------------


async def test_demo_token_verifies():
    token = demo_token_issue(user_id=USER.upper(), email="demo@example.com")
    identity = await get_token_verifier().verify(token)
    assert isinstance(identity, Identity)
    assert identity.user_id == USER  # canonical lower-case
    assert identity.role == "authenticated"
    assert identity.email == "demo@example.com"
    assert abs(identity.expires_at - (time.time() + 3600)) < 5


async def test_demo_token_without_email():
    identity = await get_token_verifier().verify(demo_token_issue(user_id=USER, ttl_seconds=60))
    assert identity.email is None


def test_demo_key_is_private_and_kid_is_its_thumbprint(local_settings):
    token = demo_token_issue(user_id=USER)
    assert stat.S_IMODE(local_settings.stat().st_mode) == 0o600
    assert [p.name for p in local_settings.parent.iterdir()] == [local_settings.name]  # no temp left
    private = serialization.load_pem_private_key(local_settings.read_bytes(), password=None)
    expected_kid = jwk_thumbprint(ECAlgorithm.to_jwk(private.public_key(), as_dict=True))
    assert jwt.get_unverified_header(token)["kid"] == expected_kid
    assert jwt.get_unverified_header(demo_token_issue(user_id=USER))["kid"] == expected_kid


async def test_demo_token_expired():
    await rejected(get_token_verifier(), demo_token_issue(user_id=USER, ttl_seconds=-120), "token_expired")


def test_demo_token_needs_uuid():
    with pytest.raises(ValueError):
        demo_token_issue(user_id="not-a-uuid")


async def test_demo_token_from_another_local_key_is_unknown(tmp_path):
    with override_settings(JWT_LOCAL_KEY_PATH=tmp_path / "other.pem"):
        foreign = demo_token_issue(user_id=USER)
    await rejected(get_token_verifier(), foreign, "token_unknown_key")


# --- Tokens through the HTTP JWKS ---------------------------------------------------------


async def test_es256_through_http_jwks(es, supabase):
    identity = await get_token_verifier().verify(es.token(supabase.issuer))
    assert identity == Identity(
        user_id=USER, role="authenticated", email="candidate@example.com", expires_at=identity.expires_at
    )
    assert supabase.hits == 1


async def test_rs256_through_http_jwks(supabase, rsa_private_key):
    signer = Signer(rsa_private_key)
    supabase.set_keys(signer.jwk)
    identity = await get_token_verifier().verify(signer.token(supabase.issuer))
    assert identity.user_id == USER


async def test_jwks_key_without_alg_member_still_works(supabase):
    signer = Signer.es256()
    supabase.set_keys({k: v for k, v in signer.jwk.items() if k != "alg"})
    assert (await get_token_verifier().verify(signer.token(supabase.issuer))).user_id == USER


async def test_demo_token_is_not_accepted_by_supabase_verifier(es):
    await rejected(get_token_verifier(), demo_token_issue(user_id=USER), "token_unknown_key")


async def test_forged_with_same_kid(es, supabase):
    forger = Signer.es256(kid=es.kid)
    await rejected(get_token_verifier(), forger.token(supabase.issuer), "token_invalid_signature")


async def test_tampered_payload(es, supabase):
    header, _, signature = es.token(supabase.issuer).split(".")
    payload = b64url(json.dumps(claims_for(supabase.issuer, sub="00000000-0000-4000-8000-000000000666")).encode())
    await rejected(get_token_verifier(), f"{header}.{payload}.{signature}", "token_invalid_signature")


async def test_expired(es, supabase):
    now = int(time.time())
    token = es.token(supabase.issuer, iat=now - 7200, exp=now - 3600)
    await rejected(get_token_verifier(), token, "token_expired")


async def test_expiry_leeway(es, supabase):
    now = int(time.time())
    assert await get_token_verifier().verify(es.token(supabase.issuer, exp=now - 5))


async def test_wrong_audience(es, supabase):
    await rejected(get_token_verifier(), es.token(supabase.issuer, aud="another-app"), "token_wrong_audience")


async def test_wrong_issuer(es, supabase):
    token = es.token("https://other-project.supabase.co/auth/v1")
    await rejected(get_token_verifier(), token, "token_wrong_issuer")


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "HS384", "HS512", "PS256", "ES384", "EdDSA"])
async def test_unsupported_algorithms(es, supabase, alg):
    token = hand_made({"alg": alg, "typ": "JWT", "kid": es.kid}, claims_for(supabase.issuer))
    await rejected(get_token_verifier(), token, "token_unsupported_algorithm")


async def test_alg_none_local():
    token = hand_made({"alg": "none", "typ": "JWT"}, claims_for(LOCAL_ISSUER))
    await rejected(get_token_verifier(), token, "token_unsupported_algorithm")


async def test_hs256_signed_with_public_key_is_refused(es, supabase):
    # The classic confusion attack: use the published key as an HMAC secret.
    token = hs256(claims_for(supabase.issuer), es.public_pem(), kid=es.kid)
    await rejected(get_token_verifier(), token, "token_unsupported_algorithm")
    assert supabase.hits == 0  # refused before any key lookup


async def test_hs256_signed_with_public_key_fails_even_with_a_secret(es, supabase):
    with override_settings(SUPABASE_JWT_SECRET=LEGACY_SECRET):
        reset_token_verifier()
        token = hs256(claims_for(supabase.issuer), es.public_pem(), kid=es.kid)
        await rejected(get_token_verifier(), token, "token_invalid_signature")


async def test_rs256_header_on_an_ec_key(es, supabase):
    # The algorithm follows the key type: an EC key only ever verifies ES256.
    token = hand_made({"alg": "RS256", "kid": es.kid}, claims_for(supabase.issuer), b"\x00" * 256)
    await rejected(get_token_verifier(), token, "token_unsupported_algorithm")


async def test_symmetric_key_in_jwks_is_ignored(supabase):
    oct_jwk = {"kty": "oct", "kid": "sym", "k": b64url(b"k" * 32), "alg": "HS256"}
    supabase.set_keys(oct_jwk)
    token = hand_made({"alg": "ES256", "kid": "sym"}, claims_for(supabase.issuer), b"\x00" * 64)
    await rejected(get_token_verifier(), token, "token_unknown_key")
    token = hs256(claims_for(supabase.issuer), b"k" * 32, kid="sym")
    await rejected(get_token_verifier(), token, "token_unsupported_algorithm")


async def test_legacy_hs256_with_secret(supabase):
    with override_settings(SUPABASE_JWT_SECRET=LEGACY_SECRET):
        reset_token_verifier()
        verifier = get_token_verifier()
        identity = await verifier.verify(hs256(claims_for(supabase.issuer), LEGACY_SECRET.encode()))
        assert identity.user_id == USER
        wrong = hs256(claims_for(supabase.issuer), b"not-the-secret-but-just-as-long-as-it-is!!")
        await rejected(verifier, wrong, "token_invalid_signature")
        # PyJWT-produced legacy tokens too.
        assert await verifier.verify(jwt.encode(claims_for(supabase.issuer), LEGACY_SECRET, algorithm="HS256"))


async def test_legacy_hs256_without_secret(supabase):
    token = hs256(claims_for(supabase.issuer), LEGACY_SECRET.encode())
    await rejected(get_token_verifier(), token, "token_unsupported_algorithm")


async def test_legacy_hs256_still_checks_claims(supabase):
    with override_settings(SUPABASE_JWT_SECRET=LEGACY_SECRET):
        reset_token_verifier()
        token = hs256(claims_for(supabase.issuer, role="anon"), LEGACY_SECRET.encode())
        await rejected(get_token_verifier(), token, "token_bad_claims")


# --- Key lookup, caching, rotation --------------------------------------------------------


async def test_unknown_kid(es, supabase):
    verifier = get_token_verifier()
    await verifier.verify(es.token(supabase.issuer))
    stranger = Signer.es256()  # not published
    await rejected(verifier, stranger.token(supabase.issuer), "token_unknown_key")


async def test_unknown_kid_on_cold_cache(es, supabase):
    await rejected(get_token_verifier(), Signer.es256().token(supabase.issuer), "token_unknown_key")
    assert supabase.hits == 1


async def test_missing_kid(es, supabase):
    token = jwt.encode(claims_for(supabase.issuer), es.private_key, algorithm="ES256")
    await rejected(get_token_verifier(), token, "token_unknown_key")


async def test_garbage_kids_do_not_hammer_the_auth_server(es, supabase):
    verifier = get_token_verifier()
    await verifier.verify(es.token(supabase.issuer))
    for i in range(20):
        token = hand_made({"alg": "ES256", "kid": f"garbage-{i}"}, claims_for(supabase.issuer), b"\x00" * 64)
        await rejected(verifier, token, "token_unknown_key")
    # At most the first unknown kid had its refetch (none if it came within a second of the
    # first fetch); then the rate limit holds.
    assert supabase.hits <= 2


async def test_key_rotation(es, supabase):
    clock = FakeClock()
    verifier = build_token_verifier(clock=clock)
    await verifier.verify(es.token(supabase.issuer))
    assert supabase.hits == 1

    rotated = Signer.es256()
    supabase.set_keys(es.jwk, rotated.jwk)
    # A new kid triggers one refetch at once, and the new key is found.
    clock.now += 5
    assert (await verifier.verify(rotated.token(supabase.issuer))).user_id == USER
    assert supabase.hits == 2
    assert await verifier.verify(es.token(supabase.issuer))  # old key still listed
    assert supabase.hits == 2
    # A kid still unknown after its refetch is refused, and asks for no more fetches.
    stranger = Signer.es256()
    clock.now += 31
    await rejected(verifier, stranger.token(supabase.issuer), "token_unknown_key")
    assert supabase.hits == 3
    await rejected(verifier, stranger.token(supabase.issuer), "token_unknown_key")
    clock.now += 31
    await rejected(verifier, stranger.token(supabase.issuer), "token_unknown_key")
    assert supabase.hits == 3

    # The old key is retired: after the cache expires it is no longer accepted.
    supabase.set_keys(rotated.jwk)
    clock.now += 601
    await rejected(verifier, es.token(supabase.issuer), "token_unknown_key")
    assert supabase.hits == 4


async def test_jwks_is_cached(es, supabase):
    verifier = get_token_verifier()
    for _ in range(50):
        await verifier.verify(es.token(supabase.issuer))
    assert supabase.hits == 1


async def test_concurrent_fetches_are_coalesced(es, supabase):
    verifier = get_token_verifier()
    token = es.token(supabase.issuer)
    identities = await asyncio.gather(*(verifier.verify(token) for _ in range(20)))
    assert {i.user_id for i in identities} == {USER}
    assert supabase.hits == 1


async def test_cache_expires(es, supabase):
    clock = FakeClock()
    verifier = build_token_verifier(clock=clock)
    await verifier.verify(es.token(supabase.issuer))
    clock.now += 599
    await verifier.verify(es.token(supabase.issuer))
    assert supabase.hits == 1
    clock.now += 2
    await verifier.verify(es.token(supabase.issuer))
    assert supabase.hits == 2


async def test_stale_cache_is_used_when_server_fails(es, supabase):
    clock = FakeClock()
    verifier = build_token_verifier(clock=clock)
    await verifier.verify(es.token(supabase.issuer))
    supabase.status = 503
    clock.now += 601
    for _ in range(5):
        assert await verifier.verify(es.token(supabase.issuer))
    assert supabase.hits == 2  # one failed refresh, then back off
    supabase.stop()
    clock.now += 601
    assert await verifier.verify(es.token(supabase.issuer))


async def test_jwks_server_down_without_cache(es, supabase):
    supabase.stop()
    await rejected(get_token_verifier(), es.token(supabase.issuer), "jwks_unavailable")


@pytest.mark.parametrize("status, body", [(500, None), (200, b"<html>not json</html>"), (200, b'{"no":"keys"}')])
async def test_jwks_bad_response_without_cache(es, supabase, status, body):
    supabase.status, supabase.body = status, body
    verifier = get_token_verifier()
    await rejected(verifier, es.token(supabase.issuer), "jwks_unavailable")
    # Recovery needs no restart.
    supabase.status, supabase.body = 200, None
    assert await verifier.verify(es.token(supabase.issuer))


async def test_jwks_fetch_timeout(es, supabase):
    supabase.delay = 1.0
    with override_settings(JWKS_FETCH_TIMEOUT_SECONDS=0.2):
        reset_token_verifier()
        started = time.monotonic()
        await rejected(get_token_verifier(), es.token(supabase.issuer), "jwks_unavailable")
        assert time.monotonic() - started < 0.9


# --- Malformed tokens and bad claims ------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "   "])
async def test_missing_token(token):
    await rejected(get_token_verifier(), token, "token_missing")


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "...", "eyJ.eyJ.sig", "x" * 10_000, 12345, b"bytes.are.not.tokens"],
)
async def test_malformed_token(token):
    await rejected(get_token_verifier(), token, "token_malformed")


async def test_malformed_payload(es, supabase):
    header = b64url(json.dumps({"alg": "ES256", "kid": es.kid}).encode())
    await rejected(get_token_verifier(), f"{header}.!!!.{b64url(b'x' * 64)}", "token_malformed")


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": DROP},
        {"sub": "not-a-uuid"},
        {"sub": "3f1c2b8e1d2a4c5b9e8f0a1b2c3d4e5f"},  # no hyphens: not the canonical form
        {"sub": 42},
        {"role": "anon"},
        {"role": "service_role"},
        {"role": DROP},
        {"exp": DROP},
        {"aud": DROP},
        {"iss": DROP},
        {"iat": int(time.time()) + 3600},  # issued in the future
    ],
    # Stable ids (parallel workers must collect the same names): a time shows as "<time>".
    ids=lambda c: ",".join(f"{k}={'<none>' if v is DROP else '<time>' if k == 'iat' else v}" for k, v in c.items()),
)
async def test_bad_claims(es, supabase, claims):
    await rejected(get_token_verifier(), es.token(supabase.issuer, **claims), "token_bad_claims")


async def test_audience_list_containing_ours(es, supabase):
    token = es.token(supabase.issuer, aud=["authenticated", "other"])
    assert (await get_token_verifier().verify(token)).user_id == USER


async def test_process_wide_verifier_follows_settings(es, supabase):
    first = get_token_verifier()
    assert get_token_verifier() is first
    reset_token_verifier()
    assert get_token_verifier() is not first
