"""The embedded Moonshine recogniser: real words, partials first, nothing on noise, one model."""

import asyncio
import wave

import numpy as np
import pytest

from realtime.audio import silence, split_into_chunks
from realtime.providers.local import moonshine_model
from realtime.providers.local.moonshine_stt import MoonshineSpeechToText
from realtime.providers.local.piper_tts import synthesize_to_pcm
from realtime.turn_taking import TurnPolicy

RATE = 16000
CHUNK = 1280  # 40 ms, as the browser sends it
ANSWER = "I built the payment service in Python, and I led a team of four engineers."


@pytest.fixture(scope="module")
def stt(tmp_path_factory):
    # One model for the whole module (~0.3 GB): the streams below all share it.
    return MoonshineSpeechToText()


@pytest.fixture(scope="module")
def beckett():
    path = moonshine_model.package_dir().parent.parent / "test-data" / "beckett.wav"
    with wave.open(str(path)) as w:
        assert w.getframerate() == RATE
        return w.readframes(w.getnframes())


async def feed_all(stream, pcm, pace_s=0.004, lockstep=False):
    """Feed 40 ms chunks (10x real time), then wait for the decodes still in flight.
    `lockstep`: after each chunk wait until the stream's decodes are done, so what it
    reports depends on the audio alone, not on how busy the machine is."""
    events = []
    for piece in split_into_chunks(pcm, CHUNK):
        events += await stream.feed(piece)
        await asyncio.sleep(pace_s)
        if lockstep:
            await decodes_done(stream)
    for _ in range(200):  # trailing silence at real time, until nothing is pending
        events += await stream.feed(silence(40, RATE))
        if events and events[-1].is_final:
            break
        await asyncio.sleep(0.04)
        if lockstep:
            await decodes_done(stream)
    return events


async def decodes_done(stream):
    while any(job is not None and not job.done() for job in (stream._job, stream._next_job)):
        await asyncio.sleep(0.005)


def words(text):
    return [w.strip(".,!?").lower() for w in text.split()]


async def test_real_speech_comes_back_as_its_words(stt, beckett):
    stream = stt.open_stream(sample_rate=RATE)
    # The reading pauses between lines; the fixed-policy stream keeps it as one answer.
    stream._policy = TurnPolicy(finished_ms=3000, plain_ms=3000, unfinished_ms=3000)
    events = await feed_all(stream, silence(300, RATE) + beckett + silence(500, RATE))
    await stream.close()
    final = [e for e in events if e.is_final]
    assert len(final) == 1, events
    said = words(final[0].text)
    for expected in ("ever", "tried", "failed", "matter", "try", "again", "fail", "better"):
        assert expected in said, final[0].text
    # Partials came first, and the final carries where speech ended (the clip ends at ~9.9 s).
    assert events[0].is_final is False
    assert 9000 < final[0].end_ms < 10400, final[0].end_ms


async def test_synthesized_answer_at_48k(stt):
    """Piper says the answer a little differently each time, and once in a few dozen
    readings Moonshine mishears a phrase ("I let a team afford engineers"): three readings,
    at most the issue's 15 % of their words missed in all."""
    expected = words(ANSWER)
    missing = []
    for _ in range(3):
        pcm = synthesize_to_pcm(ANSWER, 48000)
        stream = stt.open_stream(sample_rate=48000)
        events = []
        for piece in split_into_chunks(silence(200, 48000) + pcm, 3840):
            events += await stream.feed(piece)
            await asyncio.sleep(0.004)
        for _ in range(100):
            events += await stream.feed(silence(40, 48000))
            if events and events[-1].is_final:
                break
            await asyncio.sleep(0.04)
        await stream.close()
        finals = [e for e in events if e.is_final]
        assert len(finals) == 1, events
        assert not events[0].is_final
        said = words(finals[0].text)
        missing += [(w, finals[0].text) for w in expected if w not in said]
    assert len(missing) <= 0.15 * 3 * len(expected), missing


