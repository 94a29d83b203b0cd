"""The recruiters' admin, as staff and as others: the sessions list and its live rows,
a session's page (turns, result, link), exports, ending, creating, interviews inline."""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from interviews import control, services
from interviews.models import Interview, InterviewSession, Question, SessionStatus, Speaker
from tests.factories import make_session

LIST = "admin:interviews_interviewsession_changelist"


def _user(username: str, *, staff: bool, perms: tuple[str, ...] = ()):
    user = get_user_model().objects.create_user(username, password="pw-" + username, is_staff=staff)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


@pytest.fixture
def recruiter(db, client):
    client.force_login(_user("recruiter", staff=True, perms=(
        "view_interviewsession", "change_interviewsession", "add_interviewsession",
        "view_interview", "add_interview", "change_interview", "add_question", "change_question", "view_question")))
    return client


@pytest.fixture
def viewer(db, client):
    """Staff who may read sessions but not end or create them."""
    client.force_login(_user("viewer", staff=True, perms=("view_interviewsession",)))
    return client


@pytest.fixture
def outsider(db, client):
    client.force_login(_user("candidate-like", staff=False))
    return client


@pytest.fixture
def session(db):
    info = make_session()
    return InterviewSession.objects.get(pk=info.session_id)


def _talk(session):
    services.session_connect(session_id=session.pk)
    services.turn_record(session_id=session.pk, speaker=Speaker.INTERVIEWER, text="Tell me about",
                         planned_text="Tell me about yourself.", interrupted=True, question_index=0,
                         metrics={"turn_to_first_audio_ms": 212})
    services.turn_record(session_id=session.pk, speaker=Speaker.CANDIDATE, text="I write Python.",
                         question_index=0, advance_to=1, metrics={"stt_final_ms": 95})


def test_staff_see_sessions_with_status_progress_and_worker(recruiter, session):
    _talk(session)
    InterviewSession.objects.filter(pk=session.pk).update(held_by="worker-a:123")
    page = recruiter.get(reverse(LIST)).content.decode()
    assert str(session.owner_id) in page and "Test interview" in page
    assert f'data-session="{session.pk}" data-field="status">live<' in page
    assert "question 2 of 2" in page and "worker-a:123" in page
    assert "admin-live/live-rows.js" in page  # the rows refresh themselves


def test_sessions_list_filters_and_searches(recruiter, session):
    other = InterviewSession.objects.get(pk=make_session().session_id)
    services.session_complete(session_id=other.pk, reason="done")
    live_only = recruiter.get(reverse(LIST), {"status": "completed"}).content.decode()
    assert str(other.pk)[:8] in live_only and str(session.pk)[:8] not in live_only
    found = recruiter.get(reverse(LIST), {"q": str(session.owner_id)}).content.decode()
    assert str(session.pk)[:8] in found and str(other.pk)[:8] not in found


def test_live_rows_report_the_current_state(recruiter, session):
    url = reverse("admin:interviews_interviewsession_live_rows")
    before = recruiter.get(url, {"ids": f"{session.pk},not-a-uuid"}).json()["rows"]
    assert [(row["id"], row["status"]) for row in before] == [(str(session.pk), "scheduled")]
    _talk(session)
    (row,) = recruiter.get(url, {"ids": str(session.pk)}).json()["rows"]
    assert row["status"] == "live" and row["progress"] == "question 2 of 2"


def test_session_page_shows_the_conversation_and_the_link(recruiter, session):
    _talk(session)
    page = recruiter.get(reverse("admin:interviews_interviewsession_change", args=[session.pk])).content.decode()
    assert "Tell me about yourself." in page  # planned, beside what was heard
    assert "I write Python." in page and "turn-interrupted" in page
    assert "turn to first audio: 212 ms" in page
    assert f'data-socket-path="/api/live/{session.pk}/"' in page and "live-session.js" in page
    assert f"/interview/{session.pk}/#access_token=" in page  # demo tokens: the link opens the interview
    assert 'id="end-session"' in page


def test_finished_session_page_shows_the_result_without_a_live_view(recruiter, session):
    _talk(session)
    services.session_complete(session_id=session.pk, reason="All questions answered.")
    page = recruiter.get(reverse("admin:interviews_interviewsession_change", args=[session.pk])).content.decode()
    assert 'id="analysis-status"' in page and "Answered questions: 1" in page
    assert 'id="live-view"' not in page and 'id="end-session"' not in page and "#access_token=" not in page


def test_exports_give_the_whole_transcript(recruiter, session):
    _talk(session)
    as_json = recruiter.get(reverse("admin:interviews_interviewsession_transcript_json", args=[session.pk]))
    assert "attachment" in as_json["Content-Disposition"]
    turns = json.loads(as_json.content)["turns"]
    assert [(t["speaker"], t["text"], t["interrupted"]) for t in turns] == [
        ("interviewer", "Tell me about", True), ("candidate", "I write Python.", False)]
    assert turns[0]["plannedText"] == "Tell me about yourself."
    text = recruiter.get(reverse("admin:interviews_interviewsession_transcript_text", args=[session.pk]))
    body = text.content.decode()
    assert text["Content-Type"].startswith("text/plain")
    assert "Interviewer [interrupted]: Tell me about" in body and "Candidate: I write Python." in body


