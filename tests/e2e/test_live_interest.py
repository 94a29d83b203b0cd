"""Live words cost the channel layer nothing while nobody watches (realtime/live.py).

Two real daphne workers on Redis and PostgreSQL with the synthetic recogniser (every
voiced 40 ms chunk gives an interim "word N"). Redis's own MONITOR stream shows what the
workers send it: while a candidate speaks with nobody watching, no command names the
session's live group; a recruiter who opens the live view on the other worker in the
middle of the answer gets the candidate's words from then on.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math

import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from tests.e2e.helpers import auth_message, message, receive_until, staff_cookie, stored_turns
from tests.servers import two_workers_on_postgres_and_redis
from tests.services import redis_url

pytestmark = pytest.mark.slow

VOICED = message("client-audio-chunk", data=base64.b64encode(b"".join(
    int(3000 * math.sin(2 * math.pi * 220 * i / 16000)).to_bytes(2, "little", signed=True) for i in range(640)
)).decode())


@pytest.fixture(scope="module")
def workers():
    with two_workers_on_postgres_and_redis({"REALTIME_PROVIDERS": "synthetic"}) as (a, b):
        yield a, b


class RedisCommands:
    """Every command Redis executes (from any client), as MONITOR reports it."""

    def __init__(self):
        self.seen: list[str] = []
        self._client = aioredis.Redis.from_url(redis_url())
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self):
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def _run(self):
        async with self._client.monitor() as monitor:
            self._ready.set()
            async for command in monitor.listen():
                self.seen.append(command.get("command", ""))

    async def __aexit__(self, *exc):
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._client.aclose()

    def naming(self, text: str) -> list[str]:
        return [command for command in self.seen if text in command]


async def speak(ws, chunks: int) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for k in range(chunks):
        await asyncio.sleep(max(0.0, start + k * 0.04 - loop.time()))
        await ws.send(VOICED)


async def test_a_candidate_nobody_watches_sends_redis_nothing_and_a_late_watcher_gets_the_words(workers):
    a, b = workers
    info = a.demo_session()
    live_key = f"session.{info['sessionId']}"  # the live group (realtime/groups.py)
    async with connect(a.ws_url, origin=a.base_url, max_size=2**22) as candidate:
        await candidate.send(auth_message(info))
        await receive_until(candidate, "server-auth-success")
        await receive_until(candidate, "server-ai-speech-end", timeout=30)  # the opening question
        # Once heard, the opening is stored and published as a turn (a low-rate event that is
        # always published): wait for it, so that what follows is the audio path alone.
        for _ in range(60):
            if any(t["speaker"] == "interviewer" for t in await asyncio.to_thread(stored_turns, a, info["sessionId"])):
                break
            await asyncio.sleep(0.25)

        async with RedisCommands() as redis_log:
            await speak(candidate, 50)  # two seconds of speech, unwatched
            heard = await receive_until(candidate, "server-live-transcript", timeout=10)
            assert heard["transcript"].startswith("word ")
            assert redis_log.naming(live_key) == []

            # A recruiter opens the live view on worker B in the middle of the answer.
            cookie = staff_cookie(b)
            async with connect(f"ws://127.0.0.1:{b.port}/api/live/{info['sessionId']}/", origin=a.base_url,
                               additional_headers={"Cookie": f"sessionid={cookie}"}) as watcher:
                snapshot = json.loads(await watcher.recv())
                assert snapshot["event"] == "snapshot" and snapshot["status"] == "live"
                speaking = asyncio.create_task(speak(candidate, 100))
                try:
                    async with asyncio.timeout(15):
                        while (event := json.loads(await watcher.recv())).get("event") != "live-transcript":
                            pass
                finally:
                    speaking.cancel()
                assert event["sessionId"] == info["sessionId"] and event["transcript"].startswith("word ")
                assert redis_log.naming(live_key)  # the same MONITOR sees the live group in use now
