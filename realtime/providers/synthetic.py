"""Instant, deterministic providers for load tests (REALTIME_PROVIDERS=synthetic).

They cost almost nothing, so a benchmark measures the server around them: the socket,
the protocol, the runtime, the pacing, the channel layer.

The speech-to-text stream reads its input as 40 ms frames (640 samples at 16 kHz,
counted from the start of the stream; a `feed()` may carry several frames):

- a frame with any non-zero sample is *voiced*: it opens or continues an utterance;
- an all-zero frame right after a voiced one *ends* the utterance;
- other all-zero frames are silence between utterances and report nothing.

Every `feed()` that carries a voiced frame reports one interim transcript,
"word N", where N is the 1-based number of the last frame fed since the stream opened
(so a client that sent 40 ms chunks knows that chunks 1..N have been heard). An ending
frame reports a final transcript, "synthetic answer of K frames" (K voiced frames),
whose end_ms is where the last voiced frame ended.

The interviewer answers every request with `LINE` at once; the speech synthesizer turns
each sentence into `TONE_SECONDS` of a 440 Hz tone, yielded in 200 ms pieces.
"""

from __future__ import annotations

import math
import struct
from functools import lru_cache
from typing import AsyncIterator

from .base import InterviewerRequest, Providers, TranscriptEvent

FRAME_MS = 40
LINE = "Thank you, please go on."
TONE_SECONDS = 1.0
_PIECE_MS = 200


class SyntheticSpeechToText:
    def open_stream(self, *, sample_rate: int) -> "SyntheticStream":
        return SyntheticStream(sample_rate)


class SyntheticStream:
    def __init__(self, sample_rate: int):
        self._frame_bytes = sample_rate * FRAME_MS // 1000 * 2
        self._zero_frame = bytes(self._frame_bytes)
        self._pending = b""
        self._frames = 0  # frames fed since the stream opened
        self._voiced = 0  # voiced frames in the current utterance

    async def feed(self, pcm16: bytes) -> list[TranscriptEvent]:
        data = self._pending + pcm16 if self._pending else pcm16
        whole = len(data) - len(data) % self._frame_bytes
        self._pending = data[whole:]
        events: list[TranscriptEvent] = []
        heard = False
        for start in range(0, whole, self._frame_bytes):
            self._frames += 1
            if data[start : start + self._frame_bytes] != self._zero_frame:
                self._voiced += 1
                heard = True
            elif self._voiced:
                if heard:
                    events.append(TranscriptEvent(text=f"word {self._frames - 1}", is_final=False))
                    heard = False
                events.append(self._final(end_ms=(self._frames - 1) * FRAME_MS))
        if heard:
            events.append(TranscriptEvent(text=f"word {self._frames}", is_final=False))
        return events

    async def flush(self) -> list[TranscriptEvent]:
        return [self._final(end_ms=self._frames * FRAME_MS)] if self._voiced else []

    def reset(self) -> None:
        self._voiced = 0

    async def close(self) -> None:
        self._voiced = 0

    def _final(self, *, end_ms: float) -> TranscriptEvent:
        event = TranscriptEvent(text=f"synthetic answer of {self._voiced} frames", is_final=True, end_ms=float(end_ms))
        self._voiced = 0
        return event


class SyntheticInterviewer:
    async def respond(self, request: InterviewerRequest) -> AsyncIterator[str]:
        yield LINE


class SyntheticTextToSpeech:
    def __init__(self, sample_rate: int = 24000):
        self.sample_rate = sample_rate

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        tone = _tone(self.sample_rate)
        piece = self.sample_rate * _PIECE_MS // 1000 * 2
        for start in range(0, len(tone), piece):
            yield tone[start : start + piece]


@lru_cache(maxsize=4)
def _tone(sample_rate: int) -> bytes:
    count = int(sample_rate * TONE_SECONDS)
    samples = (int(8000 * math.sin(2 * math.pi * 440 * i / sample_rate)) for i in range(count))
    return struct.pack(f"<{count}h", *samples)


def build(config: dict) -> Providers:
    return Providers(
        stt=SyntheticSpeechToText(),
        interviewer=SyntheticInterviewer(),
        tts=SyntheticTextToSpeech(sample_rate=config["OUTPUT_SAMPLE_RATE"]),
        name="synthetic",
    )
