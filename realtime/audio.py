"""Small PCM16 mono helpers shared by the speech providers and the tests."""

from __future__ import annotations

import numpy as np
import soxr

BYTES_PER_SAMPLE = 2  # PCM16


def pcm_to_array(pcm: bytes) -> np.ndarray:
    """PCM16 little-endian bytes -> int16 array (a view, no copy)."""
    return np.frombuffer(pcm, dtype="<i2")


def array_to_pcm(samples: np.ndarray) -> bytes:
    """int16 (or float in [-1, 1]) samples -> PCM16 little-endian bytes."""
    if samples.dtype.kind == "f":
        samples = np.clip(samples * 32767.0, -32768, 32767)
    return np.asarray(samples, dtype="<i2").tobytes()


def pcm_duration_ms(nbytes: int, sample_rate: int) -> float:
    return nbytes / BYTES_PER_SAMPLE / sample_rate * 1000.0


def silence(ms: float, sample_rate: int) -> bytes:
    return bytes(int(sample_rate * ms / 1000.0) * BYTES_PER_SAMPLE)


def split_into_chunks(pcm: bytes, chunk_bytes: int) -> list[bytes]:
    """Cut audio into pieces of `chunk_bytes` (the last one may be shorter)."""
    return [pcm[i : i + chunk_bytes] for i in range(0, len(pcm), chunk_bytes)]


class Resampler:
    """Streaming int16 mono resampler: feed chunks, get the resampled audio so far.

    soxr keeps filter state between chunks, so there are no clicks at chunk edges;
    `last=True` flushes the filter's tail at the end of the stream.
    """

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ"):
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = (
            None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)
        )
        self._odd = b""  # an odd trailing byte waiting for its other half

    def process(self, pcm: bytes, last: bool = False) -> bytes:
        if self._odd:
            pcm = self._odd + pcm
            self._odd = b""
        if len(pcm) % BYTES_PER_SAMPLE:
            pcm, self._odd = pcm[:-1], pcm[-1:]
        if self._stream is None:
            return pcm
        out = self._stream.resample_chunk(pcm_to_array(pcm), last=last)
        return array_to_pcm(out)
