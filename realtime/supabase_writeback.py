"""Writing a session's status and result back to Supabase, in the background.

When Supabase is the source (``SUPABASE_SOURCE_ENABLED``) and a service-role key is set,
the platform's own pages read status and results from Supabase's tables, so each change
that matters (joined, left, ended, analysed) schedules a write-back. It never blocks a
candidate: it runs as a task after the local write, each attempt under the Supabase
deadline, with a few spaced retries (``SUPABASE_WRITEBACK_ATTEMPTS``). Every attempt
sends the session's latest local state, so a later write-back supersedes an earlier
one; at most one runs per session, and a change arriving meanwhile runs once more after.
"""

from __future__ import annotations

import asyncio
import logging

from .db import database_call
from django.conf import settings
from django.utils import timezone

from interviews.supabase_source import session_writeback_state

from .supabase_reader import supabase_client

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
MAX_SESSIONS = 10_000  # sessions waiting for a write-back; beyond that, new ones are dropped (logged)

_running: dict[str, asyncio.Task] = {}
_again: set[str] = set()


def writeback_enabled() -> bool:
    return bool(settings.SUPABASE_SOURCE_ENABLED and settings.SUPABASE_SERVICE_ROLE_KEY)


def writeback_schedule(session_id: str) -> asyncio.Task | None:
    """Send the session's state to Supabase soon (no-op unless configured). Never raises."""
    if not writeback_enabled():
        return None
    session_id = str(session_id)
    task = _running.get(session_id)
    if task is not None and not task.done():
        _again.add(session_id)
        return task
    if len(_running) >= MAX_SESSIONS:
        log.error("session %s: write-back to Supabase dropped: %d already waiting", session_id, len(_running))
        return None
    task = asyncio.get_running_loop().create_task(_run(session_id), name=f"supabase-writeback-{session_id}")
    _running[session_id] = task
    return task


async def _run(session_id: str) -> None:
    try:
        while True:
            _again.discard(session_id)
            await writeback(session_id=session_id)
            if session_id not in _again:
                return
    finally:
        _running.pop(session_id, None)
        _again.discard(session_id)


async def writeback(*, session_id: str, attempts: int | None = None) -> bool:
    """Try to write the session's state; True once Supabase has it."""
    attempts = attempts or settings.SUPABASE_WRITEBACK_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            columns, result = await database_call(session_writeback_state)(session_id=session_id)
            async with asyncio.timeout(settings.SUPABASE_DEADLINE_SECONDS):
                await _send(session_id, columns, result)
            log.info("session %s: status %s written to Supabase (attempt %d)", session_id, columns["status"], attempt)
            return True
        except Exception as failure:  # the kind only: never the key
            error = "deadline missed" if isinstance(failure, TimeoutError) else type(failure).__name__
            log.warning("session %s: Supabase write-back attempt %d of %d failed: %s",
                        session_id, attempt, attempts, error)
        if attempt < attempts:
            await asyncio.sleep(min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempt - 1)))
    log.error("session %s: Supabase write-back gave up after %d attempts", session_id, attempts)
    return False


async def _send(session_id: str, columns: dict, result: dict | None) -> None:
    async with supabase_client(bearer=settings.SUPABASE_SERVICE_ROLE_KEY,
                               deadline_s=settings.SUPABASE_DEADLINE_SECONDS) as (client, _):
        # The result first: a page that sees "completed" finds the result already there.
        if result is not None:
            await client.table("interview_results").upsert(result, on_conflict="session_id").execute()
        await client.table("interview_sessions").update(
            {**columns, "updated_at": timezone.now().isoformat()}).eq("id", session_id).execute()
