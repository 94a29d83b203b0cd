"""Offline speech-to-text with PocketSphinx (the en-us model ships in the wheel).

Cost model: `feed()` is called every ~40 ms per session, mostly with silence. Voice
activity detection (pocketsphinx.Vad, a few microseconds per 30 ms frame) runs right on
the event loop; only audio inside an utterance is handed to a worker thread for decoding,
by a decoder that releases the GIL (see _sphinx_decoder.py).

A frame counts as voiced when the VAD says so and it is louder than `min_speech_dbfs`:
the VAD alone adapts to its input level and fires on faint noise (e.g. after digital
silence, when a microphone is unmuted).

Endpointing: `_START_FRAMES` voiced frames in a row start an utterance (with ~300 ms of
pre-roll so the first word is not clipped); `end_of_utterance_silence_ms` of non-speech
ends it (or, with a `turn_policy`, the silence realtime/turn_taking.py chooses for the
words decoded so far), and the final event's `end_ms` is where the last voiced frame ended.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pocketsphinx

from realtime.audio import Resampler, pcm_to_array
from realtime.providers.base import TranscriptEvent

from ._sphinx_decoder import SphinxDecoder

_RATE = 16000  # the acoustic model's rate; other input rates are resampled
_FRAME_MS = 30
_START_FRAMES = 2  # voiced frames in a row that open an utterance
_PREROLL_MS = 300

# Trade a little accuracy for ~4x less CPU than the defaults (measured on eSpeak speech):
# tighter pruning, fewer Gaussians, and no second-pass searches, which cost 100-250 ms
# at the end of each utterance, right when the candidate waits for a reply.
DEFAULT_DECODER_OPTIONS = {"maxhmmpf": 3000, "maxwpf": 10, "topn": 2, "pl_window": 10, "fwdflat": False, "bestpath": False}

# Decoding is CPU-bound C code that releases the GIL; one thread per core serves all streams.
_executor = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2), thread_name_prefix="sphinx")

# Loading a decoder takes ~0.5 s and ~90 MB. A stream holds one only while the candidate
# speaks (from the start of an utterance to its end), so memory follows concurrent
# speakers rather than connected sessions; idle ones wait in this pool, one kept warm.
_pool: dict[tuple, list[SphinxDecoder]] = collections.defaultdict(list)
_pool_lock = threading.Lock()
_POOL_MAX_IDLE = 4


def _acquire_decoder(options: tuple) -> SphinxDecoder:
    with _pool_lock:
        if _pool[options]:
            return _pool[options].pop()
    return SphinxDecoder(**dict(options))


def _ensure_spare(options: tuple) -> None:
    with _pool_lock:
        if _pool[options]:
            return
    _release_decoder(options, SphinxDecoder(**dict(options)))


def _release_decoder(options: tuple, decoder: SphinxDecoder) -> None:
    with _pool_lock:
        if len(_pool[options]) < _POOL_MAX_IDLE:
            _pool[options].append(decoder)


class PocketsphinxSpeechToText:
    def __init__(
        self,
        end_of_utterance_silence_ms: int = 700,
        vad_mode: int = 2,
        min_speech_dbfs: float = -50.0,
        decoder_options: dict | None = None,
        turn_policy=None,
    ):
        self.turn_policy = turn_policy
        self.end_of_utterance_silence_ms = end_of_utterance_silence_ms
        self.vad_mode = vad_mode
        self.min_speech_dbfs = min_speech_dbfs
        opts = DEFAULT_DECODER_OPTIONS if decoder_options is None else decoder_options
        self._decoder_options = tuple(sorted(opts.items()))

    def open_stream(self, *, sample_rate: int = _RATE) -> "PocketsphinxStream":
        return PocketsphinxStream(
            sample_rate, self.end_of_utterance_silence_ms, self.vad_mode, self.min_speech_dbfs, self._decoder_options,
            self.turn_policy,
        )


class PocketsphinxStream:
    def __init__(
        self, sample_rate: int, end_of_utterance_silence_ms: int, vad_mode: int, min_speech_dbfs: float, options: tuple,
        turn_policy=None,
    ):
        self._policy = turn_policy
        self._question = ""
        self._resampler = Resampler(sample_rate, _RATE) if sample_rate != _RATE else None
        self._vad = pocketsphinx.Vad(vad_mode, _RATE, _FRAME_MS / 1000)
        self._frame_bytes = self._vad.frame_bytes
        # The loudness floor as a sum of squared samples over one frame (no log per frame).
        floor = 32768.0 * 10 ** (min_speech_dbfs / 20)
        self._min_energy = floor * floor * (self._frame_bytes // 2)
        self._end_frames = max(1, round(end_of_utterance_silence_ms / _FRAME_MS))
        self._options = options
        # Make sure a decoder is warm so the first utterance does not wait for one to load.
        _executor.submit(_ensure_spare, options)
        self._decoder: SphinxDecoder | None = None  # held only during an utterance
        self._lock = asyncio.Lock()  # one decode job per stream at a time
        self._closed = False
        # Event-loop-side endpointing state.
        self._leftover = b""
        self._frames_seen = 0  # 30 ms frames since the stream opened: the stream clock
        self._preroll: collections.deque[bytes] = collections.deque(maxlen=_PREROLL_MS // _FRAME_MS)
        self._voiced_run = 0
        self._in_utt = False
        self._silent_run = 0
        self._speech_end_ms = 0.0
        self._generation = 0  # bumped by reset(): results of older decode jobs are dropped
        # Worker-side decoder state (touched only inside decode jobs, which never overlap).
        self._decoding = False
        self._last_partial = ""

    # -- SpeechToTextStream --------------------------------------------------------

    async def feed(self, pcm16: bytes) -> list[TranscriptEvent]:
        if self._closed:
            return []
        if self._resampler is not None:
            pcm16 = self._resampler.process(pcm16)
        ops = self._endpoint(pcm16)
        if not ops:  # silence between utterances: no thread hop at all
            return []
        return await self._run(ops)

    def set_question(self, text: str) -> None:
        """The question the candidate is answering (one signal for the turn policy)."""
        self._question = text or ""

    async def flush(self) -> list[TranscriptEvent]:
        if self._closed or not self._in_utt:
            return []
        self._in_utt = False
        self._voiced_run = 0
        return await self._run([("end", self._speech_end_ms)])

    def reset(self) -> None:
        self._generation += 1
        self._in_utt = False
        self._voiced_run = 0
        self._preroll.clear()
        # The decoder's half-done utterance is discarded by the next decode job ("start").

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            await asyncio.wrap_future(_executor.submit(self._give_back_decoder))

    # -- endpointing (event loop, cheap) --------------------------------------------

    def _endpoint(self, pcm: bytes) -> list[tuple]:
        """Run the VAD over whole frames; return decode operations for the worker:
        ("start",), ("audio", bytes), ("end", end_ms)."""
        data = self._leftover + pcm if self._leftover else pcm
        n = len(data) - len(data) % self._frame_bytes
        self._leftover = data[n:]
        ops: list[tuple] = []
        audio: list[bytes] = []  # contiguous utterance audio not yet put in ops
        for i in range(0, n, self._frame_bytes):
            frame = data[i : i + self._frame_bytes]
            self._frames_seen += 1
            voiced = self._is_speech(frame)
            if not self._in_utt:
                self._preroll.append(frame)
                self._voiced_run = self._voiced_run + 1 if voiced else 0
                if self._voiced_run >= _START_FRAMES:
                    self._in_utt, self._silent_run = True, 0
                    self._speech_end_ms = self._frames_seen * _FRAME_MS
                    ops.append(("start",))
                    audio.extend(self._preroll)
                    self._preroll.clear()
                continue
            audio.append(frame)
            if voiced:
                self._silent_run = 0
                self._speech_end_ms = self._frames_seen * _FRAME_MS
            else:
                self._silent_run += 1
                if self._silent_run >= self._end_frames_now():
                    ops += [("audio", b"".join(audio)), ("end", self._speech_end_ms)]
                    audio.clear()
                    self._in_utt, self._voiced_run = False, 0
        if audio:
            ops.append(("audio", b"".join(audio)))
        return ops

    def _end_frames_now(self) -> int:
        if self._policy is None:
            return self._end_frames
        # The words decoded so far (at most one chunk behind): decode jobs never overlap
        # with this, since feed() awaits each one before the next call.
        needed = self._policy.silence_needed_ms(self._last_partial, question=self._question)
        return max(1, round(needed / _FRAME_MS))

    def _is_speech(self, frame: bytes) -> bool:
        if not self._vad.is_speech(frame):
            return False
        samples = pcm_to_array(frame).astype(np.float32)
        return float(np.dot(samples, samples)) >= self._min_energy

    # -- decoding (worker thread) --------------------------------------------------------

    async def _run(self, ops: list[tuple]) -> list[TranscriptEvent]:
        generation = self._generation
        async with self._lock:
            job = asyncio.wrap_future(_executor.submit(self._decode, ops))
            try:
                events = await asyncio.shield(job)
            except asyncio.CancelledError:
                # The thread goes on decoding: keep the lock until it is done, so no second
                # job (or close()) ever runs on the same decoder at the same time.
                await asyncio.wait({job})
                raise
        return events if generation == self._generation else []

    def _decode(self, ops: list[tuple]) -> list[TranscriptEvent]:
        events: list[TranscriptEvent] = []
        for op in ops:
            decoder = self._decoder
            if op[0] == "start":
                if decoder is None:
                    decoder = self._decoder = _acquire_decoder(self._options)
                elif self._decoding:  # left over from an utterance dropped by reset()
                    decoder.end_utt()
                decoder.start_utt()
                self._decoding, self._last_partial = True, ""
            elif op[0] == "audio" and self._decoding:
                decoder.process_raw(op[1])
                text = decoder.hyp()
                if text and text != self._last_partial:
                    self._last_partial = text
                    events.append(TranscriptEvent(text=text, is_final=False))
            elif op[0] == "end" and self._decoding:
                decoder.end_utt()
                self._decoding = False
                text = decoder.hyp()
                self._give_back_decoder()
                if text:  # an empty final is just noise
                    events.append(TranscriptEvent(text=text, is_final=True, end_ms=float(op[1])))
        return events

    def _give_back_decoder(self) -> None:
        decoder, self._decoder = self._decoder, None
        if decoder is None:
            return
        if self._decoding:
            decoder.end_utt()
            self._decoding = False
        _release_decoder(self._options, decoder)

