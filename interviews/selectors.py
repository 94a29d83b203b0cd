"""Reads of interview state."""

from __future__ import annotations

import uuid

from .models import AnalysisStatus, InterviewSession, SessionResult, Speaker, Turn


class SessionAccessError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def session_get_for_owner(*, session_id: str, user_id: str) -> InterviewSession:
    """The session a candidate may join, or SessionAccessError saying why not."""
    try:
        key = uuid.UUID(str(session_id))
    except (TypeError, ValueError):
        raise SessionAccessError("session_not_found", "No interview session has that id.") from None
    session = InterviewSession.objects.select_related("interview").filter(pk=key).first()
    if session is None:
        raise SessionAccessError("session_not_found", "No interview session has that id.")
    if str(session.owner_id) != str(uuid.UUID(user_id)):
        raise SessionAccessError("session_forbidden", "This interview session belongs to another user.")
    if session.is_finished:
        raise SessionAccessError("session_finished", "This interview session has already ended.")
    return session


def session_turns(*, session_id) -> list[Turn]:
    return list(Turn.objects.filter(session_id=session_id).order_by("sequence"))


def session_exists(*, session_id: str) -> bool:
    return InterviewSession.objects.filter(pk=session_id).exists()


def session_analysis_input(*, session_id) -> dict:
    """What a language model needs to assess a finished session: the interview, each main
    question with the candidate's answers to it (follow-ups included), the conversation."""
    session = InterviewSession.objects.select_related("interview").get(pk=session_id)
    turns = session_turns(session_id=session_id)
    answers: dict[int, list[str]] = {}
    for turn in turns:
        if turn.speaker == Speaker.CANDIDATE and turn.question_index is not None and turn.text.strip():
            answers.setdefault(turn.question_index, []).append(turn.text.strip())
    return {
        "title": session.interview.title,
        "role": session.interview.role,
        "skills": session.interview.skill_list,
        "questions": [{"question": q["text"], "answer": " ".join(answers.get(i, []))}
                      for i, q in enumerate(session.questions)],
        "conversation": [(t.speaker, t.text) for t in turns if t.text.strip()],
    }


def results_awaiting_analysis() -> list[str]:
    """Sessions whose analysis is pending or failed (for `manage.py analyse_results`)."""
    return [str(pk) for pk in SessionResult.objects.filter(
        analysis_status__in=(AnalysisStatus.PENDING, AnalysisStatus.FAILED)).values_list("session_id", flat=True)]
