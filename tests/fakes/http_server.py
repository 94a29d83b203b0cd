"""A tiny HTTP/1.1 server for the vendor fakes, on a BackgroundLoop.

Written on raw asyncio streams (not http.server) so a fake controls the wire exactly:
chunked streaming with pauses, a connection dropped mid-body, a request that is never
answered. It serves concurrent keep-alive connections, counts the ones open and the
responses still being streamed, and records every request it parsed.

Vendor fakes subclass `FakeHttpServer` and implement `handle(request, response)`.
"""

from __future__ import annotations

import asyncio
import collections
import http
import json
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from . import BackgroundLoop

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_SCRIPTED = 64  # replies waiting per endpoint
MAX_RECORDED = 500  # requests kept for assertions


# --- what a test can script instead of a normal reply -----------------------------------


@dataclass(frozen=True)
class HttpStatus:
    """Answer with this status and the vendor's error JSON (or `body` when given)."""

    status: int
    body: dict | None = None


@dataclass(frozen=True)
class Hang:
    """Read the request, then never answer (after `after_chunks` body chunks, if set)."""

    after_chunks: int | None = None


@dataclass(frozen=True)
class DropMidStream:
    """Start a streamed 200 reply, send `after_chunks` chunks, then cut the connection."""

    after_chunks: int = 2


# --- the wire ---------------------------------------------------------------------------


@dataclass
class HttpRequest:
    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    _json: object = field(default=None, repr=False)

    def json(self) -> object:
        """The body as JSON (ValueError when it is not)."""
        if self._json is None:
            self._json = json.loads(self.body.decode("utf-8"))
        return self._json


