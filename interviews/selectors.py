"""Reads of interview state."""

from __future__ import annotations

import uuid

from .models import AnalysisStatus, InterviewSession, SessionResult, Speaker, Turn


class SessionAccessError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def session_get_for_owner(*, session_id: str, user_id: str) -> InterviewSession:
    """The session a candidate may join, or SessionAccessError saying why not."""
    try:
        key = uuid.UUID(str(session_id))
    except (TypeError, ValueError):
        raise SessionAccessError("session_not_found", "No interview session has that id.") from None
    session = InterviewSession.objects.select_related("interview").filter(pk=key).first()
    if session is None:
        raise SessionAccessError("session_not_found", "No interview session has that id.")
    if str(session.owner_id) != str(uuid.UUID(user_id)):
        raise SessionAccessError("session_forbidden", "This interview session belongs to another user.")
    if session.is_finished:
        raise SessionAccessError("session_finished", "This interview session has already ended.")
    return session


def session_turns(*, session_id) -> list[Turn]:
    return list(Turn.objects.filter(session_id=session_id).order_by("sequence"))


def session_exists(*, session_id: str) -> bool:
    return InterviewSession.objects.filter(pk=session_id).exists()


def session_analysis_input(*, session_id) -> dict:
    """What a language model needs to assess a finished session: the interview, each main
    question with the candidate's answers to it (follow-ups included), the conversation."""
    session = InterviewSession.objects.select_related("interview").get(pk=session_id)
    turns = session_turns(session_id=session_id)
    answers: dict[int, list[str]] = {}
    for turn in turns:
        if turn.speaker == Speaker.CANDIDATE and turn.question_index is not None and turn.text.strip():
            answers.setdefault(turn.question_index, []).append(turn.text.strip())
    return {
        "title": session.interview.title,
        "role": session.interview.role,
        "skills": session.interview.skill_list,
        "questions": [{"question": q["text"], "answer": " ".join(answers.get(i, []))}
                      for i, q in enumerate(session.questions)],
        "conversation": [(t.speaker, t.text) for t in turns if t.text.strip()],
    }


def results_awaiting_analysis() -> list[str]:
    """Sessions whose analysis is pending or failed (for `manage.py analyse_results`)."""
    return [str(pk) for pk in SessionResult.objects.filter(
        analysis_status__in=(AnalysisStatus.PENDING, AnalysisStatus.FAILED)).values_list("session_id", flat=True)]


# --- session leases (realtime/leases.py) ---------------------------------------------------


def sessions_with_expired_lease(*, now, grace, limit: int = 500) -> list[tuple[str, int]]:
    """Live sessions no worker vouches for: (id, connection_count) of each.

    A lease ran out (or was never written) and no connection took the session or stored
    anything in it for `grace`: the worker that held it is gone. `session_connect` stamps
    `last_active_at`, so a session a worker has only just taken is never among them.
    """
    from .models import SessionStatus

    return [(str(pk), count) for pk, count in InterviewSession.objects.filter(
        lease_expired_q(now=now, grace=grace), status=SessionStatus.LIVE,
    ).order_by("lease_expires_at").values_list("pk", "connection_count")[:limit]]


