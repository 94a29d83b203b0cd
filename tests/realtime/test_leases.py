"""Session leases against the database: a live session whose worker stopped renewing is
marked disconnected, and nothing else is (realtime/leases.py, interviews/services.py).
The same on the real cluster, with a worker killed: tests/e2e/test_production_cluster.py."""

import logging
import uuid
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from interviews import selectors, services
from interviews.models import InterviewSession, SessionStatus
from realtime import leases, stats

LEASE = timedelta(seconds=15)


@pytest.fixture
def make_live(db):
    interview = services.interview_ensure_demo()

    def make(*, connected_ago: float = 60, lease_left: float | None = None, holder: str = "dead-host:1"):
        """A live session connected `connected_ago` seconds ago, its lease running out in
        `lease_left` seconds (negative: already ran out; None: never leased)."""
        session = services.session_create(interview=interview, owner_id=str(uuid.uuid4()))
        services.session_connect(session_id=session.pk)
        now = timezone.now()
        InterviewSession.objects.filter(pk=session.pk).update(
            last_active_at=now - timedelta(seconds=connected_ago), held_by=holder if lease_left is not None else "",
            lease_expires_at=None if lease_left is None else now + timedelta(seconds=lease_left))
        return InterviewSession.objects.get(pk=session.pk)

    return make


def status(session) -> str:
    return InterviewSession.objects.get(pk=session.pk).status


def test_a_live_session_whose_lease_ran_out_is_marked_disconnected(make_live):
    dead = make_live(lease_left=-1)
    never_leased = make_live(lease_left=None)  # its worker died before its first renewal
    assert sorted(services.session_leases_expire(now=timezone.now(), grace=LEASE)) == sorted(
        [str(dead.pk), str(never_leased.pk)])
    assert status(dead) == status(never_leased) == SessionStatus.DISCONNECTED
    row = InterviewSession.objects.get(pk=dead.pk)
    assert row.lease_expires_at is None and row.held_by == "dead-host:1"  # who held it last stays visible
    assert services.session_leases_expire(now=timezone.now(), grace=LEASE) == []  # once


def test_what_a_worker_still_vouches_for_is_never_marked(make_live):
    leased = make_live(lease_left=5)
    just_taken = make_live(connected_ago=2, lease_left=-30)  # an old lease, but a connection took it 2 s ago
    just_active = make_live(connected_ago=1, lease_left=None)
    paused = make_live(lease_left=-1)
    InterviewSession.objects.filter(pk=paused.pk).update(status=SessionStatus.PAUSED)
    completed = make_live(lease_left=-1)
    services.session_complete(session_id=completed.pk, reason="done")
    assert services.session_leases_expire(now=timezone.now(), grace=LEASE) == []
    assert [status(s) for s in (leased, just_taken, just_active)] == [SessionStatus.LIVE] * 3
    assert status(paused) == SessionStatus.PAUSED and status(completed) == SessionStatus.COMPLETED


def test_a_session_resumed_elsewhere_after_it_was_found_expired_is_not_touched(make_live, monkeypatch):
    session = make_live(lease_left=-1)
    found = selectors.sessions_with_expired_lease(now=timezone.now(), grace=LEASE)
    assert found == [(str(session.pk), session.connection_count)]
    services.session_connect(session_id=session.pk)  # another worker takes it meanwhile
    InterviewSession.objects.filter(pk=session.pk).update(last_active_at=timezone.now() - timedelta(seconds=60))
    monkeypatch.setattr(selectors, "sessions_with_expired_lease", lambda **kw: found)
    assert services.session_leases_expire(now=timezone.now(), grace=LEASE) == []
    assert status(session) == SessionStatus.LIVE


