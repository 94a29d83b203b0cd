"""Writes a session's turns and state changes in order, off the hot path.

The runtime never waits on the database to speak or listen; it hands each write to
this queue, which runs them one after another in a worker thread. Closing waits for
the queue to drain, so nothing finished is lost when the connection goes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from channels.db import database_sync_to_async

log = logging.getLogger(__name__)


class SessionRecorder:
    def __init__(self, session_id: str):
        self._session_id = session_id
        self._queue: asyncio.Queue = asyncio.Queue()
        self._closed = False
        self._task = asyncio.create_task(self._run(), name=f"recorder-{session_id}")

    def submit(self, write: Callable[..., Any], **kwargs: Any) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        if self._closed:
            log.error("session %s: %s after the recorder closed", self._session_id, getattr(write, "__name__", write))
            future.set_exception(RuntimeError("the session's recorder is closed"))
            future.exception()  # retrieved: the caller may not await it
            return future
        self._queue.put_nowait((write, kwargs, future))
        return future

    async def close(self, timeout: float = 10.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except asyncio.TimeoutError:
            log.error("session %s: recorder did not drain in %.0fs", self._session_id, timeout)

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            write, kwargs, future = item
            try:
                result = await database_sync_to_async(write)(session_id=self._session_id, **kwargs)
            except Exception as error:  # one failed write must not stop the ones after it
                log.exception("session %s: %s failed", self._session_id, getattr(write, "__name__", write))
                if not future.done():
                    future.set_exception(error)
                    future.exception()  # mark retrieved: the caller may not await it
            else:
                if not future.done():
                    future.set_result(result)
