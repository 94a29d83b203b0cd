"""The Gemini interviewer, drafter and evaluator, through google-genai against the local fake."""

from __future__ import annotations

import time

import pytest
from google.genai import errors as genai_errors

from realtime.providers import prompts
from realtime.providers.base import FOLLOW_UP, ConversationLine, EvaluationRequest, InterviewerRequest
from realtime.providers.gemini_chat import (
    GeminiError,
    GeminiEvaluator,
    GeminiInterviewer,
    conversation_contents,
    make_client,
)
from tests.fakes.gemini_http import FakeGeminiHttp, gemini_http  # noqa: F401 (fixture)

QUESTIONS = ("Tell me about yourself.", "How do you test asynchronous code?")


def _request(**overrides) -> InterviewerRequest:
    values = dict(
        kind="next_question",
        questions=QUESTIONS,
        question_index=1,
        conversation=(
            ConversationLine("interviewer", "Welcome. Tell me about yourself."),
            ConversationLine("candidate", "I build backend services in Python."),
        ),
        interview_title="Backend engineer",
    )
    values.update(overrides)
    return InterviewerRequest(**values)


def _client(fake: FakeGeminiHttp, *, timeout_s: float = 3.0, api_key: str | None = None):
    return make_client(api_key=api_key or fake.api_key, base_url=fake.base_url, timeout_s=timeout_s)


def _error_text(error: BaseException) -> str:
    """Everything an exception (and what caused it) would print."""
    texts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        texts += [str(error), repr(error), repr(getattr(error, "args", ""))]
        error = error.__cause__ or error.__context__
    return "\n".join(texts)


async def _collect(interviewer: GeminiInterviewer, request: InterviewerRequest) -> list:
    return [fragment async for fragment in interviewer.respond(request)]


async def test_streams_the_directions_words(gemini_http):
    request = _request()
    fragments = await _collect(GeminiInterviewer(_client(gemini_http)), request)

    assert len(fragments) > 1  # streamed, not one block
    assert "".join(fragments) == 'Thank you. How do you test asynchronous code?'
    assert request.usage == {"input_tokens": 120, "output_tokens": 30}
    sent = gemini_http.requests[-1]
    assert sent.stream and sent.model == "gemini-2.5-flash"
    assert sent.body["systemInstruction"]["parts"][0]["text"] == prompts.interviewer_instructions(request)
    assert [content["role"] for content in sent.body["contents"]] == ["user", "model", "user"]
    assert "tools" not in sent.body
    assert sent.body["generationConfig"]["thinkingConfig"] == {"thinking_budget": 0}


async def test_a_scripted_reply_streams_in_pieces(gemini_http):
    gemini_http.queue_text("Thanks for that. Let us move on to testing. How do you test asynchronous code?")
    fragments = await _collect(GeminiInterviewer(_client(gemini_http)), _request())
    assert len(fragments) >= 5
    assert "".join(fragments).endswith("How do you test asynchronous code?")


async def test_a_follow_up_call_becomes_follow_up_and_its_question(gemini_http):
    gemini_http.queue_follow_up("Which frameworks did you use?")
    request = _request(follow_up_allowed=True)
    fragments = await _collect(GeminiInterviewer(_client(gemini_http)), request)

    assert fragments == [FOLLOW_UP, "Which frameworks did you use?"]
    declarations = gemini_http.requests[-1].body["tools"][0]["functionDeclarations"]
    assert [declaration["name"] for declaration in declarations] == [prompts.FOLLOW_UP_TOOL_NAME]
    assert request.usage["input_tokens"] == 120


async def test_a_follow_up_that_was_not_offered_is_refused(gemini_http):
    gemini_http.queue_follow_up("Which frameworks did you use?")
    with pytest.raises(GeminiError):
        await _collect(GeminiInterviewer(_client(gemini_http)), _request(follow_up_allowed=False))


def test_conversation_starts_and_ends_with_the_candidate_and_skips_empty_lines():
    request = _request(conversation=(
        ConversationLine("interviewer", "Welcome."),
        ConversationLine("interviewer", "Tell me about yourself."),
        ConversationLine("candidate", "   "),
    ))
    contents = conversation_contents(request)
    assert [content.role for content in contents] == ["user", "model", "user"]
    assert [part.text for part in contents[1].parts] == ["Welcome.", "Tell me about yourself."]
    assert contents[0].parts[0].text.startswith("(The candidate")

    opening = conversation_contents(_request(kind="opening", question_index=0, conversation=()))
    assert [content.role for content in opening] == ["user"]


