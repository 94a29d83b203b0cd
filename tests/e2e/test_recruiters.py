"""Recruiters across two real daphne workers sharing PostgreSQL and Redis.

The candidate talks to worker A; the recruiter's live view and admin are on worker B (or
the other way round). What must hold: the live view gets that session's events and no
other's; an end from the admin or the API on one worker reaches the candidate on the
other; a takeover moves the session while the recruiter keeps watching; the per-user
connection limit counts connections on both workers.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.e2e.helpers import (auth_message, close_code, event_with_text, message, receive_until, session_status,
                               staff_cookie, stored_turns)
from tests.servers import two_workers_on_postgres_and_redis

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workers():
    with two_workers_on_postgres_and_redis() as (a, b):
        yield a, b


def recruiter_cookie(server, username: str) -> str:
    """A staff user who may view and end sessions (the admin's change permission)."""
    cookie = staff_cookie(server, username=username)
    server.shell("from django.contrib.auth import get_user_model; from django.contrib.auth.models import Permission; "
                 f"get_user_model().objects.get(username={username!r}).user_permissions.add("
                 "Permission.objects.get(codename='change_interviewsession')); print('ok')")
    return cookie


def watch(server, session_id, cookie, origin):
    return connect(f"ws://127.0.0.1:{server.port}/api/live/{session_id}/", origin=origin,
                   additional_headers={"Cookie": f"sessionid={cookie}"})


async def candidate_on(server, info, origin):
    ws = await connect(server.ws_url, origin=origin, max_size=2**22)
    await ws.send(auth_message(info))
    await receive_until(ws, "server-auth-success")
    return ws


async def say(ws, text):
    await ws.send(message("client-text-message", text=text))
    return await receive_until(ws, "server-final-transcript", transcript=text)


def admin_end(server, cookie, session_id, reason) -> httpx.Response:
    """What the End button does: the session page's form, with its CSRF token."""
    with httpx.Client(base_url=server.base_url, cookies={"sessionid": cookie}, timeout=30,
                      follow_redirects=True) as http:
        page = http.get(f"/admin/interviews/interviewsession/{session_id}/change/")
        assert page.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        return http.post(f"/admin/interviews/interviewsession/{session_id}/end/",
                         data={"csrfmiddlewaretoken": token, "reason": reason})


async def test_the_live_view_on_b_gets_only_its_sessions_events_from_a(workers):
    a, b = workers
    watched, other = a.demo_session(), a.demo_session()
    cookie = staff_cookie(b)
    async with watch(b, watched["sessionId"], cookie, a.base_url) as watcher:
        snapshot = json.loads(await watcher.recv())
        assert snapshot["event"] == "snapshot" and snapshot["sessionId"] == watched["sessionId"]
        assert snapshot["status"] == "scheduled" and snapshot["questionCount"] == 3
        mine = await candidate_on(a, watched, a.base_url)
        theirs = await candidate_on(a, other, a.base_url)
        await say(theirs, "Words of another session.")
        await say(mine, "Words of the watched session.")
        seen = []
        async with asyncio.timeout(15):
            while True:
                event = json.loads(await watcher.recv())
                seen.append(event)
                if event.get("event") == "turn" and event.get("text") == "Words of the watched session.":
                    break
        assert event["speaker"] == "candidate"
        # The interviewer's words reached the watcher as they were spoken, before the stored turn.
        spoken = [e for e in seen if e.get("event") == "interviewer-speaking"]
        first_turn = next(i for i, e in enumerate(seen) if e.get("event") == "turn")
        assert spoken and seen.index(spoken[0]) < first_turn
        heard, said = seen[first_turn]["text"], spoken[0]["text"]  # the stored turn is what was heard
        assert seen[first_turn]["speaker"] == "interviewer" and (said.startswith(heard) or heard.startswith(said))
        assert all(e["sessionId"] == watched["sessionId"] for e in seen)
        assert not any("another session" in json.dumps(e) for e in seen)
        assert any(e.get("event") == "status" and e.get("status") == "live" for e in seen)
        await theirs.close()
        await mine.close()

    # A reconnecting watcher resyncs from a snapshot that has every stored turn.
    async with watch(b, watched["sessionId"], cookie, a.base_url) as again:
        snapshot = json.loads(await again.recv())
        assert "Words of the watched session." in [t["text"] for t in snapshot["turns"]]


async def test_ending_from_the_admin_on_b_reaches_the_candidate_on_a(workers):
    a, b = workers
    info = a.demo_session()
    cookie = recruiter_cookie(b, "ender")
    ws = await candidate_on(a, info, a.base_url)
    await say(ws, "I am answering now.")
    async with watch(b, info["sessionId"], cookie, a.base_url) as watcher:
        response = await asyncio.to_thread(admin_end, b, cookie, info["sessionId"], "The role was filled")
        assert response.status_code == 200 and "the candidate was told" in response.text
        ended = await receive_until(ws, "server-session-ended", timeout=10)
        assert ended["reason"] == "Ended by the recruiter: The role was filled"
        assert await close_code(ws) == 1000
        async with asyncio.timeout(10):
            while (event := json.loads(await watcher.recv())).get("status") != "completed":
                pass
    assert session_status(a, info["sessionId"]) == "completed"


async def test_ending_through_the_api_on_a_reaches_the_candidate_on_b(workers):
    a, b = workers
    info = a.demo_session()
    key = a.shell("from django.contrib.auth import get_user_model; from django.contrib.auth.models import Permission; "
                  "from rest_framework.authtoken.models import Token; "
                  "u, _ = get_user_model().objects.get_or_create(username='platform', defaults={'is_staff': True}); "
                  "u.user_permissions.add(*Permission.objects.filter(codename__in=['view_interviewsession', "
                  "'change_interviewsession'])); print(Token.objects.get_or_create(user=u)[0].key)")
    ws = await candidate_on(b, info, a.base_url)
    response = await asyncio.to_thread(httpx.post, f"{a.base_url}/api/v1/sessions/{info['sessionId']}/end/",
                                       json={"reason": "Rescheduled"}, headers={"Authorization": f"Token {key}"},
                                       timeout=30)
    assert response.json() == {"id": info["sessionId"], "status": "completed", "outcome": "ended-live"}
    assert (await receive_until(ws, "server-session-ended"))["reason"] == "Ended by the recruiter: Rescheduled"
    assert await close_code(ws) == 1000


async def test_a_takeover_across_workers_while_the_recruiter_watches(workers):
    a, b = workers
    info = a.demo_session()
    cookie = recruiter_cookie(a, "watcher")
    async with watch(a, info["sessionId"], cookie, a.base_url) as watcher:
        first = await candidate_on(a, info, a.base_url)
        await say(first, "Said on worker A.")
        second = await candidate_on(b, info, a.base_url)
        assert (await receive_until(first, "server-error"))["code"] == "session_taken_over"
        assert await close_code(first) == 4409
        await say(second, "Said on worker B.")
        assert (await event_with_text(watcher, "Said on worker B."))["speaker"] == "candidate"
        # The admin ends it on A: the request finds the new holder on B.
        response = await asyncio.to_thread(admin_end, a, cookie,
                                           info["sessionId"], "")
        assert response.status_code == 200
        assert (await receive_until(second, "server-session-ended"))["reason"] == "Ended by the recruiter."
    texts = [turn["text"] for turn in stored_turns(a, info["sessionId"])]
    assert "Said on worker A." in texts and "Said on worker B." in texts


async def test_the_per_user_connection_limit_counts_both_workers(workers):
    a, b = workers
    user = str(uuid.uuid4())
    sessions = [a.demo_session(user=user) for _ in range(6)]
    open_sockets = []
    try:
        for index, info in enumerate(sessions[:5]):  # the limit is 5: three on A, two on B
            open_sockets.append(await candidate_on(a if index % 2 == 0 else b, info, a.base_url))
        for server in (a, b):
            extra = await connect(server.ws_url, origin=a.base_url)
            await extra.send(auth_message(sessions[5]))
            refused = await receive_until(extra, "server-auth-failure")
            assert refused["code"] == "too_many_connections"
            assert await close_code(extra) == 4029
        await open_sockets.pop().close()  # one on B closes: a slot frees on both workers
        async with asyncio.timeout(10):
            while True:
                retry = await connect(a.ws_url, origin=a.base_url)
                await retry.send(auth_message(sessions[5]))
                reply = json.loads(await retry.recv())
                if reply["type"] == "server-auth-success":
                    open_sockets.append(retry)
                    break
                await retry.close()
                await asyncio.sleep(0.2)  # the slot is given back just after the close
    finally:
        for ws in open_sockets:
            await ws.close()
