"""The session's write queue: in order, retried while the database is away, bounded."""

import asyncio

import pytest
from django.db import DataError, OperationalError

from realtime.recorder import SessionRecorder

pytestmark = pytest.mark.django_db(transaction=True)


async def test_writes_that_meet_an_unreachable_database_are_retried_in_order():
    calls, failures = [], {"first": 2}

    def write(*, session_id, name):
        if failures.get(name, 0):
            failures[name] -= 1
            raise OperationalError("connection refused")
        calls.append(name)
        return name

    recorder = SessionRecorder("s", retry_seconds=5)
    first, second = recorder.submit(write, name="first"), recorder.submit(write, name="second")
    assert await first == "first" and await second == "second"
    assert calls == ["first", "second"]
    await recorder.close()


async def test_bad_data_fails_at_once_and_later_writes_still_run():
    def bad(*, session_id):
        raise DataError("cannot store that")

    def good(*, session_id):
        return "stored"

    recorder = SessionRecorder("s", retry_seconds=5)
    failed, later = recorder.submit(bad), recorder.submit(good)
    with pytest.raises(DataError):
        await failed
    assert await later == "stored"
    await recorder.close()


async def test_a_queued_state_write_is_replaced_by_a_newer_one():
    release, seen = asyncio.Event(), []

    def slow(*, session_id):
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result()

    def status(*, session_id, value):
        seen.append(value)

    loop = asyncio.get_running_loop()
    recorder = SessionRecorder("s")
    recorder.submit(slow)
    for value in ("paused", "live", "paused", "live"):
        recorder.submit(status, coalesce=True, value=value)
    assert recorder.pending == 2  # the running write and one status
    release.set()
    await recorder.close()
    assert seen == ["live"]
