"""How interviewer speech is cut, paced, and what counts as heard."""

import asyncio

from realtime.chunker import SentenceChunker
from realtime.pacing import SpeechPacer
from realtime.response import Response, SpokenSentence


def test_speech_starts_after_the_first_sentence_not_the_whole_answer():
    chunker = SentenceChunker()
    pieces = []
    for word in "Thank you, that is helpful. What is a project you are proud of? ".split(" "):
        pieces += chunker.push(word + " ")
    assert pieces == ["Thank you, that is helpful.", "What is a project you are proud of?"]
    assert chunker.flush() == []


def test_a_long_first_sentence_is_cut_at_a_pause():
    chunker = SentenceChunker(first_max_chars=40)
    pieces = chunker.push("Hello and welcome to this interview, which will take about twenty minutes of your time")
    assert pieces == ["Hello and welcome to this interview,"]
    assert chunker.flush() == ["which will take about twenty minutes of your time"]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


async def test_pacer_sends_40ms_chunks_and_keeps_a_bounded_lead(monkeypatch):
    clock = FakeClock()
    sent = []

    async def fake_sleep(seconds):
        clock.now += seconds

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)

    async def send(chunk, seq):
        sent.append((clock.now, len(chunk), seq))

    pacer = SpeechPacer(sample_rate=24000, chunk_ms=40, lead_ms=200, send_chunk=send, clock=clock)
    await pacer.push(b"\x00\x00" * 24000)  # one second of audio
    await pacer.finish()
    assert [size for _, size, _ in sent] == [1920] * 25
    assert [seq for _, _, seq in sent] == list(range(25))
    # Never more than the lead (plus one chunk) ahead of what the client has played.
    for at, _, seq in sent:
        assert seq * 0.04 - at <= 0.2 + 1e-9
    assert clock.now >= 0.76  # the last chunk waited for real time


def test_heard_text_is_cut_in_proportion_to_the_audio_played():
    class Pacer:
        sent_ms = 4000.0

        def played_ms(self):
            return 3000.0

    response = Response(kind="next_question", question_index=1)
    response.pacer = Pacer()
    response.spoken = [SpokenSentence("Thank you.", 0, 1000), SpokenSentence("What did you build there last year?", 1000, 4000)]
    assert response.heard_text() == "Thank you. What did you build there"