def test_renewal_covers_the_connection_a_worker_holds_and_nothing_else(make_live):
    mine = make_live(lease_left=-1, holder="")
    taken = make_live(lease_left=-1, holder="")  # this worker held connection n; connection n+1 is elsewhere
    services.session_connect(session_id=taken.pk)
    until = timezone.now() + LEASE
    renewed = services.session_leases_renew(holder="me:1", held=[(str(mine.pk), mine.connection_count),
                                                                 (str(taken.pk), taken.connection_count)], until=until)
    assert renewed == 1
    mine_row, taken_row = InterviewSession.objects.get(pk=mine.pk), InterviewSession.objects.get(pk=taken.pk)
    assert (mine_row.held_by, mine_row.lease_expires_at) == ("me:1", until)
    assert taken_row.held_by == "" and taken_row.lease_expires_at < timezone.now()
    assert services.session_leases_expire(now=timezone.now(), grace=LEASE) == []


def test_a_holder_cut_off_from_the_database_gets_its_session_back_as_live(make_live):
    """Its lease ran out while it could not write; another worker marked the session; the
    holder's next renewal makes it live again (it never let go)."""
    session = make_live(lease_left=-1, holder="me:1")
    assert services.session_leases_expire(now=timezone.now(), grace=LEASE) == [str(session.pk)]
    services.session_leases_renew(holder="me:1", held=[(str(session.pk), session.connection_count)],
                                  until=timezone.now() + LEASE)
    assert status(session) == SessionStatus.LIVE


def test_renewing_many_sessions_at_once(make_live):
    sessions = [make_live(lease_left=-1) for _ in range(services.LEASE_BATCH + 5)]
    held = [(str(s.pk), s.connection_count) for s in sessions]
    assert services.session_leases_renew(holder="me:1", held=held, until=timezone.now() + LEASE) == len(sessions)
    assert services.session_leases_expire(now=timezone.now(), grace=LEASE) == []


class FakeRuntime:
    def __init__(self, session):
        self.snapshot = type("Snapshot", (), {"session_id": str(session.pk),
                                              "connection_number": session.connection_count})()
        self.stopped = False


@pytest.mark.django_db(transaction=True)
async def test_a_round_renews_what_the_worker_holds_and_sweeps_the_dead():
    from asgiref.sync import sync_to_async

    make = sync_to_async(lambda **kw: _live_session(**kw))
    held, dead, gone = await make(lease_left=-1), await make(lease_left=-1), await make(lease_left=-1)
    runtimes = [FakeRuntime(held), FakeRuntime(gone)]
    runtimes[1].stopped = True  # its connection ended: not renewed, and no longer vouched for
    for runtime in runtimes:
        stats.runtimes.add(runtime)
    result = await leases.renew_and_sweep(15, holder="me:1")
    assert result["renewed"] == 1 and sorted(result["expired"]) == sorted([str(dead.pk), str(gone.pk)])
    row = await InterviewSession.objects.aget(pk=held.pk)
    assert row.status == SessionStatus.LIVE and row.held_by == "me:1"


@pytest.mark.django_db(transaction=True)
async def test_a_round_without_the_database_is_logged_once_and_raises_nothing(monkeypatch, caplog):
    def unreachable(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(services, "session_leases_expire", unreachable)
    monkeypatch.setattr(leases, "_failing", False)
    with caplog.at_level(logging.INFO, logger="realtime.leases"):
        assert await leases.renew_and_sweep(15) is None
        assert await leases.renew_and_sweep(15) is None
        monkeypatch.undo()
        monkeypatch.setattr(leases, "_failing", True)
        assert (await leases.renew_and_sweep(15))["expired"] == []
    messages = [r.getMessage() for r in caplog.records]
    assert sum("not renewed" in m for m in messages) == 1 and "connection refused" in messages[0]
    assert any("renewed again" in m for m in messages)


def test_no_lease_task_outside_a_running_server():
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        leases.install(loop)  # pytest's loop: no reactor runs here
        assert leases._task is None
    finally:
        loop.close()


def _live_session(*, lease_left):
    interview = services.interview_ensure_demo()
    session = services.session_create(interview=interview, owner_id=str(uuid.uuid4()))
    services.session_connect(session_id=session.pk)
    now = timezone.now()
    InterviewSession.objects.filter(pk=session.pk).update(last_active_at=now - timedelta(seconds=60),
                                                          lease_expires_at=now + timedelta(seconds=lease_left))
    return InterviewSession.objects.get(pk=session.pk)
