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


class GroupMemberships:
    """The groups this process's consumers are in, so they can be restored.

    Redis holds group memberships in memory: after it restarts they are gone, and
    takeovers and live events would no longer reach anyone who joined before. The
    first layer error any consumer sees starts one task that re-adds every membership
    of this process as soon as the layer answers again.
    """

    def __init__(self):
        self._groups: dict[str, set[str]] = {}
        self._restoring: asyncio.Task | None = None

    async def add(self, layer, group: str, channel: str) -> None:
        await with_one_retry(layer.group_add, group, channel)
        self._groups.setdefault(channel, set()).add(group)

    async def discard(self, layer, group: str, channel: str) -> None:
        groups = self._groups.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self._groups[channel]
        await layer.group_discard(group, channel)

    def layer_failed(self, layer) -> None:
        if self._restoring is None or self._restoring.done():
            self._restoring = asyncio.ensure_future(self._restore(layer))

    async def _restore(self, layer) -> None:
        delay = 0.2
        while True:
            await asyncio.sleep(delay)
            try:
                for channel, groups in list(self._groups.items()):
                    for group in list(groups):
                        await layer.group_add(group, channel)
                return
            except LAYER_ERRORS:
                delay = min(delay * 2, 2.0)


memberships = GroupMemberships()
