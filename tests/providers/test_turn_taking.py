"""Adaptive turn-taking: wait longer when the candidate is mid-thought, answer sooner when done."""

import pytest

from realtime.audio import silence, split_into_chunks
from realtime.providers.local import PocketsphinxSpeechToText
from realtime.providers.local.piper_tts import synthesize_to_pcm
from realtime.turn_taking import FixedTurnPolicy, TurnPolicy, from_config

policy = TurnPolicy()
QUESTION = "Tell me about a project you are proud of."
FINISHED = "I built the payment service in Python and moved it to Kubernetes last year."


@pytest.mark.parametrize("unfinished", [
    "I built the payment service and", "I chose Python because", "Um,", "So I think, um",
    "The hardest part was the", "I worked with", "We moved the whole system to",
    # What Moonshine wrote at the cut-offs the benchmark found (it punctuates every pause):
    "Our main customers were.", "The reason we switched was.", "We tested it was. We tested it was.",
    "Um, so?", "Um, let me think.", "Hmm, good question.",
])
def test_an_unfinished_thought_waits_longer_than_a_finished_sentence(unfinished):
    assert policy.silence_needed_ms(unfinished, question=QUESTION) >= 1500
    assert policy.silence_needed_ms(FINISHED, question=QUESTION) <= 400
    assert policy.silence_needed_ms(FINISHED) < FixedTurnPolicy().silence_needed_ms(FINISHED)


def test_words_that_may_end_a_sentence_end_it_when_punctuated():
    # An ambiguous ending waits as the fixed rule did; never less, never the long wait.
    assert policy.silence_needed_ms("I'm proud of that.") == FixedTurnPolicy().silence_needed_ms("")
    assert policy.silence_needed_ms("I'm proud of that") >= 1500  # no full stop: maybe "that we..."


def test_short_replies_to_closed_questions_are_taken_at_once():
    assert policy.silence_needed_ms("Yes, I can start in May.", question="Can you start in May?") <= 400
    # An auxiliary ends an elliptical reply, not a long clause.
    assert policy.silence_needed_ms("Yes, I did.", question="Did you lead it?") < 1000
    assert policy.silence_needed_ms("The person who led it was.", question="Did you lead it?") >= 1500


def test_a_short_start_to_an_open_question_is_not_taken_as_the_answer():
    # "I worked on the back-end and" heard as "...backhand end.": the words look finished.
    start = "I worked mostly on the backhand end."
    assert policy.silence_needed_ms(start, question=QUESTION) >= 1500
    assert policy.silence_needed_ms(start, question="Which part of the system did you work on?") <= 400
    assert policy.silence_needed_ms("Sure.", question=QUESTION) > policy.silence_needed_ms("Sure.", question="")


def test_a_trailing_comma_alone_is_weak_evidence():
    # Moonshine writes a comma where the audio it decoded stops short.
    comma = policy.silence_needed_ms("We used PostgreSQL for the main data and Redis for caching,")
    assert policy.silence_needed_ms(FINISHED) < comma < policy.silence_needed_ms("We used PostgreSQL and")


def test_settings_choose_the_policy():
    config = {"TURN_TAKING": "fixed", "END_OF_UTTERANCE_SILENCE_MS": 900}
    assert from_config(config).silence_needed_ms("done.") == 900
    plain = from_config({"TURN_TAKING": "adaptive", "END_OF_UTTERANCE_SILENCE_MS": 700}, punctuates=False)
    # Without punctuation a turn never ends sooner than the fixed rule, only later.
    assert plain.silence_needed_ms("i built it in python") == 700
    assert plain.silence_needed_ms("i built it and") >= 1500
    with pytest.raises(ValueError, match="REALTIME_TURN_TAKING"):
        from_config({"TURN_TAKING": "sometimes", "END_OF_UTTERANCE_SILENCE_MS": 700})


async def test_pocketsphinx_waits_through_a_thinking_pause_after_and():
    # Piper speaks the answer: PocketSphinx hears eSpeak too poorly to catch the "and".
    # (The policy can only use the words the recogniser heard.)
    rate, chunk = 16000, 1280
    stt = PocketsphinxSpeechToText(turn_policy=TurnPolicy(plain_ms=700, unfinished_ms=2000))
    stream = stt.open_stream(sample_rate=rate)
    first = synthesize_to_pcm("I worked on the backend, and", rate)
    second = synthesize_to_pcm("I like Python programming.", rate)
    events = []
    for piece in split_into_chunks(silence(300, rate) + first + silence(1200, rate) + second + silence(2500, rate), chunk):
        events += await stream.feed(piece)
    await stream.close()
    finals = [e.text for e in events if e.is_final]
    # One turn: the 1.2 s pause after "and" did not end it (the fixed 700 ms rule would have).
    assert len(finals) == 1, finals
    assert {"python", "programming"} & set(finals[0].split()), finals


def test_a_thinking_phrase_counts_only_as_the_whole_last_clause():
    assert policy.silence_needed_ms("Hmm, that is a good question.") >= 1500
    assert policy.silence_needed_ms("We cut the page load time to under one second.") <= 400
    assert policy.silence_needed_ms("It was exactly what I mean.") <= 400


def test_a_trailing_then_waits_like_the_and_it_is_often_misheard_from():
    """Moonshine hears a thinking pause after "and" as "... then." now and then."""
    policy = TurnPolicy()
    assert policy.silence_needed_ms("I worked mostly on the back end then.",
                                    question="What did you work on?") == policy.unfinished_ms
