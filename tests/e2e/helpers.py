"""Talking to real daphne workers: the candidate's socket, a recruiter's cookie, stored rows."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import time

from websockets.asyncio.client import connect


async def receive_until(ws, kind, timeout=20, **match):
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind and all(message["payload"].get(k) == v for k, v in match.items()):
                return message["payload"]


async def close_code(ws, timeout=15) -> int:
    """Read until the server closes; its close code."""
    try:
        async with asyncio.timeout(timeout):
            async for _ in ws:
                pass
    except Exception:
        pass
    return ws.close_code


async def event_with_text(watcher, text: str, timeout: float = 15) -> dict:
    """The recruiter's live view: the next event carrying `text`."""
    async with asyncio.timeout(timeout):
        while True:
            event = json.loads(await watcher.recv())
            if event.get("text") == text:
                return event


def auth_message(info, **extra) -> str:
    return json.dumps({"type": "client-auth",
                       "payload": {"token": info["token"], "sessionId": info["sessionId"], **extra}})


def message(kind: str, **payload) -> str:
    return json.dumps({"type": kind, "payload": payload})


def candidate(server, *, origin=None, **kwargs):
    return connect(server.ws_url, origin=origin or server.base_url, max_size=2**22, **kwargs)


async def authenticated(server, info, *, origin=None):
    ws = await candidate(server, origin=origin)
    await ws.send(auth_message(info))
    await receive_until(ws, "server-auth-success")
    return ws


def non_reading_socket(port: int) -> socket.socket:
    """A connected socket with a tiny receive window: what a client that stops reading looks like."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    return sock


def staff_cookie(server, *, may_view_sessions: bool = True, username: str = "recruiter") -> str:
    """A logged-in staff user's session cookie; with or without the admin's view permission."""
    code = (
        "from django.contrib.auth import get_user_model; from django.contrib.auth.models import Permission; "
        "from django.contrib.sessions.backends.db import SessionStore; "
        "User = get_user_model(); "
        f"u, _ = User.objects.get_or_create(username={username!r}, defaults={{'is_staff': True}}); "
        "p = Permission.objects.get(codename='view_interviewsession'); "
        f"u.user_permissions.add(p) if {may_view_sessions} else u.user_permissions.remove(p); "
        "s = SessionStore(); s['_auth_user_id'] = str(u.pk); "
        "s['_auth_user_backend'] = 'django.contrib.auth.backends.ModelBackend'; "
        "s['_auth_user_hash'] = u.get_session_auth_hash(); s.create(); print(s.session_key)"
    )
    return server.shell(code)


def stored_turns(server, session_id) -> list[dict]:
    code = (
        "import json; from interviews.models import Turn; "
        f"print(json.dumps(list(Turn.objects.filter(session_id='{session_id}')"
        ".order_by('sequence').values('speaker', 'text', 'interrupted', 'public_id', 'question_index'))))"
    )
    return json.loads(server.shell(code))


def session_status(server, session_id) -> str:
    return server.shell(f"from interviews.models import InterviewSession as S; "
                        f"print(S.objects.get(pk='{session_id}').status)")


class PingProbe:
    """A second candidate's ping round trips: how much one client's abuse costs the others."""

    def __init__(self, ws):
        self.ws = ws
        self.samples: list[float] = []
        self._next = 0

    async def measure(self, count: int, interval: float = 0.02) -> float:
        """Median round trip in ms over `count` pings."""
        samples = []
        for _ in range(count):
            self._next += 1
            started = time.perf_counter()
            await self.ws.send(message("client-ping", id=self._next))
            await receive_until(self.ws, "server-pong", id=self._next)
            samples.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(interval)
        self.samples.extend(samples)
        return statistics.median(samples)


def own_tasks(stats: dict) -> int:
    """The worker's tasks, less a receive of channels-redis's own: one that was cancelled
    while Redis restarted can stay pending inside the library (one per worker, not per
    connection; the consumer that started it is gone, see realtime/consumer_base.py), and the
    worker's one renewer of user slots (realtime/user_slots.py), running while it holds any."""
    return stats["tasks"] - sum(n for kind, n in stats.get("taskKinds", {}).items()
                                if kind.startswith(("RedisChannelLayer.", "ClusterSlots._renew")))


def settled_stats(server, baseline: dict, *, timeout: float = 15) -> dict:
    """Wait until the worker holds nothing more than it did at `baseline`."""
    deadline = time.monotonic() + timeout
    while True:
        now = server.stats()
        if (now["connections"] <= baseline["connections"] and now["runtimes"] <= baseline["runtimes"]
                and now["userSlots"] <= baseline["userSlots"] and own_tasks(now) <= own_tasks(baseline)):
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker still holds more than before: {now} vs {baseline}")
        time.sleep(0.2)