def lease_expired_q(*, now, grace):
    """The condition above, for a query (the sweep re-checks it in its update)."""
    from django.db.models import Q

    return ((Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
            & (Q(last_active_at__isnull=True) | Q(last_active_at__lt=now - grace)))


# --- recruiters: the admin and the REST API -------------------------------------------------


def sessions_for_staff():
    """Every session, newest first, with what the lists show (one query for the page)."""
    return InterviewSession.objects.select_related("interview")


def sessions_for_candidate(*, user_id: str):
    """The sessions a candidate owns (their token reads only these)."""
    return sessions_for_staff().filter(owner_id=user_id)


def sessions_by_ids(*, session_ids: list[str]) -> list[InterviewSession]:
    """The sessions a list shows, to refresh them while it is open (bad ids are skipped)."""
    keys = []
    for session_id in session_ids[:200]:  # one page of the list at most
        try:
            keys.append(uuid.UUID(str(session_id)))
        except ValueError:
            continue
    return list(InterviewSession.objects.filter(pk__in=keys))


def session_summary(session: InterviewSession, *, now=None) -> dict:
    """A session's state as recruiters read it (the admin's rows and the API's sessions)."""
    from django.utils import timezone

    now = now or timezone.now()
    return {
        "id": str(session.pk),
        "interview": session.interview_id,
        "candidate": str(session.owner_id),
        "status": session.status,
        "stage": session.stage,
        "questionIndex": session.current_question,
        "questionCount": session.question_count,
        "progress": session_progress(session),
        "durationSeconds": session_duration_seconds(session, now=now),
        "createdAt": _iso(session.created_at),
        "startedAt": _iso(session.started_at),
        "lastActiveAt": _iso(session.last_active_at),
        "endedAt": _iso(session.ended_at),
        "endReason": session.end_reason,
        "heldBy": session.held_by if session.status == "live" else "",
    }


def session_progress(session: InterviewSession) -> str:
    """'question n of m' (n counts from 1; 'done' once every question was asked)."""
    count = session.question_count
    if not count:
        return "no questions yet"
    if session.current_question >= count:
        return f"all {count} answered"
    return f"question {session.current_question + 1} of {count}"


def session_duration_seconds(session: InterviewSession, *, now) -> int | None:
    if session.started_at is None:
        return None
    end = session.ended_at or (now if session.status == "live" else session.last_active_at or now)
    return max(0, int((end - session.started_at).total_seconds()))


def session_transcript(*, session_id) -> dict:
    """The whole conversation as stored: every turn, in order, with its timings."""
    session = InterviewSession.objects.select_related("interview").get(pk=session_id)
    turns = session_turns(session_id=session.pk)
    return {
        "sessionId": str(session.pk),
        "interview": session.interview.title,
        "candidate": str(session.owner_id),
        "status": session.status,
        "questions": session.questions,
        "turns": [turn_as_dict(turn) for turn in turns],
    }


def turn_as_dict(turn: Turn) -> dict:
    return {
        "sequence": turn.sequence,
        "speaker": turn.speaker,
        "text": turn.text,
        "plannedText": turn.planned_text,
        "interrupted": turn.interrupted,
        "questionIndex": turn.question_index,
        "source": turn.source,
        "turnId": turn.public_id,
        "startedAt": _iso(turn.started_at),
        "endedAt": _iso(turn.ended_at),
        "metrics": turn.metrics,
    }


def transcript_as_text(transcript: dict) -> str:
    """A plain-text transcript: one line per turn, who said it and when."""
    lines = [f"Interview: {transcript['interview']}", f"Session: {transcript['sessionId']}",
             f"Candidate: {transcript['candidate']}", f"Status: {transcript['status']}", ""]
    for turn in transcript["turns"]:
        who = "Interviewer" if turn["speaker"] == "interviewer" else "Candidate"
        mark = " [interrupted]" if turn["interrupted"] else ""
        lines.append(f"[{turn['endedAt'] or '-'}] {who}{mark}: {turn['text']}")
    return "\n".join(lines) + "\n"


def session_result(*, session_id) -> SessionResult | None:
    return SessionResult.objects.filter(session_id=session_id).first()


def result_as_dict(result: SessionResult) -> dict:
    return {
        "summary": result.summary,
        "answeredQuestions": result.answered_questions,
        "details": result.details,
        "analysisStatus": result.analysis_status,
        "analysis": result.analysis,
        "analysisError": result.analysis_error,
        "analysedAt": _iso(result.analysed_at),
        "createdAt": _iso(result.created_at),
    }


def session_watch_snapshot(*, session_id) -> dict:
    """What a recruiter's live view starts from (and resyncs from after a reconnect)."""
    session = InterviewSession.objects.select_related("interview").get(pk=session_id)
    return {
        "event": "snapshot",
        **session_summary(session),
        "turns": [turn_as_dict(turn) for turn in session_turns(session_id=session.pk)],
    }


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None
