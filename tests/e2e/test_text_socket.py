"""The text-era socket (/ws) against real daphne processes: every message of
websocket-architecture.md, a reconnect, a failing model, question audio over HTTP and
the socket-operation log."""

import asyncio
import io
import json
import re
import time
import wave
from unittest import mock

import httpx
import numpy as np
import pytest
from django.conf import settings
from websockets.asyncio.client import connect

from tests.e2e.helpers import stored_turns
from tests.servers import free_port, one_worker

pytestmark = pytest.mark.slow

DEMO_QUESTIONS = (
    "To start, could you tell me a little about yourself and your background?",
    "What is a project you are proud of, and what was your part in it?",
    "How would you design a service that must stay responsive under heavy load?",
)


@pytest.fixture(scope="module")
def server():
    with one_worker(env={"REALTIME_LOG_MESSAGES": "1"}) as daphne:
        yield daphne


def text_socket(server):
    return connect(f"ws://127.0.0.1:{server.port}/ws", origin=server.base_url, max_size=2**22)


def send(ws, kind, **payload):
    return ws.send(json.dumps({"type": kind, "payload": payload}))


class Inbox:
    """Every message of one connection, read in the background."""

    def __init__(self, ws):
        self.ws = ws
        self.messages: list[dict] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self):
        async for raw in self.ws:
            self.messages.append(json.loads(raw))

    async def close_code(self, timeout=15) -> int | None:
        """The server's close code (the reader task owns the socket's reads: a second
        reader would be refused by websockets)."""
        await asyncio.wait([self.task], timeout=timeout)
        return self.ws.close_code

    async def next(self, kind, timeout=30, **match):
        """The first message of `kind` (matching) not taken yet; later ones stay for later calls."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index, message in enumerate(self.messages):
                if message["type"] == kind and all(message["payload"].get(k) == v for k, v in match.items()):
                    del self.messages[: index + 1]
                    return message["payload"]
            if self.task.done():
                break
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {kind} in {timeout}s; left: {[m['type'] for m in self.messages]}")


async def start(server, info):
    ws = await text_socket(server)
    await send(ws, "START_INTERVIEW", token=info["token"], sessionId=info["sessionId"])
    inbox = Inbox(ws)
    return ws, inbox, await inbox.next("INTERVIEW_STARTED")


async def test_a_text_only_client_holds_a_whole_interview_and_a_reconnect_restores_it(server):
    info = server.demo_session()
    ws, inbox, started = await start(server, info)
    assert started["resumed"] is False and started["questionCount"] == 3 and started["conversation"] == []
    assert await inbox.next("INTERVIEW_STATE") == {"status": "live", "questionIndex": 0, "questionCount": 3}
    typing = await inbox.next("AI_TYPING")
    opening = await inbox.next("AI_MESSAGE")
    assert typing == {"typing": True, "responseId": opening["responseId"]}
    assert opening["text"].endswith(DEMO_QUESTIONS[0]) and opening["audioUrl"]

    await send(ws, "PING", id=1)
    assert await inbox.next("PONG") == {"id": 1}
    await send(ws, "USER_MESSAGE", text="I build backend services in Python.")
    received = await inbox.next("MESSAGE_RECEIVED")
    assert received["text"] == "I build backend services in Python." and received["turnId"]
    assert (await inbox.next("AI_TYPING"))["typing"] is True
    second = await inbox.next("AI_MESSAGE")
    assert second["text"].endswith(DEMO_QUESTIONS[1]) and second["questionIndex"] == 1

    await send(ws, "PAUSE_INTERVIEW")
    assert (await inbox.next("INTERVIEW_PAUSED"))["status"] == "paused"
    await send(ws, "USER_MESSAGE", text="an answer while paused")
    assert (await inbox.next("ERROR"))["code"] == "session_paused"
    await send(ws, "RESUME_INTERVIEW")
    assert (await inbox.next("INTERVIEW_RESUMED"))["status"] == "live"
    assert (await inbox.next("AI_MESSAGE"))["text"].endswith(DEMO_QUESTIONS[1])
    renewed = server.demo_session(user=info["userId"])["token"]
    await send(ws, "REFRESH_TOKEN", token=renewed)
    assert (await inbox.next("TOKEN_REFRESHED"))["expiresAt"] > time.time()
    assert not [m for m in inbox.messages if m["type"] == "ERROR"]
    await ws.close()  # the connection drops mid-interview

    ws, inbox, started = await start(server, info)
    assert started["resumed"] is True and started["questionIndex"] == 1
    lines = [(line["speaker"], line["text"]) for line in started["conversation"]]
    assert lines[:3] == [("interviewer", opening["text"]), ("candidate", "I build backend services in Python."),
                         ("interviewer", second["text"])]
    assert "Welcome back" in (await inbox.next("AI_MESSAGE"))["text"]
    await send(ws, "USER_MESSAGE", text="A payments platform; I led the backend.")
    await inbox.next("MESSAGE_RECEIVED")
    assert (await inbox.next("AI_MESSAGE"))["text"].endswith(DEMO_QUESTIONS[2])
    await send(ws, "USER_MESSAGE", text="Queues, caches and back-pressure.")
    await inbox.next("MESSAGE_RECEIVED")
    closing = await inbox.next("AI_MESSAGE")
    assert "goodbye" in closing["text"] and closing["questionIndex"] == 3
    assert (await inbox.next("INTERVIEW_ENDED"))["reason"] == "All questions answered."
    results = await inbox.next("INTERVIEW_RESULTS")
    assert results["final"] is True and results["answeredQuestions"] == 3 and results["analysisStatus"] == "not_requested"
    assert await inbox.close_code() == 1000
    seen = {m["type"] for m in inbox.messages}
    assert not seen & {"server-ai-speech-chunk", "server-ai-text", "ERROR"}

    candidate = [t["text"] for t in stored_turns(server, info["sessionId"]) if t["speaker"] == "candidate"]
    assert candidate == ["I build backend services in Python.", "A payments platform; I led the backend.",
                         "Queues, caches and back-pressure."]


async def test_end_interview_gives_the_reason_and_the_results(server):
    info = server.demo_session()
    ws, inbox, _ = await start(server, info)
    await inbox.next("AI_MESSAGE")
    await send(ws, "END_INTERVIEW", reason="I have to leave")
    assert await inbox.next("INTERVIEW_ENDED") == {"reason": "The candidate ended the interview: I have to leave"}
    results = await inbox.next("INTERVIEW_RESULTS")
    assert results["answeredQuestions"] == 0 and results["endReason"].endswith("I have to leave")
    assert await inbox.close_code() == 1000


async def test_question_audio_plays_is_cached_and_only_for_its_session(server):
    first, second = server.demo_session(), server.demo_session()
    urls = {}
    for info in (first, second):
        ws, inbox, _ = await start(server, info)
        urls[info["sessionId"]] = (await inbox.next("AI_MESSAGE"))["audioUrl"]
        await ws.close()
    url = urls[first["sessionId"]]
    rendered_before = server.log().count("question audio rendered")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        response = await http.get(url)
        assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
        assert response.headers["accept-ranges"] == "bytes" and "max-age=" in response.headers["cache-control"]
        with wave.open(io.BytesIO(response.content)) as wav:
            rate, samples = wav.getframerate(), np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
            assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        assert rate == 24000 and len(samples) / rate > 3  # the opening line, spoken
        assert np.sqrt(np.mean(samples.astype(float) ** 2)) > 300

        part = await http.get(url, headers={"Range": "bytes=0-43"})
        assert part.status_code == 206 and part.content == response.content[:44]
        assert part.headers["content-range"] == f"bytes 0-43/{len(response.content)}"
        again = await http.get(url)
        other_session_same_words = await http.get(urls[second["sessionId"]])
        assert again.content == other_session_same_words.content == response.content
        assert server.log().count("question audio rendered") == rendered_before + 1  # rendered once

        token = url.rsplit("/", 1)[1]
        stolen = await http.get(f"/api/sessions/{second['sessionId']}/question-audio/{token}")
        assert stolen.status_code == 403
        from realtime.question_audio import audio_url

        with mock.patch("django.core.signing.time.time",
                        return_value=time.time() - settings.REALTIME["QUESTION_AUDIO_URL_SECONDS"] - 60):
            expired = audio_url(first["sessionId"], "Tell me about yourself.")
        assert (await http.get(expired)).status_code == 410


async def test_socket_operations_are_logged_for_both_dialects_without_secrets(server):
    info = server.demo_session()
    answer = "my secret answer about zebra 9731"
    ws, inbox, _ = await start(server, info)
    await inbox.next("AI_MESSAGE")
    await send(ws, "USER_MESSAGE", text=answer)
    await inbox.next("MESSAGE_RECEIVED")
    await send(ws, "END_INTERVIEW")
    await inbox.close_code()
    voice_info = server.demo_session()
    async with connect(server.ws_url, origin=server.base_url, max_size=2**22) as voice:
        await voice.send(json.dumps({"type": "client-auth", "payload": {"token": voice_info["token"],
                                                                        "sessionId": voice_info["sessionId"]}}))
        async with asyncio.timeout(20):
            while "server-ai-speech-chunk" not in await voice.recv():
                pass
    for _ in range(50):
        if f"session={voice_info['sessionId']} voice closed" in server.log():
            break
        await asyncio.sleep(0.1)
    log = server.log()
    assert f"session={info['sessionId']} text in USER_MESSAGE " in log
    assert f"session={info['sessionId']} text out AI_MESSAGE " in log
    assert f"session={info['sessionId']} text closed code=1000" in log
    assert f"session={voice_info['sessionId']} voice out server-ai-speech-chunk " in log
    # Before authentication the session is not known yet: the connection id ties the lines together.
    connection = re.search(rf"socket (c=\w+) session={voice_info['sessionId']} voice out", log)[1]
    assert f"socket {connection} session=- voice in client-auth " in log
    for secret in (info["token"], voice_info["token"], answer, "zebra"):
        assert secret not in log


async def test_a_failing_model_is_answered_with_the_question_itself():
    refused = free_port()  # nothing listens here: every model call fails at once
    env = {"REALTIME_LLM": "openai", "OPENAI_API_KEY": "test", "OPENAI_BASE_URL": f"http://127.0.0.1:{refused}/v1",
           "REALTIME_EVALUATION_ATTEMPTS": "1", "REALTIME_LLM_DEADLINE_SECONDS": "3"}
    with one_worker(env=env) as failing:
        info = failing.demo_session()
        ws, inbox, _ = await start(failing, info)
        assert (await inbox.next("AI_MESSAGE"))["text"] == DEMO_QUESTIONS[0]
        for index, answer in enumerate(["About me.", "A project.", "Queues."], start=1):
            await send(ws, "USER_MESSAGE", text=answer)
            await inbox.next("MESSAGE_RECEIVED")
            line = (await inbox.next("AI_MESSAGE"))["text"]
            if index < 3:
                assert line == DEMO_QUESTIONS[index]
            else:  # the fallback goodbye (its first sentence is lost today: see the runtime's _write_response)
                assert line == "Thank you for your time. That concludes our interview."
        await inbox.next("INTERVIEW_ENDED")
        first = await inbox.next("INTERVIEW_RESULTS")
        assert first["analysisStatus"] == "pending" and first["final"] is False
        settled = await inbox.next("INTERVIEW_RESULTS", timeout=60)
        assert settled["analysisStatus"] == "failed" and settled["final"] is True
        assert await inbox.close_code() == 1000
        sources = failing.shell(
            "from interviews.models import Turn; "
            f"print(sorted(set(Turn.objects.filter(session_id='{info['sessionId']}', speaker='interviewer')"
            ".values_list('source', flat=True))))")
        assert sources == "['fallback']"
        assert "interviewer failed" in failing.log()
