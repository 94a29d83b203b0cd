"""The OpenAI interviewer and evaluator, through the real SDK, against the strict local fake."""

from __future__ import annotations

import time
import traceback

import openai
import pytest

from realtime.providers import prompts
from realtime.providers.base import FOLLOW_UP, ConversationLine, EvaluationRequest, InterviewerRequest
from realtime.providers.openai_chat import OpenAIEvaluator, OpenAIInterviewer, make_client
from tests.fakes.openai_http import (  # noqa: F401 (openai_http_fake is a fixture)
    DropMidStream,
    FollowUp,
    Hang,
    HttpStatus,
    Json,
    MalformedEvent,
    StreamError,
    Text,
    openai_http_fake,
)

MODEL = "gpt-4.1-mini"
QUESTIONS = ("Tell me about yourself.", "Describe a hard bug you fixed.", "Why do you want this role?")


def interviewer_request(kind="next_question", index=1, conversation=(), follow_up=False) -> InterviewerRequest:
    return InterviewerRequest(kind=kind, questions=QUESTIONS, question_index=index, conversation=conversation,
                              interview_title="Backend engineer", role="Engineer", skills=("Python", "SQL"),
                              follow_up_allowed=follow_up)  # fmt: skip


@pytest.fixture
async def client(openai_http_fake):
    client = make_client(api_key=openai_http_fake.api_key, base_url=openai_http_fake.base_url, timeout_s=2.0)
    yield client
    await client.close()


@pytest.fixture
def interviewer(client):
    return OpenAIInterviewer(client, model=MODEL)


async def collect(pieces) -> list:
    return [piece async for piece in pieces]


def full_text(exc: BaseException) -> str:
    """Everything a log line could show about an exception, causes included."""
    return "".join(traceback.format_exception(exc)) + repr(exc)


# --- the interviewer's words --------------------------------------------------------------


async def test_words_are_streamed_as_they_are_generated(openai_http_fake, interviewer):
    line = "Thanks for walking me through that. Now, what made that bug so hard to find?"
    openai_http_fake.script_chat(Text(line))
    openai_http_fake.chunk_delay_s = 0.03
    request = interviewer_request()
    started = time.monotonic()
    pieces, first_at = [], None
    async for piece in interviewer.respond(request):
        first_at = first_at or time.monotonic() - started
        pieces.append(piece)
    total = time.monotonic() - started

    assert "".join(pieces) == line
    assert len(pieces) == len(line.split())
    assert first_at < total / 2  # the runtime can start speaking before the model is done
    assert request.usage["output_tokens"] == len(line.split()) and request.usage["input_tokens"] > 50
    body = openai_http_fake.chat_bodies()[-1]
    assert body["model"] == MODEL and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert "tools" not in body and "tool_choice" not in body


async def test_by_default_the_fake_asks_the_question_the_runtime_chose(interviewer):
    pieces = await collect(interviewer.respond(interviewer_request(index=1)))
    assert "".join(pieces) == "Thank you. " + QUESTIONS[1]

    closing = "".join(await collect(interviewer.respond(interviewer_request(kind="closing", index=2))))
    assert "Goodbye" in closing


async def test_a_follow_up_comes_first_then_its_question(openai_http_fake, interviewer):
    openai_http_fake.script_chat(FollowUp("Which tool finally showed you the race?"))
    pieces = await collect(interviewer.respond(interviewer_request(follow_up=True)))

    assert pieces == [FOLLOW_UP, "Which tool finally showed you the race?"]
    body = openai_http_fake.chat_bodies()[-1]
    assert body["tool_choice"] == "auto"
    assert body["tools"] == [{"type": "function", "function": {
        "name": prompts.FOLLOW_UP_TOOL_NAME, "description": prompts.FOLLOW_UP_TOOL_DESCRIPTION,
        "parameters": prompts.FOLLOW_UP_PARAMETERS, "strict": True}}]  # fmt: skip


async def test_offered_a_follow_up_the_model_may_still_move_on(interviewer):
    pieces = await collect(interviewer.respond(interviewer_request(index=2, follow_up=True)))
    assert FOLLOW_UP not in pieces and "".join(pieces) == "Thank you. " + QUESTIONS[2]


@pytest.mark.parametrize("reply, follow_up", [
    (FollowUp("unused", raw_arguments='{"question": "Which one'), True),  # arguments cut off
    (FollowUp("unused", raw_arguments='{"question": ""}'), True),  # no question
    (FollowUp("Which one?", tool_name="search_web"), True),  # a tool never offered
    (FollowUp("Which one?"), False),  # a follow-up when none was allowed
])  # fmt: skip
async def test_a_bad_follow_up_call_raises(openai_http_fake, interviewer, reply, follow_up):
    openai_http_fake.script_chat(reply)
    with pytest.raises(ValueError):
        await collect(interviewer.respond(interviewer_request(follow_up=follow_up)))


async def test_an_empty_reply_raises_so_the_runtime_speaks_its_fallback(openai_http_fake, interviewer):
    openai_http_fake.script_chat(Text(""))
    with pytest.raises(ValueError):
        await collect(interviewer.respond(interviewer_request()))


async def test_empty_conversation_lines_never_reach_the_model(openai_http_fake, interviewer):
    conversation = (
        ConversationLine("interviewer", "Tell me about yourself."),
        ConversationLine("candidate", ""),  # a turn that was silence
        ConversationLine("candidate", "   "),
        ConversationLine("interviewer", "Take your time."),
        ConversationLine("candidate", "I build data pipelines."),
    )
    await collect(interviewer.respond(interviewer_request(conversation=conversation)))

    messages = openai_http_fake.chat_bodies()[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "assistant", "assistant", "user"]
    assert all(m["content"].strip() for m in messages)


