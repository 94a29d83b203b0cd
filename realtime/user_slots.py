"""The per-user connection limit across workers, kept in Redis.

Each worker counts its own connections per user (realtime/consumers.py); behind a load
balancer a user could still open the limit on every worker. With Redis configured
(`REDIS_URL`), every connection also holds a slot in a sorted set per user in Redis:
member = the connection, score = when the slot expires. A connection takes a slot with
one Lua script (drop expired slots, count, add: atomic, so two workers cannot both take
the last one) and gives it back when it closes. A worker renews the expiry of the slots
it holds every RENEW_SECONDS; the slots of a worker that died expire after TTL_SECONDS,
so a crash frees its users' slots within a minute instead of never.

While Redis does not answer, the limit falls back to the per-worker count (a refusal
because the shared store is away would lock every candidate out); it is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from django.conf import settings

from .layer import LAYER_ERRORS

log = logging.getLogger(__name__)

TTL_SECONDS = 60
RENEW_SECONDS = 20
CALL_TIMEOUT_SECONDS = 2.0
MAX_PENDING_RELEASES = 10_000

_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def _key(user_id: str) -> str:
    return f"realtime:user-slots:{user_id}"


class ClusterSlots:
    """This worker's slots in Redis, renewed while held."""

    def __init__(self, url: str):
        self.url = url
        self.held: dict[str, str] = {}  # slot id -> user id
        self._client = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._renewer: asyncio.Task | None = None
        self._renewer_sleeping = False
        self._pending: set[asyncio.Task] = set()

    def _redis(self):
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:  # a client belongs to one loop
            import redis.asyncio as redis

            self._client = redis.Redis.from_url(self.url, socket_timeout=CALL_TIMEOUT_SECONDS,
                                                socket_connect_timeout=CALL_TIMEOUT_SECONDS)
            self._loop = loop
        return self._client

    async def take(self, user_id: str, limit: int) -> str | None | bool:
        """A slot id, False when the user is at the limit, None when Redis is away."""
        slot = uuid.uuid4().hex
        now = time.time()
        try:
            async with asyncio.timeout(CALL_TIMEOUT_SECONDS):
                taken = await self._redis().eval(_TAKE, 1, _key(user_id), now, limit, now + TTL_SECONDS, slot,
                                                 TTL_SECONDS * 2)
        except (*LAYER_ERRORS, TimeoutError) as error:
            log.warning("per-user limit across workers unavailable (%s): this worker's count applies",
                        type(error).__name__)
            return None
        if not taken:
            return False
        self.held[slot] = user_id
        if self._renewer is None or self._renewer.done() or self._renewer.cancelling():
            self._renewer = asyncio.ensure_future(self._renew())  # (a cancelled one is on its way out)
        return slot

    def release(self, slot: str) -> None:
        """Give a slot back without waiting (called from synchronous clean-up paths)."""
        user_id = self.held.pop(slot, None)
        if not self.held and self._renewer is not None and self._renewer_sleeping:
            self._renewer.cancel()  # nothing left to renew: no task lingers for RENEW_SECONDS
        if user_id is None or len(self._pending) >= MAX_PENDING_RELEASES:
            return  # not ours, or Redis is stuck: the slot expires on its own
        try:
            task = asyncio.ensure_future(self._release(user_id, slot))
        except RuntimeError:  # no loop any more: it expires
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _release(self, user_id: str, slot: str) -> None:
        try:
            async with asyncio.timeout(CALL_TIMEOUT_SECONDS):
                await self._redis().zrem(_key(user_id), slot)
        except (*LAYER_ERRORS, TimeoutError):
            pass  # it expires within TTL_SECONDS

    async def _renew(self) -> None:
        while self.held:
            self._renewer_sleeping = True
            try:
                await asyncio.sleep(RENEW_SECONDS)
            finally:
                self._renewer_sleeping = False
            held = list(self.held.items())
            if not held:
                break
            expiry = time.time() + TTL_SECONDS
            try:
                async with asyncio.timeout(CALL_TIMEOUT_SECONDS * 2):
                    pipe = self._redis().pipeline(transaction=False)
                    for slot, user_id in held:
                        pipe.zadd(_key(user_id), {slot: expiry}, xx=True)  # only while still there
                        pipe.expire(_key(user_id), TTL_SECONDS * 2)
                    await pipe.execute()
            except (*LAYER_ERRORS, TimeoutError) as error:
                log.warning("could not renew %d user slots: %s", len(held), type(error).__name__)


_cluster: ClusterSlots | None = None


def cluster_slots() -> ClusterSlots | None:
    """The shared slots when a Redis channel layer is configured, else None (one worker)."""
    global _cluster
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    if _cluster is None or _cluster.url != url:
        _cluster = ClusterSlots(url)
    return _cluster
