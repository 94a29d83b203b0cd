"""Builders for test data: interviews, sessions, tokens, speech."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache

from interviews import services
from interviews.models import Interview, Question
from realtime import audio
from realtime.auth import demo_token_issue

QUESTIONS = (
    "Tell me about yourself.",
    "What is your favourite programming language?",
)


@dataclass
class SessionInfo:
    session_id: str
    user_id: str
    token: str


def make_session(*, questions=QUESTIONS, user_id: str | None = None, skills: str = "", role: str = "") -> SessionInfo:
    interview = Interview.objects.create(title="Test interview", skills=skills, role=role)
    for position, text in enumerate(questions):
        Question.objects.create(interview=interview, position=position, text=text)
    user_id = user_id or str(uuid.uuid4())
    session = services.session_create(interview=interview, owner_id=user_id)
    return SessionInfo(str(session.pk), user_id, demo_token_issue(user_id=user_id))


@lru_cache(maxsize=None)
def speech(text: str, sample_rate: int = 16000) -> bytes:
    """Candidate speech made by the local TTS, as PCM16 at the input rate."""
    from realtime.providers.local.espeak_tts import synthesize_to_pcm

    return synthesize_to_pcm(text, sample_rate)


def silence(ms: int, sample_rate: int = 16000) -> bytes:
    return audio.silence(ms, sample_rate)


def chunks(pcm: bytes, ms: int = 40, sample_rate: int = 16000) -> list[bytes]:
    """Audio cut as a microphone sends it: `ms` a chunk."""
    return audio.split_into_chunks(pcm, int(sample_rate * ms / 1000) * audio.BYTES_PER_SAMPLE)
