"""Bad input gets a clear error and loses nothing; abuse gets a close code; no other session is touched."""

import asyncio
import base64

import pytest

from tests.realtime.wsclient import Client

pytestmark = pytest.mark.django_db(transaction=True)


async def authed(info) -> Client:
    client = await Client.open()
    await client.auth(info)
    await client.expect("server-ai-speech-chunk", timeout=20)
    return client


@pytest.mark.parametrize("raw, code", [
    ("{not json", "invalid_json"),
    ("[1, 2, 3]", "invalid_message"),
    ('{"payload": {}}', "invalid_message"),
    ('{"type": "client-dance"}', "unknown_type"),
    ('{"type": "client-audio-chunk", "payload": {"data": "@@@not base64@@@"}}', "invalid_audio"),
    ('{"type": "client-audio-chunk", "payload": {"data": "AAEC"}}', "invalid_audio"),  # odd byte count
    ('{"type": "client-audio-chunk", "payload": {}}', "invalid_audio"),
    ('{"type": "client-audio-chunk", "payload": "abc"}', "invalid_payload"),
    ('{"type": "client-text-message", "payload": {"text": "   "}}', "invalid_payload"),
    ('{"type": "client-end", "payload": {"reason": 5}}', "invalid_payload"),
])
async def test_malformed_messages_get_an_error_and_the_session_goes_on(live_session, raw, code):
    client = await authed(live_session)
    await client.send_raw(raw)
    error = await client.expect("server-error")
    assert error["code"] == code and error["error"]
    # Nothing was lost: the session still answers.
    await client.send("client-interrupt")
    await client.expect("server-ai-interrupted")
    await client.close()


async def test_audio_before_auth_is_refused_with_4002(live_session):
    client = await Client.open()
    await client.send_audio(b"\x00\x00" * 640)
    failure = await client.expect("server-auth-failure")
    assert failure["code"] == "auth_required"
    assert await client.expect_close() == 4002


async def test_bad_json_before_auth_is_an_error_not_a_close(live_session):
    client = await Client.open()
    await client.send_raw("{oops")
    assert (await client.expect("server-error"))["code"] == "invalid_json"
    await client.auth(live_session)
    await client.close()


async def test_oversize_message_closes_with_4013_and_spares_other_sessions(live_session, session_factory):
    from channels.db import database_sync_to_async

    other = await database_sync_to_async(session_factory)()
    bystander = await authed(other)
    client = await authed(live_session)
    await client.send_audio(b"\x00\x01" * 40_000)  # 80 kB of audio, more than a message may hold
    error = await client.expect("server-error")
    assert error["code"] == "message_too_big"
    assert await client.expect_close() == 4013
    await bystander.send("client-interrupt")
    await bystander.expect("server-ai-interrupted")
    await bystander.close()


async def test_audio_faster_than_real_time_is_dropped_then_closed(live_session, settings):
    settings.REALTIME = {**settings.REALTIME, "AUDIO_BYTES_PER_SECOND": 32000, "AUDIO_BURST_SECONDS": 0.5,
                         "AUDIO_ABUSE_BYTES": 64000}
    client = await authed(live_session)
    chunk = base64.b64encode(b"\x00\x00" * 640).decode()
    for _ in range(40):  # 1.6 s of audio at once
        await client.send("client-audio-chunk", data=chunk)
    error = await client.expect("server-error")
    assert error["code"] == "rate_limited"
    for _ in range(200):
        await client.send("client-audio-chunk", data=chunk)
        await asyncio.sleep(0)
    assert await client.expect_close() == 4029


async def test_second_auth_is_an_error(live_session):
    client = await authed(live_session)
    await client.send("client-auth", token=live_session.token, sessionId=live_session.session_id)
    assert (await client.expect("server-error"))["code"] == "already_authenticated"
    await client.close()


async def test_binary_frames_are_refused_politely(live_session):
    client = await authed(live_session)
    await client.ws.send_to(bytes_data=b"\x00\x01")
    assert (await client.expect("server-error"))["code"] == "binary_not_supported"
    await client.close()
