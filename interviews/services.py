"""Writes of interview state. Every finished turn and every status change lands here."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from . import events
from .evaluation import session_evaluate
from .models import AnalysisStatus, Interview, InterviewSession, Question, SessionResult, SessionStatus, Speaker, Turn
from .selectors import SessionAccessError

DEMO_INTERVIEW_TITLE = "Demo: Backend Engineer"
DEMO_QUESTIONS = (
    ("introduction", "To start, could you tell me a little about yourself and your background?"),
    ("experience", "What is a project you are proud of, and what was your part in it?"),
    ("technical", "How would you design a service that must stay responsive under heavy load?"),
)


def interview_ensure_demo() -> Interview:
    interview, created = Interview.objects.get_or_create(
        title=DEMO_INTERVIEW_TITLE,
        defaults={"role": "Backend Engineer", "description": "A short demo interview with three questions."},
    )
    if created or not interview.questions.exists():
        Question.objects.bulk_create(
            Question(interview=interview, position=i, stage=stage, text=text)
            for i, (stage, text) in enumerate(DEMO_QUESTIONS)
        )
    return interview


def session_create(*, interview: Interview, owner_id: str) -> InterviewSession:
    """A session of the interview for a candidate, with its questions as they are now.

    An interview with skills and no questions gets questions drafted by the interviewer
    when the session starts (`session_questions_store`).
    """
    questions = [{"text": q.text, "stage": q.stage} for q in interview.questions.all()]
    if not questions and not interview.skill_list:
        raise ValueError("An interview needs at least one question or skill before a session can start.")
    return InterviewSession.objects.create(
        interview=interview,
        owner_id=owner_id,
        questions=questions,
        stage=questions[0]["stage"] if questions else "",
    )


def session_questions_store(*, session_id, questions: list[dict]) -> list[dict]:
    """Snapshot drafted questions on a session that has none; returns the session's questions.

    Two connections drafting at once both get the first one's questions.
    """
    if not questions:
        raise ValueError("No questions to store.")
    with transaction.atomic():
        session = InterviewSession.objects.select_for_update().get(pk=session_id)
        if not session.questions:
            session.questions = [{"text": q["text"], "stage": q.get("stage", "")} for q in questions]
            session.stage = session.questions[0]["stage"]
            session.save(update_fields=["questions", "stage"])
    _publish_state(session)
    return session.questions


def session_connect(*, session_id) -> InterviewSession:
    """A connection took the session: mark it live. Returns the fresh row."""
    now = timezone.now()
    with transaction.atomic():
        session = InterviewSession.objects.select_for_update().get(pk=session_id)
        if session.is_finished:  # it ended between the access check and this lock
            raise SessionAccessError("session_finished", "This interview session has already ended.")
        session.connection_count += 1
        session.last_active_at = now
        session.started_at = session.started_at or now
        if session.status != SessionStatus.PAUSED:
            session.status = SessionStatus.LIVE
        session.save(update_fields=["connection_count", "last_active_at", "started_at", "status"])
    _publish_state(session)
    return session


def session_set_status(*, session_id, status: str) -> None:
    InterviewSession.objects.filter(pk=session_id).exclude(status=SessionStatus.COMPLETED).update(
        status=status, last_active_at=timezone.now()
    )
    events.publish(session_id, {"event": "status", "status": status})


def session_disconnect(*, session_id, connection_number: int) -> None:
    """The owning connection went away without ending the interview.

    Only the latest connection may mark it: a late write from a connection that was
    already replaced (on another worker) must not flag a live session.
    """
    updated = InterviewSession.objects.filter(
        pk=session_id, status=SessionStatus.LIVE, connection_count=connection_number
    ).update(status=SessionStatus.DISCONNECTED, last_active_at=timezone.now())
    if updated:
        events.publish(session_id, {"event": "status", "status": SessionStatus.DISCONNECTED})


def _session_move_to(session_id, question_index: int) -> None:
    session = InterviewSession.objects.get(pk=session_id)
    questions = session.questions
    stage = questions[question_index]["stage"] if question_index < len(questions) else session.stage
    InterviewSession.objects.filter(pk=session_id).update(
        current_question=question_index, stage=stage, last_active_at=timezone.now()
    )


def session_complete(*, session_id, reason: str, analysis_pending: bool = False) -> InterviewSession:
    """End the session (idempotent) and write its evaluation; with `analysis_pending`, a
    language model's analysis is to follow (`result_analysis_store`)."""
    with transaction.atomic():
        session = InterviewSession.objects.select_for_update().get(pk=session_id)
        if session.status != SessionStatus.COMPLETED:
            session.status = SessionStatus.COMPLETED
            session.end_reason = reason[:200]
            session.ended_at = timezone.now()
            session.save(update_fields=["status", "end_reason", "ended_at"])
    result = session_evaluate(session=session)
    if analysis_pending and result.analysis_status == AnalysisStatus.NOT_REQUESTED:
        SessionResult.objects.filter(pk=result.pk).update(analysis_status=AnalysisStatus.PENDING)
    _publish_state(session)
    return session


