"""Supabase as the source of sessions and questions: parse what was read, mirror it here.

The transport (realtime/supabase_reader.py) reads a candidate's session, its interview
and the interview's questions from Supabase with the candidate's own token, so row level
security decides what they may see. This module turns those rows into a checked record
and mirrors it into the local models in one transaction, so the admin, resume and
results work exactly as with local questions:

* the session keeps its Supabase id; the interview is found by ``Interview.external_id``;
* a session's questions are snapshotted when it is first mirrored and refreshed only
  while nobody has joined it yet (a session in progress never changes under the candidate);
* nothing is written unless the whole record is valid.

It also shapes what is written back to Supabase (status and result) from the local rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from .models import Interview, InterviewSession, Question, SessionResult, SessionStatus
from .selectors import SessionAccessError

MAX_QUESTIONS = 200  # an interview with more is not one a candidate can sit through
MAX_TEXT_CHARS = 4000
# The columns the reader selects: the session with its interview and that interview's questions.
SESSION_SELECT = ("id, candidate_id, status, "
                  "interview:interviews(id, title, role, description, skills, "
                  "questions(id, position, stage, text))")


class SupabaseDataError(ValueError):
    """A row from Supabase is not shaped as supabase/schema.sql says (a deployment error)."""


@dataclass(frozen=True)
class SupabaseQuestion:
    position: int
    stage: str
    text: str


@dataclass(frozen=True)
class SupabaseSession:
    session_id: uuid.UUID
    candidate_id: uuid.UUID
    status: str
    interview_id: uuid.UUID
    title: str
    role: str
    description: str
    skills: str
    questions: tuple[SupabaseQuestion, ...]  # in the interview's order


def session_record_parse(row: dict[str, Any]) -> SupabaseSession:
    """A checked record from the reader's row (``SESSION_SELECT``); SupabaseDataError if not one."""
    if not isinstance(row, dict):
        raise SupabaseDataError("the session is not a row")
    interview = row.get("interview")
    if not isinstance(interview, dict):
        # RLS hid the interview, or the schema's foreign key is missing.
        raise SupabaseDataError("the session's interview is not readable")
    raw_questions = interview.get("questions")
    if not isinstance(raw_questions, list):
        raise SupabaseDataError("the interview's questions are not a list")
    if len(raw_questions) > MAX_QUESTIONS:
        raise SupabaseDataError(f"the interview has more than {MAX_QUESTIONS} questions")
    questions = sorted((_question(q) for q in raw_questions), key=lambda q: q[0])
    status = _text(row.get("status"), "status", 20)
    if status not in SessionStatus.values:
        raise SupabaseDataError(f"unknown session status {status!r}")
    return SupabaseSession(
        session_id=_uuid(row.get("id"), "session id"),
        candidate_id=_uuid(row.get("candidate_id"), "candidate id"),
        status=status,
        interview_id=_uuid(interview.get("id"), "interview id"),
        title=_text(interview.get("title"), "title", 200) or "Interview",
        role=_text(interview.get("role"), "role", 200),
        description=_text(interview.get("description"), "description", 10_000),
        skills=_text(interview.get("skills"), "skills", 10_000),
        questions=tuple(q for _, q in questions),
    )


def _question(raw: Any) -> tuple[tuple[int, str], SupabaseQuestion]:
    if not isinstance(raw, dict):
        raise SupabaseDataError("a question is not a row")
    position = raw.get("position")
    if not isinstance(position, int) or isinstance(position, bool):
        raise SupabaseDataError("a question's position is not a number")
    text = _text(raw.get("text"), "question text", MAX_TEXT_CHARS).strip()
    if not text:
        raise SupabaseDataError("a question has no text")
    question = SupabaseQuestion(position=position, stage=_text(raw.get("stage"), "stage", 100), text=text)
    return (position, str(raw.get("id", ""))), question  # ties broken by id: the same order every time


def _uuid(value: Any, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        raise SupabaseDataError(f"the {what} is not a UUID") from None


def _text(value: Any, what: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SupabaseDataError(f"the {what} is not text")
    if len(value) > limit:
        raise SupabaseDataError(f"the {what} is longer than {limit} characters")
    return value


def session_mirror(*, record: SupabaseSession, user_id: str) -> InterviewSession:
    """Mirror a session read from Supabase into the local models (one transaction).

    SessionAccessError when the candidate may not join it: another user's (RLS should
    already have hidden it) or finished.
    """
    if record.candidate_id != uuid.UUID(str(user_id)):
        raise SessionAccessError("session_forbidden", "This interview session belongs to another user.")
    if record.status == SessionStatus.COMPLETED:
        raise SessionAccessError("session_finished", "This interview session has already ended.")
    snapshot = [{"text": q.text, "stage": q.stage} for q in record.questions]
    with transaction.atomic():
        interview = _interview_mirror(record)
        session = InterviewSession.objects.select_for_update().filter(pk=record.session_id).first()
        if session is None:
            if not snapshot and not interview.skill_list:
                raise SupabaseDataError("the interview has neither questions nor skills")
            return InterviewSession.objects.create(
                id=record.session_id, interview=interview, owner_id=record.candidate_id,
                questions=snapshot, stage=snapshot[0]["stage"] if snapshot else "")
        if session.owner_id != record.candidate_id or session.interview_id != interview.pk:
            # The local copy was made for someone (or something) else: Supabase is the source.
            raise SessionAccessError("session_forbidden", "This interview session belongs to another user.")
        if session.connection_count == 0 and not session.turns.exists() and session.questions != snapshot:
            session.questions = snapshot
            session.stage = snapshot[0]["stage"] if snapshot else ""
            session.save(update_fields=["questions", "stage"])
        return session


def _interview_mirror(record: SupabaseSession) -> Interview:
    fields = dict(title=record.title, role=record.role, description=record.description, skills=record.skills)
    interview, created = Interview.objects.select_for_update().get_or_create(
        external_id=record.interview_id, defaults=fields)
    if not created and any(getattr(interview, k) != v for k, v in fields.items()):
        for key, value in fields.items():
            setattr(interview, key, value)
        interview.save(update_fields=list(fields))
    wanted = [(q.position, q.stage, q.text) for q in record.questions]
    if [(q.position, q.stage, q.text) for q in interview.questions.all()] != wanted:
        # Only what the admin shows; sessions keep their own snapshot.
        interview.questions.all().delete()
        Question.objects.bulk_create(Question(interview=interview, position=p, stage=s, text=t)
                                     for p, s, t in wanted)
    return interview


# --- Write-back: what Supabase is told about a session ---------------------------------


def session_writeback_state(*, session_id) -> tuple[dict, dict | None]:
    """The session's columns and its result's (None before it has one), as Supabase stores them."""
    session = InterviewSession.objects.get(pk=session_id)
    columns = {
        "status": session.status,
        "current_question": session.current_question,
        "question_count": len(session.questions),
        "started_at": _iso(session.started_at),
        "ended_at": _iso(session.ended_at),
        "end_reason": session.end_reason,
    }
    result = SessionResult.objects.filter(session_id=session_id).first()
    if result is None:
        return columns, None
    return columns, {
        "session_id": str(session.pk),
        "summary": result.summary,
        "answered_questions": result.answered_questions,
        "details": result.details,
        "analysis_status": result.analysis_status,
        "analysis": result.analysis,
        "analysis_error": result.analysis_error,
        "analysed_at": _iso(result.analysed_at),
    }


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None
