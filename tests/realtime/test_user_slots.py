"""The per-user connection limit across workers, against a real Redis (realtime/user_slots.py)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from realtime import user_slots
from tests.services import redis_url


@pytest.fixture
def url():
    return redis_url(db=10)


async def test_two_workers_share_one_limit(url):
    a, b = user_slots.ClusterSlots(url), user_slots.ClusterSlots(url)  # two processes' views
    user = str(uuid.uuid4())
    taken = [await (a if i % 2 else b).take(user, 3) for i in range(3)]
    assert all(isinstance(slot, str) for slot in taken)
    assert await a.take(user, 3) is False and await b.take(user, 3) is False
    a.release(taken[1])  # a's slot: the next one may go anywhere
    await asyncio.sleep(0.1)
    assert isinstance(await b.take(user, 3), str)
    assert await a.take(str(uuid.uuid4()), 3)  # another user is not affected


async def test_a_dead_workers_slots_expire_and_live_ones_are_renewed(url, monkeypatch):
    monkeypatch.setattr(user_slots, "TTL_SECONDS", 1)
    monkeypatch.setattr(user_slots, "RENEW_SECONDS", 0.3)
    alive, dead = user_slots.ClusterSlots(url), user_slots.ClusterSlots(url)
    user = str(uuid.uuid4())
    assert await alive.take(user, 2)
    assert await dead.take(user, 2)
    dead._renewer.cancel()  # its process is gone: nobody renews or releases its slot
    assert await alive.take(user, 2) is False
    await asyncio.sleep(1.6)
    assert isinstance(await alive.take(user, 2), str)  # the dead one's slot expired; the live one was renewed
    assert await alive.take(user, 2) is False


async def test_redis_away_falls_back_to_the_workers_own_count():
    slots = user_slots.ClusterSlots("redis://127.0.0.1:1/0")  # nothing listens there
    assert await slots.take(str(uuid.uuid4()), 5) is None


async def test_the_renewer_stops_with_the_last_slot_and_starts_again_with_the_next(url):
    """An idle worker keeps no renewal task waiting out its period (the leak test counts
    a worker's tasks before and after a thousand connections)."""
    slots = user_slots.ClusterSlots(url)
    user = str(uuid.uuid4())
    first, second = await slots.take(user, 3), await slots.take(user, 3)
    renewer = slots._renewer
    slots.release(first)
    await asyncio.sleep(0.05)
    assert not renewer.done()  # one slot is still held
    slots.release(second)
    await asyncio.sleep(0.05)
    assert renewer.done()
    assert await slots.take(user, 3) and not slots._renewer.done()
