"""A strict local stand-in for OpenAI's HTTP API: chat completions and speech.

It speaks the documented wire format the `openai` SDK expects (see
https://platform.openai.com/docs/api-reference/chat/streaming):

- `POST /v1/chat/completions`, streamed as server-sent events: a first chunk with the
  assistant role, `choices[].delta.content` pieces (or `delta.tool_calls` pieces with
  index/id/function.name, then the `arguments` string in fragments), a chunk with the
  `finish_reason`, a last chunk with `choices: []` and `usage` when
  `stream_options.include_usage`, then `data: [DONE]`; or one JSON body when not streamed
  (structured output through `response_format` json_schema);
- `POST /v1/audio/speech` with `response_format: "pcm"`: raw 24 kHz mono s16le, chunked.

Strict: a wrong or missing bearer key gets OpenAI's 401 (a test may want that); anything
OpenAI would refuse with a 400 (unknown parameter, empty message content, malformed
`tools` or `response_format`, strict schemas that are not strict, a non-pcm audio format)
gets the 400 *and* is recorded in `errors`, which the fixture requires to be empty.

Scripting: `fake.script_chat(...)` / `fake.script_speech(...)` queue replies, one per
request: `Text`, `FollowUp`, `Json`, or a failure (`HttpStatus(429)`, `HttpStatus(500)`,
`Hang()`, `DropMidStream()`, `MalformedEvent()`). With nothing scripted the fake plays
a whole interview: it acknowledges and asks the question quoted in the system prompt's
"Now:" line (see realtime.providers.prompts.direction), says goodbye when closing, drafts
one question per skill, and scores every question of an evaluation prompt.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import dataclass

import numpy as np
import pytest

from .http_server import (
    DropMidStream,
    FakeHttpServer,
    Hang,
    HttpRequest,
    HttpResponse,
    HttpStatus,
    json_body_or_error,
)

__all__ = [
    "OpenAIHttpFake", "openai_http_fake", "Text", "FollowUp", "Json", "MalformedEvent", "StreamError",
    "HttpStatus", "Hang", "DropMidStream", "SPEECH_SAMPLE_RATE", "SPEECH_MS_PER_CHAR",
]  # fmt: skip

SPEECH_SAMPLE_RATE = 24000  # OpenAI's pcm format
SPEECH_MS_PER_CHAR = 50
SPEECH_MAX_MS = 20000
BUILT_IN_VOICES = {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer",
                   "verse", "marin", "cedar"}  # fmt: skip

# Every parameter the SDK's chat.completions.create can send; the fake models a subset
# and refuses the rest rather than silently ignoring them.
CHAT_PARAMETERS = {
    "messages", "model", "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "metadata", "modalities", "moderation", "n", "parallel_tool_calls",
    "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention",
    "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
    "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity",
    "web_search_options",
}  # fmt: skip
MODELLED_CHAT_PARAMETERS = {
    "messages", "model", "stream", "stream_options", "tools", "tool_choice", "response_format", "temperature",
    "top_p", "seed", "max_completion_tokens", "max_tokens", "parallel_tool_calls", "user", "store", "metadata",
    "reasoning_effort", "service_tier", "prompt_cache_key", "safety_identifier",
}  # fmt: skip
SPEECH_PARAMETERS = {"model", "input", "voice", "instructions", "response_format", "speed", "stream_format"}
_MESSAGE_KEYS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "refusal"},
    "tool": {"role", "content", "tool_call_id"},
}
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


# --- replies a test can script ----------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """The assistant's words (streamed word by word when the request streams)."""

    text: str
    finish_reason: str = "stop"


@dataclass(frozen=True)
class FollowUp:
    """A call of the interviewer's follow-up tool; `raw_arguments` overrides the JSON sent."""

    question: str
    tool_name: str = "ask_follow_up"
    raw_arguments: str | None = None

    @property
    def arguments(self) -> str:
        return self.raw_arguments if self.raw_arguments is not None else json.dumps({"question": self.question})


@dataclass(frozen=True)
class Json:
    """Structured output: the message content is this value as JSON."""

    value: object


@dataclass(frozen=True)
class MalformedEvent:
    """Stream the default reply but put a line that is not JSON after `after_chunks` chunks."""

    after_chunks: int = 1


@dataclass(frozen=True)
class StreamError:
    """Stream the default reply, then an error event (as OpenAI does on a failure mid-stream)."""

    message: str = "The server had an error while processing your request."
    after_chunks: int = 1


