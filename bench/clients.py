"""WebSocket clients that speak the interview protocol and timestamp everything.

A `Conn` reads every message on its own task, stamps it with `time.perf_counter()`
on arrival, and keeps it in an inbox for scripted waits. Interim transcripts
("word N", see realtime/providers/synthetic.py and bench/echo_asgi.py) are matched
to the chunks sent: chunks 1..N have been heard, so each gets its latency.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import time
from collections import deque

from websockets.asyncio.client import connect

CHUNK_MS = 40
CHUNK_BYTES = 16000 * CHUNK_MS // 1000 * 2  # PCM16 mono at the input rate


def _audio_message(pcm: bytes) -> str:
    return json.dumps({"type": "client-audio-chunk", "payload": {"data": base64.b64encode(pcm).decode()}},
                      separators=(",", ":"))


def _tone(amplitude: int = 3000) -> bytes:
    n = CHUNK_BYTES // 2
    return b"".join(int(amplitude * math.sin(2 * math.pi * 220 * i / 16000)).to_bytes(2, "little", signed=True)
                    for i in range(n))


VOICED = _audio_message(_tone())  # any non-zero frame is voiced for the synthetic STT
SILENT = _audio_message(bytes(CHUNK_BYTES))  # an all-zero frame ends an utterance
now = time.perf_counter


def message(kind: str, **payload) -> str:
    return json.dumps({"type": kind, "payload": payload} if payload else {"type": kind}, separators=(",", ":"))


class Conn:
    def __init__(self, ws=None):
        self.ws = ws
        self.inbox: deque[tuple[float, dict]] = deque()
        self._arrived = asyncio.Event()
        self.closed: int | None = None
        # chunk -> interim matching
        self.chunks_sent = 0
        self._sent_at: dict[int, float] = {}
        self.heard = 0
        self.recording = False
        self.latencies: list[float] = []  # seconds, for chunks sent while recording
        self.interim_at: dict[int, float] = {}  # N -> arrival, when tracking fan-out
        self.track_interims = False
        self.errors: list[str] = []
        self._reader = asyncio.create_task(self._read()) if ws is not None else None

    @classmethod
    async def open(cls, url: str, headers: dict | None = None) -> "Conn":
        origin = "http://127.0.0.1"  # bench/servers.py allows exactly this origin
        ws = await connect(url, origin=origin, additional_headers=headers, max_size=2**22, compression=None,
                           open_timeout=20, ping_interval=None)
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self._received(raw, now())
        except Exception:
            pass
        finally:
            self.closed = self.ws.close_code or 1006
            self._arrived.set()

    def _received(self, raw: str | bytes, arrived: float) -> None:
        msg = json.loads(raw)
        kind = msg.get("type") or msg.get("event")
        if kind in ("server-live-transcript", "live-transcript"):
            word, _, n = (msg["payload"]["transcript"] if "payload" in msg else msg["transcript"]).partition(" ")
            if word == "word" and n.isdigit():  # synthetic STT or echo: chunks 1..n were heard
                self._heard(int(n), arrived)
                return
        if kind == "server-error":
            self.errors.append(msg["payload"].get("code", "?"))
        self.inbox.append((arrived, msg))
        self._arrived.set()

    def _heard(self, n: int, arrived: float) -> None:
        if self.track_interims:
            self.interim_at[n] = arrived
        for k in range(self.heard + 1, n + 1):
            sent = self._sent_at.pop(k, None)
            if sent is not None and self.recording:
                self.latencies.append(arrived - sent)
        self.heard = max(self.heard, n)

    async def send(self, text: str) -> float:
        sent = now()
        await self.ws.send(text)
        return sent

    async def send_chunk(self, text: str = VOICED) -> float:
        self.chunks_sent += 1
        sent = now()
        self._sent_at[self.chunks_sent] = sent
        await self.ws.send(text)
        return sent

    def unheard(self) -> int:
        """Chunks sent while recording that no interim has covered yet."""
        return len(self._sent_at) if self.recording else 0

    def forget_unheard(self) -> None:
        self._sent_at.clear()

    async def expect(self, kind: str, timeout: float = 10.0, **match) -> tuple[float, dict]:
        """Wait for a message of `kind` (payload matching `match`), dropping the ones before it."""
        deadline = now() + timeout
        while True:
            while self.inbox:
                arrived, msg = self.inbox.popleft()
                payload = msg.get("payload", msg)
                if msg.get("type", msg.get("event")) == kind and all(payload.get(k) == v for k, v in match.items()):
                    return arrived, payload
            if self.closed is not None:
                raise ConnectionError(f"closed ({self.closed}) while waiting for {kind}")
            remaining = deadline - now()
            if remaining <= 0:
                raise TimeoutError(f"no {kind} within {timeout}s")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def collect(self, seconds: float) -> list[tuple[float, dict]]:
        """Everything that arrives within `seconds` (and what was already waiting)."""
        await asyncio.sleep(seconds)
        items = list(self.inbox)
        self.inbox.clear()
        return items

    def clear(self) -> None:
        self.inbox.clear()

    async def stream(self, seconds: float, *, start: float | None = None, text: str = VOICED) -> None:
        """Send one chunk every 40 ms, on an absolute schedule (late sends do not drift)."""
        start = start if start is not None else now()
        count = int(seconds * 1000 / CHUNK_MS)
        for k in range(count):
            delay = start + k * CHUNK_MS / 1000 - now()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.closed is not None:
                return
            await self.send_chunk(text)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        try:
            await asyncio.wait_for(self.ws.close(), 5)
        except Exception:
            pass


class FastConn(Conn):
    """The same client on a bare asyncio protocol: the load generator of the capacity figures.

    The `websockets` client costs about 50 us of CPU per chunk sent and interim received;
    with 4 workers' worth of sessions that is half a core of a 2-core machine, which then
    competes with the workers it measures. This one writes a chunk as one prebuilt masked
    frame (the mask is fixed per frame text: the server unmasks it all the same) and reads
    an interim ("word N") without a JSON parse, for about a quarter of that. Everything
    else (auth, expect, inbox) is Conn's. Pings are answered; no extensions, no fragments
    sent.
    """

    _frames: dict[str, bytes] = {}

    @classmethod
    async def open(cls, url: str, headers: dict | None = None) -> "FastConn":
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        conn = cls()
        loop = asyncio.get_running_loop()
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: _FastProtocol(conn), parts.hostname, parts.port), 20)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {parts.path or '/'} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                 "Origin: http://127.0.0.1"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        conn.transport, conn.protocol = transport, protocol
        try:
            await asyncio.wait_for(protocol.upgraded, 20)
        except BaseException:
            transport.close()
            raise
        return conn

    async def send(self, text: str) -> float:
        sent = now()
        self._write(text)
        return sent

    async def send_chunk(self, text: str = VOICED) -> float:
        return self.send_chunk_now(text)

    def send_chunk_now(self, text: str = VOICED) -> float:
        self.chunks_sent += 1
        sent = now()
        self._sent_at[self.chunks_sent] = sent
        self._write(text)
        return sent

    def _write(self, text: str) -> None:
        if self.closed is not None:
            raise ConnectionError(f"closed ({self.closed})")
        frame = self._frames.get(text)
        if frame is None:
            frame = _client_frame(0x1, text.encode())
            if text in (VOICED, SILENT):
                self._frames[text] = frame
        self.transport.write(frame)

    async def close(self) -> None:
        if self.closed is None:
            self.transport.write(_client_frame(0x8, (1000).to_bytes(2, "big")))
            try:
                await asyncio.wait_for(self.protocol.lost, 5)
            except Exception:
                pass
        self.transport.close()


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame (RFC 6455, 5.2)."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    repeated = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(n, "little")
    return head + mask + masked


_INTERIM = b'{"type":"server-live-transcript","payload":{"transcript":"word '


class _FastProtocol(asyncio.Protocol):
    def __init__(self, conn: FastConn):
        self.conn = conn
        self.buffer = bytearray()
        self.handshaken = False
        loop = asyncio.get_running_loop()
        self.upgraded: asyncio.Future = loop.create_future()
        self.lost: asyncio.Future = loop.create_future()
        self.transport = None
        self.fragments: bytearray | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        arrived = now()
        buf = self.buffer
        buf += data
        if not self.handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:end]).split(b"\r\n", 1)[0]
            del buf[:end + 4]
            if b" 101 " not in status + b" ":
                if not self.upgraded.done():
                    self.upgraded.set_exception(ConnectionError(f"handshake refused: {status.decode(errors='replace')}"))
                self.transport.close()
                return
            self.handshaken = True
            self.upgraded.set_result(None)
        conn = self.conn
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            size, start = b1 & 0x7F, 2
            if size == 126:
                if len(buf) < 4:
                    return
                size, start = int.from_bytes(buf[2:4], "big"), 4
            elif size == 127:
                if len(buf) < 10:
                    return
                size, start = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < start + size:
                return
            payload = bytes(buf[start:start + size])
            del buf[:start + size]
            opcode = b0 & 0x0F
            if opcode == 0x0:  # a continuation
                if self.fragments is None:
                    continue
                self.fragments += payload
                if not b0 & 0x80:
                    continue
                payload, opcode, self.fragments = bytes(self.fragments), self.fragment_opcode, None
            elif not b0 & 0x80 and opcode in (0x1, 0x2):
                self.fragments, self.fragment_opcode = bytearray(payload), opcode
                continue
            if opcode == 0x1:
                if payload.startswith(_INTERIM):
                    digits = payload[len(_INTERIM):payload.find(b'"', len(_INTERIM))]
                    if digits.isdigit():
                        conn._heard(int(digits), arrived)
                        continue
                conn._received(payload, arrived)
            elif opcode == 0x9:
                self.transport.write(_client_frame(0xA, payload))
            elif opcode == 0x8:
                conn.closed = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                conn._arrived.set()
                self.transport.close()
                return

    def connection_lost(self, exc) -> None:
        if self.conn.closed is None:
            self.conn.closed = 1006
        self.conn._arrived.set()
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("connection lost during the handshake"))
        if not self.lost.done():
            self.lost.set_result(None)


async def stream_all(conns: list[Conn], seconds: float, start: float, text: str = VOICED) -> None:
    """Every connection sends a chunk every 40 ms for `seconds`, connection i offset by
    i/N of the period (independent clients, spread evenly). FastConns are driven by one
    task that wakes at most once a millisecond and sends whatever is due (a chunk's time
    is taken when it is written); other connections each run their own `stream`."""
    period = CHUNK_MS / 1000
    if not conns:
        return
    if not all(isinstance(conn, FastConn) for conn in conns):
        await asyncio.gather(*(conn.stream(seconds, start=start + period * i / len(conns), text=text)
                               for i, conn in enumerate(conns)))
        return
    count = int(seconds * 1000 / CHUNK_MS)
    offsets = [period * i / len(conns) for i in range(len(conns))]
    for k in range(count):
        base = start + k * period
        i = 0
        while i < len(conns):
            due = base + offsets[i]
            delay = due - now()
            if delay > 0.0005:
                await asyncio.sleep(max(delay, 0.001))
            while i < len(conns) and base + offsets[i] <= now() + 0.0005:
                conn = conns[i]
                if conn.closed is None:
                    conn.send_chunk_now(text)
                i += 1


async def open_session(url: str, info: dict, *, wait_opening: bool = True, fast: bool = False) -> Conn:
    """Connect, authenticate and (by default) let the interviewer's opening finish."""
    conn = await (FastConn if fast else Conn).open(url)
    await conn.send(message("client-auth", token=info["token"], sessionId=info["sessionId"]))
    await conn.expect("server-auth-success", timeout=30)
    if wait_opening:
        await conn.expect("server-ai-speech-end", timeout=30)
    return conn


async def open_many(opener, items: list, parallel: int = 20) -> list[Conn]:
    gate = asyncio.Semaphore(parallel)

    async def one(item):
        async with gate:
            return await opener(item)

    results = await asyncio.gather(*(one(item) for item in items), return_exceptions=True)
    conns = [r for r in results if isinstance(r, Conn)]
    failures = [r for r in results if not isinstance(r, Conn)]
    if failures:
        await close_all(conns)
        raise RuntimeError(f"{len(failures)} of {len(items)} connections failed: {failures[0]!r}")
    return conns


async def close_all(conns: list[Conn]) -> None:
    await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
