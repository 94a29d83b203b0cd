"""The whole voice loop against a real daphne process, with a real WebSocket client.

Synthesized speech (made by the local TTS) is streamed in real time as 40 ms chunks,
the way a browser's microphone would send it.
"""

import asyncio
import base64
import json
import time

import pytest
from websockets.asyncio.client import connect

from tests.factories import chunks, silence, speech
from tests.servers import one_worker

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    with one_worker() as daphne:
        yield daphne


class Recorder:
    """Reads every server message in the background, stamping when it arrived."""

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

    async def wait(self, kind, timeout=30, **match):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of(kind, **match)
            if found:
                return found[0]
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {kind} in {timeout}s; saw {[m['type'] for _, m in self.messages[-12:]]}")


def stored_turns(server, session_id):
    code = (
        "import json; from interviews.models import Turn; "
        f"print(json.dumps(list(Turn.objects.filter(session_id='{session_id}')"
        ".order_by('sequence').values('speaker', 'text', 'interrupted', 'public_id'))))"
    )
    return json.loads(server.manage("shell", "-c", code).strip().splitlines()[-1])


async def test_spoken_answer_through_real_daphne(server):
    info = server.demo_session()
    async with connect(server.ws_url, origin=server.base_url, max_size=2**20) as ws:
        await ws.send(json.dumps({"type": "client-auth", "payload": {"token": info["token"], "sessionId": info["sessionId"]}}))
        inbox = Recorder(ws)
        _, auth = await inbox.wait("server-auth-success")
        rate = auth["audio"]["input"]["sampleRate"]

        # The first question is spoken as speech chunks.
        _, opening = await inbox.wait("server-ai-speech-end", timeout=40)
        assert len(inbox.of("server-ai-speech-chunk", responseId=opening["responseId"])) > 20

        # The candidate answers aloud, in real time.
        answer = speech("my name is john and i like python programming", rate)
        started = time.monotonic()
        for index, chunk in enumerate(chunks(answer + silence(1500, rate), sample_rate=rate)):
            await ws.send(json.dumps({"type": "client-audio-chunk", "payload": {"data": base64.b64encode(chunk).decode()}}))
            await asyncio.sleep(max(0.0, started + (index + 1) * 0.04 - time.monotonic()))

        final_at, final = await inbox.wait("server-final-transcript", timeout=20)
        interims = inbox.of("server-live-transcript")
        assert interims and interims[0][0] < final_at, "interim transcripts arrive before the final one"
        assert final["transcript"].strip()

        # The next question comes back as audio...
        await inbox.wait("server-session-state", timeout=10, questionIndex=1)
        for _ in range(500):
            if len(inbox.of("server-ai-thinking")) >= 2:
                break
            await asyncio.sleep(0.01)
        next_id = inbox.of("server-ai-thinking")[-1][1]["responseId"]
        assert next_id != opening["responseId"]
        for _ in range(500):
            if len(inbox.of("server-ai-speech-chunk", responseId=next_id)) >= 5:
                break
            await asyncio.sleep(0.01)
        assert len(inbox.of("server-ai-speech-chunk", responseId=next_id)) >= 5

        # ...and an interrupt stops it: nothing of that response after the acknowledgement.
        await ws.send(json.dumps({"type": "client-interrupt"}))
        acked_at, acked = await inbox.wait("server-ai-interrupted", timeout=5)
        assert acked["responseId"] == next_id
        await asyncio.sleep(1.0)
        late = [t for t, _ in inbox.of("server-ai-speech-chunk", responseId=next_id) if t > acked_at]
        assert late == []
        inbox.task.cancel()

    turns = stored_turns(server, info["sessionId"])
    candidate = [t for t in turns if t["speaker"] == "candidate"]
    assert candidate and candidate[0]["text"] == final["transcript"]
    assert candidate[0]["public_id"] == final["turnId"]
    interrupted = [t for t in turns if t["public_id"] == next_id]
    assert interrupted and interrupted[0]["interrupted"] is True