def result_analysis_store(*, session_id, analysis: dict, attempts: int) -> None:
    SessionResult.objects.filter(session_id=session_id).update(
        analysis=analysis, analysis_status=AnalysisStatus.DONE, analysis_attempts=attempts,
        analysis_error="", analysed_at=timezone.now(),
    )
    events.publish(session_id, {"event": "result", "analysisStatus": AnalysisStatus.DONE})


def result_analysis_failed(*, session_id, error: str, attempts: int) -> None:
    """No attempt succeeded: the recruiter sees why (never a key: the error's kind only)."""
    SessionResult.objects.filter(session_id=session_id).update(
        analysis_status=AnalysisStatus.FAILED, analysis_attempts=attempts, analysis_error=error[:200],
    )
    events.publish(session_id, {"event": "result", "analysisStatus": AnalysisStatus.FAILED})


def turn_record(
    *,
    session_id,
    speaker: Speaker | str,
    text: str,
    planned_text: str = "",
    question_index: int | None = None,
    source: str = "",
    interrupted: bool = False,
    public_id: str = "",
    started_at=None,
    ended_at=None,
    metrics: dict | None = None,
    advance_to: int | None = None,
) -> Turn:
    """Append a turn, and with `advance_to` move the session to that question in the same
    transaction (an answer and the progress it makes are stored together or not at all).

    Idempotent on `public_id`: a retry after a commit whose acknowledgement was lost
    returns the stored turn. Sequence numbers are unique per session; retry if two
    writers race.
    """
    for _attempt in range(5):
        try:
            with transaction.atomic():
                existing = _turn_with_public_id(session_id, public_id)
                if existing is not None:
                    return existing
                last = Turn.objects.filter(session_id=session_id).aggregate(n=Max("sequence"))["n"]
                turn = Turn.objects.create(
                    session_id=session_id,
                    sequence=(last or 0) + 1,
                    speaker=speaker,
                    text=text,
                    planned_text=planned_text,
                    question_index=question_index,
                    source=source,
                    interrupted=interrupted,
                    public_id=public_id,
                    started_at=started_at,
                    ended_at=ended_at or timezone.now(),
                    metrics=metrics or {},
                )
                if advance_to is not None:
                    _session_move_to(session_id, advance_to)
                else:
                    InterviewSession.objects.filter(pk=session_id).update(last_active_at=timezone.now())
            break
        except IntegrityError:
            continue
    else:  # pragma: no cover - five collisions in a row means something else is wrong
        raise RuntimeError(f"could not record a turn for session {session_id}")
    events.publish(
        session_id,
        {
            "event": "turn",
            "turnId": turn.public_id,
            "sequence": turn.sequence,
            "speaker": turn.speaker,
            "text": turn.text,
            "interrupted": turn.interrupted,
        },
    )
    if advance_to is not None:
        events.publish(session_id, {"event": "question", "questionIndex": advance_to})
    return turn


