"""Provider interfaces: the runtime talks only to these.

Two shapes fit behind them (see docs/providers.md):
- a pipeline: a `SpeechToText` stream, an `Interviewer` (the LLM) and a `TextToSpeech`;
- a speech-to-speech provider (OpenAI Realtime, Gemini Live) that implements all three
  roles over one bidirectional stream.

Every call that may block (recognition, synthesis) is the provider's job to keep off the
event loop; the runtime awaits only coroutines and async iterators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Protocol


@dataclass(frozen=True)
class TranscriptEvent:
    """What a speech-to-text stream reports after it has been fed audio."""

    text: str
    is_final: bool
    # Milliseconds of candidate audio (from the start of the stream) at which the
    # utterance ended; set on final events, used for latency figures.
    end_ms: float | None = None


class SpeechToTextStream(Protocol):
    async def feed(self, pcm16: bytes) -> list[TranscriptEvent]:
        """Feed PCM16 mono audio at the stream's sample rate.

        Returns the events that this audio produced: interim transcripts when the
        hypothesis changed, and a final one when the end of an utterance was detected
        (voice activity detection or the provider's own turn detection).
        """

    async def flush(self) -> list[TranscriptEvent]:
        """End the current utterance now (a typed answer, pause) and return its final event if any."""

    def reset(self) -> None:
        """Drop the current utterance (after a pause or takeover)."""

    async def close(self) -> None: ...


class SpeechToText(Protocol):
    def open_stream(self, *, sample_rate: int) -> SpeechToTextStream: ...


@dataclass(frozen=True)
class ConversationLine:
    speaker: str  # "interviewer" or "candidate"
    text: str


@dataclass(frozen=True)
class InterviewerRequest:
    """Everything an interviewer needs to phrase its next line.

    The runtime owns the interview's flow (which question comes next, when it ends);
    the interviewer only words it.
    """

    kind: str  # "opening", "next_question", "closing", "resume", "repeat"
    questions: tuple[str, ...]
    question_index: int  # the question to ask now (or the last one, for "closing")
    conversation: tuple[ConversationLine, ...] = field(default_factory=tuple)
    interview_title: str = ""


class Interviewer(Protocol):
    def respond(self, request: InterviewerRequest) -> AsyncIterator[str]:
        """Stream the interviewer's words as text fragments (tokens, words or sentences)."""


class TextToSpeech(Protocol):
    sample_rate: int  # of the PCM16 it yields

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Stream PCM16 mono audio for `text` in small pieces as it is synthesized.

        Closing the iterator early (the response was interrupted) must stop the work.
        """


@dataclass
class Providers:
    stt: SpeechToText
    interviewer: Interviewer
    tts: TextToSpeech
    name: str = "local"
