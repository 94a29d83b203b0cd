"""Mirroring a session read from Supabase into the local models (no network needed)."""

from __future__ import annotations

import uuid

import pytest

from interviews.models import Interview, InterviewSession, Turn
from interviews.selectors import SessionAccessError
from interviews.supabase_source import SupabaseDataError, session_mirror, session_record_parse

USER = str(uuid.uuid4())


def row(**overrides):
    base = {
        "id": str(uuid.uuid4()), "candidate_id": USER, "status": "scheduled",
        "interview": {"id": str(uuid.uuid4()), "title": "Backend", "role": "Engineer", "description": "",
                      "skills": "", "questions": [
                          {"id": "b", "position": 1, "stage": "tech", "text": "Second?"},
                          {"id": "a", "position": 0, "stage": "intro", "text": "First?"}]},
    }
    base.update(overrides)
    return base


def test_questions_are_ordered_by_position():
    record = session_record_parse(row())
    assert [q.text for q in record.questions] == ["First?", "Second?"]


@pytest.mark.parametrize("bad", [
    {"interview": None},  # RLS hid the interview
    {"id": "not-a-uuid"},
    {"status": "exploded"},
    {"interview": {"id": str(uuid.uuid4()), "title": "T", "questions": [{"position": "1", "text": "Q"}]}},
    {"interview": {"id": str(uuid.uuid4()), "title": "T", "questions": [{"position": 0, "text": "  "}]}},
    {"interview": {"id": str(uuid.uuid4()), "title": "T",
                   "questions": [{"position": i, "text": "Q"} for i in range(201)]}},
])
def test_malformed_rows_are_refused_before_anything_is_written(bad, db):
    with pytest.raises(SupabaseDataError):
        session_record_parse(row(**bad))


def test_mirror_creates_with_the_same_ids_and_is_idempotent(db):
    data = row()
    record = session_record_parse(data)
    session = session_mirror(record=record, user_id=USER)
    assert str(session.pk) == data["id"] and str(session.owner_id) == USER
    assert [q["text"] for q in session.questions] == ["First?", "Second?"]
    interview = Interview.objects.get(external_id=data["interview"]["id"])
    assert list(interview.questions.values_list("text", flat=True)) == ["First?", "Second?"]
    session_mirror(record=record, user_id=USER)
    assert InterviewSession.objects.count() == 1 and Interview.objects.count() == 1


def test_questions_refresh_until_someone_joins_then_stay(db):
    data = row()
    session_mirror(record=session_record_parse(data), user_id=USER)
    data["interview"]["questions"][0]["text"] = "Second, reworded?"
    session = session_mirror(record=session_record_parse(data), user_id=USER)
    assert session.questions[1]["text"] == "Second, reworded?"
    Turn.objects.create(session=session, sequence=0, speaker="interviewer", text="First?")
    data["interview"]["questions"][0]["text"] = "Changed mid-interview?"
    session = session_mirror(record=session_record_parse(data), user_id=USER)
    assert session.questions[1]["text"] == "Second, reworded?"  # a session in progress never changes
    # The admin shows the interview as it is now.
    assert "Changed mid-interview?" in Interview.objects.get().questions.values_list("text", flat=True)


def test_finished_or_foreign_sessions_are_refused(db):
    with pytest.raises(SessionAccessError) as finished:
        session_mirror(record=session_record_parse(row(status="completed")), user_id=USER)
    assert finished.value.code == "session_finished"
    with pytest.raises(SessionAccessError) as foreign:
        session_mirror(record=session_record_parse(row()), user_id=str(uuid.uuid4()))
    assert foreign.value.code == "session_forbidden"
    assert not InterviewSession.objects.exists()
