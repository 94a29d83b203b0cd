"""The Gemini Live session, through google-genai against the local TLS fake."""

from __future__ import annotations

import asyncio
import time

import pytest

from realtime.audio import pcm_duration_ms, silence
from realtime.chunker import SentenceChunker
from realtime.providers import prompts
from realtime.providers.base import ConversationLine, InterviewerRequest
from realtime.providers.gemini_chat import make_client
from realtime.providers.gemini_live import GeminiLiveError, GeminiLiveSession, build_session_factory
from tests.fakes.gemini_live import FakeGeminiLive, gemini_live, tone  # noqa: F401 (fixture)

QUESTIONS = ("Tell me about yourself.", "Why Python?", "What is hard about async code?")
CHUNK_MS = 40


def _session(fake: FakeGeminiLive, **options) -> GeminiLiveSession:
    client = make_client(api_key=fake.api_key, base_url=fake.base_url, timeout_s=3)
    options.setdefault("reply_timeout_s", 3.0)
    options.setdefault("connect_timeout_s", 3.0)
    options.setdefault("retry_after_s", 0.05)
    output_rate = options.pop("output_sample_rate", 24000)
    return build_session_factory(client, model="gemini-live-test", voice="Kore", output_sample_rate=output_rate,
                                 **options)(sample_rate=16000)


@pytest.fixture
async def live(gemini_live):
    session = _session(gemini_live)
    yield session
    await session.close()
    assert await gemini_live.until_connections(0)


def _request(kind="opening", index=0, conversation=()) -> InterviewerRequest:
    return InterviewerRequest(kind=kind, questions=QUESTIONS, question_index=index, conversation=tuple(conversation),
                              interview_title="Backend engineer")


async def _speak(session, ms: float, *, pace_s: float = 0.004) -> list:
    """Voiced audio in 40 ms chunks, a little faster than real time."""
    events = []
    speech = tone(ms, 16000)
    step = 16000 * CHUNK_MS // 1000 * 2
    for start in range(0, len(speech), step):
        events += await session.stt.feed(speech[start : start + step])
        await asyncio.sleep(pace_s)
    return events


async def _until_final(session, *, limit_s: float = 4.0) -> list:
    events = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        events += await session.stt.feed(silence(CHUNK_MS, 16000))
        if events and events[-1].is_final:
            return events
        await asyncio.sleep(0.02)
    raise AssertionError(f"no final transcript; got {events}")


async def _reply(session, request) -> tuple[str, list[bytes]]:
    """What the runtime does: the words, cut into sentences, then each sentence's audio."""
    text = "".join([fragment async for fragment in session.interviewer.respond(request)])
    chunker = SentenceChunker()
    sentences = chunker.push(text) + chunker.flush()
    audio = [b"".join([pcm async for pcm in session.tts.synthesize(sentence)]) for sentence in sentences]
    return text, audio


async def test_the_setup_is_what_the_design_needs(live, gemini_live):
    await _reply(live, _request())
    setup = gemini_live.records[0].setup
    assert setup["model"] == "models/gemini-live-test"
    assert setup["generationConfig"]["responseModalities"] == ["AUDIO"]
    assert setup["realtimeInputConfig"]["automatic_activity_detection"] == {"disabled": True}
    assert setup["realtimeInputConfig"]["activity_handling"] == "START_OF_ACTIVITY_INTERRUPTS"
    assert setup["inputAudioTranscription"] == {} and setup["outputAudioTranscription"] == {}


async def test_a_spoken_turn_gives_interims_then_a_final(live, gemini_live):
    await _reply(live, _request())  # the opening
    gemini_live.queue_transcript("I build data pipelines in Python")
    events = await _speak(live, 2400, pace_s=0.02)
    events += await _until_final(live)

    interims = [event.text for event in events if not event.is_final]
    final = events[-1]
    assert len(interims) >= 2 and interims == sorted(interims, key=len)
    assert final.is_final and final.text == "I build data pipelines in Python"
    assert final.end_ms == pytest.approx(2400, abs=60)
    assert [event for event in events if event.is_final] == [final]
    assert gemini_live.records[0].kinds() == ["contextUpdate", "clientContent", "activityStart", "audio"]


async def test_respond_words_the_direction_and_synthesize_speaks_each_sentence(live, gemini_live):
    request = _request()
    text, audio = await _reply(live, request)

    assert text == "Thank you. Tell me about yourself."
    # ~300 ms a word: "Thank you." then "Tell me about yourself."
    assert [pcm_duration_ms(len(pcm), 24000) for pcm in audio] == [600, 1200]
    assert live.tts.sample_rate == 24000
    assert request.usage == {"input_tokens": 200, "output_tokens": 45, "audio_out_ms": 1800}
    record = gemini_live.records[0]
    (_, update), (_, content) = record.messages
    assert update["systemInstruction"]["parts"][0]["text"].endswith(
        prompts.interviewer_instructions(request).split("\n", 1)[1])
    assert content["turnComplete"] is True
    assert content["turns"][-1]["parts"][-1]["text"] == prompts.direction(request)