def _turn_with_public_id(session_id, public_id: str) -> Turn | None:
    if not public_id:
        return None
    return Turn.objects.filter(session_id=session_id, public_id=public_id).first()


def _publish_state(session: InterviewSession) -> None:
    events.publish(
        session.pk,
        {
            "event": "status",
            "status": session.status,
            "questionIndex": session.current_question,
            "questionCount": session.question_count,
        },
    )


# --- session leases (realtime/leases.py) ---------------------------------------------------

LEASE_BATCH = 200


def session_leases_renew(*, holder: str, held: list[tuple[str, int]], until) -> int:
    """Renew the leases of the sessions a worker holds, each for the connection it holds
    (`held`: session id and connection number). A session another connection has taken
    since (a higher connection_count) is not touched. Returns how many were renewed.

    A session this worker still holds that a sweep marked disconnected (its lease ran out
    while this worker could not reach the database) is made live again: with the same
    connection number nobody else took it, and the worker's own disconnect is written
    after this renewal when its runtime stops (both go through the one database thread).
    """
    from django.db.models import Q

    renewed = 0
    for start in range(0, len(held), LEASE_BATCH):
        batch = held[start:start + LEASE_BATCH]
        # One term per connection number, not per session: Django compiled a 150-term OR
        # in about 30 ms, on the database thread but holding the worker's GIL, every
        # renewal (docs/performance.md); most sessions share a handful of numbers.
        by_connection: dict[int, list[str]] = {}
        for session_id, connection_number in batch:
            by_connection.setdefault(connection_number, []).append(session_id)
        mine = Q()
        for connection_number, ids in by_connection.items():
            mine |= Q(pk__in=ids, connection_count=connection_number)
        revived = list(InterviewSession.objects.filter(mine, status=SessionStatus.DISCONNECTED)
                       .values_list("pk", flat=True))
        if revived:
            InterviewSession.objects.filter(mine, pk__in=revived, status=SessionStatus.DISCONNECTED).update(
                status=SessionStatus.LIVE)
            for session_id in revived:
                events.publish(session_id, {"event": "status", "status": SessionStatus.LIVE})
        renewed += InterviewSession.objects.filter(mine).exclude(status=SessionStatus.COMPLETED).update(
            held_by=holder[:100], lease_expires_at=until)
    return renewed


def session_leases_expire(*, now, grace) -> list[str]:
    """Mark disconnected every live session whose lease ran out (its worker died): only
    while it is still live with the connection that held it, so a session resumed on
    another worker meanwhile is never touched. Returns the ids marked."""
    from .selectors import lease_expired_q, sessions_with_expired_lease

    marked = []
    for session_id, connection_number in sessions_with_expired_lease(now=now, grace=grace):
        updated = InterviewSession.objects.filter(
            lease_expired_q(now=now, grace=grace), pk=session_id, status=SessionStatus.LIVE,
            connection_count=connection_number,
        ).update(status=SessionStatus.DISCONNECTED, lease_expires_at=None)
        if updated:
            events.publish(session_id, {"event": "status", "status": SessionStatus.DISCONNECTED})
            marked.append(session_id)
    return marked


# --- recruiters: ending a session from the admin or the API ---------------------------------

END_BY_STAFF = "Ended by the recruiter."


def session_end_by_staff(*, session_id, reason: str = "") -> str:
    """End a session for a recruiter. A live one is ended by the connection holding it, on
    whatever worker (its candidate is told why); with nobody holding it, here.

    Returns "ended-live" or "ended" (or "already-ended" for a finished session).
    """
    from . import control

    reason = (f"{END_BY_STAFF[:-1]}: {reason.strip()}" if reason.strip() else END_BY_STAFF)[:200]
    session = InterviewSession.objects.get(pk=session_id)
    if session.is_finished:
        return "already-ended"
    held = session.status in (SessionStatus.LIVE, SessionStatus.PAUSED)  # a paused one keeps its socket
    if held and control.end_live(str(session.pk), reason):
        return "ended-live"
    session_complete(session_id=session.pk, reason=reason)
    return "ended"
