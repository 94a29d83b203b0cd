"""Gemini (google-genai) as the text interviewer, the question drafter and the evaluator.

The interviewer streams `models.generateContent` (server-sent events): the words are
passed on as they come, and a call of the follow-up function (offered only when the
runtime allows one) becomes `FOLLOW_UP` and its question. Drafting and evaluation ask for
JSON matching the shared schemas, and the shared parsers refuse anything else.

Failures raise: the client never retries (the runtime's fallback line is the retry) and
every request is bounded by the client's timeout. A stream that ends without a finish
reason (a dropped connection the SDK did not notice) raises too. The API key travels in
a header only, so it never appears in an error's text.
"""

from __future__ import annotations

import json
from typing import AsyncIterator

from google import genai
from google.genai import types

from . import prompts
from .base import FOLLOW_UP, EvaluationRequest, InterviewerRequest

DEFAULT_MODEL = "gemini-2.5-flash"
# Finish reasons after which a streamed reply is whole (MAX_TOKENS: cut, but usable words).
_COMPLETE = {types.FinishReason.STOP, types.FinishReason.MAX_TOKENS}
_JOINED = "(The candidate has joined and is listening.)"
_LISTENING = "(The candidate is listening.)"

_FOLLOW_UP_TOOL = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name=prompts.FOLLOW_UP_TOOL_NAME,
            description=prompts.FOLLOW_UP_TOOL_DESCRIPTION,
            parameters_json_schema=prompts.FOLLOW_UP_PARAMETERS,
        )
    ]
)


class GeminiError(RuntimeError):
    """Gemini answered, but not with something usable (blocked, cut, wrong shape)."""


def make_client(*, api_key: str, base_url: str | None = None, timeout_s: float) -> genai.Client:
    """A Gemini Developer API client: no retries, every request bounded by `timeout_s`.

    `base_url` points it elsewhere (a proxy, the tests' fake); the Live API derives its
    wss:// address from it.
    """
    options = types.HttpOptions(base_url=base_url or None, timeout=max(1, int(timeout_s * 1000)))
    return genai.Client(vertexai=False, api_key=api_key, http_options=options)


def conversation_contents(request: InterviewerRequest) -> list[types.Content]:
    """The conversation as Gemini turns: it starts and ends with the candidate (user).

    Consecutive lines of one speaker become one turn; lines with no words never get here.
    """
    contents: list[types.Content] = []
    for line in request.model_conversation():
        role = "model" if line.speaker == prompts.INTERVIEWER_ROLE else "user"
        if contents and contents[-1].role == role:
            contents[-1].parts.append(types.Part(text=line.text))
        else:
            contents.append(types.Content(role=role, parts=[types.Part(text=line.text)]))
    if not contents or contents[0].role != "user":
        contents.insert(0, types.Content(role="user", parts=[types.Part(text=_JOINED)]))
    if contents[-1].role != "user":
        contents.append(types.Content(role="user", parts=[types.Part(text=_LISTENING)]))
    return contents


def _usage(metadata: types.GenerateContentResponseUsageMetadata | None) -> dict:
    if metadata is None:
        return {}
    return {
        "input_tokens": metadata.prompt_token_count or 0,
        "output_tokens": (metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0),
    }


def _thinking(budget: int | None) -> types.ThinkingConfig | None:
    # Thinking costs seconds a spoken conversation does not have; None leaves the model's default.
    return None if budget is None else types.ThinkingConfig(thinking_budget=budget)


