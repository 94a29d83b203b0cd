"""The candidate's side of an OpenAI Realtime connection: audio in, transcripts out.

A `SpeechToTextStream` over a `RealtimeLink`, used alone (a transcription session) or
as the `stt` of a speech-to-speech session. Audio is resampled to 24 kHz and appended
with `input_audio_buffer.append`; the server's voice activity detection commits each
turn, and its transcription arrives as `conversation.item.input_audio_transcription.delta`
(reported as an interim: the item's text so far) and `...completed` (the final).

`feed()` never waits for the connection: the first feed starts connecting, and audio
fed meanwhile is kept (the newest `max_pending_ms` of it) and sent once connected.
A failure of the connection makes the next feed() raise once; a later feed reconnects.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import logging
import time

from realtime.audio import Resampler, pcm_duration_ms

from .base import TranscriptEvent
from .openai_realtime_link import OPENAI_SAMPLE_RATE, Pulse, RealtimeError, RealtimeLink

log = logging.getLogger(__name__)

MAX_EVENTS = 256  # transcript events waiting for the next feed()
MAX_TRACKED_ITEMS = 32  # items being transcribed, or forgotten by reset()
APPEND_BYTES = OPENAI_SAMPLE_RATE * 2  # at most 1 s of audio per append event
MIN_COMMIT_MS = 100  # the API refuses to commit less


class InputTranscription:
    """SpeechToTextStream whose recognition happens on a realtime connection."""

    def __init__(self, link: RealtimeLink, *, sample_rate: int, max_pending_ms: float = 10_000,
                 flush_timeout_s: float = 2.0, owns_link: bool = True):
        self._link = link
        self._owns_link = owns_link  # a speech-to-speech session closes its shared link itself
        self._input_rate = sample_rate
        self._resampler = Resampler(sample_rate, OPENAI_SAMPLE_RATE)
        self._pending: collections.deque[bytes] = collections.deque()
        self._pending_bytes = 0
        self._max_pending_bytes = int(OPENAI_SAMPLE_RATE * 2 * max_pending_ms / 1000)
        self._flush_timeout_s = flush_timeout_s
        self._events: collections.deque[TranscriptEvent] = collections.deque(maxlen=MAX_EVENTS)
        self._texts: dict[str, str] = {}  # item id -> its transcript so far
        self._stopped_at: dict[str, float] = {}  # item id -> where its speech ended (connection ms)
        self._awaiting: dict[str, None] = {}  # committed items whose transcript is not complete
        self._forgotten: collections.deque[str] = collections.deque(maxlen=MAX_TRACKED_ITEMS)
        self._commit_pending = False  # our own commit is not acknowledged yet
        self._changed = Pulse()
        self._send_lock = asyncio.Lock()
        self._reported_failures = link.failures
        self._epoch = 0  # the connection the counters below refer to
        self._fed_ms = 0.0  # stream time: audio fed since the stream opened
        self._origin_ms = 0.0  # stream time at which the current connection's audio starts
        self._uncommitted_ms = 0.0
        # The latest finals: a speech-to-speech session tells a spoken answer from a typed one.
        self.recent_finals: collections.deque[str] = collections.deque(maxlen=8)

    # --- the SpeechToTextStream interface -------------------------------------------------

    async def feed(self, pcm16: bytes) -> list[TranscriptEvent]:
        self._fed_ms += pcm_duration_ms(len(pcm16), self._input_rate)
        self._keep(self._resampler.process(pcm16))
        self._raise_new_failure()
        if self._link.is_open:
            try:
                await self._send_pending()
            except RealtimeError:
                self._raise_new_failure()  # the connection failed just now: report it once
                raise
        else:
            self._link.start()
        return self._take_events()

    async def flush(self) -> list[TranscriptEvent]:
        """Commit what was said so far and wait (bounded) for its transcript."""
        self._raise_new_failure()
        if not self._link.is_open:
            return self._take_events()
        await self._send_pending()
        if self._uncommitted_ms >= MIN_COMMIT_MS:
            self._commit_pending = True
            await self._link.send({"type": "input_audio_buffer.commit"})
        deadline = time.monotonic() + self._flush_timeout_s
        while (self._commit_pending or self._awaiting) and self._link.is_open:
            try:
                await self._changed.wait(max(deadline - time.monotonic(), 0.0))
            except TimeoutError:
                log.info("OpenAI Realtime: no transcript within %.1f s of a flush", self._flush_timeout_s)
                break
        self._commit_pending = False
        return self._take_events()

    def reset(self) -> None:
        """Drop the current utterance: the audio not yet committed and any item being transcribed."""
        self._pending.clear()
        self._pending_bytes = 0
        self._resampler = Resampler(self._input_rate, OPENAI_SAMPLE_RATE)  # nor the tail it holds
        self._events.clear()
        self._forgotten.extend(self._texts)
        self._forgotten.extend(self._awaiting)
        self._texts.clear()
        self._awaiting.clear()
        self._commit_pending = False
        if self._uncommitted_ms > 0 and self._link.send_nowait({"type": "input_audio_buffer.clear"}):
            self._uncommitted_ms = 0.0
        self._changed.notify()

    async def close(self) -> None:
        self._changed.notify()
        if self._owns_link:
            await self._link.close()

    # --- events from the connection -------------------------------------------------------

    def handle(self, event: dict) -> bool:
        """Take an input-side event; False when it is not one."""
        kind = event["type"]
        item_id = event.get("item_id")
        if kind == "input_audio_buffer.speech_stopped":
            self._stopped_at[item_id] = float(event.get("audio_end_ms") or 0)
            _trim(self._stopped_at)
        elif kind == "input_audio_buffer.committed":
            self._uncommitted_ms = 0.0
            self._commit_pending = False
            if item_id not in self._forgotten:
                self._awaiting[item_id] = None
                _trim(self._awaiting)
        elif kind == "input_audio_buffer.cleared":
            self._uncommitted_ms = 0.0
        elif kind == "conversation.item.input_audio_transcription.delta":
            if item_id not in self._forgotten:
                text = self._texts.get(item_id, "") + (event.get("delta") or "")
                self._texts[item_id] = text
                _trim(self._texts)
                if text.strip():
                    self._events.append(TranscriptEvent(text=text.strip(), is_final=False))
        elif kind == "conversation.item.input_audio_transcription.completed":
            self._complete(item_id, event.get("transcript") or "")
        elif kind == "conversation.item.input_audio_transcription.failed":
            log.warning("OpenAI Realtime: transcription of a turn failed (%s)", (event.get("error") or {}).get("code"))
            self._complete(item_id, "")
        elif kind == "error":  # only benign ones reach owners: our commit found nothing to commit
            if (event.get("error") or {}).get("code") == "input_audio_buffer_commit_empty":
                self._commit_pending = False
        else:
            return False
        self._changed.notify()
        return True

    def _complete(self, item_id: str, transcript: str) -> None:
        self._texts.pop(item_id, None)
        self._awaiting.pop(item_id, None)
        stopped_at = self._stopped_at.pop(item_id, None)
        if item_id in self._forgotten or not transcript.strip():
            return
        end_ms = self._origin_ms + stopped_at if stopped_at is not None else self._fed_ms
        self._events.append(TranscriptEvent(text=transcript.strip(), is_final=True, end_ms=end_ms))
        self.recent_finals.append(transcript.strip())

    def connection_lost(self) -> None:
        """The connection failed: wake a waiting flush()."""
        self._changed.notify()

    # --- helpers ------------------------------------------------------------------------

    def _keep(self, pcm: bytes) -> None:
        """Hold audio until it can be sent: the newest of it when there is too much."""
        if not pcm:
            return
        self._pending.append(pcm)
        self._pending_bytes += len(pcm)
        while self._pending_bytes > self._max_pending_bytes and len(self._pending) > 1:
            self._pending_bytes -= len(self._pending.popleft())

    async def _send_pending(self) -> None:
        async with self._send_lock:  # feed() and flush() may overlap: audio stays in order
            if self._epoch != self._link.epoch:  # a new connection: its audio clock starts at 0
                self._epoch = self._link.epoch
                self._origin_ms = self._fed_ms - pcm_duration_ms(self._pending_bytes, OPENAI_SAMPLE_RATE)
                self._uncommitted_ms = 0.0
                self._texts.clear()
                self._awaiting.clear()
                self._stopped_at.clear()
            if not self._pending:
                return
            audio = b"".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            for start in range(0, len(audio), APPEND_BYTES):
                piece = audio[start : start + APPEND_BYTES]
                await self._link.send({"type": "input_audio_buffer.append",
                                       "audio": base64.b64encode(piece).decode("ascii")})
                self._uncommitted_ms += pcm_duration_ms(len(piece), OPENAI_SAMPLE_RATE)

    def _raise_new_failure(self) -> None:
        if self._link.failures != self._reported_failures:
            self._reported_failures = self._link.failures
            raise RealtimeError(f"OpenAI Realtime transcription failed: {self._link.failure}") from self._link.failure

    def _take_events(self) -> list[TranscriptEvent]:
        events = list(self._events)
        self._events.clear()
        return events


def _trim(mapping: dict) -> None:
    while len(mapping) > MAX_TRACKED_ITEMS:
        mapping.pop(next(iter(mapping)))


TURN_DETECTIONS = ("server_vad", "semantic_vad", "none")


def turn_detection_config(name: str, *, silence_ms: int, conversational: bool) -> dict | None:
    """The `turn_detection` of a session: None ("none") leaves turns to flush().

    In a conversation the runtime decides when the interviewer speaks and handles
    barge-in itself, so the server neither answers nor cancels on its own.
    """
    if name not in TURN_DETECTIONS:
        raise ValueError(f"unknown OpenAI turn detection {name!r}; choose one of {', '.join(TURN_DETECTIONS)}")
    if name == "none":
        return None
    config: dict = {"type": name}
    if name == "server_vad":
        config["silence_duration_ms"] = int(silence_ms)
    if conversational:
        config.update(create_response=False, interrupt_response=False)
    return config


def input_audio_config(*, transcription_model: str, turn_detection: str, silence_ms: int,
                       conversational: bool) -> dict:
    """`session.audio.input`: 24 kHz PCM, transcribed, with the chosen turn detection."""
    return {
        "format": {"type": "audio/pcm", "rate": OPENAI_SAMPLE_RATE},
        "transcription": {"model": transcription_model},
        "turn_detection": turn_detection_config(turn_detection, silence_ms=silence_ms,
                                                conversational=conversational),
    }
