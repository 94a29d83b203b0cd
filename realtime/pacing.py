"""Send synthesized speech in small chunks, near real time, with a bounded lead.

The client can only be ahead of what it has heard by `lead_ms`, so an interrupt
leaves little unplayed audio, and the server knows at any moment how much the
candidate has heard.
"""

from __future__ import annotations

import time
from typing import Awaitable, Callable

import asyncio

SendChunk = Callable[[bytes, int], Awaitable[None]]


class SpeechPacer:
    def __init__(self, *, sample_rate: int, chunk_ms: int, lead_ms: int, send_chunk: SendChunk, clock=time.monotonic):
        self._bytes_per_ms = sample_rate * 2 / 1000
        self._chunk_bytes = int(self._bytes_per_ms * chunk_ms) & ~1
        self._lead_s = lead_ms / 1000
        self._send_chunk = send_chunk
        self._clock = clock
        self._pending = bytearray()
        self._seq = 0
        self._sent_ms = 0.0
        # Wall time at which the client will have played everything sent so far.
        self._playhead_end = 0.0

    @property
    def sent_ms(self) -> float:
        return self._sent_ms

    def played_ms(self) -> float:
        """Audio the client has played by now, assuming it plays what it gets without gaps."""
        unplayed = max(0.0, self._playhead_end - self._clock())
        return max(0.0, self._sent_ms - unplayed * 1000)

    def remaining_s(self) -> float:
        return max(0.0, self._playhead_end - self._clock())

    async def push(self, pcm: bytes) -> None:
        self._pending += pcm
        while len(self._pending) >= self._chunk_bytes:
            chunk = bytes(self._pending[: self._chunk_bytes])
            del self._pending[: self._chunk_bytes]
            await self._send(chunk)

    async def finish(self) -> None:
        if self._pending:
            chunk, self._pending = bytes(self._pending), bytearray()
            await self._send(chunk)

    async def _send(self, chunk: bytes) -> None:
        ahead = self._playhead_end - self._clock()
        if ahead > self._lead_s:
            await asyncio.sleep(ahead - self._lead_s)
        now = self._clock()
        duration_s = len(chunk) / self._bytes_per_ms / 1000
        self._playhead_end = max(self._playhead_end, now) + duration_s
        self._sent_ms += duration_s * 1000
        seq, self._seq = self._seq, self._seq + 1
        await self._send_chunk(chunk, seq)
