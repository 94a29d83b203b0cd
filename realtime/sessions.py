"""Loading a session for a connection that has just authenticated."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from .db import database_call

from interviews import selectors, services
from interviews.models import SessionStatus

from .providers.base import ConversationLine, Interviewer
from .providers.scripted import ScriptedInterviewer
from .runtime import SessionSnapshot

log = logging.getLogger(__name__)


def session_holder(*, session_id: str, user_id: str) -> int | None:
    """The number of the connection that may be holding the session right now, or None
    when none is (checks access on the way)."""
    session = selectors.session_get_for_owner(session_id=session_id, user_id=user_id)
    return session.connection_count if session.status == SessionStatus.LIVE else None


def session_take(*, session_id: str, user_id: str) -> tuple[SessionSnapshot, list[dict], bool]:
    """Check access, mark the session live, and return where it stands.

    Returns the snapshot for the runtime, the conversation so far for the client, and
    whether this is a resumption (the session had been joined before).
    """
    session = selectors.session_get_for_owner(session_id=session_id, user_id=user_id)
    session = services.session_connect(session_id=session.pk)
    turns = selectors.session_turns(session_id=session.pk)
    snapshot = SessionSnapshot(
        session_id=str(session.pk),
        interview_title=session.interview.title,
        questions=tuple(q["text"] for q in session.questions),
        question_index=session.current_question,
        status=session.status,
        connection_number=session.connection_count,
        conversation=[ConversationLine(t.speaker, t.text) for t in turns],
        role=session.interview.role,
        skills=session.interview.skill_list,
    )
    history = [
        {"turnId": t.public_id, "speaker": t.speaker, "text": t.text, "interrupted": t.interrupted}
        for t in turns
    ]
    resumed = session.connection_count > 1 or bool(turns)
    return snapshot, history, resumed


async def session_questions_ensure(snapshot: SessionSnapshot, *, interviewer: Interviewer, count: int,
                                   deadline_s: float) -> SessionSnapshot:
    """A session of an interview that lists skills only gets its questions drafted now.

    The interviewer drafts them within the deadline; if it cannot, the offline draft (one
    question per skill) is used, so the candidate is never held up or left without questions.
    Either way they are snapshotted on the session like an interview's own questions.
    """
    if snapshot.questions or not snapshot.skills:
        return snapshot
    draft = dict(title=snapshot.interview_title, role=snapshot.role, skills=snapshot.skills, count=count)
    try:
        async with asyncio.timeout(deadline_s):
            questions = await interviewer.draft_questions(**draft)
    except Exception as error:
        log.warning("session %s: questions not drafted by the interviewer (%s); drafting offline",
                    snapshot.session_id, type(error).__name__)
        questions = await ScriptedInterviewer().draft_questions(**draft)
    stored = await database_call(services.session_questions_store)(
        session_id=snapshot.session_id, questions=questions)
    return dataclasses.replace(snapshot, questions=tuple(q["text"] for q in stored))
