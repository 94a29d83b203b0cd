"""A strict local stand-in for ElevenLabs' streaming text-to-speech HTTP endpoint.

Documented at https://elevenlabs.io/docs/api-reference/text-to-speech/stream:
`POST /v1/text-to-speech/{voice_id}/stream?output_format=pcm_<rate>` with the
`xi-api-key` header and a JSON body {"text", "model_id", ...}; the reply is the raw
audio as a chunked body. The fake streams a deterministic tone (about 50 ms a character)
as PCM16 mono at the requested rate, in small odd-sized chunks with short pauses.

Strict: a wrong or missing key gets ElevenLabs' 401 (a test may want that); an unknown
query parameter or body field, an output format that is not PCM, an empty text gets the
vendor's 422 *and* is recorded in `errors`, which the fixture requires to be empty.

Scripting: `fake.script_stream(...)` queues failures, one per request: `HttpStatus(429)`,
`HttpStatus(500)`, `Hang()`, `DropMidStream(after_chunks=2)`.
"""

from __future__ import annotations

import itertools

import pytest

from .http_server import DropMidStream, FakeHttpServer, Hang, HttpRequest, HttpResponse, HttpStatus, json_body_or_error
from .openai_http import SPEECH_MS_PER_CHAR, speech_ms, stream_audio, tone

__all__ = ["ElevenLabsHttpFake", "elevenlabs_http_fake", "HttpStatus", "Hang", "DropMidStream", "PCM_RATES",
           "SPEECH_MS_PER_CHAR"]  # fmt: skip

PCM_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
# Documented but not playable by the fake (it only makes PCM): refused as an error.
OTHER_FORMATS = {
    "mp3_22050_32", "mp3_24000_48", "mp3_44100_32", "mp3_44100_64", "mp3_44100_96", "mp3_44100_128",
    "mp3_44100_192", "ulaw_8000", "alaw_8000", "opus_48000_32", "opus_48000_64", "opus_48000_96",
    "opus_48000_128", "opus_48000_192",
}  # fmt: skip
QUERY_PARAMETERS = {"enable_logging", "optimize_streaming_latency", "output_format"}
BODY_FIELDS = {
    "text", "model_id", "language_code", "voice_settings", "pronunciation_dictionary_locators", "seed",
    "previous_text", "next_text", "previous_request_ids", "next_request_ids", "use_pvc_as_ivc",
    "apply_text_normalization", "apply_language_text_normalization",
}  # fmt: skip
_PREFIX, _SUFFIX = "/v1/text-to-speech/", "/stream"


def detail(status: str, message: str) -> dict:
    return {"detail": {"status": status, "message": message}}


def _status_error(status: int) -> dict:
    if status == 429:
        return detail("too_many_concurrent_requests", "Too many concurrent requests for your subscription.")
    return detail("internal_server_error", "An internal error occurred. Please try again.")


def stream_problems(request: HttpRequest, body: dict) -> list[str]:
    problems = []
    unknown_query = set(request.query) - QUERY_PARAMETERS
    if unknown_query:
        problems.append(f"unknown query parameters {sorted(unknown_query)}")
    output_format = request.query.get("output_format", ["mp3_44100_128"])[-1]
    if output_format in OTHER_FORMATS:
        problems.append(f"output_format {output_format}: the fake only makes PCM")
    elif output_format not in {f"pcm_{rate}" for rate in PCM_RATES}:
        problems.append(f"output_format {output_format!r} is not a documented format")
    unknown_fields = set(body) - BODY_FIELDS
    if unknown_fields:
        problems.append(f"unknown body fields {sorted(unknown_fields)}")
    if not isinstance(body.get("text"), str) or not body["text"].strip():
        problems.append("text: a non-empty string is required")
    if "model_id" in body and (not isinstance(body["model_id"], str) or not body["model_id"].strip()):
        problems.append("model_id: must be a non-empty string")
    return problems


class ElevenLabsHttpFake(FakeHttpServer):
    """`base_url` goes to the provider's `base_url`; `api_key` is the one it accepts."""

    name = "elevenlabs-fake"

    def __init__(self, *, api_key: str = "xi-fake-elevenlabs-0123456789", voice_ids: set[str] | None = None,
                 chunk_bytes: int = 3001, chunk_delay_s: float = 0.005):  # fmt: skip
        super().__init__()
        self.api_key = api_key
        self.voice_ids = voice_ids  # None: any voice exists
        self.chunk_bytes = chunk_bytes  # odd on purpose: a sample may be split between chunks
        self.chunk_delay_s = chunk_delay_s
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return self.origin

    def stream_requests(self) -> list[HttpRequest]:
        return [r for r in list(self.requests) if r.path.startswith(_PREFIX)]

    async def handle(self, request: HttpRequest, response: HttpResponse) -> None:
        voice_id = request.path[len(_PREFIX) : -len(_SUFFIX)]
        if request.method != "POST" or not request.path.startswith(_PREFIX) or not request.path.endswith(_SUFFIX) \
                or not voice_id or "/" in voice_id:  # fmt: skip
            self.record_error(f"unexpected request {request.method} {request.path}")
            await response.send_json(404, {"detail": "Not Found"})
            return
        if "authorization" in request.headers:
            self.record_error("ElevenLabs authenticates with xi-api-key, not Authorization")
        if request.headers.get("xi-api-key") != self.api_key:
            await response.send_json(401, detail("invalid_api_key", "Invalid API key"))
            return
        if self.voice_ids is not None and voice_id not in self.voice_ids:
            await response.send_json(404, detail("voice_not_found", f"A voice with voice_id {voice_id} was not found."))
            return
        body = json_body_or_error(self, request)
        problems = ["the body must be a JSON object"] if body is None else stream_problems(request, body)
        if problems:
            for problem in problems:
                self.record_error(f"text-to-speech stream: {problem}")
            await response.send_json(422, {"detail": [{"type": "value_error", "loc": ["body"], "msg": problems[0]}]})
            return
        scripted = self.next_scripted("stream")
        if isinstance(scripted, HttpStatus):
            await response.send_json(scripted.status, scripted.body or _status_error(scripted.status))
            return
        if isinstance(scripted, Hang) and scripted.after_chunks is None:
            await response.hang()
            return
        rate = int(request.query["output_format"][-1].removeprefix("pcm_"))
        pcm = tone(speech_ms(body["text"]), rate)
        headers = {"request-id": f"req-fake{next(self._ids)}", "character-cost": str(len(body["text"]))}
        await stream_audio(response, pcm, chunk_bytes=self.chunk_bytes, delay_s=self.chunk_delay_s,
                           failure=scripted, content_type="audio/pcm", headers=headers)  # fmt: skip

    def script_stream(self, *replies) -> None:
        self.script("stream", *replies)


@pytest.fixture
def elevenlabs_http_fake():
    """A started ElevenLabsHttpFake; the test fails if the fake saw anything ElevenLabs would refuse."""
    fake = ElevenLabsHttpFake().start()
    try:
        yield fake
    finally:
        fake.stop()
    assert list(fake.errors) == []
