"""Run a coroutine in the caller's task until it first waits; a task finishes the rest.

Handing each 40 ms audio chunk from the consumer to the recognition task costs a task
wake-up per chunk, and most recognisers never wait in `feed` (Moonshine and PocketSphinx
hand their decodes to threads and collect them on a later chunk). Stepping the feed in
the caller's task saves that wake-up; a feed that does wait (a thread, the network) is
handed to a task at that point, so the caller still never waits on a recogniser
(ARCHITECTURE rule 1). Python 3.12's eager tasks do the same; this is for 3.11.
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine


def step(coro: Coroutine[Any, Any, Any]) -> asyncio.Task | None:
    """Run `coro` until it returns (None; its result is dropped) or first waits (the task
    that runs the rest). An exception it raises before it waits is raised here."""
    try:
        awaited = coro.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_finish(coro, awaited))


async def _finish(coro: Coroutine[Any, Any, Any], awaited: Any) -> Any:
    """Resume `coro` each time what it waits on is done, as asyncio's Task does; a
    cancellation is passed on to what it waits on and then to the coroutine."""
    while True:
        try:
            try:
                if awaited is None:  # a bare yield (asyncio.sleep(0)): let others run
                    await asyncio.sleep(0)
                else:
                    awaited._asyncio_future_blocking = False
                    await asyncio.wait([awaited])
            except asyncio.CancelledError as cancelled:
                if awaited is not None:
                    awaited.cancel()
                awaited = coro.throw(cancelled)
                continue
            awaited = coro.send(None)
        except StopIteration as stop:
            return stop.value
