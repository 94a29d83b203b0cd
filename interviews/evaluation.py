"""The results of a finished session: what was answered, how fully, how it went.

Deterministic and local, so the embedded default produces results with no keys.
"""

from __future__ import annotations

from .models import InterviewSession, SessionResult, Speaker


def session_evaluate(*, session: InterviewSession) -> SessionResult:
    turns = list(session.turns.order_by("sequence"))
    answers: dict[int, list[str]] = {}
    for turn in turns:
        if turn.speaker == Speaker.CANDIDATE and turn.question_index is not None and turn.text.strip():
            answers.setdefault(turn.question_index, []).append(turn.text.strip())

    per_question = []
    for index, question in enumerate(session.questions):
        text = " ".join(answers.get(index, []))
        words = len(text.split())
        per_question.append(
            {
                "question": question["text"],
                "answer": text,
                "words": words,
                "assessment": _assess(words),
            }
        )
    answered = sum(1 for item in per_question if item["words"] > 0)
    latencies = [
        t.metrics["turn_to_first_audio_ms"]
        for t in turns
        if t.speaker == Speaker.INTERVIEWER and "turn_to_first_audio_ms" in (t.metrics or {})
    ]
    interruptions = sum(1 for t in turns if t.speaker == Speaker.INTERVIEWER and t.interrupted)
    summary = (
        f"{answered} of {len(session.questions)} questions answered"
        f"; {sum(item['words'] for item in per_question)} words in all"
        f"; the candidate interrupted the interviewer {interruptions} time(s)."
        f" Ended: {session.end_reason or 'unknown'}."
    )
    result, _ = SessionResult.objects.update_or_create(
        session=session,
        defaults={
            "summary": summary,
            "answered_questions": answered,
            "details": {
                "questions": per_question,
                "interruptions": interruptions,
                "median_response_latency_ms": _median(latencies),
            },
        },
    )
    return result


def _assess(words: int) -> str:
    if words == 0:
        return "not answered"
    if words < 8:
        return "brief"
    if words < 40:
        return "adequate"
    return "detailed"


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
