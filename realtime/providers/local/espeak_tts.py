"""Offline text-to-speech with eSpeak NG (library and voices from the espeakng-loader wheel).

eSpeak NG keeps process-global state and is not thread-safe, so every call into it runs on
one dedicated worker thread. Synthesis is synchronous there: the library calls our callback
every ~50 ms of audio, and we pass each piece straight on (resampled) to the consumer, so
the first audio is out long before the whole text is done.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator, Callable

import espeakng_loader

from realtime.audio import Resampler

# From espeak-ng/speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_BUFFER_MS = 50  # how much audio eSpeak hands to the callback at a time



class _Voice(ctypes.Structure):  # espeak_VOICE, for selecting a voice by language
    _fields_ = [
        ("name", ctypes.c_char_p), ("languages", ctypes.c_char_p), ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p),
    ]  # fmt: skip


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

# The one thread that ever touches eSpeak; jobs queue up here, so synthesis is serialized.
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak")


class _Job:
    """One synthesis request, as seen by the worker thread."""

    def __init__(self, text: str, voice: str, rate_wpm: int, sample_rate: int, sink: Callable[[bytes], None]):
        self.text = text
        self.voice = voice
        self.rate_wpm = rate_wpm
        self.sink = sink  # receives resampled PCM16 pieces
        self.cancelled = threading.Event()
        self.resampler: Resampler | None = None
        self.sample_rate = sample_rate


class _Engine:
    """The eSpeak library, initialized once. Only used from the worker thread."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        self.native_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, espeakng_loader.get_data_path().encode(), 0
        )
        if self.native_rate <= 0:
            raise RuntimeError("eSpeak NG failed to initialize")
        self._lib = lib
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: C holds only the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._job: _Job | None = None
        self._voice: str | None = None
        self._rate: int | None = None

    def _on_audio(self, wav, num_samples, _events) -> int:
        job = self._job
        if job is None or job.cancelled.is_set():
            return 1  # abort: eSpeak stops and espeak_Synth returns
        if num_samples > 0 and wav:
            out = job.resampler.process(ctypes.string_at(wav, num_samples * 2))
            if out:
                job.sink(out)
        return 0

    def _select_voice(self, voice: str) -> bool:
        # A voice name or file ("en-us", "en+f3"), else a language code ("en-gb").
        if self._lib.espeak_SetVoiceByName(voice.encode()) == 0:
            return True
        spec = _Voice(languages=voice.lower().encode())
        return self._lib.espeak_SetVoiceByProperties(ctypes.byref(spec)) == 0

    def run(self, job: _Job) -> None:
        if job.cancelled.is_set():
            return  # the consumer went away while this job was queued
        if job.voice != self._voice:
            if not self._select_voice(job.voice):
                raise ValueError(f"unknown eSpeak voice {job.voice!r}")
            self._voice, self._rate = job.voice, None  # a voice change resets the rate
        if job.rate_wpm != self._rate:
            self._lib.espeak_SetParameter(_PARAM_RATE, job.rate_wpm, 0)
            self._rate = job.rate_wpm
        job.resampler = Resampler(self.native_rate, job.sample_rate)
        text = job.text.replace("\0", " ").encode("utf-8")
        self._job = job
        try:
            self._lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        finally:
            self._job = None
        if not job.cancelled.is_set():
            tail = job.resampler.process(b"", last=True)
            if tail:
                job.sink(tail)


_engine: _Engine | None = None


def _run_job(job: _Job) -> None:
    """Executor entry point (worker thread only)."""
    global _engine
    if _engine is None:
        _engine = _Engine()
    _engine.run(job)


# eSpeak's own default is 175 words a minute. At 150 its voice is much easier to follow:
# Moonshine misheard 11 % of the words of 20 interview answers (20 % at 175; 11 % against
# 14 % on 10 held-out answers), and people are no better at fast robotic speech.
RATE_WPM = 150


class EspeakTextToSpeech:
    """TextToSpeech that streams eSpeak NG audio as PCM16 mono at `output_sample_rate`."""

    def __init__(self, output_sample_rate: int = 24000, voice: str = "en-us", rate_wpm: int = RATE_WPM):
        self.sample_rate = output_sample_rate
        self.voice = voice
        self.rate_wpm = rate_wpm

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not text or not text.strip():
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        def sink(piece: bytes) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, piece)
            except RuntimeError:  # the event loop is gone: nobody is listening any more
                job.cancelled.set()

        job = _Job(text, self.voice, self.rate_wpm, self.sample_rate, sink)
        done = loop.run_in_executor(_executor, _run_job, job)
        # Wake the consumer when the job ends (normally, with an error, or skipped).
        done.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (piece := await queue.get()) is not None:
                yield piece
            await done  # re-raise an error from the worker
        finally:
            # Closed early (interrupted) or finished: make the callback abort, freeing
            # the worker thread for the next synthesis.
            job.cancelled.set()


def synthesize_to_pcm(text: str, sample_rate: int = 16000, voice: str = "en-us", rate_wpm: int = RATE_WPM) -> bytes:
    """Blocking helper: the whole utterance as PCM16 mono at `sample_rate` (tests, scripts)."""
    pieces: list[bytes] = []
    if text and text.strip():
        job = _Job(text, voice, rate_wpm, sample_rate, pieces.append)
        _executor.submit(_run_job, job).result()
    return b"".join(pieces)
