"""The session runtime on its own, with the real local providers and database."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from realtime.providers.base import TranscriptEvent
from realtime.providers.registry import get_providers
from realtime.runtime import RuntimeConfig, SessionRuntime
from realtime.sessions import session_take
from tests.realtime.polling import until

pytestmark = pytest.mark.django_db(transaction=True)


class Harness:
    def __init__(self):
        self.messages: list[dict] = []
        self.closed_with: int | None = None

    async def send(self, text):
        self.messages.append(json.loads(text))

    async def publish(self, event):
        pass

    async def close(self, code):
        self.closed_with = code

    def of(self, kind):
        return [m["payload"] for m in self.messages if m["type"] == kind]

    async def wait(self, kind, timeout=20, **match):
        for _ in range(int(timeout / 0.02)):
            found = [p for p in self.of(kind) if all(p.get(k) == v for k, v in match.items())]
            if found:
                return found[0]
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {kind}; saw {[m['type'] for m in self.messages[-10:]]}")


async def start_runtime(info):
    snapshot, _, resumed = await database_sync_to_async(session_take)(session_id=info.session_id, user_id=info.user_id)
    harness = Harness()
    runtime = SessionRuntime(snapshot=snapshot, providers=get_providers(), config=RuntimeConfig.from_settings(settings.REALTIME),
                             send=harness.send, publish=harness.publish, close=harness.close)
    await runtime.start(resumed=resumed)
    return runtime, harness


async def test_a_one_word_utterance_over_the_interviewer_is_not_a_barge_in(live_session):
    """The false-interruption policy: short echo or noise does not cut the interviewer off."""
    runtime, out = await start_runtime(live_session)
    opening = await out.wait("server-ai-speech-chunk")
    await runtime._on_transcript(TranscriptEvent(text="uh", is_final=True))
    await out.wait("server-ai-speech-end", timeout=30, responseId=opening["responseId"])
    assert out.of("server-ai-interrupted") == [] and out.of("server-final-transcript") == []

    # A real sentence over the interviewer is a barge-in: it stops the speech and is answered.
    second = await _next_response(runtime, out, "my answer is this")
    await runtime._on_transcript(TranscriptEvent(text="sorry could you repeat that", is_final=True))
    await out.wait("server-ai-interrupted", responseId=second)
    await out.wait("server-final-transcript", transcript="sorry could you repeat that")
    await runtime.stop()


async def _next_response(runtime, out, answer):
    await runtime.submit_text(answer)
    thinking = out.of("server-ai-thinking")
    for _ in range(200):
        if len(out.of("server-ai-thinking")) > 1:
            break
        await asyncio.sleep(0.02)
    response_id = out.of("server-ai-thinking")[-1]["responseId"]
    await out.wait("server-ai-speech-chunk", responseId=response_id)
    assert len(thinking) >= 1
    return response_id


@database_sync_to_async
def candidate_turns(session_id):
    from interviews.models import Turn

    return list(Turn.objects.filter(session_id=session_id, speaker="candidate").order_by("sequence")
                .values_list("question_index", "text"))


async def wait_for_candidate_turns(session_id, count):
    return await until(lambda: candidate_turns(session_id), lambda turns: len(turns) >= count,
                       what=f"{count} candidate turns")


async def test_talking_over_the_next_question_continues_the_last_answer_and_the_question_is_asked_again(live_session):
    runtime, out = await start_runtime(live_session)
    await out.wait("server-ai-speech-end", timeout=30)
    second = await _next_response(runtime, out, "I build backend services.")
    await runtime._on_transcript(TranscriptEvent(text="and I also led the team", is_final=True))
    await out.wait("server-ai-interrupted", responseId=second)
    # Still on question 2: it was not heard, so it is asked again rather than skipped.
    assert out.of("server-session-state")[-1]["questionIndex"] == 1
    for _ in range(200):
        if out.of("server-ai-thinking")[-1]["responseId"] != second:
            break
        await asyncio.sleep(0.02)
    again = out.of("server-ai-thinking")[-1]["responseId"]
    assert again != second
    await out.wait("server-ai-speech-end", timeout=30, responseId=again)
    assert "What is your favourite programming language?" in " ".join(c["text"] for c in out.of("server-ai-text")
                                                                      if c["responseId"] == again)
    turns = await wait_for_candidate_turns(live_session.session_id, 2)
    assert turns == [(0, "I build backend services."), (0, "and I also led the team")]
    await runtime.stop()


async def test_speaking_over_the_goodbye_is_heard_and_the_interview_still_ends(session_factory):
    info = await database_sync_to_async(session_factory)(questions=("Why this role?",))
    runtime, out = await start_runtime(info)
    await out.wait("server-ai-speech-end", timeout=30)
    closing = await _next_response(runtime, out, "Because I like realtime systems.")
    await runtime._on_transcript(TranscriptEvent(text="oh and one more important thing", is_final=True))
    await out.wait("server-ai-interrupted", responseId=closing)
    assert out.of("server-session-ended") == []
    turns = await wait_for_candidate_turns(info.session_id, 2)
    assert turns[-1] == (0, "oh and one more important thing")
    ended = await out.wait("server-session-ended", timeout=30)
    assert ended == {"reason": "All questions answered."} and out.closed_with == 1000
    await runtime.stop()