_FAILURES = (HttpStatus, Hang, DropMidStream, MalformedEvent, StreamError)


def openai_error(message: str, *, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _status_error(status: int) -> dict:
    if status == 429:
        return openai_error("Rate limit reached for requests. Please try again in 1s.", type_="requests",
                            code="rate_limit_exceeded")  # fmt: skip
    if status >= 500:
        return openai_error("The server had an error while processing your request. Sorry about that!",
                            type_="server_error")  # fmt: skip
    return openai_error(f"Request failed with status {status}.", type_="invalid_request_error")


def mask_key(key: str) -> str:
    """How OpenAI echoes a wrong key: a few characters at each end, the rest hidden."""
    return key[:3] + "*" * max(len(key) - 7, 0) + key[-4:] if len(key) > 8 else "*" * len(key)


def _words(text: str) -> list[str]:
    return re.findall(r"\s*\S+", text)


def tone(ms: float, sample_rate: int) -> bytes:
    """A deterministic 440 Hz tone, PCM16 mono."""
    t = np.arange(int(sample_rate * ms / 1000)) / sample_rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


def speech_ms(text: str) -> float:
    return min(len(text) * SPEECH_MS_PER_CHAR, SPEECH_MAX_MS)


# --- request checks ---------------------------------------------------------------------


def strict_schema_problems(schema: object, where: str) -> list[str]:
    """What OpenAI's strict mode refuses: objects must close and require every property."""
    problems: list[str] = []
    if not isinstance(schema, dict):
        return [f"{where}: a schema must be an object"]
    if schema.get("type") == "object":
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            problems.append(f"{where}: strict schemas need additionalProperties: false")
        if set(schema.get("required", [])) != set(properties):
            problems.append(f"{where}: strict schemas must list every property in required")
        for key, sub in properties.items():
            problems += strict_schema_problems(sub, f"{where}.{key}")
    if schema.get("type") == "array" and "items" in schema:
        problems += strict_schema_problems(schema["items"], f"{where}[]")
    return problems


def _content_problems(content: object, where: str) -> list[str]:
    if isinstance(content, str):
        return [] if content.strip() else [f"{where}: empty content"]
    if isinstance(content, list) and content:
        problems = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not str(part.get("text", "")).strip():
                problems.append(f"{where}: content parts must be non-empty text parts")
        return problems
    return [f"{where}: content must be a non-empty string or list of parts"]


def message_problems(messages: object) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return ["messages: a non-empty list is required"]
    problems: list[str] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in _MESSAGE_KEYS:
            problems.append(f"{where}: role must be one of {sorted(_MESSAGE_KEYS)}")
            continue
        role = message["role"]
        extra = set(message) - _MESSAGE_KEYS[role]
        if extra:
            problems.append(f"{where}: unknown keys {sorted(extra)} for role {role}")
        if role == "assistant" and message.get("content") is None and message.get("tool_calls"):
            continue
        if role == "tool" and not message.get("tool_call_id"):
            problems.append(f"{where}: tool messages need tool_call_id")
        problems += _content_problems(message.get("content"), where)
    return problems


def tools_problems(tools: object) -> list[str]:
    if not isinstance(tools, list) or not tools:
        return ["tools: a non-empty list is required"]
    problems: list[str] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function" or set(tool) != {"type", "function"}:
            problems.append(f"{where}: expected {{'type': 'function', 'function': {{...}}}}")
            continue
        function = tool["function"]
        if not isinstance(function, dict):
            problems.append(f"{where}.function: must be an object")
            continue
        extra = set(function) - {"name", "description", "parameters", "strict"}
        if extra:
            problems.append(f"{where}.function: unknown keys {sorted(extra)}")
        if not isinstance(function.get("name"), str) or not _NAME.match(function["name"]):
            problems.append(f"{where}.function.name: must match {_NAME.pattern}")
        if "description" in function and not isinstance(function["description"], str):
            problems.append(f"{where}.function.description: must be a string")
        parameters = function.get("parameters")
        if parameters is not None and (not isinstance(parameters, dict) or parameters.get("type") != "object"):
            problems.append(f"{where}.function.parameters: must be an object schema")
        if function.get("strict") is True:
            problems += strict_schema_problems(parameters, f"{where}.function.parameters")
    return problems


def tool_choice_problems(choice: object, tools: object) -> list[str]:
    if tools is None:
        return ["tool_choice: only allowed when tools are specified"]
    if choice in ("none", "auto", "required"):
        return []
    names = {t["function"].get("name") for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)}
    if (isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("function"), dict)
            and choice["function"].get("name") in names):  # fmt: skip
        return []
    return [f"tool_choice: {choice!r} is not 'none', 'auto', 'required' or a named offered function"]


