"""The interviewer as a language model: follow-ups, questions drafted from skills, and the
analysis of a finished session, through the socket, the real OpenAI SDK and a strict local
stand-in for OpenAI's API (tests/fakes/openai_http.py)."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from interviews.models import AnalysisStatus, InterviewSession, SessionResult, Turn
from realtime import consumers
from realtime.providers.registry import build_providers
from tests.factories import QUESTIONS
from tests.fakes.openai_http import (  # noqa: F401 (openai_http_fake is a fixture)
    DropMidStream, FollowUp, Hang, HttpStatus, Json, MalformedEvent, openai_http_fake,
)
from tests.realtime.polling import until
from tests.realtime.wsclient import Client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def openai_interviewer(openai_http_fake, monkeypatch, settings):
    """The local recogniser and voice, with OpenAI's chat API (the fake) as the interviewer."""
    settings.REALTIME = {**settings.REALTIME, "EVALUATION_ATTEMPTS": 2}
    monkeypatch.setattr("realtime.analysis.RETRY_BASE_SECONDS", 0.05)
    env = {"OPENAI_API_KEY": openai_http_fake.api_key, "OPENAI_BASE_URL": openai_http_fake.base_url}
    providers = build_providers({**settings.REALTIME, "LLM": "openai", "STT": "", "TTS": ""}, env)
    monkeypatch.setattr(consumers, "get_providers", lambda: providers)
    return openai_http_fake


async def heard(client, **match):
    """Until the interviewer's words have been played out (speech runs a little ahead of playback)."""
    await client.expect("server-ai-speech-end", timeout=20, **match)
    await client.read_for(0.5)


async def answer(client, text):
    await client.send("client-text-message", text=text)
    return await client.expect("server-final-transcript", transcript=text)


def result_of(info):
    return database_sync_to_async(lambda: SessionResult.objects.filter(session_id=info.session_id).first())


async def stored(session_id):
    return await database_sync_to_async(lambda: list(
        Turn.objects.filter(session_id=session_id).order_by("sequence").values_list("speaker", "text", "question_index")))()


async def test_a_thin_answer_gets_one_follow_up_and_the_interview_then_moves_on(live_session, openai_interviewer):
    fake = openai_interviewer
    client = await Client.open()
    await client.auth(live_session)
    await heard(client)
    assert QUESTIONS[0] in client.captions()

    fake.script_chat(FollowUp("Which part of that project was yours?"))
    await answer(client, "I worked on a project.")
    follow_up = await client.expect("server-ai-text", text="Which part of that project was yours?", timeout=10)
    await heard(client, responseId=follow_up["responseId"])
    # The follow-up was offered as a tool, and the conversation the model saw had no empty line.
    offered = fake.chat_bodies()[-1]
    assert offered["tools"][0]["function"]["name"] == "ask_follow_up"
    assert all(m["content"].strip() for m in offered["messages"])

    await answer(client, "I designed the database schema and wrote the migration tooling.")
    next_question = await client.expect("server-ai-text", text=QUESTIONS[1], timeout=10)
    # One follow-up per question (the default): the next request offered none.
    assert "tools" not in fake.chat_bodies()[-1]
    await heard(client, responseId=next_question["responseId"])
    await client.close()

    turns = await until(lambda: stored(live_session.session_id), lambda t: len(t) == 5, what="five turns")
    assert turns[1:] == [
        ("candidate", "I worked on a project.", 0),
        ("interviewer", "Which part of that project was yours?", 0),
        ("candidate", "I designed the database schema and wrote the migration tooling.", 0),
        ("interviewer", f"Thank you. {QUESTIONS[1]}", 1),
    ]
    session = await database_sync_to_async(InterviewSession.objects.get)(pk=live_session.session_id)
    assert session.current_question == 1


