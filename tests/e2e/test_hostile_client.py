"""A hostile client against a real daphne worker: every way in is bounded, every way out
frees what the connection held, and other candidates keep their interview.

After each attack the user can connect again at once, the session's status is right,
and the worker holds no more connections, runtimes, user slots or tasks than before
(its /api/ops/stats view counts them).
"""

import asyncio
import json
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.helpers import (
    PingProbe,
    auth_message,
    authenticated,
    candidate,
    close_code,
    event_with_text,
    message,
    non_reading_socket,
    receive_until,
    session_status,
    settled_stats,
    staff_cookie,
    stored_turns,
)
from tests.faults import wait_until
from tests.servers import ROOT, one_worker

pytestmark = pytest.mark.slow

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def server():
    # Small, so a client that stops reading is found in seconds rather than minutes.
    with one_worker({"REALTIME_OUTBOUND_HIGH_WATER_BYTES": "65536", "REALTIME_SLOW_READER_SECONDS": "3",
                     "REALTIME_SOCKET_SEND_BUFFER_BYTES": "32768"}) as daphne:
        (ARTIFACTS / "hostile-client.json").unlink(missing_ok=True)
        yield daphne


@pytest.fixture
def quiet(server):
    """What the worker holds with no client connected."""
    settled_stats(server, {"connections": 0, "runtimes": 0, "userSlots": 0, "tasks": 10_000})
    return server.stats()