def response_format_problems(response_format: object, messages: object) -> list[str]:
    if not isinstance(response_format, dict):
        return ["response_format: must be an object"]
    kind = response_format.get("type")
    if kind == "text":
        return [] if set(response_format) == {"type"} else ["response_format: unknown keys"]
    if kind == "json_object":
        mentions_json = "json" in json.dumps(messages).lower()
        return [] if mentions_json else ["response_format json_object: the messages must mention JSON"]
    if kind != "json_schema":
        return [f"response_format.type: {kind!r} is not text, json_object or json_schema"]
    if set(response_format) != {"type", "json_schema"} or not isinstance(response_format["json_schema"], dict):
        return ["response_format: json_schema needs exactly {'type', 'json_schema'}"]
    spec = response_format["json_schema"]
    problems = []
    extra = set(spec) - {"name", "description", "schema", "strict"}
    if extra:
        problems.append(f"response_format.json_schema: unknown keys {sorted(extra)}")
    if not isinstance(spec.get("name"), str) or not _NAME.match(spec["name"]):
        problems.append(f"response_format.json_schema.name: must match {_NAME.pattern}")
    if not isinstance(spec.get("schema"), dict) or spec["schema"].get("type") != "object":
        problems.append("response_format.json_schema.schema: the root must be an object schema")
    elif spec.get("strict") is True:
        problems += strict_schema_problems(spec["schema"], "response_format.json_schema.schema")
    return problems


def chat_problems(body: dict, *, models: set[str] | None) -> list[str]:
    problems: list[str] = []
    unknown = set(body) - CHAT_PARAMETERS
    if unknown:
        problems.append(f"unknown parameters {sorted(unknown)}")
    unmodelled = (set(body) & CHAT_PARAMETERS) - MODELLED_CHAT_PARAMETERS
    if unmodelled:
        problems.append(f"parameters the fake does not model: {sorted(unmodelled)}")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        problems.append("model: a non-empty string is required")
    elif models is not None and model not in models:
        problems.append(f"model: {model!r} is not one of {sorted(models)}")
    problems += message_problems(body.get("messages"))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        problems.append("stream: must be a boolean")
    if "stream_options" in body:
        options = body["stream_options"]
        if stream is not True:
            problems.append("stream_options: only allowed when stream is true")
        if not isinstance(options, dict) or set(options) - {"include_usage", "include_obfuscation"} or not all(
            isinstance(v, bool) for v in options.values()
        ):
            problems.append("stream_options: only boolean include_usage / include_obfuscation")
    if "tools" in body:
        problems += tools_problems(body["tools"])
    if "tool_choice" in body:
        problems += tool_choice_problems(body["tool_choice"], body.get("tools"))
    if "response_format" in body:
        problems += response_format_problems(body["response_format"], body.get("messages"))
    return problems


def speech_problems(body: dict, *, models: set[str] | None) -> list[str]:
    problems: list[str] = []
    unknown = set(body) - SPEECH_PARAMETERS
    if unknown:
        problems.append(f"unknown parameters {sorted(unknown)}")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        problems.append("model: a non-empty string is required")
    elif models is not None and model not in models:
        problems.append(f"model: {model!r} is not one of {sorted(models)}")
    voice = body.get("voice")
    if isinstance(voice, dict):
        if set(voice) != {"id"} or not isinstance(voice["id"], str) or not voice["id"].strip():
            problems.append("voice: a custom voice is {'id': '...'}")
    elif voice not in BUILT_IN_VOICES:
        problems.append(f"voice: {voice!r} is not a built-in voice")
    text = body.get("input")
    if not isinstance(text, str) or not text.strip() or len(text) > 4096:
        problems.append("input: a non-empty string of at most 4096 characters is required")
    if body.get("response_format") != "pcm":
        problems.append(f"response_format: the fake only streams 'pcm', got {body.get('response_format')!r}")
    if body.get("stream_format", "audio") != "audio":
        problems.append("stream_format: the fake only streams raw audio")
    speed = body.get("speed", 1.0)
    if not isinstance(speed, (int, float)) or not 0.25 <= speed <= 4.0:
        problems.append("speed: must be from 0.25 to 4.0")
    return problems


