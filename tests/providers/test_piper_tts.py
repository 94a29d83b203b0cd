"""The embedded Piper voice: streams a sentence at the output rate, stops when closed early,
says a line it has said before from its cache."""

import time

import pytest

from realtime.audio import pcm_to_array
from realtime.providers.local.piper_tts import PiperTextToSpeech

RATE = 24000


@pytest.fixture(scope="module")
def tts():
    voice = PiperTextToSpeech(output_sample_rate=RATE)
    voice.warm_up()
    return voice


async def test_streams_a_sentence_in_pieces(tts):
    started = time.monotonic()
    pieces, first_at = [], None
    async for piece in tts.synthesize("Thank you. Tell me about a project you are proud of."):
        first_at = first_at or time.monotonic() - started
        pieces.append(piece)
    audio = b"".join(pieces)
    seconds = len(audio) / 2 / RATE
    assert 2.0 < seconds < 6.0, seconds  # two short sentences at a speaking pace
    assert len(pieces) > 10  # handed on in ~100 ms pieces, not one blob
    assert pcm_to_array(audio).std() > 500  # audible, not silence
    assert first_at < 2.0, first_at  # the first sentence is out before the second is made


async def test_closing_early_stops_synthesis(tts):
    text = " ".join(f"This is sentence number {i} of a long answer." for i in range(30))
    stream = tts.synthesize(text)
    got = [await anext(stream)]
    await stream.aclose()
    started = time.monotonic()
    # The worker stops at the next sentence: the next line is spoken without waiting for 30.
    async for piece in tts.synthesize("Next."):
        got.append(piece)
    assert time.monotonic() - started < 3.0


async def test_empty_text_yields_nothing(tts):
    assert [p async for p in tts.synthesize("   ")] == []


async def test_a_line_said_before_is_said_again_without_synthesis(tts, monkeypatch):
    from realtime.providers.local import piper_tts

    line = "Thanks for sharing that."
    first = b"".join([p async for p in tts.synthesize(line)])
    runs = []
    real_run = piper_tts._run
    monkeypatch.setattr(piper_tts, "_run", lambda *args: runs.append(args[0]) or real_run(*args))
    again = b"".join([p async for p in tts.synthesize(line)])
    assert again == first and runs == []  # the same audio, from the worker's cache
    # A line cut off before it was made is never kept (a later request makes it whole).
    long_line = " ".join(f"This is sentence number {i} of a long answer." for i in range(6))
    stream = tts.synthesize(long_line)
    await anext(stream)
    await stream.aclose()
    whole = b"".join([p async for p in tts.synthesize(long_line)])
    assert runs == [long_line, long_line] and len(whole) / 2 / RATE > 8
