"""A strict local Gemini API (generateContent, streamGenerateContent?alt=sse) for tests.

It speaks the REST protocol as google-genai sends it (POST /{version}/models/{model}:
generateContent and :streamGenerateContent?alt=sse, the key in `x-goog-api-key`,
camelCase JSON) over plain HTTP/1.1 with keep-alive, on a `BackgroundLoop`, so async
tests, sync tests and daphne subprocesses can all reach it at `base_url`.

Strict: a wrong key, an unknown field, a conversation that does not start and end with a
user turn, an empty part, a malformed tool or generation config is recorded in `errors`
(the `gemini_http` fixture fails the test when it is not empty at teardown).

Replies come from a script queue (`queue_text`, `queue_follow_up`, `queue_json`,
`queue_failure`), else a default that makes a whole interview work: a streamed reply
acknowledges and asks the question quoted in the system prompt's "Now:" line (see
`prompts.direction`), drafting returns the number of questions asked for, and an
evaluation scores every question it was given.

Failures (`queue_failure`): "429" and "500" answer with Google's error JSON, "hang"
accepts the request and never answers, "drop" closes the connection in the middle of the
stream, "malformed" sends an SSE data line that is not JSON.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.fakes import BackgroundLoop

API_KEY = "test-gemini-key"
FAILURES = ("429", "500", "hang", "drop", "malformed")
_WORD_DELAY_S = 0.002
_MAX_BODY_BYTES = 4 * 1024 * 1024
_MAX_HEADER_LINES = 100
_PATH = re.compile(r"^/(v1|v1beta|v1alpha)/models/([A-Za-z0-9._-]+):(generateContent|streamGenerateContent)$")
_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_QUESTION_IN_DIRECTION = re.compile(r'^Now: .*Question \d+: "(.*)"\s*$')
_ERRORS = {
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report in "
                      "https://developers.generativeai.google/guide/troubleshooting"),
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    404: ("NOT_FOUND", "Requested entity was not found."),
}
# Wire names as google-genai sends them; protobuf JSON also accepts snake_case.
_REQUEST_FIELDS = {"contents", "systemInstruction", "generationConfig", "tools", "toolConfig", "safetySettings"}
_GENERATION_FIELDS = {
    "temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences", "seed",
    "responseMimeType", "responseSchema", "responseJsonSchema", "thinkingConfig", "presencePenalty",
    "frequencyPenalty",
}  # fmt: skip
_PART_DATA = {"text", "functionCall", "functionResponse", "inlineData"}
_PART_FIELDS = _PART_DATA | {"thought", "thoughtSignature"}
_FUNCTION_FIELDS = {"name", "description", "parameters", "parametersJsonSchema"}


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _camel_keys(value: object) -> dict:
    """An object's field names as lowerCamel ({} for a non-object): both spellings are valid."""
    return {_camel(key): item for key, item in value.items()} if isinstance(value, dict) else {}


@dataclass
class Reply:
    """One scripted answer: text to stream, a follow-up function call, JSON, or a failure."""

    text: str | None = None
    follow_up: str | None = None
    json: object | None = None
    failure: str | None = None


@dataclass
class RecordedRequest:
    method: str
    path: str
    stream: bool
    model: str
    body: dict
    headers: dict = field(default_factory=dict)  # without the API key