# --- default behaviour: a whole interview ---------------------------------------------------


def _system_text(messages: list[dict]) -> str:
    return "\n".join(m["content"] for m in messages if m.get("role") in ("system", "developer")
                     and isinstance(m.get("content"), str))  # fmt: skip


def _last_user_text(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def default_interviewer_line(messages: list[dict]) -> str:
    """Acknowledge, then ask the question the runtime asked for; goodbye when closing."""
    now = next((line for line in _system_text(messages).splitlines() if line.startswith("Now:")), "")
    question = re.search(r'Question \d+: "(.*)"\s*$', now)
    if question:
        return "Thank you. " + question.group(1)
    return "Thank you for your time today. The interview is over. Goodbye."


def default_drafted_questions(prompt: str) -> dict:
    skills = re.search(r"Skills to assess: (.*?)\. Start with one introduction question", prompt, re.S)
    names = [s.strip() for s in skills.group(1).split(",") if s.strip()] if skills else []
    return {"questions": [{"text": f"Tell me about a project where you used {name}.", "stage": "technical"}
                          for name in names]}  # fmt: skip


def default_evaluation(prompt: str) -> dict:
    found = re.findall(r"^Question (\d+): .*?\nAnswer: (.*?)(?:\n\n|\Z)", prompt, re.M | re.S)
    questions = []
    for index, answer in found:
        answered = answer.strip() != "(no answer)"
        questions.append({
            "index": int(index),
            "score": 3 if answered else 1,
            "strengths": ["Answered the question."] if answered else [],
            "concerns": [] if answered else ["No answer was given."],
            "evidence": [" ".join(answer.split()[:8])] if answered else [],
        })  # fmt: skip
    return {"questions": questions, "summary": f"The candidate answered {len(questions)} questions.",
            "recommendation": "maybe"}  # fmt: skip


# --- the fake -----------------------------------------------------------------------------


class OpenAIHttpFake(FakeHttpServer):
    """`base_url` goes to `openai.AsyncOpenAI(base_url=...)`; `api_key` is the one it accepts."""

    name = "openai-fake"

    def __init__(self, *, api_key: str = "sk-fake-openai-0123456789abcdef", chat_models: set[str] | None = None,
                 speech_models: set[str] | None = None, chunk_delay_s: float = 0.002,
                 speech_chunk_bytes: int = 4801, speech_chunk_delay_s: float = 0.005):  # fmt: skip
        super().__init__()
        self.api_key = api_key
        self.chat_models = chat_models
        self.speech_models = speech_models
        self.chunk_delay_s = chunk_delay_s
        # An odd size on purpose: the network may split a sample, the client must cope.
        self.speech_chunk_bytes = speech_chunk_bytes
        self.speech_chunk_delay_s = speech_chunk_delay_s
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return self.origin + "/v1"

    def script_chat(self, *replies) -> None:
        self.script("chat", *replies)

    def script_speech(self, *replies) -> None:
        self.script("speech", *replies)

    def chat_bodies(self) -> list[dict]:
        return [r.json() for r in list(self.requests) if r.path == "/v1/chat/completions"]

    def speech_bodies(self) -> list[dict]:
        return [r.json() for r in list(self.requests) if r.path == "/v1/audio/speech"]

    # -- routing --

    async def handle(self, request: HttpRequest, response: HttpResponse) -> None:
        routes = {"/v1/chat/completions": self._chat, "/v1/audio/speech": self._speech}
        route = routes.get(request.path)
        if route is None or request.method != "POST":
            self.record_error(f"unexpected request {request.method} {request.path}")
            await response.send_json(404, openai_error(f"Invalid URL ({request.method} {request.path})",
                                                       type_="invalid_request_error"))  # fmt: skip
            return
        if not await self._authorized(request, response):
            return
        body = json_body_or_error(self, request)
        if body is None:
            await response.send_json(400, openai_error("We could not parse the JSON body of your request.",
                                                       type_="invalid_request_error"))  # fmt: skip
            return
        await route(body, response)

    async def _authorized(self, request: HttpRequest, response: HttpResponse) -> bool:
        header = request.headers.get("authorization", "")
        if header == f"Bearer {self.api_key}":
            return True
        if not header.startswith("Bearer "):
            error = openai_error("You didn't provide an API key.", type_="invalid_request_error")
        else:
            error = openai_error(
                f"Incorrect API key provided: {mask_key(header[7:])}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.", type_="invalid_request_error", code="invalid_api_key"
            )  # fmt: skip
        await response.send_json(401, error)
        return False

    async def _refuse(self, response: HttpResponse, problems: list[str], where: str) -> None:
        for problem in problems:
            self.record_error(f"{where}: {problem}")
        await response.send_json(400, openai_error(problems[0], type_="invalid_request_error"))

    def _headers(self) -> dict:
        return {"x-request-id": f"req_fake{next(self._ids)}", "openai-processing-ms": "3",
                "openai-version": "2020-10-01"}  # fmt: skip

    # -- chat completions --

    async def _chat(self, body: dict, response: HttpResponse) -> None:
        problems = chat_problems(body, models=self.chat_models)
        if problems:
            await self._refuse(response, problems, "chat.completions")
            return
        scripted = self.next_scripted("chat")
        if isinstance(scripted, HttpStatus):
            await response.send_json(scripted.status, scripted.body or _status_error(scripted.status), self._headers())
            return
        if isinstance(scripted, Hang) and scripted.after_chunks is None:
            await response.hang()
            return
        reply = scripted if scripted is not None and not isinstance(scripted, _FAILURES) else None
        if reply is None:
            reply = self._default_chat_reply(body)
            if reply is None:
                return await self._refuse(response, ["no scripted reply and no default for this request"],
                                          "chat.completions")  # fmt: skip
        failure = scripted if isinstance(scripted, _FAILURES) else None
        if body.get("stream"):
            await self._stream_chat(body, reply, failure, response)
        else:
            await self._whole_chat(body, reply, failure, response)

    def _default_chat_reply(self, body: dict):
        messages = body["messages"]
        response_format = body.get("response_format") or {}
        if response_format.get("type") != "json_schema":
            return Text(default_interviewer_line(messages))
        properties = set(response_format["json_schema"]["schema"].get("properties", {}))
        if properties == {"questions"}:
            return Json(default_drafted_questions(_last_user_text(messages)))
        if properties == {"questions", "summary", "recommendation"}:
            return Json(default_evaluation(_last_user_text(messages)))
        return None

    def _usage(self, body: dict, reply) -> dict:
        prompt = sum(len(str(m.get("content") or "").split()) for m in body["messages"])
        completion = len(self._reply_text(reply).split()) or 1
        return {
            "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        }  # fmt: skip

    @staticmethod
    def _reply_text(reply) -> str:
        if isinstance(reply, FollowUp):
            return reply.arguments
        if isinstance(reply, Json):
            return json.dumps(reply.value)
        return reply.text

    def _envelope(self, body: dict, cid: str, obj: str) -> dict:
        return {"id": cid, "object": obj, "created": 1700000000, "model": body["model"],
                "service_tier": "default", "system_fingerprint": "fp_fake"}  # fmt: skip

    def _chunks(self, body: dict, reply, cid: str) -> list[dict]:
        include_usage = (body.get("stream_options") or {}).get("include_usage", False)

        def chunk(delta: dict, finish_reason=None) -> dict:
            data = self._envelope(body, cid, "chat.completion.chunk")
            data["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
            if include_usage:
                data["usage"] = None
            data["obfuscation"] = "Xq"  # OpenAI pads chunks with this field; clients must ignore it
            return data

        if isinstance(reply, FollowUp):
            call = {"index": 0, "id": f"call_fake{next(self._ids)}", "type": "function",
                    "function": {"name": reply.tool_name, "arguments": ""}}  # fmt: skip
            chunks = [chunk({"role": "assistant", "content": None, "tool_calls": [call], "refusal": None})]
            arguments = reply.arguments
            for start in range(0, len(arguments), 7):
                piece = arguments[start : start + 7]
                chunks.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
            chunks.append(chunk({}, "tool_calls"))
        else:
            chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
            chunks += [chunk({"content": word}) for word in _words(self._reply_text(reply))]
            chunks.append(chunk({}, reply.finish_reason if isinstance(reply, Text) else "stop"))
        if include_usage:
            last = self._envelope(body, cid, "chat.completion.chunk")
            last.update(choices=[], usage=self._usage(body, reply), obfuscation="Zz")
            chunks.append(last)
        return chunks

    async def _stream_chat(self, body: dict, reply, failure, response: HttpResponse) -> None:
        cid = f"chatcmpl-fake{next(self._ids)}"
        events = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in self._chunks(body, reply, cid)]
        events.append(b"data: [DONE]\n\n")
        cut = getattr(failure, "after_chunks", None)
        await response.start_stream(200, "text/event-stream; charset=utf-8", self._headers())
        for index, event in enumerate(events):
            if failure is not None and index == cut:
                await self._fail_stream(failure, response)
                return
            if not await response.send_chunk(event):
                return  # the client closed the stream: fine, that is how it stops a reply
            await asyncio.sleep(self.chunk_delay_s)
        await response.end_stream()

    async def _fail_stream(self, failure, response: HttpResponse) -> None:
        if isinstance(failure, DropMidStream):
            await response.drop()
        elif isinstance(failure, Hang):
            await response.hang()
        elif isinstance(failure, MalformedEvent):
            await response.send_chunk(b'data: {"id": "chatcmpl-broken", "choices": [\n\n')
            await response.send_chunk(b"data: [DONE]\n\n")
            await response.end_stream()
        elif isinstance(failure, StreamError):
            error = openai_error(failure.message, type_="server_error")
            await response.send_chunk(b"data: " + json.dumps(error).encode() + b"\n\n")
            await response.end_stream()

    async def _whole_chat(self, body: dict, reply, failure, response: HttpResponse) -> None:
        data = self._envelope(body, f"chatcmpl-fake{next(self._ids)}", "chat.completion")
        if isinstance(reply, FollowUp):
            message = {"role": "assistant", "content": None, "refusal": None, "annotations": [], "tool_calls": [
                {"id": f"call_fake{next(self._ids)}", "type": "function",
                 "function": {"name": reply.tool_name, "arguments": reply.arguments}}]}  # fmt: skip
            finish_reason = "tool_calls"
        else:
            message = {"role": "assistant", "content": self._reply_text(reply), "refusal": None, "annotations": []}
            finish_reason = reply.finish_reason if isinstance(reply, Text) else "stop"
        data["choices"] = [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}]
        data["usage"] = self._usage(body, reply)
        payload = json.dumps(data).encode()
        if isinstance(failure, MalformedEvent):
            payload = payload[: len(payload) // 2]  # a 200 whose body is not JSON
        if isinstance(failure, (DropMidStream, Hang)):
            await response.start_stream(200, "application/json", self._headers())
            await response.send_chunk(payload[: len(payload) // 2])
            await (response.drop() if isinstance(failure, DropMidStream) else response.hang())
            return
        await response.send_bytes(200, payload, "application/json", self._headers())

    # -- speech --

    async def _speech(self, body: dict, response: HttpResponse) -> None:
        problems = speech_problems(body, models=self.speech_models)
        if problems:
            await self._refuse(response, problems, "audio.speech")
            return
        scripted = self.next_scripted("speech")
        if isinstance(scripted, HttpStatus):
            await response.send_json(scripted.status, scripted.body or _status_error(scripted.status), self._headers())
            return
        if isinstance(scripted, Hang) and scripted.after_chunks is None:
            await response.hang()
            return
        if scripted is not None and not isinstance(scripted, (Hang, DropMidStream)):
            self.record_error(f"audio.speech: cannot play scripted reply {scripted!r}")
        pcm = tone(speech_ms(body["input"]), SPEECH_SAMPLE_RATE)
        await stream_audio(response, pcm, chunk_bytes=self.speech_chunk_bytes, delay_s=self.speech_chunk_delay_s,
                           failure=scripted, content_type="audio/pcm", headers=self._headers())  # fmt: skip


async def stream_audio(response: HttpResponse, pcm: bytes, *, chunk_bytes: int, delay_s: float, failure,
                       content_type: str, headers: dict) -> None:  # fmt: skip
    """Send audio as a chunked body in small pieces, honouring a scripted mid-stream failure."""
    await response.start_stream(200, content_type, headers)
    for index, start in enumerate(range(0, len(pcm), chunk_bytes)):
        if isinstance(failure, (DropMidStream, Hang)) and index == failure.after_chunks:
            await (response.drop() if isinstance(failure, DropMidStream) else response.hang())
            return
        if not await response.send_chunk(pcm[start : start + chunk_bytes]):
            return  # the client stopped listening (an interruption)
        await asyncio.sleep(delay_s)
    await response.end_stream()


@pytest.fixture
def openai_http_fake():
    """A started OpenAIHttpFake; the test fails if the fake saw anything OpenAI would refuse."""
    fake = OpenAIHttpFake().start()
    try:
        yield fake
    finally:
        fake.stop()
    assert list(fake.errors) == []
