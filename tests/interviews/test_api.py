"""The REST API: every endpoint, every refusal, one error shape, and a valid OpenAPI schema."""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from interviews import control, services
from interviews.models import Interview, InterviewSession, Question, SessionStatus, Speaker
from realtime.auth import demo_token_issue
from tests.factories import make_session

ALL_PERMS = ("view_interviewsession", "add_interviewsession", "change_interviewsession")


def _staff(username="service", perms=ALL_PERMS, staff=True):
    user = get_user_model().objects.create_user(username, is_staff=staff)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def _token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def _candidate_client(user_id: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {demo_token_issue(user_id=user_id)}")
    return client


@pytest.fixture
def staff(db):
    return _token_client(_staff())


@pytest.fixture
def info(db):
    return make_session()


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    return body["error"]


# --- create -------------------------------------------------------------------------------


def test_staff_create_a_session_and_get_its_page(staff, db):
    interview = Interview.objects.create(title="API interview")
    Question.objects.create(interview=interview, stage="intro", text="Hello?")
    candidate = str(uuid.uuid4())
    response = staff.post("/api/v1/sessions/", {"interview": interview.pk, "candidate": candidate}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    session = InterviewSession.objects.get(pk=body["id"])
    assert str(session.owner_id) == candidate and session.questions == [{"text": "Hello?", "stage": "intro"}]
    assert body["pageUrl"] == f"http://testserver/interview/{session.pk}/"
    assert body["candidateUrl"].startswith(body["pageUrl"] + "#access_token=")
    assert "&refresh_token=" in body["candidateUrl"]
    assert body["status"] == "scheduled" and body["questionCount"] == 1


def test_create_refuses_bad_input_in_the_error_shape(staff, db):
    error = _error(staff.post("/api/v1/sessions/", {"candidate": "nope"}, format="json"), 400, "invalid")
    assert set(error["details"]) == {"interview", "candidate"}
    _error(staff.post("/api/v1/sessions/", "{not json", content_type="application/json"), 400, "parse_error")
    empty = Interview.objects.create(title="Empty")
    _error(staff.post("/api/v1/sessions/", {"interview": empty.pk, "candidate": str(uuid.uuid4())}, format="json"),
           400, "interview_empty")
    assert not InterviewSession.objects.exists()


def test_create_needs_the_add_permission(db, info):
    viewer = _token_client(_staff("viewer", perms=("view_interviewsession",)))
    payload = {"interview": Interview.objects.first().pk, "candidate": str(uuid.uuid4())}
    _error(viewer.post("/api/v1/sessions/", payload, format="json"), 403, "permission_denied")
    _error(_candidate_client(info.user_id).post("/api/v1/sessions/", payload, format="json"), 403, "permission_denied")
    assert InterviewSession.objects.count() == 1


# --- list and read ------------------------------------------------------------------------


def test_staff_list_sessions_a_page_at_a_time_with_filters(staff, db):
    ids = [make_session().session_id for _ in range(3)]
    services.session_connect(session_id=ids[0])
    page = staff.get("/api/v1/sessions/", {"pageSize": 2}).json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"] and page["previous"] is None
    rest = staff.get(page["next"]).json()
    assert {s["id"] for s in page["results"] + rest["results"]} == set(ids)
    live = staff.get("/api/v1/sessions/", {"status": "live"}).json()["results"]
    assert [(s["id"], s["status"]) for s in live] == [(ids[0], "live")]
    _error(staff.get("/api/v1/sessions/", {"status": "running"}), 400, "invalid")
    _error(staff.get("/api/v1/sessions/", {"candidate": "x"}), 400, "invalid")
    _error(staff.get("/api/v1/sessions/", {"page": 9}), 404, "not_found")


def test_staff_read_a_session_its_transcript_and_result(staff, info):
    services.session_connect(session_id=info.session_id)
    services.turn_record(session_id=info.session_id, speaker=Speaker.INTERVIEWER, text="Tell me",
                         planned_text="Tell me about yourself.", interrupted=True, question_index=0)
    services.turn_record(session_id=info.session_id, speaker=Speaker.CANDIDATE, text="I build APIs.",
                         question_index=0, advance_to=1)
    session = staff.get(f"/api/v1/sessions/{info.session_id}/").json()
    assert session["status"] == "live" and session["progress"] == "question 2 of 2"
    transcript = staff.get(f"/api/v1/sessions/{info.session_id}/transcript/").json()
    assert [(t["speaker"], t["text"], t["interrupted"], t["plannedText"]) for t in transcript["turns"]] == [
        ("interviewer", "Tell me", True, "Tell me about yourself."), ("candidate", "I build APIs.", False, "")]
    _error(staff.get(f"/api/v1/sessions/{info.session_id}/result/"), 409, "result_not_ready")
    services.session_complete(session_id=info.session_id, reason="All questions answered.")
    result = staff.get(f"/api/v1/sessions/{info.session_id}/result/").json()
    assert result["answeredQuestions"] == 1 and result["analysisStatus"] == "not_requested"


def test_unknown_sessions_and_versions_are_404(staff, db):
    _error(staff.get(f"/api/v1/sessions/{uuid.uuid4()}/"), 404, "not_found")
    _error(staff.get(f"/api/v1/sessions/{uuid.uuid4()}/transcript/"), 404, "not_found")
    _error(staff.get("/api/v2/sessions/"), 404, "not_found")


# --- end ----------------------------------------------------------------------------------


def test_staff_end_a_session_once(staff, info):
    response = staff.post(f"/api/v1/sessions/{info.session_id}/end/", {"reason": "Position filled"}, format="json")
    assert response.json() == {"id": info.session_id, "status": "completed", "outcome": "ended"}
    assert InterviewSession.objects.get(pk=info.session_id).end_reason == "Ended by the recruiter: Position filled"
    _error(staff.post(f"/api/v1/sessions/{info.session_id}/end/"), 409, "session_finished")


def test_ending_a_live_session_goes_to_its_holder(staff, info, monkeypatch):
    monkeypatch.setattr(control, "_ender", lambda session_id, reason: services.session_complete(
        session_id=session_id, reason=reason) is not None)
    services.session_connect(session_id=info.session_id)
    body = staff.post(f"/api/v1/sessions/{info.session_id}/end/").json()
    assert body["outcome"] == "ended-live" and body["status"] == "completed"


def test_ending_needs_the_change_permission(db, info):
    viewer = _token_client(_staff("viewer", perms=("view_interviewsession",)))
    _error(viewer.post(f"/api/v1/sessions/{info.session_id}/end/"), 403, "permission_denied")
    _error(_candidate_client(info.user_id).post(f"/api/v1/sessions/{info.session_id}/end/"), 403, "permission_denied")
    assert InterviewSession.objects.get(pk=info.session_id).status == SessionStatus.SCHEDULED


# --- who may ------------------------------------------------------------------------------


def test_a_candidate_reads_only_their_own_session(info):
    other = make_session()
    mine = _candidate_client(info.user_id)
    assert mine.get(f"/api/v1/sessions/{info.session_id}/").json()["id"] == info.session_id
    assert mine.get(f"/api/v1/sessions/{info.session_id}/transcript/").status_code == 200
    assert [s["id"] for s in mine.get("/api/v1/sessions/").json()["results"]] == [info.session_id]
    for path in ("", "transcript/", "result/"):
        _error(mine.get(f"/api/v1/sessions/{other.session_id}/{path}"), 404, "not_found")


@pytest.mark.parametrize("header,code", [
    (None, "not_authenticated"),
    ("Token not-a-token", "authentication_failed"),
    ("Bearer not-a-jwt", "token_malformed"),
    ("Bearer", "token_malformed"),
])
def test_missing_or_bad_credentials_are_401(info, header, code):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/sessions/")
    _error(response, 401, code)
    assert response["WWW-Authenticate"]


def test_an_expired_candidate_token_is_401(info):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {demo_token_issue(user_id=info.user_id, ttl_seconds=-60)}")
    _error(client.get(f"/api/v1/sessions/{info.session_id}/"), 401, "token_expired")


def test_non_staff_users_are_refused_even_with_permissions(info):
    user = _staff("not-staff", staff=False)
    _error(_token_client(user).get("/api/v1/sessions/"), 403, "permission_denied")


def test_session_auth_works_and_needs_csrf_for_writes(info):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(_staff("recruiter"))
    assert client.get(f"/api/v1/sessions/{info.session_id}/").status_code == 200
    _error(client.post(f"/api/v1/sessions/{info.session_id}/end/"), 403, "permission_denied")
    assert InterviewSession.objects.get(pk=info.session_id).status == SessionStatus.SCHEDULED


# --- the schema -----------------------------------------------------------------------------


def test_the_openapi_schema_is_served_and_valid(db):
    from openapi_spec_validator import validate

    response = APIClient().get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = json.loads(response.content)
    validate(schema)
    paths = schema["paths"]
    assert {"/api/v1/sessions/", "/api/v1/sessions/{session_id}/", "/api/v1/sessions/{session_id}/transcript/",
            "/api/v1/sessions/{session_id}/result/", "/api/v1/sessions/{session_id}/end/"} <= set(paths)
    assert {"tokenAuth", "candidateToken", "cookieAuth"} <= set(schema["components"]["securitySchemes"])
    assert "Error" in schema["components"]["schemas"]