async def test_audio_is_resampled_to_the_runtimes_rate(gemini_live):
    session = _session(gemini_live, output_sample_rate=16000)
    try:
        _, audio = await _reply(session, _request())
    finally:
        await session.close()
    assert session.tts.sample_rate == 16000
    assert pcm_duration_ms(sum(map(len, audio)), 16000) == pytest.approx(1800, abs=15)


async def test_an_answer_then_the_next_question_closes_the_activity(live, gemini_live):
    opening, _ = await _reply(live, _request())
    gemini_live.queue_transcript("Because it reads like prose")
    await _speak(live, 1600)
    final = (await _until_final(live))[-1]
    request = _request("next_question", 1, [ConversationLine("interviewer", opening),
                                            ConversationLine("candidate", final.text)])
    text, audio = await _reply(live, request)

    assert text == "Thank you. Why Python?"
    assert pcm_duration_ms(sum(map(len, audio)), 24000) == 1200
    record = gemini_live.records[0]
    assert record.kinds() == ["contextUpdate", "clientContent", "activityStart", "audio", "contextUpdate",
                              "activityEnd"]
    assert 'Question 2: "Why Python?"' in record.instructions
    assert request.usage["audio_in_ms"] > 1600


async def test_a_typed_answer_and_the_history_reach_the_model_as_turns(live, gemini_live):
    # A new connection mid-interview: the model hears the interview so far, then the direction.
    conversation = [ConversationLine("interviewer", "Welcome. Tell me about yourself."),
                    ConversationLine("candidate", "I am a backend engineer.")]
    await _reply(live, _request("resume", 1, conversation))
    typed = conversation + [ConversationLine("interviewer", "Thank you. Why Python?"),
                            ConversationLine("candidate", "It is readable (typed).")]
    await _reply(live, _request("next_question", 2, typed))

    contents = [detail for kind, detail in gemini_live.records[0].messages if kind == "clientContent"]
    first = [(turn["role"], [part["text"] for part in turn["parts"]]) for turn in contents[0]["turns"]]
    assert first[:2] == [("model", ["Welcome. Tell me about yourself."]), ("user", [
        "I am a backend engineer.", prompts.direction(_request("resume", 1))])]
    second = [(turn["role"], [part["text"] for part in turn["parts"]]) for turn in contents[1]["turns"]]
    assert second == [("user", ["It is readable (typed).", prompts.direction(_request("next_question", 2))])]


async def test_interrupting_stops_the_turn_and_drops_its_audio(live, gemini_live):
    gemini_live.piece_delay_s = 0.03  # a reply that is still being generated
    gemini_live.queue_reply("One two three. Four five six seven eight nine ten eleven twelve.")
    request = _request()
    words = live.interviewer.respond(request)
    first = await words.__anext__()
    speech = live.tts.synthesize("One two three.")
    piece = await speech.__anext__()
    await speech.aclose()
    await words.aclose()  # what a cancelled response task does
    live.interrupted(heard_ms=pcm_duration_ms(len(piece), 24000))

    assert first.startswith("One")
    assert [pcm async for pcm in live.tts.synthesize("Four five six.")] == []
    for _ in range(100):
        if gemini_live.records[0].interruptions:
            break
        await asyncio.sleep(0.02)
    assert gemini_live.records[0].interruptions == 1
    assert gemini_live.records[0].kinds()[-1] == "activityStart"

    gemini_live.piece_delay_s = 0.001
    text, audio = await _reply(live, _request("repeat", 0))
    assert text == "Thank you. Tell me about yourself."
    assert pcm_duration_ms(sum(map(len, audio)), 24000) == 1800  # none of the dropped reply's audio
    assert "cut off" in gemini_live.records[0].instructions
    assert gemini_live.records[0].kinds()[-2:] == ["contextUpdate", "activityEnd"]


async def test_the_candidate_speaking_over_the_model_stops_its_generation(live, gemini_live):
    gemini_live.piece_delay_s = 0.03
    gemini_live.queue_reply(" ".join(["word"] * 40) + ".")
    request = _request()
    words = [fragment async for fragment in _interleave(live, request)]
    assert 0 < len("".join(words).split()) < 40  # the reply ended early, without an error
    assert gemini_live.records[0].interruptions == 1


async def _interleave(live, request):
    """Words of a reply while the candidate starts talking after the first one."""
    async for fragment in live.interviewer.respond(request):
        yield fragment
        if fragment.startswith("word"):
            await _speak(live, 200)


async def test_nothing_is_left_open_after_close(gemini_live):
    session = _session(gemini_live)
    await _reply(session, _request())
    await _speak(session, 400)
    assert gemini_live.open_connections == 1
    await session.close()

    assert await gemini_live.until_connections(0)
    assert gemini_live.records[0].closed
    leftovers = [task for task in asyncio.all_tasks() if task.get_name().startswith("gemini-live")]
    assert leftovers == []
    with pytest.raises(GeminiLiveError):
        await session.stt.feed(silence(CHUNK_MS, 16000))


def _error_text(error: BaseException) -> str:
    texts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        texts += [str(error), repr(error)]
        error = error.__cause__ or error.__context__
    return "\n".join(texts)


