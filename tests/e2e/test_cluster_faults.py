"""Two daphne workers on a Redis and a PostgreSQL path that the test owns, and breaks.

The Redis is the test's own redis-server (stopped and started here); PostgreSQL is the
machine's, reached through a TCP proxy the test can cut. Live sessions must ride out
both (neither Redis nor the database is on the audio path), new connections must work
again as soon as the service is back, answers are acknowledged only once stored, and a
worker asked to stop flushes what it holds and exits.
"""

import asyncio
import signal
import time
from dataclasses import dataclass

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.e2e.helpers import (
    auth_message,
    authenticated,
    candidate,
    close_code,
    event_with_text,
    message,
    receive_until,
    session_status,
    settled_stats,
    staff_cookie,
    stored_turns,
)
from tests.faults import RedisServer, TcpProxy, wait_until
from tests.servers import DaphneServer, two_workers
from tests.services import POSTGRES_PORT, postgres_database

pytestmark = pytest.mark.slow


@dataclass
class Cluster:
    a: DaphneServer
    b: DaphneServer
    redis: RedisServer
    database: TcpProxy

    @property
    def origin(self) -> str:
        return self.a.base_url  # the page is served at one public URL


@pytest.fixture(scope="module")
def cluster():
    redis = RedisServer().start()
    with postgres_database() as url:
        proxy = TcpProxy(POSTGRES_PORT)
        env = {"DATABASE_URL": url.replace(f":{POSTGRES_PORT}/", f":{proxy.port}/"), "REDIS_URL": redis.url}
        try:
            with two_workers(env) as (a, b):
                yield Cluster(a, b, redis, proxy)
        finally:
            proxy.close()
            redis.stop()


@pytest.fixture(autouse=True)
def nothing_left_behind(cluster):
    """After each fault, both workers hold no connection, runtime or user slot, and no
    more tasks than before it."""
    before = {server: server.stats() for server in (cluster.a, cluster.b)}
    yield
    for server, stats in before.items():
        settled_stats(server, {**stats, "connections": 0, "runtimes": 0, "userSlots": 0})


async def talk(ws, text: str, timeout: float = 20) -> dict:
    await ws.send(message("client-text-message", text=text))
    return await receive_until(ws, "server-final-transcript", timeout=timeout, transcript=text)


def watch(cluster, server, session_id):
    cookie = staff_cookie(server)
    return connect(f"ws://127.0.0.1:{server.port}/api/live/{session_id}/", origin=cluster.origin,
                   additional_headers={"Cookie": f"sessionid={cookie}"})


async def test_live_sessions_ride_out_a_redis_restart_and_everything_recovers(cluster):
    info = cluster.a.demo_session()
    ws = await authenticated(cluster.a, info, origin=cluster.origin)
    await talk(ws, "Before the outage.")

    cluster.redis.stop()
    try:
        # The candidate keeps talking: Redis is not on the audio path.
        await talk(ws, "During the outage.")
        await receive_until(ws, "server-ai-speech-chunk")
        # A new connection meanwhile is told to retry, not dropped with 1011.
        other = await candidate(cluster.b, origin=cluster.origin)
        await other.send(auth_message(cluster.b.demo_session()))
        failure = await receive_until(other, "server-auth-failure", timeout=10)
        assert failure["code"] == "server_unavailable"
        assert await close_code(other) == 4503
        await asyncio.sleep(3)
    finally:
        cluster.redis.start()

    # New connections on both workers work at once, with no restart.
    for server in (cluster.a, cluster.b):
        fresh = await authenticated(server, server.demo_session(), origin=cluster.origin)
        await fresh.close()
    # The first candidate is still there, and its session is watched again from the other worker.
    async with watch(cluster, cluster.b, info["sessionId"]) as watcher:
        await talk(ws, "After the outage.")
        assert (await event_with_text(watcher, "After the outage."))["speaker"] == "candidate"
    # Takeovers reach the owner again (its group membership was restored after the restart).
    await asyncio.sleep(1)
    second = await authenticated(cluster.b, info, origin=cluster.origin)
    assert (await receive_until(ws, "server-error"))["code"] == "session_taken_over"
    assert await close_code(ws) == 4409
    await second.close()
    texts = [t["text"] for t in stored_turns(cluster.a, info["sessionId"]) if t["speaker"] == "candidate"]
    assert texts == ["Before the outage.", "During the outage.", "After the outage."]


