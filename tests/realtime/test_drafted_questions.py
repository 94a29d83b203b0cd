"""An interview that lists skills instead of questions gets its questions when a session starts."""

import pytest
from channels.db import database_sync_to_async

from interviews.models import InterviewSession
from tests.realtime.wsclient import Client

pytestmark = pytest.mark.django_db(transaction=True)


async def test_skills_only_interview_is_drafted_offline_and_snapshotted(session_factory):
    info = await database_sync_to_async(session_factory)(questions=(), skills="Python, PostgreSQL\nSystem design",
                                                         role="Backend Engineer")
    client = await Client.open()
    auth = await client.auth(info)
    assert auth["questionCount"] == 4  # an introduction, then one per skill
    captions = [(await client.expect("server-ai-text", timeout=10))["text"] for _ in range(3)]
    assert "I will ask you 4 questions." in captions
    assert any("tell me about yourself and why you applied for the Backend Engineer role" in c for c in captions)
    await client.close()

    session = await database_sync_to_async(InterviewSession.objects.get)(pk=info.session_id)
    texts = [q["text"] for q in session.questions]
    assert len(texts) == 4 and "PostgreSQL" in texts[2] and "System design" in texts[3]

    # A second connection resumes on the same snapshot: nothing is drafted twice.
    client = await Client.open()
    again = await client.auth(info)
    assert again["questionCount"] == 4
    await client.close()
    session = await database_sync_to_async(InterviewSession.objects.get)(pk=info.session_id)
    assert [q["text"] for q in session.questions] == texts


def test_an_interview_with_neither_questions_nor_skills_cannot_start(session_factory):
    with pytest.raises(ValueError, match="question or skill"):
        session_factory(questions=())
