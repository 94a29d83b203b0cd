"""Loading a session for a connection that has just authenticated (runs in a thread)."""

from __future__ import annotations

from interviews import selectors, services
from interviews.models import SessionStatus

from .providers.base import ConversationLine
from .runtime import SessionSnapshot


def session_is_live(*, session_id: str, user_id: str) -> bool:
    """Whether a connection may be holding the session right now (checks access on the way)."""
    session = selectors.session_get_for_owner(session_id=session_id, user_id=user_id)
    return session.status == SessionStatus.LIVE


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
    )
    history = [
        {"turnId": t.public_id, "speaker": t.speaker, "text": t.text, "interrupted": t.interrupted}
        for t in turns
    ]
    resumed = session.connection_count > 1 or bool(turns)
    return snapshot, history, resumed
