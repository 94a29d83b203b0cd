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
    def __init__(self, ws):
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
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, headers: dict | None = None) -> "Conn":
        origin = "http://127.0.0.1"  # bench/servers.py allows exactly this origin
        ws = await connect(url, origin=origin, additional_headers=headers, max_size=2**22, compression=None,
                           open_timeout=20, ping_interval=None)
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                arrived = now()
                msg = json.loads(raw)
                kind = msg.get("type") or msg.get("event")
                if kind in ("server-live-transcript", "live-transcript"):
                    word, _, n = (msg["payload"]["transcript"] if "payload" in msg else msg["transcript"]).partition(" ")
                    if word == "word" and n.isdigit():  # synthetic STT or echo: chunks 1..n were heard
                        self._heard(int(n), arrived)
                        continue
                if kind == "server-error":
                    self.errors.append(msg["payload"].get("code", "?"))
                self.inbox.append((arrived, msg))
                self._arrived.set()
        except Exception:
            pass
        finally:
            self.closed = self.ws.close_code or 1006
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
        self._reader.cancel()
        try:
            await asyncio.wait_for(self.ws.close(), 5)
        except Exception:
            pass


async def open_session(url: str, info: dict, *, wait_opening: bool = True) -> Conn:
    """Connect, authenticate and (by default) let the interviewer's opening finish."""
    conn = await Conn.open(url)
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
