"""Talking to the channel layer when it may be away (Redis restarting)."""

from __future__ import annotations

import asyncio

try:
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover - the in-memory layer needs no Redis client
    RedisError = OSError

# What a channel layer call raises while its backend is unreachable.
LAYER_ERRORS = (OSError, asyncio.TimeoutError, RedisError)


async def with_one_retry(operation, *args):
    """A channel layer call, tried again once: after a Redis restart a pooled connection
    is stale, and that one failure must not refuse a candidate."""
    try:
        return await operation(*args)
    except LAYER_ERRORS:
        await asyncio.sleep(0.05)
        return await operation(*args)