class FakeGeminiHttp:
    def __init__(self, *, api_key: str = API_KEY):
        self.api_key = api_key
        self.errors: list[str] = []
        self.requests: list[RecordedRequest] = []
        self.open_connections = 0
        self._script: collections.deque[Reply] = collections.deque(maxlen=100)
        self._lock = threading.Lock()
        self._loop: BackgroundLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    # --- control (any thread) ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeGeminiHttp":
        self._loop = BackgroundLoop("fake-gemini-http")
        self._server = self._loop.run(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown():
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await self._server.wait_closed()

        self._loop.run(shutdown())
        self._loop.stop()
        self._loop = None

    def queue_text(self, text: str) -> None:
        self._queue(Reply(text=text))

    def queue_follow_up(self, question: str) -> None:
        self._queue(Reply(follow_up=question))

    def queue_json(self, data: object) -> None:
        self._queue(Reply(json=data))

    def queue_failure(self, kind: str) -> None:
        if kind not in FAILURES:
            raise ValueError(f"unknown failure {kind!r}; one of {FAILURES}")
        self._queue(Reply(failure=kind))

    def wait_for_connections(self, count: int, timeout: float = 3.0) -> bool:
        """True once `open_connections` has come down (or up) to `count` (blocks: sync code only)."""
        deadline = time.monotonic() + timeout
        while self.open_connections != count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.open_connections == count

    async def until_connections(self, count: int, timeout: float = 3.0) -> bool:
        """`wait_for_connections` for async tests: the test's loop keeps running meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.open_connections != count and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return self.open_connections == count

    def _queue(self, reply: Reply) -> None:
        with self._lock:
            self._script.append(reply)

    def _next_scripted(self) -> Reply | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _error(self, message: str) -> None:
        self.errors.append(message)

    # --- HTTP/1.1 --------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        self._writers.add(writer)
        try:
            while await self._one_exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            self.open_connections -= 1
            writer.transport.abort()

    async def _one_exchange(self, reader, writer) -> bool:
        """Serve one request; False when the connection is over."""
        request_line = await reader.readline()
        if not request_line:
            return False
        try:
            method, target, _version = request_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        except ValueError:
            self._error(f"malformed request line {request_line!r}")
            return False
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADER_LINES):
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        if "chunked" in headers.get("transfer-encoding", "") or length > _MAX_BODY_BYTES:
            self._error("request body must be JSON with a Content-Length, at most 4 MB")
            await self._send_error(writer, 400)
            return False
        raw = await reader.readexactly(length) if length else b""
        return await self._handle(method, target, headers, raw, reader, writer)

    async def _handle(self, method: str, target: str, headers: dict, raw: bytes, reader, writer) -> bool:
        url = urlsplit(target)
        match = _PATH.match(url.path)
        if method != "POST" or not match:
            self._error(f"unexpected request {method} {url.path}")
            await self._send_error(writer, 404)
            return True
        _version, model, verb = match.groups()
        stream = verb == "streamGenerateContent"
        query = parse_qs(url.query)
        if stream and query != {"alt": ["sse"]}:
            self._error(f"streamGenerateContent must be called with ?alt=sse, got {url.query!r}")
        if not stream and url.query:
            self._error(f"generateContent takes no query, got {url.query!r}")
        if headers.get("x-goog-api-key") != self.api_key:
            self._error("missing or wrong x-goog-api-key")
            await self._send_error(writer, 400, message="API key not valid. Please pass a valid API key.")
            return True
        if not headers.get("content-type", "").startswith("application/json"):
            self._error(f"content-type must be application/json, got {headers.get('content-type')!r}")
        try:
            body = json.loads(raw)
        except ValueError:
            self._error("request body is not JSON")
            await self._send_error(writer, 400)
            return True
        visible = {k: v for k, v in headers.items() if k != "x-goog-api-key"}
        self.requests.append(RecordedRequest(method, url.path, stream, model, body, visible))
        problems = _check_request(body)
        for problem in problems:
            self._error(problem)
        if problems:
            await self._send_error(writer, 400, message="; ".join(problems))
            return True

        reply = self._next_scripted() or _default_reply(body, stream)
        if reply.failure and reply.text is None and reply.json is None and reply.follow_up is None:
            reply = dataclasses.replace(_default_reply(body, stream), failure=reply.failure)  # broken mid-default
        if reply.failure in ("429", "500"):
            await self._send_error(writer, int(reply.failure))
            return True
        if reply.failure == "hang":
            while await reader.read(1024):  # never answer; wait for the client to give up
                pass
            return False
        if stream:
            return await self._stream(writer, model, reply)
        if reply.failure:
            self._error(f"failure {reply.failure!r} only applies to a streamed call")
        await self._send_json(writer, 200, _response(model, _parts(reply), finish=True, usage=True))
        return True

    async def _stream(self, writer, model: str, reply: Reply) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n")
        if reply.follow_up is not None or reply.json is not None:
            events = [_response(model, _parts(reply), finish=True, usage=True)]
        else:
            words = re.findall(r"\S+\s*", reply.text or "")
            pieces = ["".join(words[i : i + 2]) for i in range(0, len(words), 2)] or [""]
            events = [
                _response(model, [{"text": piece}], finish=i == len(pieces) - 1, usage=i == len(pieces) - 1)
                for i, piece in enumerate(pieces)
            ]
        cut_at = 1 if len(events) > 1 else 0  # broken after the first event when there is more
        for index, event in enumerate(events):
            if reply.failure in ("drop", "malformed") and index == cut_at:
                if reply.failure == "malformed":  # a whole, well-framed stream with a line that is not JSON
                    await self._chunk(writer, b'data: {"candidates": [{"content": \r\n\r\n')
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
                    return True
                # Closed without the terminating chunk (a FIN, so what was sent still arrives):
                # the client sees a stream broken in the middle.
                writer.close()
                return False
            await self._chunk(writer, b"data: " + json.dumps(event).encode() + b"\r\n\r\n")
            await asyncio.sleep(_WORD_DELAY_S)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    @staticmethod
    async def _chunk(writer, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()

    async def _send_error(self, writer, status: int, *, message: str | None = None) -> None:
        name, default = _ERRORS[status]
        error = {"code": status, "message": message or default, "status": name}
        await self._send_json(writer, status, {"error": error})

    @staticmethod
    async def _send_json(writer, status: int, data: dict) -> None:
        body = json.dumps(data).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests",
                  500: "Internal Server Error"}[status]
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=UTF-8\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()


# --- what a request must look like ------------------------------------------------------


def _check_request(body: object) -> list[str]:
    if not isinstance(body, dict):
        return ["request body must be a JSON object"]
    problems = [f"unknown request field {key!r}" for key in body if _camel(key) not in _REQUEST_FIELDS]
    body = {_camel(key): value for key, value in body.items()}
    problems += _check_contents(body.get("contents"))
    if "systemInstruction" in body:
        problems += _check_content(body["systemInstruction"], "systemInstruction", roles=("user", None))
    problems += _check_generation_config(body.get("generationConfig"))
    problems += _check_tools(body.get("tools"))
    return problems


def _check_contents(contents: object) -> list[str]:
    if not isinstance(contents, list) or not contents:
        return ["contents must be a non-empty list"]
    problems = []
    for index, content in enumerate(contents):
        problems += _check_content(content, f"contents[{index}]", roles=("user", "model"))
    if isinstance(contents[0], dict) and contents[0].get("role") != "user":
        problems.append("contents must start with a user turn")
    if isinstance(contents[-1], dict) and contents[-1].get("role") != "user":
        problems.append("contents must end with a user turn (the model answers it)")
    return problems


def _check_content(content: object, where: str, *, roles: tuple) -> list[str]:
    if not isinstance(content, dict):
        return [f"{where} must be an object"]
    problems = [f"{where}: unknown field {key!r}" for key in content if key not in ("role", "parts")]
    if content.get("role") not in roles:
        problems.append(f"{where}: role must be one of {roles}, got {content.get('role')!r}")
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        return problems + [f"{where}: parts must be a non-empty list"]
    for index, part in enumerate(map(_camel_keys, parts)):
        if not part or len(set(part) & _PART_DATA) != 1 or set(part) - _PART_FIELDS:
            problems.append(f"{where}.parts[{index}] must hold exactly one known field, got {part!r}")
        elif "text" in part and (not isinstance(part["text"], str) or not part["text"].strip()):
            problems.append(f"{where}.parts[{index}]: text must be a non-empty string")
    return problems


def _check_generation_config(config: object) -> list[str]:
    if config is None:
        return []
    if not isinstance(config, dict):
        return ["generationConfig must be an object"]
    problems = [f"generationConfig: unknown field {key!r}" for key in config if _camel(key) not in _GENERATION_FIELDS]
    config = {_camel(key): value for key, value in config.items()}
    has_schema = "responseSchema" in config or "responseJsonSchema" in config
    if has_schema and config.get("responseMimeType") != "application/json":
        problems.append("a response schema needs responseMimeType application/json")
    if "responseSchema" in config and "responseJsonSchema" in config:
        problems.append("responseSchema and responseJsonSchema are exclusive")
    schema = config.get("responseJsonSchema", config.get("responseSchema"))
    if has_schema and (not isinstance(schema, dict) or not schema.get("type")):
        problems.append("the response schema must be an object with a type")
    return problems


def _check_tools(tools: object) -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, list) or not tools:
        return ["tools must be a non-empty list"]
    problems = []
    for tool in tools:
        tool = _camel_keys(tool)
        declarations = tool.get("functionDeclarations")
        if not isinstance(declarations, list) or not declarations or set(tool) != {"functionDeclarations"}:
            problems.append(f"a tool must hold only non-empty functionDeclarations, got {tool!r}")
            continue
        for declaration in map(_camel_keys, declarations):
            if not declaration or set(declaration) - _FUNCTION_FIELDS:
                problems.append(f"unknown function declaration fields in {declaration!r}")
                continue
            if not _FUNCTION_NAME.match(str(declaration.get("name", ""))):
                problems.append(f"bad function name {declaration.get('name')!r}")
            if "parameters" in declaration and "parametersJsonSchema" in declaration:
                problems.append("parameters and parametersJsonSchema are exclusive")
            schema = declaration.get("parametersJsonSchema", declaration.get("parameters"))
            if schema is not None and (not isinstance(schema, dict) or schema.get("type") not in ("object", "OBJECT")):
                problems.append(f"function {declaration.get('name')!r}: parameters must be an object schema")
    return problems


# --- default replies ----------------------------------------------------------------------


def _text_of(content: object) -> str:
    if not isinstance(content, dict):
        return ""
    return "\n".join(part.get("text", "") for part in content.get("parts") or [] if isinstance(part, dict))


def _default_reply(body: dict, stream: bool) -> Reply:
    body = {_camel(key): value for key, value in body.items()}
    config = {_camel(key): value for key, value in (body.get("generationConfig") or {}).items()}
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    prompt = "\n".join(_text_of(content) for content in body.get("contents") or [])
    if isinstance(schema, dict):
        properties = schema.get("properties") or {}
        if "summary" in properties:
            return Reply(json=_default_evaluation(prompt))
        return Reply(json=_default_draft(prompt))
    return Reply(text=_default_line(_text_of(body.get("systemInstruction"))))


def _default_line(system: str) -> str:
    for line in system.splitlines():
        match = _QUESTION_IN_DIRECTION.match(line.strip())
        if match:
            return f"Thank you. {match.group(1)}"
    return "Thank you for your time. That concludes our interview."


def _default_draft(prompt: str) -> dict:
    match = re.search(r"Draft (\d+) spoken interview questions", prompt)
    count = int(match.group(1)) if match else 3
    stages = ["introduction"] + ["technical"] * max(count - 1, 0)
    return {"questions": [{"text": f"Drafted question {i + 1}?", "stage": stages[i]} for i in range(count)]}


def _default_evaluation(prompt: str) -> dict:
    count = len(re.findall(r"^Question \d+: ", prompt, flags=re.MULTILINE))
    return {
        "questions": [
            {"index": i, "score": 3, "strengths": ["Answered the question."], "concerns": [], "evidence": []}
            for i in range(count)
        ],
        "summary": "A fair interview.",
        "recommendation": "maybe",
    }


def _parts(reply: Reply) -> list[dict]:
    if reply.follow_up is not None:
        return [{"functionCall": {"name": "ask_follow_up", "args": {"question": reply.follow_up}}}]
    if reply.json is not None:
        return [{"text": json.dumps(reply.json)}]
    return [{"text": reply.text or ""}]


def _response(model: str, parts: list[dict], *, finish: bool, usage: bool) -> dict:
    candidate: dict = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    event: dict = {"candidates": [candidate], "modelVersion": model, "responseId": "fake-response"}
    if usage:
        event["usageMetadata"] = {"promptTokenCount": 120, "candidatesTokenCount": 30, "totalTokenCount": 150}
    return event


@pytest.fixture
def gemini_http():
    fake = FakeGeminiHttp().start()
    try:
        yield fake
    finally:
        fake.stop()
    assert fake.errors == []
