"""The embedded interviewer: conducts the interview from the session's questions.

Deterministic, so a test or a demo hears the same interview every time. It streams
word by word, like an LLM, so the rest of the pipeline is exercised as it will be.
"""

from __future__ import annotations

import zlib
from typing import AsyncIterator

from .base import InterviewerRequest

_ACKNOWLEDGEMENTS = (
    "Thank you, that is helpful.",
    "Thanks for sharing that.",
    "Great, I appreciate the detail.",
    "Understood, thank you.",
)


class ScriptedInterviewer:
    def respond(self, request: InterviewerRequest) -> AsyncIterator[str]:
        return self._words(self.script(request))

    def script(self, request: InterviewerRequest) -> str:
        question = request.questions[request.question_index] if request.question_index < len(request.questions) else ""
        title = f" for the {request.interview_title} interview" if request.interview_title else ""
        if request.kind == "opening":
            count = len(request.questions)
            return (
                f"Hello, and thank you for joining{title}. I will ask you {count} "
                f"question{'s' if count != 1 else ''}. {question}"
            )
        if request.kind == "next_question":
            return f"{self._acknowledge(request)} {question}"
        if request.kind == "resume":
            return f"Welcome back. Let us continue where we left off. {question}"
        if request.kind == "repeat":
            return f"Let me repeat the question. {question}"
        return f"{self._acknowledge(request)} That was my last question. Thank you for your time, and goodbye."

    async def draft_questions(self, *, title: str, role: str, skills: tuple[str, ...], count: int) -> list[dict]:
        """One question per skill, after an introduction: the offline default for interviews that list skills."""
        position = f" for the {role} role" if role else ""
        questions = [{"text": f"To start, could you tell me about yourself and why you applied{position}?",
                      "stage": "introduction"}]
        questions += [{"text": f"Tell me about a time you relied on {skill}: what did you do, and how did it go?",
                       "stage": "technical"} for skill in skills]
        return questions[:count]

    @staticmethod
    def _acknowledge(request: InterviewerRequest) -> str:
        last_answer = next((line.text for line in reversed(request.conversation) if line.speaker == "candidate"), "")
        return _ACKNOWLEDGEMENTS[zlib.crc32(last_answer.encode()) % len(_ACKNOWLEDGEMENTS)]

    @staticmethod
    async def _words(text: str) -> AsyncIterator[str]:
        for word in text.split(" "):
            yield word + " "
