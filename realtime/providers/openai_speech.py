"""Text-to-speech over OpenAI's speech endpoint, streamed as raw PCM.

`response_format="pcm"` is 24 kHz mono s16le with no header, so pieces can be passed on
(resampled to the runtime's rate when it differs) the moment they arrive. The HTTP
response is read inside `async with`: closing the iterator early (an interruption)
closes the connection, which stops the synthesis on the server's side too.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import AsyncIterator

import httpx2  # the HTTP library under the openai SDK
import openai

from realtime.audio import Resampler

OPENAI_PCM_RATE = 24000


class OpenAITextToSpeech:
    """TextToSpeech (base.TextToSpeech) yielding PCM16 mono at `sample_rate`."""

    def __init__(self, client: openai.AsyncOpenAI, *, model: str, voice: str, sample_rate: int):
        self._client = client
        self._model = model
        self._voice = voice
        self.sample_rate = sample_rate

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not text or not text.strip():
            return
        # The resampler also keeps a sample split between two network pieces whole.
        resampler = Resampler(OPENAI_PCM_RATE, self.sample_rate)
        async with self._client.audio.speech.with_streaming_response.create(
            model=self._model, voice=self._voice, input=text, response_format="pcm"
        ) as response, aclosing(_body(response)) as body:
            async for piece in body:
                out = resampler.process(piece)
                if out:
                    yield out
        tail = resampler.process(b"", last=True)
        if tail:
            yield tail


async def _body(response) -> AsyncIterator[bytes]:
    """The audio as it arrives; a broken or stalled body raises the SDK's own errors.

    (The SDK wraps failures before the body, not during it: without this a stalled stream
    would surface as a bare httpx2.ReadTimeout with an empty message.)
    """
    request = response.http_response.request
    try:
        async for piece in response.iter_bytes():
            yield piece
    except httpx2.TimeoutException as exc:
        raise openai.APITimeoutError(request=request) from exc
    except httpx2.TransportError as exc:
        raise openai.APIConnectionError(message=f"The speech stream broke: {exc}", request=request) from exc