class GeminiInterviewer:
    """Interviewer (and question drafter) on the Gemini API."""

    def __init__(self, client: genai.Client, *, model: str = DEFAULT_MODEL, thinking_budget: int | None = 0,
                 max_output_tokens: int = 400):
        self._client = client
        self.model = model
        self._thinking_budget = thinking_budget
        self._max_output_tokens = max_output_tokens

    async def respond(self, request: InterviewerRequest) -> AsyncIterator[str]:
        config = types.GenerateContentConfig(
            system_instruction=prompts.interviewer_instructions(request),
            tools=[_FOLLOW_UP_TOOL] if request.follow_up_allowed else None,
            # The SDK must neither run the function itself nor re-request on its own.
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            automatic_continuation=False,
            thinking_config=_thinking(self._thinking_budget),
            max_output_tokens=self._max_output_tokens,
        )
        stream = await self._client.aio.models.generate_content_stream(
            model=self.model, contents=conversation_contents(request), config=config
        )
        spoke = finished = False
        async for chunk in stream:
            if chunk.usage_metadata is not None:
                request.usage.update(_usage(chunk.usage_metadata))
            candidate = chunk.candidates[0] if chunk.candidates else None
            if candidate is None:
                if chunk.prompt_feedback and chunk.prompt_feedback.block_reason:
                    raise GeminiError(f"prompt blocked: {chunk.prompt_feedback.block_reason}")
                continue
            parts = candidate.content.parts if candidate.content and candidate.content.parts else []
            call = next((part.function_call for part in parts if part.function_call), None)
            if call is not None:
                # A function call replaces the words of its chunk; words already spoken cannot
                # become a follow-up any more (the runtime hears FOLLOW_UP before any word).
                if call.name != prompts.FOLLOW_UP_TOOL_NAME or not request.follow_up_allowed or spoke:
                    raise GeminiError(f"unexpected function call {call.name!r}")
                question = (call.args or {}).get("question")
                if not isinstance(question, str) or not question.strip():
                    raise GeminiError("follow-up call without a question")
                spoke = True
                yield FOLLOW_UP
                yield question.strip()
            else:
                for part in parts:
                    if part.text and not part.thought:
                        spoke = True
                        yield part.text
            if candidate.finish_reason:
                if candidate.finish_reason not in _COMPLETE:
                    raise GeminiError(f"reply stopped: {candidate.finish_reason}")
                finished = True
        if not finished:
            raise GeminiError("the reply stream ended without a finish reason")

    async def draft_questions(self, *, title: str, role: str, skills: tuple[str, ...], count: int) -> list[dict]:
        prompt = prompts.draft_prompt(title=title, role=role, skills=skills, count=count)
        data = await _generate_json(self._client, self.model, prompt, prompts.DRAFT_SCHEMA, self._thinking_budget)
        return prompts.parse_drafted_questions(data, count=count)


class GeminiEvaluator:
    """Evaluator on the Gemini API: one structured assessment per finished interview."""

    def __init__(self, client: genai.Client, *, model: str = DEFAULT_MODEL, thinking_budget: int | None = None):
        self._client = client
        self.model = model
        self._thinking_budget = thinking_budget

    async def evaluate(self, request: EvaluationRequest) -> dict:
        prompt = prompts.evaluation_prompt(request)
        data = await _generate_json(self._client, self.model, prompt, prompts.EVALUATION_SCHEMA, self._thinking_budget)
        return prompts.parse_evaluation(data, question_count=len(request.questions))


async def _generate_json(client: genai.Client, model: str, prompt: str, schema: dict,
                         thinking_budget: int | None) -> object:
    """One non-streamed call whose answer must be JSON matching `schema`."""
    response = await client.aio.models.generate_content(
        model=model,
        contents=[types.Content(role="user", parts=[types.Part(text=prompt)])],
        config=types.GenerateContentConfig(
            response_mime_type="application/json",
            response_json_schema=schema,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            automatic_continuation=False,
            thinking_config=_thinking(thinking_budget),
        ),
    )
    candidate = response.candidates[0] if response.candidates else None
    if candidate is None or candidate.finish_reason not in (types.FinishReason.STOP, None):
        reason = candidate.finish_reason if candidate else getattr(response.prompt_feedback, "block_reason", None)
        raise GeminiError(f"no usable structured answer ({reason})")
    text = "".join(part.text or "" for part in (candidate.content.parts if candidate.content else None) or []
                   if not part.thought)
    try:
        return json.loads(text)
    except ValueError as error:
        raise ValueError("the model's structured answer is not JSON") from error