async def test_questions_are_drafted_by_the_model_from_the_interviews_skills(session_factory, openai_interviewer):
    fake = openai_interviewer
    info = await database_sync_to_async(session_factory)(questions=(), skills="Kubernetes, Go", role="SRE")
    fake.script_chat(Json({"questions": [
        {"text": "Walk me through your path into site reliability work.", "stage": "introduction"},
        {"text": "How would you roll out a Kubernetes upgrade without downtime?", "stage": "technical"},
        {"text": "When did Go's concurrency model surprise you?", "stage": "technical"},
    ]}))
    client = await Client.open()
    auth = await client.auth(info)
    assert auth["questionCount"] == 3
    await client.expect("server-ai-text", text="Walk me through your path into site reliability work.", timeout=10)
    await client.close()
    drafting = fake.chat_bodies()[0]
    assert drafting["response_format"]["type"] == "json_schema" and "Kubernetes" in drafting["messages"][-1]["content"]
    session = await database_sync_to_async(InterviewSession.objects.get)(pk=info.session_id)
    assert [q["stage"] for q in session.questions] == ["introduction", "technical", "technical"]


async def test_the_model_analyses_the_finished_session_in_the_background(live_session, openai_interviewer):
    fake = openai_interviewer
    client = await Client.open()
    await client.auth(live_session)
    await heard(client)
    await answer(client, "I build payment systems in Python and Go.")
    await client.expect("server-ai-text", text=QUESTIONS[1], timeout=10)  # the reply took its request
    # The analysis the model returns on the first try is refused by the checker (a score of 9),
    # so it is retried; the candidate's end is not held up by any of it.
    fake.script_chat(Json({"questions": [{"index": 0, "score": 9, "strengths": [], "concerns": [], "evidence": []}],
                           "summary": "x", "recommendation": "yes"}))
    await client.send("client-end", reason="done")
    await client.expect("server-session-ended", timeout=10)

    result = await until(result_of(live_session), lambda r: r is not None and r.analysis_status == AnalysisStatus.DONE,
                         timeout=15, what="the analysis")
    analysis = result.analysis
    assert analysis["recommendation"] in ("strong_yes", "yes", "maybe", "no", "strong_no")
    assert [q["index"] for q in analysis["questions"]] == [0, 1]
    assert all(1 <= q["score"] <= 5 for q in analysis["questions"])
    assert result.analysis_attempts == 2


async def test_an_analysis_that_keeps_failing_is_marked_failed_for_recruiters(live_session, openai_interviewer):
    fake = openai_interviewer
    client = await Client.open()
    await client.auth(live_session)
    await heard(client)
    fake.script_chat(HttpStatus(500), HttpStatus(429))
    await client.send("client-end", reason="done")
    await client.expect("server-session-ended", timeout=10)

    failed = await until(result_of(live_session), lambda r: r is not None and r.analysis_status == AnalysisStatus.FAILED,
                         timeout=15, what="the failed analysis")
    assert failed.analysis_attempts == 2 and failed.analysis_error == "RateLimitError"
    assert fake.api_key not in failed.analysis_error


@pytest.mark.parametrize("failure", [HttpStatus(429), HttpStatus(500), DropMidStream(after_chunks=1),
                                     MalformedEvent(after_chunks=0), Hang()],
                         ids=["rate-limited", "server-error", "dropped", "malformed", "hangs"])
async def test_a_failing_model_gives_the_fallback_line_in_time_and_the_interview_goes_on(
        session_factory, openai_interviewer, settings, caplog, failure):
    fake = openai_interviewer
    live_session = await database_sync_to_async(session_factory)(questions=(*QUESTIONS, "Why this role?"))
    settings.REALTIME = {**settings.REALTIME, "LLM_DEADLINE_SECONDS": 1.5}
    client = await Client.open()
    await client.auth(live_session)
    await heard(client)

    fake.script_chat(failure)
    started = asyncio.get_running_loop().time()
    await answer(client, "I led the migration of our billing system.")
    fallback = await client.expect("server-ai-text", text=QUESTIONS[1], timeout=5)
    assert asyncio.get_running_loop().time() - started < 1.5 + 1.0, "the fallback comes within the deadline"
    await heard(client, responseId=fallback["responseId"])

    # The next answer is answered by the model again: one failure does not end anything.
    await answer(client, "Python, for its libraries.")
    await client.expect("server-ai-text", text="Why this role?", timeout=10)
    await client.close()
    await until(lambda: asyncio.sleep(0, fake.open_streams), lambda streams: streams == 0,
                what="no request to the model left open")
    assert not any(fake.api_key in record.getMessage() for record in caplog.records)