@pytest.mark.parametrize("failure", ["go_away", "drop", "malformed", "error"])
async def test_failures_raise_and_the_next_reply_reconnects(live, gemini_live, failure):
    await _reply(live, _request())
    gemini_live.queue_failure(failure)
    started = time.monotonic()
    with pytest.raises(GeminiLiveError) as caught:
        await _reply(live, _request("repeat", 0))
    assert time.monotonic() - started < 2
    assert gemini_live.api_key not in _error_text(caught.value)
    assert await gemini_live.until_connections(0)

    await asyncio.sleep(0.1)  # retry_after_s
    text, _ = await _reply(live, _request("repeat", 0))
    assert text == "Thank you. Tell me about yourself."
    assert len(gemini_live.records) == 2


async def test_a_silent_server_is_bounded_by_the_reply_timeout(gemini_live):
    session = _session(gemini_live, reply_timeout_s=0.5)
    gemini_live.queue_failure("hang")
    started = time.monotonic()
    try:
        with pytest.raises(GeminiLiveError, match="no reply"):
            await _reply(session, _request())
        assert time.monotonic() - started < 1.5
        assert await gemini_live.until_connections(0)  # a silent connection is given up
    finally:
        await session.close()


@pytest.mark.parametrize("failure", ["hang", "error"])
async def test_a_failed_setup_raises(gemini_live, failure):
    session = _session(gemini_live, connect_timeout_s=0.5)
    gemini_live.queue_setup_failure(failure)
    started = time.monotonic()
    try:
        with pytest.raises(GeminiLiveError) as caught:
            await _reply(session, _request())
        assert time.monotonic() - started < 1.5
        assert gemini_live.api_key not in _error_text(caught.value)
    finally:
        await session.close()
    assert await gemini_live.until_connections(0)


async def test_a_lost_connection_is_reported_once_by_feed(live, gemini_live):
    await _reply(live, _request())
    gemini_live.queue_failure("error")
    with pytest.raises(GeminiLiveError):
        await _reply(live, _request("repeat", 0))
    # The reply already raised it: listening goes on quietly until the retry reconnects.
    assert await live.stt.feed(silence(CHUNK_MS, 16000)) == []
    await asyncio.sleep(0.1)
    assert await live.stt.feed(silence(CHUNK_MS, 16000)) == []
    assert await gemini_live.until_connections(1)


def test_the_fake_flags_audio_in_the_wrong_format(gemini_live):
    """Strictness of the fake itself: a raw client sending 24 kHz audio outside an activity."""
    import json
    import ssl

    from websockets.sync.client import connect

    context = ssl.create_default_context(cafile=gemini_live.ca_file)
    path = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    # A generous handshake timeout: beside the browser tests' speech models, a TLS handshake
    # on this 2-core machine once took over the default 10 s.
    with connect(gemini_live.websocket_base_url + path, ssl=context, open_timeout=60,
                 additional_headers={"x-goog-api-key": gemini_live.api_key}) as ws:
        ws.send(json.dumps({"setup": {"model": "models/x", "generationConfig": {
            "responseModalities": ["AUDIO"],
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}},
            "realtimeInputConfig": {"automaticActivityDetection": {"disabled": True}}}}))
        assert json.loads(ws.recv()) == {"setupComplete": {}}
        ws.send(json.dumps({"realtimeInput": {"audio": {"data": "AAAAAA==", "mimeType": "audio/pcm;rate=24000"}}}))
        ws.send(json.dumps({"realtimeInput": {"activityEnd": {}}}))
    assert gemini_live.wait_for_connections(0)
    assert gemini_live.errors == [
        "audio must be audio/pcm;rate=16000, got 'audio/pcm;rate=24000'",
        "audio outside an activity (automatic activity detection is disabled)",
        "activityEnd without an open activity",
    ]
    gemini_live.errors.clear()


async def test_flush_ends_the_utterance_now_and_reset_drops_it(live, gemini_live):
    await _reply(live, _request())
    gemini_live.queue_transcript("First answer here")
    await _speak(live, 1200, pace_s=0.02)
    await asyncio.sleep(0.05)
    [final] = await live.stt.flush()
    assert final.is_final and final.text == "First answer here"
    assert await live.stt.flush() == []

    gemini_live.queue_transcript("Words to forget")
    await _speak(live, 900, pace_s=0.02)
    live.stt.reset()
    events = []
    for _ in range(40):
        events += await live.stt.feed(silence(CHUNK_MS, 16000))
        await asyncio.sleep(0.01)
    assert [event for event in events if event.is_final] == []


async def test_after_a_failed_or_abandoned_reply_the_fallback_line_gets_no_audio(live, gemini_live):
    gemini_live.queue_failure("hang")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):  # the runtime's deadline
            await _reply(live, _request())
    assert [pcm async for pcm in live.tts.synthesize("Tell me about yourself.")] == []

    gemini_live.queue_failure("error")
    await asyncio.sleep(0.1)
    with pytest.raises(GeminiLiveError):
        await _reply(live, _request())
    assert [pcm async for pcm in live.tts.synthesize("Tell me about yourself.")] == []
