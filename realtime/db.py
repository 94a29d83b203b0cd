"""Where the realtime code's database calls run.

On PostgreSQL, on a bounded pool of threads, each keeping its own connection
(settings.DATABASES), so a burst of joins (a rolling restart hands a worker all of
another worker's candidates at once) or a draining worker's flush of every session
runs side by side instead of queueing behind one thread. SQLite takes one writer at a
time, so there every call runs on Django's one database thread, as channels'
`database_sync_to_async` does.

Each session's writes stay in order: its recorder awaits one before it starts the next.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections

T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None


def in_parallel() -> bool:
    return connections["default"].vendor == "postgresql"


def database_call(function: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """`function` as a coroutine function that runs it where database calls run."""
    if not in_parallel():
        return database_sync_to_async(function)
    return database_sync_to_async(function, thread_sensitive=False, executor=_threads())


def _threads() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=settings.DATABASE_THREADS, thread_name_prefix="database")
    return _executor
