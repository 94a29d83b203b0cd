"""One interviewer response in flight: its id, what it planned to say, what was heard."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

from .pacing import SpeechPacer


@dataclass
class SpokenSentence:
    text: str
    start_ms: float  # position in the response's audio
    end_ms: float | None = None


@dataclass
class Response:
    kind: str
    question_index: int
    # When the candidate's turn ended (monotonic), for the turn-to-first-audio figure.
    turn_ended_at: float | None = None
    # Resolved once the answer this replies to is stored; nothing is sent before.
    gate: asyncio.Future | None = None
    # server-ai-thinking goes out with the first message after the gate opens, so a held
    # reply is synthesized meanwhile instead of waiting on the gate.
    thinking_unsent: bool = False
    # The main question whose answer this reply may ask a follow-up on (None: it may not).
    follow_up_about: int | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: float = field(default_factory=time.monotonic)
    task: asyncio.Task | None = None
    pacer: SpeechPacer | None = None
    planned: list[str] = field(default_factory=list)
    spoken: list[SpokenSentence] = field(default_factory=list)
    source: str = "llm"
    cancelled: bool = False
    finished: bool = False
    metrics: dict = field(default_factory=dict)

    @property
    def planned_text(self) -> str:
        return " ".join(self.planned)

    def heard_text(self) -> str:
        """The words the candidate heard before the interrupt, cut in proportion to the audio played."""
        played = self.pacer.played_ms() if self.pacer else 0.0
        words: list[str] = []
        for sentence in self.spoken:
            if sentence.start_ms >= played:
                break
            end = sentence.end_ms if sentence.end_ms is not None else self.pacer.sent_ms
            sentence_words = sentence.text.split()
            if end <= played or end <= sentence.start_ms:
                words.extend(sentence_words)
                continue
            share = (played - sentence.start_ms) / (end - sentence.start_ms)
            words.extend(sentence_words[: round(len(sentence_words) * share)])
            break
        return " ".join(words)

    def mostly_heard(self, share: float = 0.8) -> bool:
        planned = len(self.planned_text.split())
        return planned > 0 and len(self.heard_text().split()) >= share * planned

    def mark(self, name: str, since: float | None = None) -> None:
        """Record a latency figure in ms, measured from `since` (default: the response's start)."""
        origin = self.started_at if since is None else since
        self.metrics.setdefault(name, round((time.monotonic() - origin) * 1000, 1))
