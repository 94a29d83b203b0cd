import json
import uuid
from urllib.parse import parse_qs

import pytest
from django.core.management import call_command

from interviews import services
from interviews.models import InterviewSession, SessionStatus, Speaker


@pytest.fixture
def session(db):
    interview = services.interview_ensure_demo()
    return services.session_create(interview=interview, owner_id=str(uuid.uuid4()))


def test_turns_are_numbered_in_order(session):
    first = services.turn_record(session_id=session.pk, speaker=Speaker.INTERVIEWER, text="Hello.")
    second = services.turn_record(session_id=session.pk, speaker=Speaker.CANDIDATE, text="Hi.")
    assert (first.sequence, second.sequence) == (1, 2)


def test_completing_a_session_writes_its_result(session):
    services.turn_record(session_id=session.pk, speaker=Speaker.CANDIDATE, question_index=0,
                         text="I have built payment systems in Python for five years at two companies.")
    services.session_complete(session_id=session.pk, reason="All questions answered.")
    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETED and session.ended_at
    result = session.result
    assert result.answered_questions == 1
    assert result.details["questions"][0]["assessment"] == "adequate"
    assert result.details["questions"][1]["assessment"] == "not answered"
    assert "1 of 3 questions answered" in result.summary


def test_a_late_disconnect_from_a_replaced_connection_does_not_flag_a_live_session(session):
    services.session_connect(session_id=session.pk)  # connection 1
    services.session_connect(session_id=session.pk)  # connection 2 took over
    services.session_disconnect(session_id=session.pk, connection_number=1)
    assert InterviewSession.objects.get(pk=session.pk).status == SessionStatus.LIVE
    services.session_disconnect(session_id=session.pk, connection_number=2)
    assert InterviewSession.objects.get(pk=session.pk).status == SessionStatus.DISCONNECTED


def test_demo_session_prints_one_json_line_to_join_with(db, capsys):
    call_command("demo_session", "--base-url", "http://example.test:8000")
    line = capsys.readouterr().out.strip()
    data = json.loads(line)
    assert set(data) == {"sessionId", "userId", "token", "refreshToken", "expiresAt", "url"}
    # The fragment has the shape of Supabase's sign-in redirect: the page renews the token.
    page, fragment = data["url"].split("#")
    assert page == f"http://example.test:8000/interview/{data['sessionId']}/"
    assert parse_qs(fragment) == {
        "access_token": [data["token"]], "refresh_token": [data["refreshToken"]],
        "expires_at": [str(data["expiresAt"])], "expires_in": ["14400"], "token_type": ["bearer"],
    }
    session = InterviewSession.objects.get(pk=data["sessionId"])
    assert str(session.owner_id) == data["userId"] and session.question_count == 3


def test_an_answer_and_the_progress_it_makes_are_stored_once_even_when_retried(session):
    first = services.turn_record(session_id=session.pk, speaker=Speaker.CANDIDATE, text="My answer.",
                                 question_index=0, public_id="t-1", advance_to=1)
    again = services.turn_record(session_id=session.pk, speaker=Speaker.CANDIDATE, text="My answer.",
                                 question_index=0, public_id="t-1", advance_to=1)  # the commit's ack was lost
    assert again.pk == first.pk and session.turns.count() == 1
    assert InterviewSession.objects.get(pk=session.pk).current_question == 1
