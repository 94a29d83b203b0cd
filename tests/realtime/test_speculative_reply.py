"""The reply starts when the recogniser foresees the end of the turn (`turn_ending`), and
nothing of it reaches the candidate before the final transcript confirms the words; if the
candidate goes on instead, the early reply is dropped unheard and the turn is taken once,
whole."""

import asyncio
import dataclasses

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from realtime.providers.base import Providers, TranscriptEvent
from realtime.providers.synthetic import SyntheticInterviewer, SyntheticTextToSpeech
from realtime.runtime import RuntimeConfig, SessionRuntime
from realtime.sessions import session_take
from tests.realtime.streams import OneStream, StreamStub
from tests.realtime.test_runtime import Harness, candidate_turns, wait_for_candidate_turns

pytestmark = pytest.mark.django_db(transaction=True)


class ScriptedStream(StreamStub):
    """Reports the next scripted events each time it is fed."""

    def __init__(self, script):
        self.script = list(script)

    async def feed(self, pcm16):
        return self.script.pop(0) if self.script else []



class NotedVoice(SyntheticTextToSpeech):
    """The synthetic voice, noting each line it is asked to say."""

    def __init__(self, sample_rate):
        super().__init__(sample_rate=sample_rate)
        self.lines: list[str] = []

    async def synthesize(self, text):
        self.lines.append(text)
        async for pcm in super().synthesize(text):
            yield pcm


async def started(live_session, script):
    snapshot, _, resumed = await database_sync_to_async(session_take)(
        session_id=live_session.session_id, user_id=live_session.user_id)
    config = RuntimeConfig.from_settings(settings.REALTIME)
    voice = NotedVoice(config.output_sample_rate)
    providers = Providers(stt=OneStream(ScriptedStream(script)), interviewer=SyntheticInterviewer(), tts=voice, name="synthetic")
    out = Harness()
    runtime = SessionRuntime(snapshot=snapshot, providers=providers, config=dataclasses.replace(config),
                             send=out.send, publish=out.publish, close=out.close)
    await runtime.start(resumed=resumed)
    opening = await out.wait("server-ai-speech-end")
    await asyncio.sleep(0.05)
    runtime._response and await runtime.interrupt()  # the opening is over; the candidate answers
    return runtime, out, voice, opening


async def test_the_reply_is_prepared_early_and_sent_only_after_the_final(live_session):
    runtime, out, voice, _ = await started(live_session, [
        [TranscriptEvent(text="I led the migration to Kubernetes.", is_final=False, turn_ending=True)],
        [TranscriptEvent(text="I led the migration to Kubernetes,", is_final=True)],  # the same words
    ])
    try:
        lines_before, seen = len(voice.lines), len(out.messages)
        runtime.feed_audio(b"\x00\x00")  # a pause: the end of the turn is foreseen
        for _ in range(100):
            if len(voice.lines) > lines_before:
                break
            await asyncio.sleep(0.01)
        assert len(voice.lines) > lines_before, "the reply was not prepared before the final"
        await asyncio.sleep(0.2)
        held = [m["type"] for m in out.messages[seen:] if m["type"] != "server-live-transcript"]
        assert held == [], f"the reply went out before the turn ended: {held}"

        runtime.feed_audio(b"\x00\x00")  # the silence is long enough: the final
        final = await out.wait("server-final-transcript")
        assert final["transcript"] == "I led the migration to Kubernetes,"
        await out.wait("server-ai-speech-chunk", timeout=5, seq=0)
        types = [m["type"] for m in out.messages[seen:]]
        assert types.index("server-final-transcript") < types.index("server-ai-thinking") \
            < types.index("server-ai-speech-chunk")
        turns = await wait_for_candidate_turns(live_session.session_id, 1)
        assert [text for _, text in turns] == ["I led the migration to Kubernetes,"]
    finally:
        await runtime.stop()


async def test_a_candidate_who_goes_on_is_answered_once_for_the_whole_turn(live_session):
    runtime, out, voice, _ = await started(live_session, [
        [TranscriptEvent(text="I led the migration.", is_final=False, turn_ending=True)],
        [TranscriptEvent(text="I led the migration and then the rollout", is_final=False)],  # went on
        [TranscriptEvent(text="I led the migration and then the rollout.", is_final=True)],
    ])
    try:
        state_before = out.of("server-session-state")[-1]["questionIndex"]
        runtime.feed_audio(b"\x00\x00")
        await asyncio.sleep(0.2)  # the early reply is being prepared, held
        runtime.feed_audio(b"\x00\x00")
        await asyncio.sleep(0.2)
        runtime.feed_audio(b"\x00\x00")
        await out.wait("server-final-transcript")
        await out.wait("server-ai-speech-chunk", timeout=5, seq=0)
        await asyncio.sleep(0.3)
        finals = out.of("server-final-transcript")
        assert [f["transcript"] for f in finals] == ["I led the migration and then the rollout."]
        # One reply after the opening: the dropped one never said a word.
        thinking = [m["responseId"] for m in out.of("server-ai-thinking")]
        spoken = {m["responseId"] for m in out.of("server-ai-speech-chunk")}
        assert len(thinking) == 2 and spoken <= set(thinking)
        states = [s["questionIndex"] for s in out.of("server-session-state")]
        assert states[-1] == state_before + 1  # moved on once
        turns = await candidate_turns(live_session.session_id)
        assert turns == [(state_before, "I led the migration and then the rollout.")]
    finally:
        await runtime.stop()
