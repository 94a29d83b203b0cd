"""Two daphne workers sharing PostgreSQL and Redis, as operators run it.

A session moves between workers: the reconnect on worker B resumes it, the old
connection on worker A is told and closed, and a recruiter watching on worker A
sees the candidate's words spoken to worker B.
"""

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from tests.e2e.helpers import auth_message, receive_until, staff_cookie
from tests.servers import two_workers_on_postgres_and_redis

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workers():
    with two_workers_on_postgres_and_redis() as (a, b):
        yield a, b


async def test_session_moves_to_another_worker_and_recruiter_sees_it(workers):
    a, b = workers
    info = a.demo_session()
    cookie = staff_cookie(a)
    async with connect(f"ws://127.0.0.1:{a.port}/api/live/{info['sessionId']}/", origin=a.base_url,
                       additional_headers={"Cookie": f"sessionid={cookie}"}) as watcher:
        async with connect(a.ws_url, origin=a.base_url) as first:
            await first.send(auth_message(info))
            assert (await receive_until(first, "server-auth-success"))["resumed"] is False
            await receive_until(first, "server-ai-speech-chunk")

            async with connect(b.ws_url, origin=a.base_url) as second:  # the page is served at one public URL
                await second.send(auth_message(info))
                resumed = await receive_until(second, "server-auth-success")
                assert resumed["resumed"] is True
                taken = await receive_until(first, "server-error")
                assert taken["code"] == "session_taken_over"
                with pytest.raises(Exception):
                    await receive_until(first, "never", timeout=5)
                assert first.close_code == 4409

                await second.send(json.dumps({"type": "client-text-message",
                                              "payload": {"text": "I moved to worker B."}}))
                final = await receive_until(second, "server-final-transcript")
                assert final["transcript"] == "I moved to worker B."

        async with asyncio.timeout(15):
            while True:
                event = json.loads(await watcher.recv())
                if event.get("event") == "turn" and event.get("text") == "I moved to worker B.":
                    break
        assert event["speaker"] == "candidate"
