"""A failing or hanging interviewer never leaves the candidate in silence."""

import asyncio
import dataclasses

import pytest

from realtime import consumers
from realtime.providers.registry import get_providers
from tests.factories import QUESTIONS
from tests.realtime.wsclient import Client

pytestmark = pytest.mark.django_db(transaction=True)


class BrokenInterviewer:
    async def respond(self, request):
        raise ConnectionError("the LLM service is down")
        yield  # pragma: no cover - makes this an async generator


class HangingInterviewer:
    async def respond(self, request):
        await asyncio.sleep(3600)
        yield "never"  # pragma: no cover


@pytest.mark.parametrize("interviewer", [BrokenInterviewer(), HangingInterviewer()], ids=["fails", "hangs"])
async def test_interviewer_failure_speaks_the_question_as_a_fallback(live_session, settings, monkeypatch, interviewer):
    settings.REALTIME = {**settings.REALTIME, "LLM_DEADLINE_SECONDS": 0.5}
    providers = dataclasses.replace(get_providers(), interviewer=interviewer)
    monkeypatch.setattr(consumers, "get_providers", lambda: providers)
    client = await Client.open()
    await client.auth(live_session)
    caption = await client.expect("server-ai-text", timeout=10)
    assert caption["text"] == QUESTIONS[0]
    await client.expect("server-ai-speech-chunk", responseId=caption["responseId"])
    await client.close()

