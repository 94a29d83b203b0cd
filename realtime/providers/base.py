"""Provider interfaces: the runtime talks only to these.

Two shapes fit behind them (see docs/providers.md):
- a pipeline: a `SpeechToText` stream, an `Interviewer` (the LLM) and a `TextToSpeech`;
- a speech-to-speech provider (OpenAI Realtime, Gemini Live): one connection per
  session that implements all three roles (`Providers.session_factory`).

Every call that may block (recognition, synthesis) is the provider's job to keep off the
event loop; the runtime awaits only coroutines and async iterators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Protocol


@dataclass(frozen=True)
class TranscriptEvent:
    """What a speech-to-text stream reports after it has been fed audio."""

    text: str
    is_final: bool
    # Milliseconds of candidate audio (from the start of the stream) at which the
    # utterance ended; set on final events, used for latency figures.
    end_ms: float | None = None
    # On an interim: the candidate has paused and these words look finished, so the turn
    # will likely end with them. The runtime may start its reply now and hold it until
    # the final confirms the words (or drop it if they change: the candidate went on).
    turn_ending: bool = False


class SpeechToTextStream(Protocol):
    async def feed(self, pcm16: bytes) -> list[TranscriptEvent]:
        """Feed PCM16 mono audio at the stream's sample rate.

        Returns the events that this audio produced (or that arrived since the last call,
        for a provider that recognises remotely): interim transcripts when the hypothesis
        changed, and a final one when the end of an utterance was detected (voice
        activity detection or the provider's own turn detection).
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
    the interviewer only words it. With `follow_up_allowed`, it may instead ask one short
    follow-up on the answer just given (see `FOLLOW_UP`); it never skips or invents a
    main question.
    """

    kind: str  # "opening", "next_question", "closing", "resume", "repeat"
    questions: tuple[str, ...]
    question_index: int  # the question to ask now (or the last one, for "closing")
    conversation: tuple[ConversationLine, ...] = field(default_factory=tuple)
    interview_title: str = ""
    role: str = ""
    skills: tuple[str, ...] = ()
    follow_up_allowed: bool = False
    # Filled by the provider as it answers ({"input_tokens": 812, "output_tokens": 40});
    # the runtime stores it with the turn's metrics.
    usage: dict = field(default_factory=dict, compare=False)

    def model_conversation(self) -> tuple[ConversationLine, ...]:
        """The conversation as a model may see it: lines with no words never reach a model."""
        return tuple(line for line in self.conversation if line.text and line.text.strip())


class _FollowUp:
    def __repr__(self) -> str:
        return "FOLLOW_UP"


# Yielded by `Interviewer.respond` before any words when it asks a follow-up on the
# answer just given instead of moving on (only when `request.follow_up_allowed`).
FOLLOW_UP = _FollowUp()


class Interviewer(Protocol):
    def respond(self, request: InterviewerRequest) -> AsyncIterator[str]:
        """Stream the interviewer's words as text fragments (tokens, words or sentences).

        May yield `FOLLOW_UP` first (see above).
        """

    async def draft_questions(self, *, title: str, role: str, skills: tuple[str, ...],
                              count: int) -> list[dict]:
        """Main questions for an interview that lists skills: [{"text", "stage"}], `count` at most."""


class TextToSpeech(Protocol):
    sample_rate: int  # of the PCM16 it yields

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Stream PCM16 mono audio for `text` in small pieces as it is synthesized.

        Closing the iterator early (the response was interrupted) must stop the work.
        """


@dataclass(frozen=True)
class EvaluationRequest:
    title: str
    role: str
    skills: tuple[str, ...]
    # Per main question: {"question": str, "answer": str} (the answer may be empty).
    questions: tuple[dict, ...]
    conversation: tuple[ConversationLine, ...]


class Evaluator(Protocol):
    async def evaluate(self, request: EvaluationRequest) -> dict:
        """A structured assessment (see interviews/ai_results.py for the shape it must have)."""


class ProviderSession(Protocol):
    """The providers as one live session sees them."""

    stt: SpeechToTextStream
    interviewer: Interviewer
    tts: TextToSpeech

    def interrupted(self, *, heard_ms: float) -> None:
        """The current response was cut off after `heard_ms` of its audio had been played."""

    async def close(self) -> None:
        """The session is over on this connection: close every connection and task."""


@dataclass
class PipelineSession:
    """A pipeline's session: its own recognition stream, the shared interviewer and voice."""

    stt: SpeechToTextStream
    interviewer: Interviewer
    tts: TextToSpeech

    def interrupted(self, *, heard_ms: float) -> None:
        pass  # the runtime already stopped the text and the synthesis

    async def close(self) -> None:
        await self.stt.close()


@dataclass
class Providers:
    stt: SpeechToText | None  # None for a speech-to-speech provider (its sessions listen)
    interviewer: Interviewer  # also drafts questions from skills
    tts: TextToSpeech | None
    name: str = "local"
    # Speech-to-speech: one provider connection per session, exposed as the three roles.
    session_factory: Callable[..., ProviderSession] | None = None
    # None: the deterministic evaluation (interviews/evaluation.py) alone.
    evaluator: Evaluator | None = None
    # Speaks the runtime's own fallback lines when the session's voice can only speak what
    # its model said (speech-to-speech); None: the session's voice speaks them.
    fallback_tts: TextToSpeech | None = None

    def open_session(self, *, sample_rate: int) -> ProviderSession:
        if self.session_factory is not None:
            return self.session_factory(sample_rate=sample_rate)
        return PipelineSession(stt=self.stt.open_stream(sample_rate=sample_rate),
                               interviewer=self.interviewer, tts=self.tts)
