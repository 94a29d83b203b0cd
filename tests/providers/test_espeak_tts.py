import asyncio
import time

import pytest

from realtime.audio import pcm_duration_ms
from realtime.providers.local import EspeakTextToSpeech
from realtime.providers.local.espeak_tts import synthesize_to_pcm

SENTENCE = "My name is John and I like Python programming."
# Long enough that eSpeak needs a good fraction of a second to synthesize it all.
LONG_TEXT = " ".join(f"This is sentence number {i} of a rather long answer." for i in range(150))


def same_utterance(a: bytes, b: bytes) -> bool:
    # eSpeak is not bit-exact from run to run (a little pitch jitter), so compare lengths.
    return abs(len(a) - len(b)) < 0.02 * max(len(a), len(b))


async def collect(tts, text):
    return [piece async for piece in tts.synthesize(text)]


async def test_streams_several_pieces_at_the_output_rate():
    tts = EspeakTextToSpeech(output_sample_rate=24000)
    assert tts.sample_rate == 24000
    pieces = await collect(tts, SENTENCE)
    assert len(pieces) >= 5
    assert all(p and len(p) % 2 == 0 for p in pieces)
    pcm = b"".join(pieces)
    seconds = pcm_duration_ms(len(pcm), 24000) / 1000
    assert 1.5 < seconds < 5.0  # nine words at 175 wpm
    # Same utterance at 16 kHz lasts as long: the output really is at the stated rate.
    seconds_16k = pcm_duration_ms(len(synthesize_to_pcm(SENTENCE, 16000)), 16000) / 1000
    assert abs(seconds - seconds_16k) < 0.02


async def test_first_piece_arrives_before_synthesis_completes():
    tts = EspeakTextToSpeech()
    start = time.perf_counter()
    first_at = None
    async for _ in tts.synthesize(LONG_TEXT):
        if first_at is None:
            first_at = time.perf_counter() - start
    total = time.perf_counter() - start
    assert first_at < total / 5, (first_at, total)


async def test_closing_early_frees_the_engine():
    tts = EspeakTextToSpeech()
    start = time.perf_counter()
    full_audio = await collect(tts, LONG_TEXT)
    full_time = time.perf_counter() - start
    assert full_audio

    stream = tts.synthesize(LONG_TEXT)
    async for _ in stream:
        break
    await stream.aclose()
    start = time.perf_counter()
    after = await collect(tts, SENTENCE)
    # Had the aborted job run to its end, this would have waited for it.
    assert time.perf_counter() - start < full_time / 3
    assert same_utterance(b"".join(after), b"".join(await collect(tts, SENTENCE)))


async def test_cancelling_the_consumer_task_frees_the_engine():
    tts = EspeakTextToSpeech()
    got_one = asyncio.Event()

    async def consume():
        async for _ in tts.synthesize(LONG_TEXT):
            got_one.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(consume())
    await got_one.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(b"".join(await asyncio.wait_for(collect(tts, SENTENCE), 1.0))) > 24000


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
async def test_empty_text_yields_nothing(text):
    assert await collect(EspeakTextToSpeech(), text) == []
    assert synthesize_to_pcm(text) == b""


async def test_concurrent_synthesis_is_serialized_and_correct():
    tts = EspeakTextToSpeech()
    texts = [SENTENCE, "Tell me about a project you are proud of."]
    alone = [b"".join(await collect(tts, t)) for t in texts]
    together = await asyncio.gather(*(collect(tts, t) for t in texts))
    for pieces, reference in zip(together, alone):
        assert same_utterance(b"".join(pieces), reference)
    assert not same_utterance(alone[0], alone[1])


async def test_voice_and_rate_are_applied():
    slow = b"".join(await collect(EspeakTextToSpeech(rate_wpm=120), SENTENCE))
    fast = b"".join(await collect(EspeakTextToSpeech(rate_wpm=250), SENTENCE))
    assert len(slow) > 1.5 * len(fast)
    british = b"".join(await collect(EspeakTextToSpeech(voice="en-gb"), SENTENCE))
    assert british and british != b"".join(await collect(EspeakTextToSpeech(), SENTENCE))
    with pytest.raises(ValueError):
        await collect(EspeakTextToSpeech(voice="zz-nowhere"), SENTENCE)