async def test_silence_noise_and_a_click_produce_nothing(stt):
    stream = stt.open_stream(sample_rate=RATE)
    rng = np.random.default_rng(1)
    noise = (rng.normal(0, 180, RATE * 3)).astype(np.int16).tobytes()  # about -45 dBFS
    click = np.zeros(RATE // 2, np.int16)
    click[4000:4040] = 20000
    events = await feed_all(stream, silence(2000, RATE) + noise + click.tobytes() + silence(2500, RATE))
    await stream.close()
    assert events == []


async def test_streams_share_one_model_and_decode_at_once(stt, beckett):
    a, b = stt.open_stream(sample_rate=RATE), stt.open_stream(sample_rate=RATE)
    assert a._model is b._model is moonshine_model.shared_model()
    first_line = beckett[: RATE * 2 * 3]  # "Ever tried, ever failed."
    ea, eb = await asyncio.gather(feed_all(a, first_line + silence(300, RATE)),
                                  feed_all(b, first_line + silence(300, RATE)))
    await a.close()
    await b.close()
    for events in (ea, eb):
        # The reader pauses after "Ever tried.": a finished sentence may end the turn there.
        final = " ".join(e.text for e in events if e.is_final)
        assert {"ever", "tried", "failed"} <= set(words(final)), events


async def test_reset_drops_the_utterance_and_flush_ends_it(stt, beckett):
    stream = stt.open_stream(sample_rate=RATE)
    for piece in split_into_chunks(beckett[: RATE * 2 * 2], CHUNK):
        await stream.feed(piece)
    stream.reset()
    assert await stream.flush() == []
    for piece in split_into_chunks(beckett[: RATE * 2 * 3], CHUNK):
        await stream.feed(piece)
    events = await stream.flush()
    await stream.close()
    assert [e.is_final for e in events][-1:] == [True]
    assert {"ever", "tried"} <= set(words(events[-1].text)), events


def test_a_redecode_from_the_last_words_gives_what_a_fresh_decode_gives(beckett):
    # Each re-decode of a growing segment starts from the previous decode's tokens (checked
    # in one pass): the words must be those a decode from nothing gives, wrong guesses
    # included. (Not always the same tokens: the int8 decoder rounds its inputs per call,
    # so a comma can come and go between the one pass and token-by-token decoding.)
    model = moonshine_model.shared_model()
    audio = np.frombuffer(beckett, np.int16).astype(np.float32) / 32768

    def decoded_words(audio, draft=()):
        return words(model.detokenize(model.decode(audio, draft)))

    for cut in (3.0, 6.0, 8.0):
        whole = audio[: int((cut + 1.5) * RATE)]
        draft = model.decode(audio[: int(cut * RATE)])
        assert len(draft) > 4 and decoded_words(whole, draft) == decoded_words(whole)
    assert decoded_words(audio[: 4 * RATE], [5, 6, 7, 8]) == decoded_words(audio[: 4 * RATE])  # a wrong draft


async def test_a_finished_answer_is_announced_before_its_final_and_a_thinking_pause_is_not(stt):
    """At the pause after a finished sentence the stream says the turn will likely end
    (`turn_ending`: the runtime starts its reply) and then ends it with the same words;
    after "and" it says nothing of the kind, and the candidate goes on. (Piper says each
    answer a little differently every time, and now and then Moonshine hears one ending
    in a comma in both readings, a middle wait and no reason to announce: every answer
    whose final reads as finished is announced. Fed in lockstep: on a busy machine the
    confirming reading can come in after the shortest wait, and the turn then ends at
    once without an announcement, as it should.)"""
    announced = 0
    for question, answer in [
        ("What result are you most proud of?", "We reduced the page load time to under one second."),
        ("Who were your users?", "Our users were mostly small businesses that needed simple invoicing."),
        ("Tell me about a recent project.", "I built the payment service in Python and moved it to Kubernetes last year."),
    ]:
        stream = stt.open_stream(sample_rate=RATE)
        stream.set_question(question)
        events = await feed_all(stream, silence(200, RATE) + synthesize_to_pcm(answer, RATE), lockstep=True)
        await stream.close()
        finals = [e for e in events if e.is_final]
        assert len(finals) == 1, events
        before_final = events[:events.index(finals[0])]
        endings = [k for k, e in enumerate(before_final) if e.turn_ending]
        if endings:
            # The last words heard before the final (announced, or an interim after the
            # announcement that changed them: the runtime drops its early reply) are the final's.
            last_words = [e for e in before_final[endings[0]:] if e.text][-1]
            assert words(last_words.text) == words(finals[0].text), events
            announced += 1
        else:
            policy = stream._policy
            assert policy.silence_needed_ms(finals[0].text, question=question) > policy.finished_ms, events
    assert announced >= 1

    stream = stt.open_stream(sample_rate=RATE)
    stream.set_question("What was your role on that team?")
    thinking = []
    for piece in split_into_chunks(silence(200, RATE) + synthesize_to_pcm("I was the lead engineer and", RATE), CHUNK):
        thinking += await stream.feed(piece)
        await asyncio.sleep(0.004)
    for _ in range(25):  # a second of thinking, at real time
        thinking += await stream.feed(silence(40, RATE))
        await asyncio.sleep(0.04)
    await stream.close()
    assert not [e for e in thinking if e.turn_ending or e.is_final], thinking