class HttpResponse:
    """Writes one response on a connection; knows when the client has gone away."""

    def __init__(self, server: "FakeHttpServer", reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._server = server
        self._reader = reader
        self._writer = writer
        self.started = False
        self.streaming = False  # a chunked body was started (counted in open_streams)
        self.finished = False
        self.keep_open = True  # False once the connection must not serve another request

    @property
    def client_gone(self) -> bool:
        return self._writer.is_closing() or self._reader.at_eof()

    def _head(self, status: int, headers: dict[str, str]) -> bytes:
        assert not self.started, "a response was already started"
        self.started = True
        reason = http.HTTPStatus(status).phrase
        lines = [f"HTTP/1.1 {status} {reason}"] + [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def send_bytes(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        head = {"content-type": content_type, "content-length": str(len(body)), **(headers or {})}
        self._writer.write(self._head(status, head) + body)
        await self._writer.drain()
        self.finished = True

    async def send_json(self, status: int, payload: object, headers: dict | None = None) -> None:
        await self.send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    async def start_stream(self, status: int, content_type: str, headers: dict | None = None) -> None:
        head = {"content-type": content_type, "transfer-encoding": "chunked", **(headers or {})}
        self._writer.write(self._head(status, head))
        self.streaming = True
        self._server.open_streams += 1
        await self._writer.drain()

    async def send_chunk(self, data: bytes) -> bool:
        """Send one body chunk; False when the client has closed the connection."""
        if self.client_gone:
            return False
        try:
            self._writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            await self._writer.drain()
        except ConnectionError:
            return False
        return True

    async def end_stream(self) -> None:
        self._writer.write(b"0\r\n\r\n")
        await self._writer.drain()
        self.finished = True

    async def drop(self) -> None:
        """Cut the connection now, mid-response."""
        self.keep_open = False
        self._writer.transport.abort()

    async def hang(self) -> None:
        """Never answer: wait until the client gives up and closes the connection."""
        self.keep_open = False
        while await self._reader.read(65536):
            pass  # discard anything the client still sends


# --- the server -------------------------------------------------------------------------


class FakeHttpServer:
    """Base of the vendor fakes: start/stop, counters, records, scripted replies."""

    name = "fake-http"

    def __init__(self) -> None:
        self.errors: collections.deque[str] = collections.deque(maxlen=200)
        self.requests: collections.deque[HttpRequest] = collections.deque(maxlen=MAX_RECORDED)
        self.open_connections = 0
        self.open_streams = 0  # streamed responses started and not yet ended
        self.total_connections = 0
        self._scripts: dict[str, collections.deque] = {}
        self._lock = threading.Lock()
        self._background: BackgroundLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self.port = 0

    # -- lifecycle --

    def start(self) -> "FakeHttpServer":
        self._background = BackgroundLoop(name=self.name)
        self._server = self._background.run(asyncio.start_server(self._on_connection, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._background is None:
            return
        self._background.run(self._shutdown())
        self._background.stop()
        self._background = None

    async def _shutdown(self) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- scripting and records (called from any thread) --

    def script(self, endpoint: str, *replies) -> None:
        with self._lock:
            queue = self._scripts.setdefault(endpoint, collections.deque())
            if len(queue) + len(replies) > MAX_SCRIPTED:
                raise ValueError(f"at most {MAX_SCRIPTED} scripted replies per endpoint")
            queue.extend(replies)

    def next_scripted(self, endpoint: str):
        with self._lock:
            queue = self._scripts.get(endpoint)
            return queue.popleft() if queue else None

    def record_error(self, message: str) -> None:
        self.errors.append(message)

    async def wait_idle(self, timeout: float = 3.0) -> bool:
        """From a test's own loop: wait until no connection or stream is open (True) or time out."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.open_connections or self.open_streams:
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    # -- per connection --

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        self.open_connections += 1
        self.total_connections += 1
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    break
                self.requests.append(request)
                response = HttpResponse(self, reader, writer)
                try:
                    await self.handle(request, response)
                finally:
                    if response.streaming:
                        self.open_streams -= 1
                if not response.finished:
                    if not response.started and response.keep_open and not response.client_gone:
                        self.record_error(f"{self.name}: no reply to {request.method} {request.path}")
                    break
                if request.headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: that is its right
        except asyncio.CancelledError:
            pass  # the fake is stopping
        except Exception as exc:  # a bug in the fake must fail the test, not vanish
            self.record_error(f"{self.name} crashed: {exc!r}")
        finally:
            writer.transport.abort()
            self.open_connections -= 1
            self._tasks.discard(task)

    async def _read_request(self, reader: asyncio.StreamReader) -> HttpRequest | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                self.record_error(f"{self.name}: truncated request head {exc.partial[:80]!r}")
            return None
        except asyncio.LimitOverrunError:
            self.record_error(f"{self.name}: request head over {MAX_HEADER_BYTES} bytes")
            return None
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError:
            self.record_error(f"{self.name}: malformed request line {lines[0]!r}")
            return None
        if version != "HTTP/1.1":
            self.record_error(f"{self.name}: unexpected HTTP version {version}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            name = name.strip().lower()
            headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
        if "chunked" in headers.get("transfer-encoding", ""):
            self.record_error(f"{self.name}: chunked request bodies are not expected")
            return None
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_BODY_BYTES:
            self.record_error(f"{self.name}: request body of {length} bytes")
            return None
        body = await reader.readexactly(length) if length else b""
        parts = urlsplit(target)
        return HttpRequest(method=method, target=target, path=parts.path, query=parse_qs(parts.query),
                           headers=headers, body=body)

    async def handle(self, request: HttpRequest, response: HttpResponse) -> None:
        raise NotImplementedError


def json_body_or_error(server: FakeHttpServer, request: HttpRequest) -> dict | None:
    """The request's JSON object, or None after recording why it is not one."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        server.record_error(f"{request.path}: content-type {request.headers.get('content-type')!r}, not JSON")
        return None
    try:
        body = request.json()
    except ValueError as exc:
        server.record_error(f"{request.path}: body is not JSON ({exc})")
        return None
    if not isinstance(body, dict):
        server.record_error(f"{request.path}: body is not a JSON object")
        return None
    return body
