"""Sessions and questions from Supabase: a real daphne against real PostgREST behind nginx.

The worker is configured as against Supabase (SUPABASE_URL, the anon key, the service
key); the stack (tests/supabase/stack.py) is PostgreSQL with supabase/schema.sql,
PostgREST 12 and a JWKS, behind nginx as Supabase's gateway.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from websockets.asyncio.client import connect

from tests.e2e.test_daphne_voice_loop import Recorder
from tests.factories import chunks, silence, speech
from tests.servers import DaphneServer
from tests.supabase.stack import Signer

pytestmark = pytest.mark.slow

DEADLINE_S = 2.0  # SUPABASE_DEADLINE_SECONDS in stack.server_env()
QUESTIONS = [  # stored out of order: the interview is asked by position
    (2, "technical", "How would you find a memory leak in a long running service?"),
    (0, "introduction", "Please tell me about the last system you built."),
    (1, "experience", "Which design decision in it would you change today?"),
]


@pytest.fixture(scope="module")
def rogue(stack):
    """A key the auth server publishes but PostgREST does not know yet (mid-rotation)."""
    signer = Signer()
    stack.jwks.set_keys(stack.signer.jwk, signer.jwk)
    return signer


@pytest.fixture(scope="module")
def server(stack, rogue):
    daphne = DaphneServer(env=stack.server_env())
    daphne.migrate()
    daphne.start()
    try:
        yield daphne
    finally:
        daphne.stop()


@pytest.fixture
def candidate(stack):
    """A user with a session of a three-question interview, in Supabase only."""
    user = stack.user()
    interview = stack.interview("Backend engineer", QUESTIONS)
    return user, stack.session(interview, user)


async def join(server, token: str, session_id: str):
    ws = await connect(server.ws_url, origin=server.base_url, max_size=2**20)
    await ws.send(json.dumps({"type": "client-auth", "payload": {"token": token, "sessionId": session_id}}))
    return ws


async def refused(server, token: str, session_id: str) -> tuple[dict, int, float]:
    started = time.monotonic()
    ws = await join(server, token, session_id)
    try:
        message = json.loads(await asyncio.wait_for(ws.recv(), 15))
        await asyncio.wait_for(ws.wait_closed(), 5)
    finally:
        await ws.close()
    assert message["type"] == "server-auth-failure", message
    return message["payload"], ws.close_code, time.monotonic() - started


def local_session_exists(server, session_id: str) -> bool:
    return server.shell("from interviews.models import InterviewSession as S; "
                        f"print(S.objects.filter(pk='{session_id}').exists())") == "True"


async def test_the_owner_is_interviewed_on_the_supabase_questions_in_order(stack, server, candidate):
    user, session_id = candidate
    ws = await join(server, stack.user_token(user), session_id)
    try:
        inbox = Recorder(ws)
        _, auth = await inbox.wait("server-auth-success", timeout=15)
        assert auth["sessionId"] == session_id and auth["questionCount"] == 3
        rate = auth["audio"]["input"]["sampleRate"]

        # The first question by position is the one spoken first.
        _, opening = await inbox.wait("server-ai-speech-end", timeout=40)
        spoken = " ".join(m["text"] for _, m in inbox.of("server-ai-text", responseId=opening["responseId"]))
        assert "last system you built" in spoken

        # The candidate answers aloud; the interview moves on to the second question by position.
        answer = speech("my name is john and i like python programming", rate)
        started = time.monotonic()
        for index, chunk in enumerate(chunks(answer + silence(1500, rate), sample_rate=rate)):
            await ws.send(json.dumps({"type": "client-audio-chunk",
                                      "payload": {"data": base64.b64encode(chunk).decode()}}))
            await asyncio.sleep(max(0.0, started + (index + 1) * 0.04 - time.monotonic()))
        await inbox.wait("server-final-transcript", timeout=40)
        await inbox.wait("server-session-state", timeout=20, questionIndex=1)
        deadline = time.monotonic() + 30
        while "design decision" not in " ".join(m["text"] for _, m in inbox.of("server-ai-text")):
            assert time.monotonic() < deadline, "the second question was not asked"
            await asyncio.sleep(0.05)
        inbox.task.cancel()
    finally:
        await ws.close()

    # Mirrored locally with the same session id, owner and question snapshot (admin, resume, results).
    mirrored = json.loads(server.shell(
        "import json; from interviews.models import InterviewSession as S; "
        f"s = S.objects.select_related('interview').get(pk='{session_id}'); "
        "print(json.dumps({'owner': str(s.owner_id), 'questions': [q['text'] for q in s.questions], "
        "'external': str(s.interview.external_id), 'admin': list(s.interview.questions.values_list('text', flat=True))}))"))
    in_order = [text for _, _, text in sorted(QUESTIONS)]
    assert mirrored["owner"] == user
    assert mirrored["questions"] == in_order == mirrored["admin"]
    # Left mid-interview: Supabase is told, in the background.
    await _eventually(lambda: stack.sql("select status from public.interview_sessions where id = %s",
                                        session_id)[0][0] == "disconnected")


async def test_another_users_token_is_refused(stack, server, candidate):
    _, session_id = candidate
    stranger = stack.user()
    payload, code, _ = await refused(server, stack.user_token(stranger), session_id)
    # RLS hides the row: to the stranger the session does not exist.
    assert payload["code"] == "session_not_found" and code == 4004
    assert not local_session_exists(server, session_id)


async def test_a_token_postgrest_rejects_is_refused(stack, server, candidate, rogue):
    user, session_id = candidate
    # The worker accepts it (the auth server publishes the key); PostgREST does not know the key yet.
    payload, code, _ = await refused(server, stack.user_token(user, signer=rogue), session_id)
    assert payload["code"] == "token_rejected" and code == 4001
    assert "sign in again" in payload["error"]
    assert not local_session_exists(server, session_id)


def test_row_level_security_hides_other_users_rows(stack, candidate):
    user, session_id = candidate
    other_user = stack.user()
    other_session = stack.session(stack.interview("Other interview", [(0, "intro", "A question for someone else.")]),
                                  other_user)
    token = stack.user_token(user)
    sessions = stack.rest("interview_sessions?select=id", bearer=token).json()
    assert {row["id"] for row in sessions} == {session_id}
    questions = stack.rest("questions?select=text", bearer=token).json()
    assert sorted(q["text"] for q in questions) == sorted(text for _, _, text in QUESTIONS)
    assert stack.rest(f"interview_sessions?id=eq.{other_session}", bearer=token).json() == []
    # Results are for the platform's pages (service key), never the candidate's own reads.
    assert stack.rest("interview_results", bearer=token).status_code in (401, 403)
    assert stack.rest(f"interview_sessions?id=eq.{other_session}", bearer=stack.service_key).json()


async def test_postgrest_down_gives_a_clear_failure_within_the_deadline(stack, server, candidate):
    user, session_id = candidate
    stack.stop_postgrest()
    try:
        payload, code, elapsed = await refused(server, stack.user_token(user), session_id)
    finally:
        stack.start_postgrest()
    assert payload["code"] == "server_unavailable" and code == 4503
    assert "again" in payload["error"]
    assert elapsed < DEADLINE_S + 1.5
    assert not local_session_exists(server, session_id)  # nothing half-made
    # Back up: the same session joins.
    ws = await join(server, stack.user_token(user), session_id)
    try:
        assert json.loads(await asyncio.wait_for(ws.recv(), 15))["type"] == "server-auth-success"
    finally:
        await ws.close()


async def test_postgrest_hanging_gives_a_clear_failure_within_the_deadline(stack, server, candidate):
    user, session_id = candidate
    stack.pause_postgrest()
    try:
        payload, code, elapsed = await refused(server, stack.user_token(user), session_id)
    finally:
        stack.resume_postgrest()
    assert payload["code"] == "server_unavailable" and code == 4503
    assert DEADLINE_S - 0.2 < elapsed < DEADLINE_S + 1.5
    assert not local_session_exists(server, session_id)


async def test_results_appear_in_supabase_after_the_session_ends(stack, server, candidate):
    user, session_id = candidate
    ws = await join(server, stack.user_token(user), session_id)
    try:
        inbox = Recorder(ws)
        await inbox.wait("server-auth-success", timeout=15)
        await _eventually(lambda: stack.sql("select status from public.interview_sessions where id = %s",
                                            session_id)[0][0] == "live")
        await ws.send(json.dumps({"type": "client-text-message", "payload": {"text": "I built a billing system."}}))
        await inbox.wait("server-session-state", timeout=20, questionIndex=1)
        await ws.send(json.dumps({"type": "client-end", "payload": {}}))
        await inbox.wait("server-session-ended", timeout=20)
        inbox.task.cancel()
    finally:
        await ws.close()
    await _eventually(lambda: stack.sql("select status from public.interview_sessions where id = %s",
                                        session_id)[0][0] == "completed")
    status, ended_at, count = stack.sql("select status, ended_at, question_count from public.interview_sessions "
                                        "where id = %s", session_id)[0]
    assert ended_at is not None and count == 3
    summary, answered, details = stack.sql("select summary, answered_questions, details from public.interview_results "
                                           "where session_id = %s", session_id)[0]
    assert summary and answered == 1 and details
    # Ended means ended, for Supabase as for the local models.
    payload, code, _ = await refused(server, stack.user_token(user), session_id)
    assert payload["code"] == "session_finished" and code == 4005


async def _eventually(check, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not written back in time"
        await asyncio.sleep(0.1)
