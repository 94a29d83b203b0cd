"""The candidate's audio is heard in the order it was spoken, one chunk after another,
whether the recogniser's `feed` returns at once or waits (a thread, the network: the
chunks that arrive meanwhile queue behind it and are heard together, in order)."""

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
from tests.realtime.test_runtime import Harness

pytestmark = pytest.mark.django_db(transaction=True)


class RecordingStream(StreamStub):
    """Notes the chunks it is fed and whether two feeds ever overlapped; every third
    feed waits on a thread, the others return at once. Says what it heard once the
    candidate stops (a zero chunk)."""

    def __init__(self):
        self.heard: list[int] = []
        self.feeding = 0
        self.overlapped = False

    async def feed(self, pcm16: bytes) -> list[TranscriptEvent]:
        self.feeding += 1
        self.overlapped |= self.feeding > 1
        try:
            for start in range(0, len(pcm16), 2):
                self.heard.append(int.from_bytes(pcm16[start:start + 2], "little"))
            if len(self.heard) % 3 == 0:
                await asyncio.to_thread(lambda: None)
        finally:
            self.feeding -= 1
        if self.heard[-1] == 0:
            return [TranscriptEvent(text=" ".join(map(str, self.heard[:-1])), is_final=False)]
        return []



async def test_chunks_are_heard_in_order_whether_the_recogniser_waits_or_not(live_session):
    snapshot, _, resumed = await database_sync_to_async(session_take)(
        session_id=live_session.session_id, user_id=live_session.user_id)
    config = RuntimeConfig.from_settings(settings.REALTIME)
    config = dataclasses.replace(config, audio_queue_chunks=max(config.audio_queue_chunks, 300))
    recogniser = OneStream(RecordingStream())
    providers = Providers(stt=recogniser, interviewer=SyntheticInterviewer(),
                          tts=SyntheticTextToSpeech(sample_rate=config.output_sample_rate), name="synthetic")
    out = Harness()
    runtime = SessionRuntime(snapshot=snapshot, providers=providers, config=config, send=out.send,
                             publish=out.publish, close=out.close)
    await runtime.start(resumed=resumed)
    try:
        spoken = list(range(1, 201))
        for number in spoken:  # a burst, as a client catching up after a network stall sends
            assert runtime.feed_audio(number.to_bytes(2, "little"))
            if number % 7 == 0:
                await asyncio.sleep(0)  # and sometimes one at a time
        assert runtime.feed_audio(b"\x00\x00")
        heard = await out.wait("server-live-transcript")
        assert heard["transcript"] == " ".join(map(str, spoken))
        assert not recogniser.stream.overlapped
    finally:
        await runtime.stop()
