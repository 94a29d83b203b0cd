"""Question audio at signed URLs: rendered once per line and voice, served as WAV with
ranges and caching headers, refused to another session and once expired."""

import asyncio
import io
import time
import wave
from unittest import mock

import numpy as np
import pytest
from django.conf import settings
from django.test import AsyncClient, override_settings

from realtime import question_audio
from realtime.providers.base import Providers

SESSION = "6d0c2f9e-2b1a-4c3d-8e4f-5a6b7c8d9e0f"
OTHER = "0b7e5e4a-1c2d-4e3f-9a8b-7c6d5e4f3a2b"


class CountingVoice:
    """A voice that says a 440 Hz tone for every line, and counts what it was asked."""

    sample_rate = 16000
    voice = "tone"

    def __init__(self):
        self.asked: list[str] = []

    async def synthesize(self, text):
        self.asked.append(text)
        await asyncio.sleep(0.05)  # long enough for a second request to arrive meanwhile
        t = np.arange(self.sample_rate // 2) / self.sample_rate
        yield (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


@pytest.fixture
def tone(tmp_path, monkeypatch):
    voice = CountingVoice()
    monkeypatch.setattr(question_audio, "voice", lambda: (voice, "tone-voice"))
    with override_settings(REALTIME={**settings.REALTIME, "QUESTION_AUDIO_DIR": str(tmp_path)}):
        yield voice


def decoded(body: bytes) -> tuple[int, np.ndarray]:
    with wave.open(io.BytesIO(body)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        return wav.getframerate(), np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")


async def test_a_line_is_rendered_once_and_served_as_wav(tone):
    url = question_audio.audio_url(SESSION, "Tell me about yourself.")
    assert url.startswith(f"/api/sessions/{SESSION}/question-audio/") and url.endswith(".wav")
    client = AsyncClient()
    first, second = await asyncio.gather(client.get(url), client.get(url))  # at the same moment
    assert first.status_code == second.status_code == 200
    assert first["Content-Type"] == "audio/wav" and first["Accept-Ranges"] == "bytes"
    assert first["Cache-Control"].startswith("private, max-age=") and "immutable" in first["Cache-Control"]
    assert first["ETag"] == second["ETag"] and first.content == second.content
    assert int(first["Content-Length"]) == len(first.content)
    rate, samples = decoded(first.content)
    assert rate == 16000 and len(samples) == 8000 and np.abs(samples).max() > 4000
    # Another link to the same words (another session even) is the same file.
    again = await client.get(question_audio.audio_url(OTHER, "Tell me about yourself."))
    assert again.content == first.content
    assert tone.asked == ["Tell me about yourself."]
    await client.get(question_audio.audio_url(SESSION, "Another line."))
    assert tone.asked == ["Tell me about yourself.", "Another line."]


async def test_ranges_conditional_requests_and_head(tone):
    url = question_audio.audio_url(SESSION, "Ranges, please.")
    client = AsyncClient()
    whole = await client.get(url)
    size = len(whole.content)
    part = await client.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == whole.content[:100]
    assert part["Content-Range"] == f"bytes 0-99/{size}" and part["Content-Length"] == "100"
    tail = await client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole.content[-10:]
    rest = await client.get(url, headers={"Range": f"bytes={size - 5}-"})
    assert rest.content == whole.content[-5:] and rest["Content-Range"] == f"bytes {size - 5}-{size - 1}/{size}"
    beyond = await client.get(url, headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{size}"
    stale = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == whole.content
    cached = await client.get(url, headers={"If-None-Match": whole["ETag"]})
    assert cached.status_code == 304 and cached.content == b""
    head = await client.head(url)
    assert head.status_code == 200 and head.content == b"" and head["Content-Length"] == str(size)
    assert (await client.post(url)).status_code == 405


async def test_another_sessions_link_a_forged_one_and_an_expired_one_are_refused(tone):
    client = AsyncClient()
    url = question_audio.audio_url(SESSION, "Only for this session.")
    token = url.rsplit("/", 1)[1][: -len(".wav")]
    other = await client.get(f"/api/sessions/{OTHER}/question-audio/{token}.wav")
    assert other.status_code == 403
    forged = await client.get(f"/api/sessions/{SESSION}/question-audio/{token[:-2]}xx.wav")
    assert forged.status_code == 403
    with mock.patch("django.core.signing.time.time", return_value=time.time() - settings.REALTIME["QUESTION_AUDIO_URL_SECONDS"] - 5):
        old = question_audio.audio_url(SESSION, "Only for this session.")
    assert (await client.get(old)).status_code == 410
    assert tone.asked == []  # nothing was rendered for a refused link
    assert (await client.get(url)).status_code == 200


def test_the_voice_is_the_configured_one_and_espeak_for_speech_to_speech(monkeypatch):
    from realtime.providers import registry
    from realtime.providers.local import EspeakTextToSpeech

    question_audio.voice.cache_clear()
    try:
        tts, key = question_audio.voice()
        assert tts is registry.get_providers().tts and type(tts).__qualname__ in key
        speech_to_speech = Providers(stt=None, interviewer=None, tts=None, session_factory=lambda **_: None)
        monkeypatch.setattr(registry, "get_providers", lambda: speech_to_speech)
        question_audio.voice.cache_clear()
        tts, key = question_audio.voice()
        assert isinstance(tts, EspeakTextToSpeech) and "voice=en-us" in key
        assert tts.sample_rate == settings.REALTIME["OUTPUT_SAMPLE_RATE"]
    finally:
        question_audio.voice.cache_clear()


def test_the_cache_keeps_a_bounded_number_of_files(tmp_path):
    with override_settings(REALTIME={**settings.REALTIME, "QUESTION_AUDIO_DIR": str(tmp_path),
                                     "QUESTION_AUDIO_CACHE_FILES": 10}):
        for index in range(15):
            question_audio._write_wav(question_audio.cache_path(f"line {index}", "v"), b"\0\0" * 10, 16000)
        assert len(list(tmp_path.glob("*.wav"))) <= 10
        assert not list(tmp_path.glob("*.part"))
