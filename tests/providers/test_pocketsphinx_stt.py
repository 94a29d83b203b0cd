import time

import numpy as np
import pytest

from realtime.audio import Resampler, array_to_pcm, pcm_duration_ms, silence, split_into_chunks
from realtime.providers.local import PocketsphinxSpeechToText
from realtime.providers.local.espeak_tts import synthesize_to_pcm

RATE = 16000
CHUNK = 1280  # 40 ms, as the browser sends it
SENTENCE = "my name is john and i like python programming"
SECOND = "yes i think that is a good question"


@pytest.fixture(scope="module")
def speech():
    # eSpeak's own default rate, which these sentences were chosen at: PocketSphinx hears
    # "yes i think that is a good question" at 175 words a minute, not at the light voice's 150.
    return {text: synthesize_to_pcm(text, RATE, rate_wpm=175) for text in (SENTENCE, SECOND)}


@pytest.fixture
async def stream():
    s = PocketsphinxSpeechToText().open_stream(sample_rate=RATE)
    yield s
    await s.close()


async def feed_all(stream, pcm, chunk=CHUNK):
    events = []
    for piece in split_into_chunks(pcm, chunk):
        events += await stream.feed(piece)
    return events


def finals(events):
    return [e for e in events if e.is_final]


def overlap(hypothesis, reference):
    return set(hypothesis.split()) & set(reference.split())


async def test_interims_then_one_final_with_end_time(stream, speech):
    lead_ms = 500
    pcm = silence(lead_ms, RATE) + speech[SECOND] + silence(1500, RATE)
    events = await feed_all(stream, pcm)
    assert events and not events[0].is_final  # at least one interim came first
    assert [e.is_final for e in events].count(True) == 1 and events[-1].is_final
    assert all(e.text for e in events)
    final = events[-1]
    # PocketSphinx is weak on eSpeak's voice, but this sentence comes through well.
    assert len(overlap(final.text, SECOND)) >= 3, final.text
    speech_end = lead_ms + pcm_duration_ms(len(speech[SECOND]), RATE)
    assert abs(final.end_ms - speech_end) < 300, (final.end_ms, speech_end)
    # Interims only when the hypothesis changed.
    interims = [e.text for e in events[:-1]]
    assert all(a != b for a, b in zip(interims, interims[1:]))


async def test_silence_and_low_noise_produce_nothing(stream):
    assert await feed_all(stream, silence(3000, RATE)) == []
    rng = np.random.default_rng(0)
    noise = array_to_pcm(rng.normal(0, 60, RATE * 3).astype(np.int16))  # about -55 dBFS
    assert await feed_all(stream, noise) == []
    assert await stream.flush() == []


async def test_flush_during_speech_returns_a_final(stream, speech):
    pcm = silence(300, RATE) + speech[SENTENCE]
    events = await feed_all(stream, pcm[: len(pcm) * 2 // 3 // 2 * 2])
    assert not finals(events)
    flushed = await stream.flush()
    assert len(flushed) == 1 and flushed[0].is_final and flushed[0].text
    assert await stream.flush() == []


async def test_two_utterances_give_two_finals(stream, speech):
    pcm = silence(300, RATE) + speech[SENTENCE] + silence(1000, RATE) + speech[SECOND] + silence(1000, RATE)
    got = finals(await feed_all(stream, pcm))
    assert len(got) == 2
    assert got[0].text and got[0].end_ms < got[1].end_ms
    assert len(overlap(got[1].text, SECOND)) >= 2, got[1].text


async def test_reset_drops_the_current_utterance(stream, speech):
    pcm = silence(300, RATE) + speech[SENTENCE]
    await feed_all(stream, pcm[: len(pcm) // 2 // 2 * 2])
    stream.reset()
    assert await feed_all(stream, silence(1500, RATE)) == []
    assert await stream.flush() == []
    got = finals(await feed_all(stream, speech[SECOND] + silence(1000, RATE)))
    assert len(got) == 1 and got[0].text


async def test_other_input_rates_are_resampled(speech):
    stream = PocketsphinxSpeechToText().open_stream(sample_rate=48000)
    up = Resampler(RATE, 48000)
    pcm = up.process(silence(300, RATE) + speech[SECOND] + silence(1200, RATE), last=True)
    got = finals(await feed_all(stream, pcm, chunk=CHUNK * 3))
    await stream.close()
    assert len(got) == 1 and got[0].text


async def test_odd_chunk_sizes_are_buffered(stream, speech):
    pcm = silence(300, RATE) + speech[SECOND] + silence(1000, RATE)
    got = finals(await feed_all(stream, pcm, chunk=998))
    assert len(got) == 1 and got[0].text


async def test_feeding_silence_is_cheap(stream):
    chunk = silence(40, RATE)
    await stream.feed(chunk)
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        await stream.feed(chunk)
    per_feed_us = (time.perf_counter() - start) / n * 1e6
    assert per_feed_us < 200, per_feed_us


async def test_closed_stream_ignores_audio(speech):
    stream = PocketsphinxSpeechToText().open_stream(sample_rate=RATE)
    await stream.close()
    await stream.close()
    assert await stream.feed(speech[SECOND]) == []
