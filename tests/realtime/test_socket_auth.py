"""Every way auth can fail, as the client sees it: server-auth-failure, then a close code."""

import base64
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings

from interviews.models import InterviewSession, SessionStatus
from realtime.jwks import load_or_create_local_key
from tests.realtime.wsclient import Client

pytestmark = pytest.mark.django_db(transaction=True)


def claims(user_id, **overrides):
    now = int(time.time())
    base = {"sub": user_id, "role": "authenticated", "aud": settings.JWT_AUDIENCE, "iss": settings.JWT_ISSUER,
            "iat": now, "exp": now + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def local_key():
    return load_or_create_local_key(settings.JWT_LOCAL_KEY_PATH)


def signed(user_id, **overrides):
    key = local_key()
    return jwt.encode(claims(user_id, **overrides), key.private_key, algorithm="ES256", headers={"kid": key.kid})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(user_id):
    other = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims(user_id), other, algorithm="ES256", headers={"kid": local_key().kid})


def unknown_kid(user_id):
    other = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims(user_id), other, algorithm="ES256", headers={"kid": "not-a-known-key"})


def alg_none(user_id):
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(claims(user_id)).encode())}."


def hs256_with_public_key(user_id):
    public_pem = local_key().private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": local_key().kid}).encode())
    body = b64url(json.dumps(claims(user_id)).encode())
    import hashlib
    import hmac
    signature = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64url(signature)}"


TOKENS = {
    "forged": (forged, "token_invalid_signature"),
    "expired": (lambda u: signed(u, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200), "token_expired"),
    "wrong audience": (lambda u: signed(u, aud="anon"), "token_wrong_audience"),
    "wrong issuer": (lambda u: signed(u, iss="https://evil.example/auth/v1"), "token_wrong_issuer"),
    "alg none": (alg_none, "token_unsupported_algorithm"),
    "HS256 signed with the public key": (hs256_with_public_key, "token_unsupported_algorithm"),
    "unknown kid": (unknown_kid, "token_unknown_key"),
    "garbage": (lambda u: "not-a-jwt", "token_malformed"),
}


@pytest.mark.parametrize("case", sorted(TOKENS))
async def test_bad_tokens_are_refused_with_4001(live_session, case):
    make, code = TOKENS[case]
    client = await Client.open()
    await client.send("client-auth", token=make(live_session.user_id), sessionId=live_session.session_id)
    failure = await client.expect("server-auth-failure")
    assert failure["code"] == code
    assert failure["error"]
    assert await client.expect_close() == 4001


async def test_other_users_session_is_forbidden(live_session, session_factory):
    stranger = await _other_session(session_factory)
    client = await Client.open()
    await client.send("client-auth", token=stranger.token, sessionId=live_session.session_id)
    failure = await client.expect("server-auth-failure")
    assert failure["code"] == "session_forbidden"
    assert await client.expect_close() == 4003


async def test_unknown_session_is_not_found(live_session):
    client = await Client.open()
    await client.send("client-auth", token=live_session.token, sessionId=str(uuid.uuid4()))
    assert (await client.expect("server-auth-failure"))["code"] == "session_not_found"
    assert await client.expect_close() == 4004


async def test_finished_session_cannot_be_joined(live_session):
    from channels.db import database_sync_to_async

    await database_sync_to_async(
        InterviewSession.objects.filter(pk=live_session.session_id).update)(status=SessionStatus.COMPLETED)
    client = await Client.open()
    await client.send("client-auth", token=live_session.token, sessionId=live_session.session_id)
    assert (await client.expect("server-auth-failure"))["code"] == "session_finished"
    assert await client.expect_close() == 4005


async def test_no_auth_in_time_closes_with_4008(live_session, settings):
    settings.REALTIME = {**settings.REALTIME, "AUTH_TIMEOUT_SECONDS": 0.3}
    client = await Client.open()
    failure = await client.expect("server-auth-failure", timeout=3)
    assert failure["code"] == "auth_timeout"
    assert await client.expect_close() == 4008


async def test_wrong_origin_is_rejected_at_the_handshake():
    from channels.testing import WebsocketCommunicator

    from interview_site.asgi import application

    communicator = WebsocketCommunicator(application, "/api/interview-socket",
                                         headers=[(b"origin", b"https://evil.example")])
    connected, _ = await communicator.connect()
    assert not connected


async def _other_session(session_factory):
    from channels.db import database_sync_to_async

    return await database_sync_to_async(session_factory)()


async def test_a_user_may_hold_at_most_five_connections(session_factory):
    import asyncio

    from channels.db import database_sync_to_async

    user = str(uuid.uuid4())
    infos = [await database_sync_to_async(session_factory)(user_id=user) for _ in range(6)]
    clients = [await Client.open() for _ in infos]
    # All at once: the limit holds even while earlier logins are still being checked.
    await asyncio.gather(*(c.send("client-auth", token=i.token, sessionId=i.session_id) for c, i in zip(clients, infos)))
    outcomes = []
    for client in clients:
        while True:
            message = await client.next(10)
            if message["type"] in ("server-auth-success", "server-auth-failure"):
                outcomes.append(message["payload"].get("code", "ok"))
                break
    assert outcomes.count("ok") == 5 and outcomes.count("too_many_connections") == 1
    for client in clients:
        await client.close()
