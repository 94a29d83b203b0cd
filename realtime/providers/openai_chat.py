"""The interviewer and the evaluator over OpenAI's Chat Completions API.

Chat Completions, not the Responses API, because every OpenAI-compatible server (vLLM,
llama.cpp, Ollama) speaks it: `base_url` points the same code at any of them.

The interviewer streams its words as they are generated; a follow-up arrives as a call of
the one tool it is offered (prompts.FOLLOW_UP_TOOL_NAME), whose JSON arguments are
gathered from the stream and checked. Structured answers (drafted questions, the
evaluation) use strict json_schema output and the shared checkers in prompts. Every
failure raises: the runtime owns the deadline and the fallback line (so no SDK retries).
"""

from __future__ import annotations

import json
from typing import AsyncIterator

import openai

from . import prompts
from .base import FOLLOW_UP, EvaluationRequest, InterviewerRequest

MAX_TOOL_ARGUMENTS = 8 * 1024  # a follow-up question is one sentence

FOLLOW_UP_TOOL = {
    "type": "function",
    "function": {
        "name": prompts.FOLLOW_UP_TOOL_NAME,
        "description": prompts.FOLLOW_UP_TOOL_DESCRIPTION,
        "parameters": prompts.FOLLOW_UP_PARAMETERS,
        "strict": True,
    },
}


def make_client(*, api_key: str, base_url: str | None, timeout_s: float) -> openai.AsyncOpenAI:
    """One client per process; `base_url` selects an OpenAI-compatible server."""
    return openai.AsyncOpenAI(api_key=api_key, base_url=base_url or None, timeout=timeout_s, max_retries=0)


def usage_of(usage) -> dict:
    """The API's usage object as the runtime stores it."""
    if usage is None:
        return {}
    return {"input_tokens": usage.prompt_tokens or 0, "output_tokens": usage.completion_tokens or 0}


class _FollowUpCall:
    """The follow-up tool call as its pieces arrive in the stream."""

    def __init__(self) -> None:
        self.name = ""
        self.arguments: list[str] = []
        self.size = 0

    def add(self, delta_call) -> None:
        if delta_call.index not in (0, None):
            raise ValueError("the model made more than one tool call")
        function = delta_call.function
        if function is None:
            return
        if function.name:
            # OpenAI names the function once; some compatible servers repeat it in every piece.
            self.name = function.name
        if function.arguments:
            self.size += len(function.arguments)
            if self.size > MAX_TOOL_ARGUMENTS:
                raise ValueError("the follow-up tool call's arguments are too long")
            self.arguments.append(function.arguments)

    def question(self) -> str:
        if self.name != prompts.FOLLOW_UP_TOOL_NAME:
            raise ValueError(f"the model called an unknown tool {self.name!r}")
        try:
            data = json.loads("".join(self.arguments))
        except ValueError as exc:
            raise ValueError(f"the follow-up tool call's arguments are not JSON: {exc}") from None
        question = data.get("question") if isinstance(data, dict) else None
        if not isinstance(question, str) or not question.strip():
            raise ValueError("the follow-up tool call has no question")
        return question.strip()


class OpenAIInterviewer:
    """Interviewer (base.Interviewer) over any Chat Completions server."""

    def __init__(self, client: openai.AsyncOpenAI, *, model: str):
        self._client = client
        self._model = model

    async def respond(self, request: InterviewerRequest) -> AsyncIterator[str]:
        options = {}
        if request.follow_up_allowed:
            options = {"tools": [FOLLOW_UP_TOOL], "tool_choice": "auto"}
        stream = await self._client.chat.completions.create(
            model=self._model,
            messages=prompts.chat_messages(request),
            stream=True,
            stream_options={"include_usage": True},
            **options,
        )
        # `async with`: an early close (an interruption) closes the HTTP stream at once.
        async with stream:
            spoke = False
            call: _FollowUpCall | None = None
            finish_reason = None
            async for chunk in stream:
                if chunk.usage is not None:
                    request.usage.update(usage_of(chunk.usage))
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta is not None and delta.refusal:
                        raise ValueError("the model refused to answer")
                    if delta is not None and delta.tool_calls:
                        if not request.follow_up_allowed:
                            raise ValueError("the model called a tool it was not offered")
                        if spoke:
                            raise ValueError("the model called the follow-up tool after speaking")
                        call = call or _FollowUpCall()
                        for delta_call in delta.tool_calls:
                            call.add(delta_call)
                    if delta is not None and delta.content:
                        if call is not None:
                            raise ValueError("the model spoke while calling the follow-up tool")
                        spoke = True
                        yield delta.content
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
        if finish_reason is None:
            raise ValueError("the reply stream ended before the model finished")
        if finish_reason == "content_filter":
            raise ValueError("the reply was stopped by the content filter")
        if call is not None:
            question = call.question()
            yield FOLLOW_UP
            yield question
        elif not spoke:
            raise ValueError("the model answered with no words")

    async def draft_questions(self, *, title: str, role: str, skills: tuple[str, ...], count: int) -> list[dict]:
        prompt = prompts.draft_prompt(title=title, role=role, skills=skills, count=count)
        data, _ = await structured_answer(self._client, self._model, prompt, "interview_questions",
                                          prompts.DRAFT_SCHEMA)  # fmt: skip
        return prompts.parse_drafted_questions(data, count=count)


class OpenAIEvaluator:
    """Evaluator (base.Evaluator): a strict-schema assessment of a finished interview."""

    def __init__(self, client: openai.AsyncOpenAI, *, model: str):
        self._client = client
        self._model = model

    async def evaluate(self, request: EvaluationRequest) -> dict:
        data, usage = await structured_answer(self._client, self._model, prompts.evaluation_prompt(request),
                                              "interview_evaluation", prompts.EVALUATION_SCHEMA)  # fmt: skip
        result = prompts.parse_evaluation(data, question_count=len(request.questions))
        result["usage"] = usage
        return result


async def structured_answer(client: openai.AsyncOpenAI, model: str, prompt: str, name: str,
                            schema: dict) -> tuple[object, dict]:  # fmt: skip
    """The model's JSON answer to `prompt` under a strict schema, and the usage it reported."""
    completion = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        response_format={"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}},
    )
    if not completion.choices:
        raise ValueError(f"{name}: the model returned no answer")
    choice = completion.choices[0]
    if choice.message.refusal:
        raise ValueError(f"{name}: the model refused to answer")
    if choice.finish_reason != "stop":
        raise ValueError(f"{name}: the answer was cut short ({choice.finish_reason})")
    content = choice.message.content
    if not content:
        raise ValueError(f"{name}: the answer is empty")
    try:
        data = json.loads(content)
    except ValueError as exc:
        raise ValueError(f"{name}: the answer is not JSON: {exc}") from None
    return data, usage_of(completion.usage)
