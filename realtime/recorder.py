"""Writes a session's turns and state changes in order, off the hot path.

The runtime never waits on the database to speak or listen; it hands each write to
this queue, which runs them one after another in a worker thread. A write that meets
an unreachable database is retried (in order, for a bounded time); writes are
idempotent, so a retry after a lost commit acknowledgement stores nothing twice.
Closing waits for the queue to drain, so nothing finished is lost when the connection
goes.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any, Callable

from .db import database_call
from django.db import InterfaceError, OperationalError

log = logging.getLogger(__name__)

MAX_PENDING_WRITES = 64
RETRY_FIRST_DELAY_S = 0.1
RETRY_MAX_DELAY_S = 1.0
# Connection refused, server gone, SQLite busy: worth another try. Bad data is not.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


class RecorderFull(Exception):
    pass


class RecorderClosed(Exception):
    pass


class _Write:
    __slots__ = ("function", "kwargs", "future")

    def __init__(self, function, kwargs, future):
        self.function = function
        self.kwargs = kwargs
        self.future = future


class SessionRecorder:
    def __init__(self, session_id: str, *, retry_seconds: float = 10.0):
        self._session_id = session_id
        self._retry_seconds = retry_seconds
        self._pending: collections.deque[_Write] = collections.deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._task = asyncio.create_task(self._run(), name=f"recorder-{session_id}")

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, write: Callable[..., Any], *, coalesce: bool = False, **kwargs: Any) -> asyncio.Future:
        """Queue a write; the future holds its result. With `coalesce`, a queued write of
        the same function that has not started yet is replaced (only the latest state matters)."""
        if coalesce and len(self._pending) > 1 and self._pending[-1].function is write:
            self._pending[-1].kwargs = kwargs
            return self._pending[-1].future
        future = asyncio.get_running_loop().create_future()
        if self._closed or len(self._pending) >= MAX_PENDING_WRITES:
            error = RecorderClosed() if self._closed else RecorderFull()
            log.error("session %s: %s refused (%s)", self._session_id, _name(write), type(error).__name__)
            future.set_exception(error)
            future.exception()  # retrieved: the caller may not await it
            return future
        self._pending.append(_Write(write, kwargs, future))
        self._wakeup.set()
        return future

    async def close(self, timeout: float = 15.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._wakeup.set()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._task)
        except TimeoutError:
            log.error("session %s: recorder did not drain in %.0fs; %d writes lost",
                      self._session_id, timeout, len(self._pending))
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # The head stays queued while it runs, so `pending` counts it and it is never coalesced into.
            write = self._pending[0]
            try:
                result = await self._write_with_retries(write)
            except Exception as error:  # one failed write must not stop the ones after it
                log.error("session %s: %s failed: %s", self._session_id, _name(write.function), error)
                if not write.future.done():
                    write.future.set_exception(error)
                    write.future.exception()  # mark retrieved: the caller may not await it
            else:
                if not write.future.done():
                    write.future.set_result(result)
            self._pending.popleft()

    async def _write_with_retries(self, write: _Write):
        deadline = time.monotonic() + self._retry_seconds
        delay = RETRY_FIRST_DELAY_S
        while True:
            try:
                return await database_call(write.function)(session_id=self._session_id, **write.kwargs)
            except TRANSIENT_ERRORS as error:
                if time.monotonic() + delay > deadline:
                    raise
                if delay == RETRY_FIRST_DELAY_S:
                    log.warning("session %s: %s will be retried: %s", self._session_id, _name(write.function),
                                str(error).splitlines()[0] if str(error) else type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY_S)


def _name(write) -> str:
    return getattr(write, "__name__", repr(write))