async def test_a_database_outage_delays_acknowledgements_loses_nothing_and_refuses_newcomers_clearly(cluster):
    info = cluster.a.demo_session()
    ws = await authenticated(cluster.a, info, origin=cluster.origin)
    await talk(ws, "Stored before the outage.")

    cluster.database.down()
    try:
        await ws.send(message("client-text-message", text="Typed while the database is away."))
        with pytest.raises(TimeoutError):  # not acknowledged while it cannot be stored
            await receive_until(ws, "server-final-transcript", timeout=2)
        newcomer = await candidate(cluster.b, origin=cluster.origin)
        await newcomer.send(auth_message(info))
        started = time.monotonic()
        failure = await receive_until(newcomer, "server-auth-failure", timeout=10)
        assert failure["code"] == "server_unavailable" and "again" in failure["error"]
        assert await close_code(newcomer) == 4503
        assert time.monotonic() - started < 8
    finally:
        cluster.database.up()

    final = await receive_until(ws, "server-final-transcript", timeout=15)
    assert final["transcript"] == "Typed while the database is away."
    await ws.close()
    again = await authenticated(cluster.b, info, origin=cluster.origin)  # at once, on the other worker
    await again.close()
    texts = [t["text"] for t in stored_turns(cluster.a, info["sessionId"]) if t["speaker"] == "candidate"]
    assert texts == ["Stored before the outage.", "Typed while the database is away."]  # none lost, none doubled


async def test_an_answer_postgresql_cannot_store_as_typed_is_cleaned_and_stored(cluster):
    info = cluster.a.demo_session()
    ws = await authenticated(cluster.a, info, origin=cluster.origin)
    await ws.send('{"type": "client-text-message", "payload": {"text": "Null\\u0000 byte and \\udc80 half a pair."}}')
    final = await receive_until(ws, "server-final-transcript")
    await ws.close()
    texts = [t["text"] for t in stored_turns(cluster.a, info["sessionId"]) if t["speaker"] == "candidate"]
    assert texts == [final["transcript"]] == ["Null byte and \ufffd half a pair."]


async def test_simultaneous_joins_on_two_workers_leave_one_owner(cluster):
    info = cluster.a.demo_session()
    for _ in range(3):
        a = await candidate(cluster.a, origin=cluster.origin)
        b = await candidate(cluster.b, origin=cluster.origin)
        await asyncio.gather(a.send(auth_message(info)), b.send(auth_message(info)))
        codes = await asyncio.gather(close_code(a, timeout=5), close_code(b, timeout=5))
        assert sorted(codes, key=str) == [4409, None], codes
        survivor = a if codes[0] is None else b
        await talk(survivor, "Only one of us answers.")
        await survivor.close()
    answers = [t for t in stored_turns(cluster.a, info["sessionId"]) if t["speaker"] == "candidate"]
    assert len(answers) == 3


async def test_sigterm_flushes_held_writes_and_the_worker_exits(cluster):
    info = cluster.b.demo_session()
    ws = await authenticated(cluster.b, info, origin=cluster.origin)
    await talk(ws, "Stored normally.")
    cluster.database.hang()  # writes now wait on the database
    try:
        await ws.send(message("client-text-message", text="Held when the worker is told to stop."))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        cluster.b.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(1)
    finally:
        cluster.database.up()
    assert await close_code(ws) == 4012  # reconnect now: another worker resumes the session
    exit_code = await asyncio.to_thread(cluster.b.process.wait, 30)
    stopped_in = time.monotonic() - started
    assert exit_code == 0 and stopped_in < 20
    texts = [t["text"] for t in stored_turns(cluster.a, info["sessionId"]) if t["speaker"] == "candidate"]
    assert texts == ["Stored normally.", "Held when the worker is told to stop."]
    assert session_status(cluster.a, info["sessionId"]) == "disconnected"
    cluster.b.start()


def readiness(server) -> tuple[int, dict]:
    response = httpx.get(f"{server.base_url}/readyz", timeout=10)
    return response.status_code, response.json()["checks"]


async def test_readiness_follows_the_database_and_redis_while_liveness_stays(cluster):
    assert readiness(cluster.a) == (200, {"database": "ok", "channelLayer": "ok", "providers": "ok"})
    cluster.database.down()
    try:
        status, checks = await asyncio.to_thread(readiness, cluster.a)
        assert status == 503 and checks["database"].startswith("failed") and checks["channelLayer"] == "ok"
    finally:
        cluster.database.up()
    cluster.redis.stop()
    try:
        status, checks = await asyncio.to_thread(readiness, cluster.b)
        assert status == 503 and checks["channelLayer"].startswith("failed")
        assert httpx.get(f"{cluster.b.base_url}/healthz", timeout=10).json() == {"status": "ok"}
    finally:
        cluster.redis.start()
    assert (await asyncio.to_thread(readiness, cluster.b))[0] == 200
