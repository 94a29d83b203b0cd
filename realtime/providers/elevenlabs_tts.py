"""Text-to-speech over ElevenLabs' documented HTTP streaming endpoint.

`POST {base_url}/v1/text-to-speech/{voice_id}/stream?output_format=pcm_<rate>` with the
`xi-api-key` header returns raw PCM16 mono as it is synthesized. We ask for the runtime's
own rate when ElevenLabs offers it (no resampling), else for 24 kHz and resample. One
httpx client per instance keeps connections warm between sentences; closing the
iterator early closes that response's connection, which stops the synthesis.
"""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import AsyncIterator
from urllib.parse import quote

import httpx

from realtime.audio import Resampler

# The PCM rates the endpoint's output_format offers (pcm_<rate>).
PCM_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
FALLBACK_RATE = 24000
_MAX_ERROR_BODY = 4096


class ElevenLabsError(RuntimeError):
    """A failed synthesis: the message names the HTTP status (None: no reply) and the reason, never the key."""

    def __init__(self, status: int | None, reason: str):
        where = f"with HTTP {status}" if status is not None else "without a reply"
        super().__init__(f"ElevenLabs text-to-speech failed {where}: {reason}")
        self.status = status


def vendor_rate(sample_rate: int) -> int:
    return sample_rate if sample_rate in PCM_RATES else FALLBACK_RATE


class ElevenLabsTextToSpeech:
    """TextToSpeech (base.TextToSpeech) yielding PCM16 mono at `sample_rate`."""

    def __init__(self, *, api_key: str, voice_id: str, model_id: str = "eleven_flash_v2_5",
                 base_url: str = "https://api.elevenlabs.io", sample_rate: int, timeout_s: float):  # fmt: skip
        self.sample_rate = sample_rate
        self._api_key = api_key
        self._path = f"/v1/text-to-speech/{quote(voice_id, safe='')}/stream"
        self._model_id = model_id
        self._vendor_rate = vendor_rate(sample_rate)
        self._timeout_s = timeout_s
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout_s,
                                         headers={"xi-api-key": api_key})  # fmt: skip

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not text or not text.strip():
            return
        resampler = Resampler(self._vendor_rate, self.sample_rate)  # also keeps split samples whole
        # aclosing: an early close of this iterator closes the HTTP response right away.
        async with aclosing(self._audio(text)) as audio:
            async for piece in audio:
                out = resampler.process(piece)
                if out:
                    yield out
        tail = resampler.process(b"", last=True)
        if tail:
            yield tail

    async def _audio(self, text: str) -> AsyncIterator[bytes]:
        """The vendor's PCM as it arrives; transport failures become ElevenLabsError with a reason."""
        try:
            async with self._client.stream(
                "POST", self._path,
                params={"output_format": f"pcm_{self._vendor_rate}"},
                json={"text": text, "model_id": self._model_id},
            ) as response:  # fmt: skip
                if not response.is_success:
                    raise ElevenLabsError(response.status_code, await self._reason(response))
                async for piece in response.aiter_bytes():
                    yield piece
        except httpx.TimeoutException as exc:
            raise ElevenLabsError(None, f"timed out ({type(exc).__name__}, limit {self._timeout_s} s)") from exc
        except httpx.TransportError as exc:
            raise ElevenLabsError(None, f"{type(exc).__name__}: {exc}") from exc

    async def _reason(self, response: httpx.Response) -> str:
        """ElevenLabs' own words for the refusal ({"detail": {"status", "message"}}), bounded."""
        body = b""
        async for piece in response.aiter_bytes():
            body += piece
            if len(body) >= _MAX_ERROR_BODY:
                break
        try:
            data = json.loads(body[:_MAX_ERROR_BODY])
        except ValueError:
            data = None
        detail = data.get("detail") if isinstance(data, dict) else None
        if isinstance(detail, dict):
            reason = f"{detail.get('status', '')}: {detail.get('message', '')}".strip(": ")
        elif detail is not None:
            reason = str(detail)
        else:
            reason = response.reason_phrase
        return reason[:300].replace(self._api_key, "***") if self._api_key else reason[:300]

    async def aclose(self) -> None:
        await self._client.aclose()
