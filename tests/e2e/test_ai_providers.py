"""The whole spoken interview through a real daphne with each cloud provider set, reached
through the real SDKs at strict local stand-ins that speak the vendors' wire protocols
(tests/fakes/). Each set: the opening is heard, a spoken answer is transcribed and
answered, a barge-in stops the reply with nothing of it sent after the acknowledgement,
and the model's analysis of the finished session reaches the admin."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx
import pytest

from tests.e2e.helpers import receive_until, stored_turns
from tests.factories import chunks, silence, speech
from tests.fakes.elevenlabs_http import ElevenLabsHttpFake
from tests.fakes.gemini_http import FakeGeminiHttp
from tests.fakes.gemini_live import FakeGeminiLive
from tests.fakes.openai_http import OpenAIHttpFake
from tests.fakes.openai_realtime import OpenAIRealtimeFake
from tests.servers import one_worker

pytestmark = pytest.mark.slow

ANSWER = "i have built backend services in python for five years"


@pytest.fixture(scope="module")
def openai_fake():
    fake = OpenAIHttpFake().start()
    yield fake
    fake.stop()
    assert list(fake.errors) == []


@pytest.fixture(scope="module")
def realtime_fake(openai_fake):
    fake = OpenAIRealtimeFake(api_key=openai_fake.api_key).start()
    yield fake
    fake.stop()
    assert list(fake.errors) == []


def openai_env(openai_fake, realtime_fake, **extra) -> dict:
    """Chat and speech at the HTTP fake, the Realtime WebSocket at its own fake: one key."""
    return {"OPENAI_API_KEY": openai_fake.api_key, "OPENAI_BASE_URL": openai_fake.base_url,
            "OPENAI_WEBSOCKET_BASE_URL": realtime_fake.websocket_base_url, **extra}


@pytest.fixture(scope="module")
def elevenlabs_fake():
    fake = ElevenLabsHttpFake().start()
    yield fake
    fake.stop()
    assert list(fake.errors) == []


class Inbox:
    """Every server message, stamped as it arrives."""

    def __init__(self, ws):
        self.ws = ws
        self.messages: list[tuple[float, dict]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self):
        async for raw in self.ws:
            self.messages.append((time.monotonic(), json.loads(raw)))

    def of(self, kind, **match):
        return [(t, m["payload"]) for t, m in self.messages
                if m["type"] == kind and all(m["payload"].get(k) == v for k, v in match.items())]

    async def wait(self, kind, timeout=30, count=1, **match):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of(kind, **match)
            if len(found) >= count:
                return found[count - 1]
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {kind} in {timeout}s; saw {[m['type'] for _, m in self.messages[-12:]]}")


async def speak(ws, pcm: bytes, rate: int) -> None:
    """Stream audio in real time, 40 ms a chunk, as a microphone does."""
    started = time.monotonic()
    for index, chunk in enumerate(chunks(pcm, sample_rate=rate)):
        await ws.send(json.dumps({"type": "client-audio-chunk", "payload": {"data": base64.b64encode(chunk).decode()}}))
        await asyncio.sleep(max(0.0, started + (index + 1) * 0.04 - time.monotonic()))


async def spoken_interview(server) -> tuple[dict, dict]:
    """Opening, a spoken answer, the reply interrupted, the end. Returns the session and the reply's
    interruption acknowledgement."""
    from websockets.asyncio.client import connect

    info = server.demo_session()
    async with connect(server.ws_url, origin=server.base_url, max_size=2**22) as ws:
        await ws.send(json.dumps({"type": "client-auth", "payload": {"token": info["token"], "sessionId": info["sessionId"]}}))
        inbox = Inbox(ws)
        _, auth = await inbox.wait("server-auth-success")
        rate = auth["audio"]["input"]["sampleRate"]
        _, opening = await inbox.wait("server-ai-speech-end", timeout=40)
        assert len(inbox.of("server-ai-speech-chunk", responseId=opening["responseId"])) > 10
        await asyncio.sleep(0.5)  # the opening is played out

        await speak(ws, speech(ANSWER, rate) + silence(1500, rate), rate)
        final_at, final = await inbox.wait("server-final-transcript", timeout=20)
        assert final["transcript"].strip()
        assert inbox.of("server-live-transcript"), "interim words arrive while the candidate speaks"

        _, thinking = await inbox.wait("server-ai-thinking", count=2, timeout=20)
        reply = thinking["responseId"]
        await inbox.wait("server-ai-speech-chunk", count=20, responseId=reply, timeout=20)  # some words heard
        await ws.send(json.dumps({"type": "client-interrupt"}))
        acked_at, acked = await inbox.wait("server-ai-interrupted", responseId=reply, timeout=5)
        await asyncio.sleep(1.0)
        late = [t for t, _ in inbox.of("server-ai-speech-chunk", responseId=reply) if t > acked_at]
        assert late == [], "no chunk of an interrupted reply after the acknowledgement"

        await ws.send(json.dumps({"type": "client-end", "payload": {"reason": "finished early"}}))
        await inbox.wait("server-session-ended", timeout=10)
        inbox.task.cancel()
    return info, {"final": final, "reply": reply}


def superuser_cookie(server) -> str:
    return server.shell(
        "from django.contrib.auth import get_user_model; from django.contrib.sessions.backends.db import SessionStore; "
        "User = get_user_model(); u = User.objects.filter(username='admin').first() or "
        "User.objects.create_superuser('admin', 'admin@example.com', 'unused-password'); "
        "s = SessionStore(); s['_auth_user_id'] = str(u.pk); "
        "s['_auth_user_backend'] = 'django.contrib.auth.backends.ModelBackend'; "
        "s['_auth_user_hash'] = u.get_session_auth_hash(); s.create(); print(s.session_key)"
    )


def analysed_result_page(server, session_id: str, timeout: float = 20) -> str:
    """The result's admin page once the model's analysis is stored."""
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = server.shell(f"from interviews.models import SessionResult as R; "
                              f"r = R.objects.filter(session_id='{session_id}').first(); print(r and r.analysis_status)")
        if status == "done":
            break
        time.sleep(0.3)
    assert status == "done", f"the analysis is {status!r}"
    pk = server.shell(f"from interviews.models import SessionResult as R; print(R.objects.get(session_id='{session_id}').pk)")
    page = httpx.get(f"{server.base_url}/admin/interviews/sessionresult/{pk}/change/",
                     cookies={"sessionid": superuser_cookie(server)}, timeout=10)
    assert page.status_code == 200
    return page.text


def test_local_recogniser_openai_interviewer_and_elevenlabs_voice(openai_fake, elevenlabs_fake):
    env = {"REALTIME_LLM": "openai", "REALTIME_TTS": "elevenlabs",
           "OPENAI_API_KEY": openai_fake.api_key, "OPENAI_BASE_URL": openai_fake.base_url,
           "ELEVENLABS_API_KEY": elevenlabs_fake.api_key, "ELEVENLABS_BASE_URL": elevenlabs_fake.origin}
    with one_worker(env=env) as server:
        spoken_before = len(elevenlabs_fake.requests)
        info, seen = asyncio.run(spoken_interview(server))
        turns = stored_turns(server, info["sessionId"])
        assert [t for t in turns if t["speaker"] == "candidate"][0]["text"] == seen["final"]["transcript"]
        assert [t for t in turns if t["public_id"] == seen["reply"]][0]["interrupted"] is True
        # The words came from OpenAI's chat API and the voice from ElevenLabs.
        assert any("Thank you." in t["text"] for t in turns if t["speaker"] == "interviewer")
        assert len(elevenlabs_fake.requests) > spoken_before
        page = analysed_result_page(server, info["sessionId"])
        assert "Recommendation" in page and "Score (1-5)" in page
        assert server.stats()["connections"] == 0
    assert asyncio.run(openai_fake.wait_idle()) and asyncio.run(elevenlabs_fake.wait_idle())


def test_openai_pipeline(openai_fake, realtime_fake):
    """Transcription over a Realtime transcription session, chat for the words, speech for the voice."""
    with one_worker(env=openai_env(openai_fake, realtime_fake, REALTIME_PROVIDERS="openai")) as server:
        speeches_before = len(openai_fake.speech_bodies())
        info, seen = asyncio.run(spoken_interview(server))
        # The fake hears the answer and transcribes it with its scripted words.
        assert seen["final"]["transcript"] == realtime_fake_transcript()
        assert any(query.get("intent") == "transcription" for query in realtime_fake.connect_queries)
        assert len(openai_fake.speech_bodies()) > speeches_before
        turns = stored_turns(server, info["sessionId"])
        assert [t for t in turns if t["public_id"] == seen["reply"]][0]["interrupted"] is True
        analysed_result_page(server, info["sessionId"])
        assert server.stats()["connections"] == 0
    assert realtime_fake.open_connections == 0


def test_openai_realtime_speech_to_speech(openai_fake, realtime_fake):
    """One Realtime connection per session; a barge-in truncates the reply at what was heard."""
    with one_worker(env=openai_env(openai_fake, realtime_fake, REALTIME_PROVIDERS="openai-realtime")) as server:
        truncates_before = len(realtime_fake.truncates)
        info, seen = asyncio.run(spoken_interview(server))
        assert seen["final"]["transcript"] == realtime_fake_transcript()
        truncates = list(realtime_fake.truncates)[truncates_before:]
        assert truncates, "the interrupted reply was truncated in the provider's conversation"
        _item, heard_ms = truncates[-1]
        assert 0 < heard_ms < 10_000
        turns = stored_turns(server, info["sessionId"])
        reply = [t for t in turns if t["public_id"] == seen["reply"]]
        assert reply and reply[0]["interrupted"] is True
        analysed_result_page(server, info["sessionId"])
        assert server.stats()["connections"] == 0
    deadline = time.monotonic() + 5
    while realtime_fake.open_connections and time.monotonic() < deadline:
        time.sleep(0.1)
    assert realtime_fake.open_connections == 0, "no provider connection is left open after the session"


def realtime_fake_transcript() -> str:
    from tests.fakes.openai_realtime import DEFAULT_TRANSCRIPT

    return DEFAULT_TRANSCRIPT


def test_gemini_live_speech_to_speech():
    """Gemini Live over TLS (google-genai forces wss), the text model for drafting and analysis."""
    text_fake, live_fake = FakeGeminiHttp().start(), FakeGeminiLive().start()
    env = {"REALTIME_PROVIDERS": "gemini-live", "GEMINI_API_KEY": live_fake.api_key,
           "GEMINI_BASE_URL": text_fake.base_url, "GEMINI_LIVE_BASE_URL": live_fake.base_url,
           "SSL_CERT_FILE": live_fake.ca_file}
    try:
        assert text_fake.api_key == live_fake.api_key
        with one_worker(env=env) as server:
            info, seen = asyncio.run(spoken_interview(server))
            assert seen["final"]["transcript"].strip()
            assert live_fake.records and all(record.setup for record in live_fake.records)
            turns = stored_turns(server, info["sessionId"])
            assert [t for t in turns if t["public_id"] == seen["reply"]][0]["interrupted"] is True
            analysed_result_page(server, info["sessionId"])
        live_fake.wait_for_connections(0)
    finally:
        text_fake.stop()
        live_fake.stop()
    assert text_fake.errors == [] and live_fake.errors == []


@pytest.mark.parametrize("failure", ["error-event", "dropped"])
def test_a_failing_speech_to_speech_model_still_speaks_the_question(openai_fake, realtime_fake, failure):
    """The model cannot say the fallback line it never produced: the local voice speaks it, in time."""
    from websockets.asyncio.client import connect

    from tests.fakes.openai_realtime import Drop, ErrorEvent

    env = openai_env(openai_fake, realtime_fake, REALTIME_PROVIDERS="openai-realtime", REALTIME_LLM_DEADLINE_SECONDS="3")
    with one_worker(env=env) as server:
        info = server.demo_session()
        realtime_fake.replies.append(ErrorEvent(code="rate_limit_exceeded") if failure == "error-event" else Drop())

        async def opening():
            async with connect(server.ws_url, origin=server.base_url, max_size=2**22) as ws:
                await ws.send(json.dumps({"type": "client-auth",
                                          "payload": {"token": info["token"], "sessionId": info["sessionId"]}}))
                inbox = Inbox(ws)
                started = time.monotonic()
                _, caption = await inbox.wait("server-ai-text", timeout=10)
                waited = time.monotonic() - started
                _, end = await inbox.wait("server-ai-speech-end", responseId=caption["responseId"], timeout=20)
                chunks_heard = len(inbox.of("server-ai-speech-chunk", responseId=caption["responseId"]))
                inbox.task.cancel()
                return caption, waited, chunks_heard

        caption, waited, chunks_heard = asyncio.run(opening())
        assert caption["text"] == "To start, could you tell me a little about yourself and your background?"
        assert waited < 3 + 2, "the fallback comes within the deadline"
        assert chunks_heard > 20, "the fallback line is spoken, not only shown"
