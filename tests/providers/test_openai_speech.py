"""OpenAI text-to-speech through the real SDK, against the strict local fake."""

from __future__ import annotations

import time
import traceback

import openai
import pytest

from realtime.audio import pcm_duration_ms
from realtime.providers.openai_chat import make_client
from realtime.providers.openai_speech import OpenAITextToSpeech
from tests.fakes.openai_http import (  # noqa: F401 (openai_http_fake is a fixture)
    SPEECH_MS_PER_CHAR,
    DropMidStream,
    Hang,
    HttpStatus,
    openai_http_fake,
)

SENTENCE = "Thanks, that was a clear answer."  # 32 characters: 1.6 s of the fake's tone


@pytest.fixture
async def client(openai_http_fake):
    client = make_client(api_key=openai_http_fake.api_key, base_url=openai_http_fake.base_url, timeout_s=2.0)
    yield client
    await client.close()


def speech(client, sample_rate=24000) -> OpenAITextToSpeech:
    return OpenAITextToSpeech(client, model="gpt-4o-mini-tts", voice="alloy", sample_rate=sample_rate)


async def collect(pieces) -> list[bytes]:
    return [piece async for piece in pieces]


@pytest.mark.parametrize("sample_rate", [24000, 16000])
async def test_speech_lasts_as_long_as_the_text_at_the_runtime_rate(openai_http_fake, client, sample_rate):
    pieces = await collect(speech(client, sample_rate).synthesize(SENTENCE))

    audio = b"".join(pieces)
    expected_ms = len(SENTENCE) * SPEECH_MS_PER_CHAR
    assert abs(pcm_duration_ms(len(audio), sample_rate) - expected_ms) < 5
    assert len(pieces) > 3  # streamed, not one blob at the end
    assert all(len(piece) % 2 == 0 for piece in pieces)  # whole samples, though the wire splits them
    body = openai_http_fake.speech_bodies()[-1]
    assert body == {"model": "gpt-4o-mini-tts", "voice": "alloy", "input": SENTENCE, "response_format": "pcm"}


async def test_blank_text_makes_no_request(openai_http_fake, client):
    assert await collect(speech(client).synthesize("  ")) == []
    assert openai_http_fake.speech_bodies() == []


async def test_closing_early_leaves_no_connection_open(openai_http_fake, client):
    pieces = speech(client).synthesize("A long answer. " * 20)
    assert await pieces.__anext__()
    await pieces.aclose()  # barge-in

    assert await openai_http_fake.wait_idle(timeout=2.0)


@pytest.mark.parametrize("failure, error", [
    (HttpStatus(429), openai.RateLimitError),
    (HttpStatus(500), openai.InternalServerError),
    (DropMidStream(after_chunks=2), openai.APIConnectionError),
])  # fmt: skip
async def test_failures_raise_quickly_without_the_key(openai_http_fake, client, failure, error):
    openai_http_fake.script_speech(failure)
    started = time.monotonic()
    with pytest.raises(error) as raised:
        await collect(speech(client).synthesize(SENTENCE))
    assert time.monotonic() - started < 1.0
    assert openai_http_fake.api_key not in "".join(traceback.format_exception(raised.value))


@pytest.mark.parametrize("hang", [Hang(), Hang(after_chunks=2)])
async def test_a_hung_server_is_bounded_by_the_client_timeout(openai_http_fake, hang):
    client = make_client(api_key=openai_http_fake.api_key, base_url=openai_http_fake.base_url, timeout_s=0.5)
    openai_http_fake.script_speech(hang)
    started = time.monotonic()
    try:
        with pytest.raises(openai.APITimeoutError):
            await collect(speech(client).synthesize(SENTENCE))
    finally:
        await client.close()
    assert time.monotonic() - started < 2.0
    assert await openai_http_fake.wait_idle()
