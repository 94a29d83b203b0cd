"""ElevenLabs text-to-speech over its documented HTTP stream, against the strict local fake."""

from __future__ import annotations

import time
import traceback

import pytest

from realtime.audio import pcm_duration_ms
from realtime.providers.elevenlabs_tts import ElevenLabsError, ElevenLabsTextToSpeech
from tests.fakes.elevenlabs_http import (  # noqa: F401 (elevenlabs_http_fake is a fixture)
    SPEECH_MS_PER_CHAR,
    DropMidStream,
    Hang,
    HttpStatus,
    elevenlabs_http_fake,
)

SENTENCE = "Thanks, that was a clear answer."  # 32 characters: 1.6 s of the fake's tone
VOICE = "21m00Tcm4TlvDq8ikWAM"


@pytest.fixture
async def make_tts(elevenlabs_http_fake):
    made = []

    def make(*, sample_rate=24000, api_key=None, timeout_s=2.0) -> ElevenLabsTextToSpeech:
        tts = ElevenLabsTextToSpeech(api_key=api_key or elevenlabs_http_fake.api_key, voice_id=VOICE,
                                     base_url=elevenlabs_http_fake.base_url, sample_rate=sample_rate,
                                     timeout_s=timeout_s)  # fmt: skip
        made.append(tts)
        return tts

    yield make
    for tts in made:
        await tts.aclose()


async def collect(pieces) -> list[bytes]:
    return [piece async for piece in pieces]


@pytest.mark.parametrize("sample_rate, asked_for", [
    (24000, "pcm_24000"),
    (16000, "pcm_16000"),  # offered by ElevenLabs: no resampling
    (12000, "pcm_24000"),  # not offered: 24 kHz, resampled here
])  # fmt: skip
async def test_speech_lasts_as_long_as_the_text_at_the_runtime_rate(elevenlabs_http_fake, make_tts, sample_rate,
                                                                    asked_for):  # fmt: skip
    pieces = await collect(make_tts(sample_rate=sample_rate).synthesize(SENTENCE))

    audio = b"".join(pieces)
    assert abs(pcm_duration_ms(len(audio), sample_rate) - len(SENTENCE) * SPEECH_MS_PER_CHAR) < 5
    assert len(pieces) > 3 and all(len(piece) % 2 == 0 for piece in pieces)
    request = elevenlabs_http_fake.stream_requests()[-1]
    assert request.path == f"/v1/text-to-speech/{VOICE}/stream"
    assert request.query == {"output_format": [asked_for]}
    assert request.json() == {"text": SENTENCE, "model_id": "eleven_flash_v2_5"}


async def test_one_client_is_reused_between_sentences(elevenlabs_http_fake, make_tts):
    tts = make_tts()
    for sentence in ("Hello.", "How are you today?", "Let us begin."):
        assert await collect(tts.synthesize(sentence))
    assert elevenlabs_http_fake.total_connections == 1
    assert elevenlabs_http_fake.open_connections == 1  # kept warm for the next sentence

    await tts.aclose()
    assert await elevenlabs_http_fake.wait_idle()


async def test_a_wrong_key_is_refused_and_never_shown(make_tts):
    wrong_key = "sk_wrong_but_secret_0123456789abcdef"
    with pytest.raises(ElevenLabsError) as raised:
        await collect(make_tts(api_key=wrong_key).synthesize(SENTENCE))

    assert raised.value.status == 401 and "401" in str(raised.value) and "invalid_api_key" in str(raised.value)
    assert wrong_key not in "".join(traceback.format_exception(raised.value))


async def test_closing_early_leaves_no_connection_open(elevenlabs_http_fake, make_tts):
    pieces = make_tts().synthesize("A long answer. " * 20)
    assert await pieces.__anext__()
    await pieces.aclose()  # barge-in

    assert await elevenlabs_http_fake.wait_idle(timeout=2.0)


@pytest.mark.parametrize("failure, status", [
    (HttpStatus(429), 429),
    (HttpStatus(500), 500),
    (DropMidStream(after_chunks=2), None),
])  # fmt: skip
async def test_failures_raise_quickly_without_the_key(elevenlabs_http_fake, make_tts, failure, status):
    elevenlabs_http_fake.script_stream(failure)
    started = time.monotonic()
    with pytest.raises(ElevenLabsError) as raised:
        await collect(make_tts().synthesize(SENTENCE))
    assert time.monotonic() - started < 1.0
    assert raised.value.status == status
    assert elevenlabs_http_fake.api_key not in "".join(traceback.format_exception(raised.value))


@pytest.mark.parametrize("hang", [Hang(), Hang(after_chunks=2)])
async def test_a_hung_server_is_bounded_by_the_timeout(elevenlabs_http_fake, make_tts, hang):
    elevenlabs_http_fake.script_stream(hang)
    started = time.monotonic()
    with pytest.raises(ElevenLabsError, match="timed out"):
        await collect(make_tts(timeout_s=0.5).synthesize(SENTENCE))
    assert time.monotonic() - started < 2.0


async def test_blank_text_makes_no_request(elevenlabs_http_fake, make_tts):
    assert await collect(make_tts().synthesize(" ")) == []
    assert elevenlabs_http_fake.stream_requests() == []