async def test_closing_the_reply_early_closes_the_http_stream(openai_http_fake, interviewer):
    openai_http_fake.script_chat(Text(" ".join(["word"] * 200)))
    openai_http_fake.chunk_delay_s = 0.02
    replies = interviewer.respond(interviewer_request())
    assert await replies.__anext__()
    await replies.aclose()  # what the runtime does on barge-in

    assert await openai_http_fake.wait_idle(timeout=2.0)


# --- failures: raise quickly, never leak the key ------------------------------------------------


@pytest.mark.parametrize("failure, error", [
    (HttpStatus(429), openai.RateLimitError),
    (HttpStatus(500), openai.InternalServerError),
    (DropMidStream(after_chunks=3), openai.APIConnectionError),
    (MalformedEvent(after_chunks=2), ValueError),
    (StreamError(after_chunks=2), openai.APIError),
])  # fmt: skip
async def test_failures_raise_quickly(openai_http_fake, interviewer, failure, error):
    openai_http_fake.script_chat(failure)
    started = time.monotonic()
    with pytest.raises(error) as raised:
        await collect(interviewer.respond(interviewer_request()))
    assert time.monotonic() - started < 1.0
    assert openai_http_fake.api_key not in full_text(raised.value)


@pytest.mark.parametrize("hang", [Hang(), Hang(after_chunks=2)])
async def test_a_hung_server_is_bounded_by_the_client_timeout(openai_http_fake, hang):
    client = make_client(api_key=openai_http_fake.api_key, base_url=openai_http_fake.base_url, timeout_s=0.5)
    openai_http_fake.script_chat(hang)
    started = time.monotonic()
    try:
        with pytest.raises(openai.APITimeoutError):
            await collect(OpenAIInterviewer(client, model=MODEL).respond(interviewer_request()))
        assert time.monotonic() - started < 2.0
    finally:
        await client.close()
    assert await openai_http_fake.wait_idle()


async def test_a_wrong_key_is_refused_and_never_shown(openai_http_fake):
    wrong_key = "sk-proj-wrong-but-secret-0123456789abcdef"
    client = make_client(api_key=wrong_key, base_url=openai_http_fake.base_url, timeout_s=2.0)
    try:
        with pytest.raises(openai.AuthenticationError) as raised:
            await collect(OpenAIInterviewer(client, model=MODEL).respond(interviewer_request()))
    finally:
        await client.close()
    assert wrong_key not in full_text(raised.value)


# --- drafted questions and the evaluation ------------------------------------------------------


async def test_drafted_questions_cover_the_skills(openai_http_fake, interviewer):
    skills = ("Python", "PostgreSQL", "Kubernetes")
    questions = await interviewer.draft_questions(title="Platform engineer", role="SRE", skills=skills, count=5)

    assert [q["stage"] for q in questions] == ["technical"] * 3
    assert all(skill in q["text"] for skill, q in zip(skills, questions))
    body = openai_http_fake.chat_bodies()[-1]
    assert "stream" not in body
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "interview_questions", "schema": prompts.DRAFT_SCHEMA, "strict": True}}  # fmt: skip

    short = await interviewer.draft_questions(title="Platform engineer", role="", skills=skills, count=2)
    assert len(short) == 2


async def test_drafting_failures_raise(openai_http_fake, interviewer):
    openai_http_fake.script_chat(Json({"questions": []}), HttpStatus(429))
    with pytest.raises(ValueError):
        await interviewer.draft_questions(title="T", role="", skills=("Go",), count=3)
    with pytest.raises(openai.RateLimitError):
        await interviewer.draft_questions(title="T", role="", skills=("Go",), count=3)


def evaluation_request() -> EvaluationRequest:
    return EvaluationRequest(
        title="Backend engineer", role="Engineer", skills=("Python",),
        questions=({"question": QUESTIONS[0], "answer": "I have built APIs in Python for six years."},
                   {"question": QUESTIONS[1], "answer": ""},
                   {"question": QUESTIONS[2], "answer": "I like the product."}),
        conversation=(),
    )  # fmt: skip


async def test_the_evaluation_scores_every_question(openai_http_fake, client):
    result = await OpenAIEvaluator(client, model=MODEL).evaluate(evaluation_request())

    assert [q["index"] for q in result["questions"]] == [0, 1, 2]
    assert [q["score"] for q in result["questions"]] == [3, 1, 3]
    assert result["recommendation"] in prompts.RECOMMENDATIONS and result["summary"]
    assert result["usage"]["input_tokens"] > 0 and result["usage"]["output_tokens"] > 0
    assert openai_http_fake.chat_bodies()[-1]["response_format"]["json_schema"]["schema"] == prompts.EVALUATION_SCHEMA


@pytest.mark.parametrize("reply", [
    Json({"questions": [], "summary": "Fine.", "recommendation": "perhaps"}),  # unknown recommendation
    Json({"questions": [{"index": 7, "score": 3, "strengths": [], "concerns": [], "evidence": []}],
          "summary": "Fine.", "recommendation": "yes"}),  # a question that does not exist
    Text('{"questions": [{"index": 0,'),  # not JSON at all
    Text('{"questions": []}', finish_reason="length"),  # cut short
])  # fmt: skip
async def test_a_malformed_evaluation_raises(openai_http_fake, client, reply):
    openai_http_fake.script_chat(reply)
    with pytest.raises(ValueError):
        await OpenAIEvaluator(client, model=MODEL).evaluate(evaluation_request())
