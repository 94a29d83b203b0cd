"""Session leases: a worker that dies (SIGKILL, a lost host) does not leave its sessions "live".

A worker that stops cleanly marks each of its sessions disconnected as the candidate
goes (the runtime's stop). One that is killed writes nothing, so each worker also keeps
a lease on what it holds, and watches everyone's:

- every third of REALTIME_LEASE_SECONDS it renews the lease of every session it holds
  (`held_by` = this worker, `lease_expires_at` = now + the lease), each for the
  connection it holds: a session another connection has taken since is not touched;
- in the same round it marks disconnected every live session whose lease ran out and
  that no connection took (or stored anything in) for a whole lease: its worker is
  gone. Only while it is still live with the same connection number, so a session
  resumed elsewhere meanwhile is never touched.

A dead worker's sessions are therefore marked within about 1⅓ leases (20 s by default),
and stay resumable on any worker. One task per process, started on the server's loop by
`interview_site/asgi.py`; its database work runs on the database thread (never on the
loop), and a database that cannot be reached only costs a logged round: the next one
tries again. The workers' clocks must agree to well within a third of the lease (NTP).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from datetime import timedelta

from .db import database_call
from django.conf import settings
from django.utils import timezone

from interviews import services

from . import stats

log = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"[:100]

_task: asyncio.Task | None = None
_failing = False  # the last round could not reach the database (logged once per outage)


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Start the lease task on the server's loop: once per process, only under a running
    server (not in a test's event loop), and not with REALTIME_LEASE_SECONDS=0."""
    global _task
    if _task is not None or not _serving():
        return
    seconds = lease_seconds()
    if seconds <= 0:
        return
    _task = loop.create_task(_run(seconds), name="session-leases")


def lease_seconds() -> float:
    return float(settings.REALTIME.get("LEASE_SECONDS", 15.0))


def _serving() -> bool:
    reactor = sys.modules.get("twisted.internet.reactor")
    return bool(getattr(reactor, "running", False))


async def _run(seconds: float) -> None:
    while True:
        await renew_and_sweep(seconds)
        await asyncio.sleep(seconds / 3)


def held_sessions() -> list[tuple[str, int]]:
    """What this worker holds now: (session id, connection number) of each live runtime."""
    return [(str(r.snapshot.session_id), r.snapshot.connection_number) for r in list(stats.runtimes) if not r.stopped]


async def renew_and_sweep(seconds: float, *, holder: str = WORKER_ID) -> dict | None:
    """One round. Never raises: a failed round is logged and the next one tries again.
    Returns {"renewed": n, "expired": [ids]}, or None when the database could not be reached."""
    global _failing
    held = held_sessions()  # taken and handed to the database thread in one step (see services)
    try:
        result = await database_call(_round)(holder, held, seconds)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        if not _failing:
            log.warning("session leases not renewed (%d held): %s; retrying every %.1fs", len(held),
                        str(error).splitlines()[0] if str(error) else type(error).__name__, seconds / 3)
        _failing = True
        return None
    if _failing:
        log.info("session leases renewed again (%d held)", result["renewed"])
    _failing = False
    for session_id in result["expired"]:
        log.info("session %s: its worker's lease ran out; marked disconnected", session_id)
    return result


def _round(holder: str, held: list[tuple[str, int]], seconds: float) -> dict:
    now = timezone.now()
    lease = timedelta(seconds=seconds)
    renewed = services.session_leases_renew(holder=holder, held=held, until=now + lease) if held else 0
    expired = services.session_leases_expire(now=now, grace=lease)
    return {"renewed": renewed, "expired": expired}