def test_ending_a_session_nobody_holds_completes_it(recruiter, session):
    response = recruiter.post(reverse("admin:interviews_interviewsession_end", args=[session.pk]),
                              {"reason": "Wrong candidate"})
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETED
    assert session.end_reason == "Ended by the recruiter: Wrong candidate"


def test_ending_a_live_session_asks_its_holder(recruiter, session, monkeypatch):
    asked = []

    def holder(session_id, reason):  # what realtime/control.py does through the channel layer
        asked.append((session_id, reason))
        services.session_complete(session_id=session_id, reason=reason)
        return True

    monkeypatch.setattr(control, "_ender", holder)
    services.session_connect(session_id=session.pk)
    recruiter.post(reverse("admin:interviews_interviewsession_end", args=[session.pk]), {"reason": ""})
    assert asked == [(str(session.pk), "Ended by the recruiter.")]
    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETED


def test_ending_needs_the_change_permission_and_a_post(viewer, session):
    url = reverse("admin:interviews_interviewsession_end", args=[session.pk])
    assert viewer.post(url).status_code == 403
    assert viewer.get(url).status_code == 405
    session.refresh_from_db()
    assert session.status == SessionStatus.SCHEDULED
    page = viewer.get(reverse("admin:interviews_interviewsession_change", args=[session.pk])).content.decode()
    assert 'id="end-session"' not in page and "I write" not in page


def test_creating_a_session_snapshots_the_questions_and_shows_the_link(recruiter, db):
    interview = Interview.objects.create(title="Data engineer")
    Question.objects.create(interview=interview, position=0, stage="intro", text="Who are you?")
    candidate = str(uuid.uuid4())
    response = recruiter.post(reverse("admin:interviews_interviewsession_add"),
                              {"interview": interview.pk, "candidate": candidate})
    session = InterviewSession.objects.get(owner_id=candidate)
    assert response.status_code == 302 and response["Location"].endswith(f"/{session.pk}/change/")
    assert session.questions == [{"text": "Who are you?", "stage": "intro"}]
    Question.objects.filter(interview=interview).update(text="Edited later.")
    page = recruiter.get(response["Location"]).content.decode()
    assert f"/interview/{session.pk}/#access_token=" in page and "Session created" in page
    session.refresh_from_db()
    assert session.questions[0]["text"] == "Who are you?"


def test_creating_a_session_of_an_empty_interview_says_why(recruiter, db):
    interview = Interview.objects.create(title="Empty")
    response = recruiter.post(reverse("admin:interviews_interviewsession_add"),
                              {"interview": interview.pk, "candidate": str(uuid.uuid4())})
    assert response.status_code == 200 and "at least one question" in response.content.decode()
    assert not InterviewSession.objects.exists()


def test_interview_questions_are_edited_inline(recruiter, db):
    response = recruiter.post(reverse("admin:interviews_interview_add"), {
        "title": "Platform engineer", "role": "", "description": "", "skills": "",
        "questions-TOTAL_FORMS": "2", "questions-INITIAL_FORMS": "0",
        "questions-MIN_NUM_FORMS": "0", "questions-MAX_NUM_FORMS": "1000",
        "questions-0-position": "1", "questions-0-stage": "technical", "questions-0-text": "Design a queue.",
        "questions-1-position": "0", "questions-1-stage": "intro", "questions-1-text": "Hello?",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    interview = Interview.objects.get(title="Platform engineer")
    assert [(q.position, q.stage, q.text) for q in interview.questions.all()] == [
        (0, "intro", "Hello?"), (1, "technical", "Design a queue.")]


@pytest.mark.parametrize("name,args", [
    (LIST, []),
    ("admin:interviews_interviewsession_live_rows", []),
    ("admin:interviews_interviewsession_change", ["S"]),
    ("admin:interviews_interviewsession_transcript_json", ["S"]),
    ("admin:interviews_interviewsession_transcript_text", ["S"]),
    ("admin:interviews_interviewsession_add", []),
])
def test_non_staff_are_refused_everywhere(outsider, session, name, args):
    url = reverse(name, args=[session.pk if a == "S" else a for a in args])
    response = outsider.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert outsider.post(reverse("admin:interviews_interviewsession_end", args=[session.pk])).status_code == 302
    session.refresh_from_db()
    assert session.status == SessionStatus.SCHEDULED


def test_staff_without_the_view_permission_are_refused(client, session):
    client.force_login(_user("no-perms", staff=True))
    assert client.get(reverse(LIST)).status_code == 403
    assert client.get(reverse("admin:interviews_interviewsession_live_rows")).status_code == 403
    assert client.get(reverse("admin:interviews_interviewsession_transcript_json", args=[session.pk])).status_code == 403


def test_the_list_action_ends_the_selected_sessions(recruiter, session):
    other = InterviewSession.objects.get(pk=make_session().session_id)
    response = recruiter.post(reverse(LIST), {"action": "end_sessions", "_selected_action": [session.pk, other.pk]})
    assert response.status_code == 302
    assert set(InterviewSession.objects.values_list("status", flat=True)) == {SessionStatus.COMPLETED}


def test_the_list_action_is_not_offered_without_the_change_permission(viewer, session):
    response = viewer.post(reverse(LIST), {"action": "end_sessions", "_selected_action": [session.pk]})
    assert response.status_code in (200, 302)
    session.refresh_from_db()
    assert session.status == SessionStatus.SCHEDULED
