"""A recogniser that hangs costs the candidate one deadline, not the rest of the interview.

The runtime keeps the speech-to-text deadline with a watchdog (not a timer per 40 ms
chunk, docs/performance.md): a feed that runs past REALTIME_STT_DEADLINE_SECONDS is
cancelled and listening goes on with the next audio.
"""

import asyncio
import dataclasses

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from realtime import metrics
from realtime.providers.base import Providers
from realtime.providers.synthetic import SyntheticInterviewer, SyntheticSpeechToText, SyntheticTextToSpeech
from realtime.runtime import RuntimeConfig, SessionRuntime
from realtime.sessions import session_take
from tests.realtime.test_runtime import Harness

pytestmark = pytest.mark.django_db(transaction=True)

VOICED = b"\x10\x00" * 640  # one voiced 40 ms frame at 16 kHz for the synthetic recogniser


class StallsOnce(SyntheticSpeechToText):
    """The synthetic recogniser, except that its stream's first feed never returns
    (a provider connection that stopped answering)."""

    def open_stream(self, *, sample_rate):
        stream = super().open_stream(sample_rate=sample_rate)
        feed = stream.feed
        stalled = asyncio.Event()

        async def first_feed_hangs(pcm16):
            if not stalled.is_set():
                stalled.set()
                await asyncio.Event().wait()
            return await feed(pcm16)

        stream.feed = first_feed_hangs
        return stream


async def test_listening_goes_on_after_a_feed_misses_its_deadline(live_session):
    snapshot, _, resumed = await database_sync_to_async(session_take)(
        session_id=live_session.session_id, user_id=live_session.user_id)
    config = dataclasses.replace(RuntimeConfig.from_settings(settings.REALTIME), stt_deadline_s=0.4)
    providers = Providers(stt=StallsOnce(), interviewer=SyntheticInterviewer(),
                          tts=SyntheticTextToSpeech(sample_rate=config.output_sample_rate), name="synthetic")
    out = Harness()
    runtime = SessionRuntime(snapshot=snapshot, providers=providers, config=config, send=out.send,
                             publish=out.publish, close=out.close)
    missed = metrics.PROVIDER_FAILURES.labels("stt", "deadline")._value.get()
    await runtime.start(resumed=resumed)
    try:
        assert runtime.feed_audio(VOICED)  # this one hangs in the recogniser
        for _ in range(200):
            if metrics.PROVIDER_FAILURES.labels("stt", "deadline")._value.get() > missed:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the stalled feed was never given up")
        assert out.of("server-live-transcript") == []
        assert runtime.feed_audio(VOICED)  # the candidate goes on speaking: heard again
        heard = await out.wait("server-live-transcript")
        assert heard["transcript"].startswith("word ")
    finally:
        await runtime.stop()
