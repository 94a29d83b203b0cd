"""Waiting for what the session's recorder writes just after it is announced."""

import asyncio


async def until(fetch, done, *, timeout: float = 10, what: str = "the expected state"):
    """Call the async `fetch` until `done(result)`; return that result."""
    result = None
    for _ in range(int(timeout / 0.05)):
        result = await fetch()
        if done(result):
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached {what}; last seen: {result!r}")