def record_figure(name: str, value) -> None:
    """Figures the hardening note reports (a bystander's round trips under abuse, memory)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "hostile-client.json"
    figures = json.loads(path.read_text()) if path.exists() else {}
    figures[name] = value
    path.write_text(json.dumps(figures, indent=2))


# --- 1. whatever ends a connection frees it ----------------------------------------------

@pytest.mark.parametrize("text", ["x" * 70_000, "é" * 40_000], ids=["ascii", "utf8-bytes-over-chars-under"])
async def test_an_oversized_frame_is_refused_and_the_user_is_never_locked_out(server, quiet, text):
    info = server.demo_session()
    for _ in range(6):  # one more than the connections a user may hold at once
        ws = await authenticated(server, info)
        await ws.send(message("client-text-message", text=text))
        assert (await receive_until(ws, "server-error"))["code"] == "message_too_big"
        assert await close_code(ws) == 4013
    ws = await authenticated(server, info)  # at once, no 4029
    await ws.close()
    settled_stats(server, quiet)
    assert session_status(server, info["sessionId"]) == "disconnected"


async def test_a_huge_frame_is_cut_off_as_it_arrives(server, quiet):
    rss_before = server.stats()["rssBytes"]
    ws = await authenticated(server, server.demo_session())
    try:
        await ws.send(message("client-text-message", text="x" * 8_000_000))
    except Exception:
        pass
    # The WebSocket layer fails the connection (1009) before the frame is buffered whole; a
    # client still pushing the frame out sees the drop (1006).
    assert await close_code(ws) in (1009, 1006)
    after = settled_stats(server, quiet)
    assert after["rssBytes"] - rss_before < 16 << 20


async def test_a_client_that_closes_while_replies_are_due_frees_everything(server, quiet):
    info = server.demo_session()
    for _ in range(20):
        ws = await authenticated(server, info)
        for i in range(30):
            await ws.send(message("client-ping", id=i))
        await ws.send(message("client-text-message", text="Leaving mid-sentence."))
        ws.transport.abort()  # gone without reading a reply
    ws = await authenticated(server, info)
    await ws.close()
    settled_stats(server, quiet)
    assert session_status(server, info["sessionId"]) == "disconnected"


# --- 2. nothing one client sends or leaves unread is unbounded ---------------------------

async def test_before_auth_only_one_ping_and_a_small_client_auth_are_taken(server, quiet):
    ws = await candidate(server)
    await ws.send(message("client-ping", id=1))
    await receive_until(ws, "server-pong")
    await ws.send(message("client-ping", id=2))
    assert (await receive_until(ws, "server-auth-failure"))["code"] == "auth_required"
    assert await close_code(ws) == 4002

    ws = await candidate(server)
    await ws.send(message("client-ping", id="p" * 30_000))  # far more than client-auth needs
    assert (await receive_until(ws, "server-auth-failure"))["code"] == "message_too_big"
    assert await close_code(ws) == 4013
    settled_stats(server, quiet)


async def flood(ws, frame: str, count: int) -> int:
    try:
        for _ in range(count):
            await ws.send(frame)
    except ConnectionClosed:
        pass
    return await close_code(ws)


async def test_floods_are_closed_and_a_bystander_keeps_talking(server, quiet):
    bystander = await authenticated(server, server.demo_session())
    probe = PingProbe(bystander)
    quiet_rtt = await probe.measure(40)
    big_ping = message("client-ping", id="p" * 60_000)
    rss, loaded_rtts = [server.stats()["rssBytes"]], []
    for _ in range(2):  # the second round shows whether what the first took is kept for ever
        floods = [
            flood(await candidate(server), big_ping, 500),  # before auth
            flood(await candidate(server), message("client-ping", id=1), 20_000),  # before auth, small
            flood(await authenticated(server, server.demo_session()), message("client-ping", id=1), 20_000),
            flood(await authenticated(server, server.demo_session()), big_ping, 2_000),
        ]
        codes, loaded_rtt = await asyncio.gather(asyncio.gather(*floods), probe.measure(40))
        loaded_rtts.append(round(loaded_rtt, 2))
        # A client still flooding may miss the close frame (1006); one that outruns the worker
        # before its second message is even read is closed for its backlog (4029).
        allowed = [{4013}, {4002, 4029}, {4029}, {4029}]
        assert [code in expected | {1006} for code, expected in zip(codes, allowed)] == [True] * 4, codes
        rss.append(settled_stats(server, {**quiet, "connections": 1, "runtimes": 1, "userSlots": 1,
                                          "tasks": 10_000})["rssBytes"])

    await bystander.send(message("client-text-message", text="I was not disturbed."))
    assert (await receive_until(bystander, "server-final-transcript"))["transcript"] == "I was not disturbed."
    await bystander.close()
    settled_stats(server, quiet)
    record_figure("bystander ping rtt p50 ms (quiet, during flood rounds 1 and 2)", [round(quiet_rtt, 2), *loaded_rtts])
    record_figure("worker rss MB (before, after flood rounds 1 and 2)", [r >> 20 for r in rss])
    # Bounded, not leaked: before, one flooding connection alone took 490 MB and kept it.
    # What a round takes varies with the allocator (2-45 MB seen for a second round).
    assert rss[2] - rss[1] < 64 << 20
    assert rss[2] - rss[0] < 160 << 20


async def test_audio_far_above_real_time_is_closed(server, quiet):
    ws = await authenticated(server, server.demo_session())
    chunk = message("client-audio-chunk", data="AAAA" * 4000)  # 12 kB, 0.375 s of audio
    async def steady(rate_per_second: int, seconds: float):
        for _ in range(int(rate_per_second * seconds)):
            await ws.send(chunk)
            await asyncio.sleep(1 / rate_per_second)
    # 40 chunks a second is 15x real time: far above the limit, far below the old ~400x threshold.
    try:
        await steady(40, 10)
    except ConnectionClosed:
        pass
    # A client still sending may miss the close frame (1006); the worker's log says why.
    assert await close_code(ws) in (4029, 1006)
    assert "audio far above real time; closing" in server.log()
    settled_stats(server, quiet)


async def test_a_client_that_stops_reading_is_closed_and_its_memory_freed(server, quiet):
    bystander = await authenticated(server, server.demo_session())
    probe = PingProbe(bystander)
    quiet_rtt = await probe.measure(20)
    rss_before = server.stats()["rssBytes"]

    info = server.demo_session()
    ws = await connect(server.ws_url, origin=server.base_url, sock=non_reading_socket(server.port), max_queue=1)
    runtimes = server.stats()["runtimes"]
    await ws.send(auth_message(info))
    # It cannot read server-auth-success: wait until the worker runs its session (a pause
    # sent before that would be refused with 4002, as the protocol says).
    await asyncio.to_thread(wait_until, lambda: server.stats()["runtimes"] > runtimes, timeout=30,
                            what="the slow reader's session to start")
    # Never read; make the interviewer start again and again (each resume is a new response).
    async def pester():
        for _ in range(200):
            await ws.send(message("client-pause"))
            await ws.send(message("client-resume"))
            await asyncio.sleep(0.1)
    pestering = asyncio.create_task(pester())
    loaded_rtt = await probe.measure(40, interval=0.1)
    await asyncio.sleep(1)
    try:
        settled_stats(server, {**quiet, "connections": quiet["connections"] + 1, "runtimes": quiet["runtimes"] + 1,
                               "userSlots": quiet["userSlots"] + 1, "tasks": 10_000}, timeout=30)
    finally:
        pestering.cancel()
        ws.transport.abort()
    assert "client stopped reading" in server.log()
    await bystander.close()
    after = settled_stats(server, quiet)
    record_figure("bystander ping rtt p50 ms (quiet, beside a slow reader)", [round(quiet_rtt, 2), round(loaded_rtt, 2)])
    assert after["rssBytes"] - rss_before < 32 << 20  # unbounded, it grew by 34 MB in 25 s


# --- 3. one owner, always ------------------------------------------------------------------

async def test_two_simultaneous_joins_leave_exactly_one_owner(server, quiet):
    info = server.demo_session()
    for _ in range(4):
        a, b = await candidate(server), await candidate(server)
        await asyncio.gather(a.send(auth_message(info)), b.send(auth_message(info)))
        codes = await asyncio.gather(close_code(a, timeout=4), close_code(b, timeout=4))
        assert sorted(codes, key=str) == [4409, None], codes
        survivor = a if codes[0] is None else b
        await survivor.close()
    settled_stats(server, quiet)
    spoken = [t for t in stored_turns(server, info["sessionId"]) if t["speaker"] == "interviewer"]
    # One interviewer per join: the connection that lost waited for its rival's claim and
    # said nothing.
    assert len(spoken) == 4, spoken


# --- 4. no acknowledged answer is lost ------------------------------------------------------

async def test_answers_with_nul_or_a_lone_surrogate_are_cleaned_stored_and_answered(server, quiet):
    info = server.demo_session()
    ws = await authenticated(server, info)
    raw = '{"type": "client-text-message", "payload": {"text": "I built a caf\\u00e9 \\ud800 app\\u0000 in Go."}}'
    await ws.send(raw)
    final = await receive_until(ws, "server-final-transcript")
    assert final["transcript"] == "I built a café \ufffd app in Go."
    await receive_until(ws, "server-session-state", questionIndex=1)
    await ws.close()
    turns = stored_turns(server, info["sessionId"])
    assert [t["text"] for t in turns if t["speaker"] == "candidate"] == [final["transcript"]]


# --- 6. the live view checks what the admin checks ------------------------------------------

async def test_the_live_view_needs_the_admins_permission_and_a_real_session(server):
    info = server.demo_session()
    viewer = staff_cookie(server, may_view_sessions=True, username="viewer")
    no_view = staff_cookie(server, may_view_sessions=False, username="no-view")

    def watch(cookie, session_id):
        return connect(f"ws://127.0.0.1:{server.port}/api/live/{session_id}/", origin=server.base_url,
                       additional_headers={"Cookie": f"sessionid={cookie}"})

    with pytest.raises(InvalidStatus):
        await watch(no_view, info["sessionId"])
    with pytest.raises(InvalidStatus):
        await watch(viewer, uuid.uuid4())
    async with watch(viewer, info["sessionId"]) as watcher:
        ws = await authenticated(server, info)
        await ws.send(message("client-text-message", text="Watched answer."))
        assert (await event_with_text(watcher, "Watched answer."))["speaker"] == "candidate"
        await ws.close()


# --- 7. control messages cannot make the server write without end ---------------------------

async def test_a_pause_resume_storm_writes_no_empty_turns_and_the_session_goes_on(server, quiet):
    info = server.demo_session()
    ws = await authenticated(server, info)
    for _ in range(40):  # under the message rate, far over the control rate
        await ws.send(message("client-pause"))
        await ws.send(message("client-resume"))
        await asyncio.sleep(0.01)
    assert (await receive_until(ws, "server-error", code="rate_limited"))
    await asyncio.sleep(1.5)  # the control budget refills
    await ws.send(message("client-resume"))
    await receive_until(ws, "server-session-state", status="live")
    await ws.send(message("client-text-message", text="Still here."))
    assert (await receive_until(ws, "server-final-transcript", timeout=5))["transcript"] == "Still here."
    await ws.close()
    turns = stored_turns(server, info["sessionId"])
    assert all(t["text"].strip() for t in turns)
    assert len(turns) < 15  # was 1,001 for 1,000 pairs

    ws = await authenticated(server, info)
    assert (await flood(ws, message("client-pause"), 5_000)) == 4029  # a real flood is closed
    settled_stats(server, quiet)


# --- 8. smaller ones --------------------------------------------------------------------------

async def test_a_session_id_cannot_forge_a_log_line(server):
    info = server.demo_session()
    ws = await candidate(server)
    await ws.send(auth_message({**info, "sessionId": "x\r\nFORGED admin logged in"}))
    assert (await receive_until(ws, "server-auth-failure"))["code"] == "session_not_found"
    await close_code(ws)
    assert not any(line.startswith("FORGED") for line in server.log().splitlines())


async def test_unknown_paths_and_foreign_origins_are_refused_at_the_handshake(server):
    for path, origin in [("/api/nothing-here", server.base_url), ("/api/interview-socket", "http://127.0.0.1:1"),
                         ("/api/interview-socket", server.base_url.replace("http:", "https:"))]:
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"ws://127.0.0.1:{server.port}{path}", origin=origin)
        assert refused.value.response.status_code == 403
    assert "Traceback" not in server.log()


async def test_an_expired_token_closes_the_socket_unless_renewed(server, quiet):
    user = str(uuid.uuid4())
    short = server.demo_session(user=user, ttl=5)
    ws = await authenticated(server, short)
    error = await receive_until(ws, "server-error", timeout=15, code="token_expired")
    assert error["error"]
    assert await close_code(ws) == 4001

    renewed = server.demo_session(user=user, ttl=600)["token"]
    short = server.demo_session(user=user, ttl=5)
    ws = await authenticated(server, short)
    await ws.send(message("client-token-refresh", token=renewed))
    assert (await receive_until(ws, "server-token-refreshed"))["expiresAt"] > 0
    await asyncio.sleep(6)
    await ws.send(message("client-text-message", text="Still going after the first token expired."))
    assert (await receive_until(ws, "server-final-transcript"))["transcript"].startswith("Still going")
    await ws.close()
    settled_stats(server, quiet)