async def test_draft_questions_asks_for_the_schema_and_checks_the_answer(gemini_http):
    drafted = await GeminiInterviewer(_client(gemini_http)).draft_questions(
        title="Backend engineer", role="Engineer", skills=("Python", "SQL"), count=3)

    assert [item["stage"] for item in drafted] == ["introduction", "technical", "technical"]
    config = gemini_http.requests[-1].body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == prompts.DRAFT_SCHEMA
    assert not gemini_http.requests[-1].stream


async def test_drafted_questions_of_the_wrong_shape_are_refused(gemini_http):
    gemini_http.queue_json({"items": []})
    with pytest.raises(ValueError):
        await GeminiInterviewer(_client(gemini_http)).draft_questions(
            title="Backend engineer", role="", skills=("Python",), count=2)


async def test_evaluate_returns_a_checked_assessment(gemini_http):
    request = EvaluationRequest(
        title="Backend engineer", role="Engineer", skills=("Python",),
        questions=({"question": QUESTIONS[0], "answer": "I build services."},
                   {"question": QUESTIONS[1], "answer": ""}),
        conversation=(),
    )
    result = await GeminiEvaluator(_client(gemini_http)).evaluate(request)

    assert [item["index"] for item in result["questions"]] == [0, 1]
    assert result["recommendation"] == "maybe"
    assert gemini_http.requests[-1].body["generationConfig"]["responseJsonSchema"] == prompts.EVALUATION_SCHEMA


async def test_an_evaluation_out_of_range_is_refused(gemini_http):
    gemini_http.queue_json({"questions": [{"index": 7, "score": 3, "strengths": [], "concerns": [], "evidence": []}],
                            "summary": "x", "recommendation": "yes"})
    request = EvaluationRequest(title="T", role="", skills=(), questions=({"question": "Q?", "answer": "A"},),
                                conversation=())
    with pytest.raises(ValueError):
        await GeminiEvaluator(_client(gemini_http)).evaluate(request)


@pytest.mark.parametrize("failure, expected", [
    ("429", genai_errors.ClientError),
    ("500", genai_errors.ServerError),
    ("drop", Exception),
    ("malformed", Exception),
])
async def test_failures_raise_promptly_without_the_key(gemini_http, failure, expected):
    gemini_http.queue_failure(failure)
    started = time.monotonic()
    with pytest.raises(expected) as caught:
        await _collect(GeminiInterviewer(_client(gemini_http)), _request())
    assert time.monotonic() - started < 2
    assert gemini_http.api_key not in _error_text(caught.value)
    if failure in ("429", "500"):
        assert caught.value.code == int(failure)
    assert len(gemini_http.requests) == 1  # never retried: the runtime's fallback is the retry


async def test_a_dropped_stream_raises_after_the_first_words(gemini_http):
    gemini_http.queue_failure("drop")
    received = []
    with pytest.raises(Exception):
        async for fragment in GeminiInterviewer(_client(gemini_http)).respond(_request()):
            received.append(fragment)
    assert received == ["Thank you. "]


async def test_a_hanging_server_is_bounded_by_the_timeout(gemini_http):
    gemini_http.queue_failure("hang")
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        await _collect(GeminiInterviewer(_client(gemini_http, timeout_s=0.5)), _request())
    assert time.monotonic() - started < 2.5
    assert gemini_http.api_key not in _error_text(caught.value)


async def test_structured_calls_fail_loudly_too(gemini_http):
    gemini_http.queue_failure("500")
    with pytest.raises(genai_errors.ServerError):
        await GeminiInterviewer(_client(gemini_http)).draft_questions(title="T", role="", skills=("Go",), count=2)


async def test_a_wrong_key_is_refused_and_not_echoed(gemini_http):
    secret = "AIza-not-the-right-key-0123456789"
    with pytest.raises(genai_errors.ClientError) as caught:
        await _collect(GeminiInterviewer(_client(gemini_http, api_key=secret)), _request())
    assert secret not in _error_text(caught.value)
    assert gemini_http.errors == ["missing or wrong x-goog-api-key"]
    gemini_http.errors.clear()


def test_the_fake_flags_an_empty_part_and_a_model_first_conversation(gemini_http):
    import httpx

    body = {"contents": [{"role": "model", "parts": [{"text": ""}]}]}
    response = httpx.post(f"{gemini_http.base_url}/v1/models/gemini-2.5-flash:generateContent", json=body,
                          headers={"x-goog-api-key": gemini_http.api_key})
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert any("non-empty string" in error for error in gemini_http.errors)
    assert any("start with a user turn" in error for error in gemini_http.errors)
    gemini_http.errors.clear()


async def test_connections_are_counted_and_closed_with_the_client(gemini_http):
    client = _client(gemini_http)
    await _collect(GeminiInterviewer(client), _request())
    assert gemini_http.open_connections == 1  # kept alive for the next request
    await client.aio.aclose()
    assert await gemini_http.until_connections(0)
