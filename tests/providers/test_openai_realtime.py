"""OpenAI Realtime providers through the real openai SDK, against the strict local fake."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import openai
import pytest

from realtime.audio import pcm_duration_ms, silence, split_into_chunks
from realtime.chunker import SentenceChunker
from realtime.providers.base import ConversationLine, InterviewerRequest
from realtime.providers.openai_realtime import OpenAIRealtimeTranscription, RealtimeError, build_session_factory
from tests.fakes.openai_realtime import (  # noqa: F401 (openai_realtime_fake is a fixture)
    DEFAULT_TRANSCRIPT,
    WORD_MS,
    Drop,
    ErrorEvent,
    Failed,
    Hang,
    HandshakeStatus,
    Malformed,
    openai_realtime_fake,
    tone,
    words,
)

RATE = 16000  # what the runtime feeds
CHUNK_BYTES = RATE * 40 // 1000 * 2  # 40 ms
QUESTIONS = ("Tell me about yourself.", "Why do you want this job?")


def make_client(fake, api_key: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=api_key or fake.api_key, base_url=fake.base_url,
                              websocket_base_url=fake.websocket_base_url, max_retries=0)


def spoken_turn(speech_ms: float = 1200, pause_ms: float = 800) -> bytes:
    return tone(speech_ms, RATE) + silence(pause_ms, RATE)


async def feed(stream, pcm: bytes) -> list:
    """Feed like the runtime (40 ms chunks), a little faster than real time."""
    events = []
    for chunk in split_into_chunks(pcm, CHUNK_BYTES):
        events += await stream.feed(chunk)
        await asyncio.sleep(0.002)
    return events


async def feed_until_final(stream, pcm: bytes, timeout_s: float = 5.0) -> list:
    events = await feed(stream, pcm)
    deadline = time.monotonic() + timeout_s
    while not any(event.is_final for event in events):
        assert time.monotonic() < deadline, f"no final transcript: {events}"
        events += await stream.feed(silence(40, RATE))
        await asyncio.sleep(0.01)
    return events


async def until(predicate, timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def request(kind: str = "next_question", index: int = 1, conversation=()) -> InterviewerRequest:
    return InterviewerRequest(kind=kind, questions=QUESTIONS, question_index=index, conversation=tuple(conversation),
                              interview_title="Backend engineer", role="Engineer", follow_up_allowed=True)


async def speak(session, req: InterviewerRequest) -> tuple[str, list[tuple[str, bytes]]]:
    """Drive a session like the runtime: the words cut into sentences, each synthesized in order."""
    sentences: asyncio.Queue = asyncio.Queue()
    fragments: list[str] = []

    async def write() -> None:
        chunker = SentenceChunker()
        try:
            async for fragment in session.interviewer.respond(req):
                fragments.append(fragment)
                for sentence in chunker.push(fragment):
                    sentences.put_nowait(sentence)
            for sentence in chunker.flush():
                sentences.put_nowait(sentence)
        finally:
            sentences.put_nowait(None)

    writer = asyncio.create_task(write())
    spoken = []
    while (sentence := await sentences.get()) is not None:
        spoken.append((sentence, b"".join([pcm async for pcm in session.tts.synthesize(sentence)])))
    await writer
    return "".join(fragments), spoken


def open_session(fake, *, output_sample_rate: int = 24000, **options):
    factory = build_session_factory(make_client(fake), output_sample_rate=output_sample_rate, **options)
    return factory(sample_rate=RATE)


# --- streaming transcription ------------------------------------------------------------------


async def test_transcription_reports_interims_then_a_final(openai_realtime_fake):
    fake = openai_realtime_fake
    fake.transcripts.append("My name is Ada and I write compilers.")
    stream = OpenAIRealtimeTranscription(make_client(fake), silence_ms=500).open_stream(sample_rate=RATE)
    try:
        events = await feed_until_final(stream, spoken_turn())
    finally:
        await stream.close()
    interims = [event.text for event in events if not event.is_final]
    finals = [event for event in events if event.is_final]
    assert interims[0] == "My" and interims[-1] == "My name is Ada and I write compilers."
    assert all(later.startswith(earlier) for earlier, later in zip(interims, interims[1:]))
    assert [event.text for event in finals] == ["My name is Ada and I write compilers."]
    assert 1200 <= finals[0].end_ms <= 2100  # speech ended at 1.2 s, detected after 0.5 s of silence
    assert list(fake.connect_queries) == [{"intent": "transcription"}]
    session = fake.session_updates[0]
    assert session["type"] == "transcription"
    assert session["audio"]["input"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "transcription": {"model": "gpt-4o-transcribe"},
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
    }
    # 16 kHz in, 24 kHz out: the fake heard as much audio as was fed (less the resampler's delay).
    fed_ms = pcm_duration_ms(len(spoken_turn()), RATE)
    assert fed_ms - 60 <= fake.audio_received_ms <= fed_ms + 2000
    await until(lambda: fake.open_connections == 0)


async def test_transcription_connects_only_when_audio_comes(openai_realtime_fake):
    stream = OpenAIRealtimeTranscription(make_client(openai_realtime_fake)).open_stream(sample_rate=RATE)
    await asyncio.sleep(0.05)
    assert openai_realtime_fake.total_connections == 0
    await stream.close()
    assert openai_realtime_fake.total_connections == 0


async def test_flush_commits_and_waits_for_the_transcript(openai_realtime_fake):
    fake = openai_realtime_fake
    stream = OpenAIRealtimeTranscription(make_client(fake), turn_detection="none").open_stream(sample_rate=RATE)
    try:
        assert not any(event.is_final for event in await feed(stream, tone(600, RATE)))
        await until(lambda: fake.audio_received_ms > 500)
        events = await stream.flush()
    finally:
        await stream.close()
    assert [event.text for event in events if event.is_final] == [DEFAULT_TRANSCRIPT]
    assert len(fake.events_of("input_audio_buffer.commit")) == 1
    assert fake.session_updates[0]["audio"]["input"]["turn_detection"] is None


async def test_flush_with_nothing_said_returns_promptly(openai_realtime_fake):
    stream = OpenAIRealtimeTranscription(make_client(openai_realtime_fake)).open_stream(sample_rate=RATE)
    try:
        await feed(stream, silence(200, RATE))
        await until(lambda: openai_realtime_fake.open_connections == 1)
        started = time.monotonic()
        assert await stream.flush() == []
        assert time.monotonic() - started < 0.5
    finally:
        await stream.close()
    assert len(openai_realtime_fake.events_of("input_audio_buffer.commit")) == 1  # silence: an empty transcript


async def test_reset_drops_the_current_utterance(openai_realtime_fake):
    fake = openai_realtime_fake
    stream = OpenAIRealtimeTranscription(make_client(fake)).open_stream(sample_rate=RATE)
    try:
        await feed(stream, tone(600, RATE))
        await until(lambda: fake.audio_received_ms > 500)
        stream.reset()
        events = await feed(stream, silence(1000, RATE))
        await asyncio.sleep(0.2)
        events += await stream.feed(silence(40, RATE))
    finally:
        await stream.close()
    assert not any(event.is_final for event in events)
    assert len(fake.events_of("input_audio_buffer.clear")) == 1


@pytest.mark.parametrize("failure", [ErrorEvent(), Drop(), Malformed()], ids=["error-event", "drop", "malformed"])
async def test_a_failed_connection_makes_the_next_feed_raise_then_reconnects(openai_realtime_fake, failure):
    fake = openai_realtime_fake
    fake.audio_failures.append(failure)
    stream = OpenAIRealtimeTranscription(make_client(fake)).open_stream(sample_rate=RATE)
    try:
        started = time.monotonic()
        with pytest.raises(RealtimeError) as raised:
            for _ in range(100):
                await stream.feed(silence(40, RATE))
                await asyncio.sleep(0.01)
        assert time.monotonic() - started < 1.5
        assert fake.api_key not in repr(raised.value.__cause__)
        await until(lambda: fake.open_connections == 0)
        events = await feed_until_final(stream, spoken_turn(), timeout_s=6)  # reconnects after a short back-off
        assert [event.text for event in events if event.is_final] == [DEFAULT_TRANSCRIPT]
        assert fake.total_connections == 2
    finally:
        await stream.close()
    await until(lambda: fake.open_connections == 0)


async def test_a_refused_connection_raises_without_the_key(openai_realtime_fake):
    fake = openai_realtime_fake
    fake.connect_failures.append(HandshakeStatus(429))
    stream = OpenAIRealtimeTranscription(make_client(fake)).open_stream(sample_rate=RATE)
    try:
        with pytest.raises(RealtimeError) as raised:
            for _ in range(100):
                await stream.feed(silence(40, RATE))
                await asyncio.sleep(0.01)
        assert "429" in str(raised.value.__cause__)
        assert fake.api_key not in str(raised.value.__cause__)
    finally:
        await stream.close()


async def test_a_wrong_key_is_refused_and_not_repeated(openai_realtime_fake):
    secret = "sk-wrong-0123456789-secret"
    client = make_client(openai_realtime_fake, api_key=secret)
    stream = OpenAIRealtimeTranscription(client).open_stream(sample_rate=RATE)
    try:
        with pytest.raises(RealtimeError) as raised:
            for _ in range(100):
                await stream.feed(silence(40, RATE))
                await asyncio.sleep(0.01)
        assert "401" in str(raised.value.__cause__) and secret not in str(raised.value.__cause__)
    finally:
        await stream.close()


# --- speech to speech ---------------------------------------------------------------------------


async def test_session_configures_a_conversation_the_runtime_leads(openai_realtime_fake):
    fake = openai_realtime_fake
    session = open_session(fake, voice="cedar")
    try:
        text, _ = await speak(session, request("opening", 0))
    finally:
        await session.close()
    assert text == f"Thank you. {QUESTIONS[0]}"  # the fake's default: the question it was told to ask
    assert list(fake.connect_queries) == [{"model": "gpt-realtime"}]
    config = fake.session_updates[0]
    assert config["type"] == "realtime" and config["output_modalities"] == ["audio"]
    assert config["audio"]["input"]["turn_detection"] == {
        "type": "server_vad", "silence_duration_ms": 500, "create_response": False, "interrupt_response": False}
    assert config["audio"]["input"]["transcription"] == {"model": "gpt-4o-transcribe"}
    assert config["audio"]["output"] == {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "cedar"}
    created = fake.response_creates[0]
    assert 'Now: Greet the candidate' in created["instructions"]
    assert "ask_follow_up" not in created["instructions"]  # follow-ups are not offered here
    assert created["output_modalities"] == ["audio"]
    await until(lambda: fake.open_connections == 0)


async def test_respond_streams_the_words_and_each_sentence_gets_its_audio(openai_realtime_fake):
    fake = openai_realtime_fake
    reply = "Thanks for that answer. Next question. Why do you want this job?"
    fake.replies.append(reply)
    session = open_session(fake)
    req = request()
    try:
        text, spoken = await speak(session, req)
    finally:
        await session.close()
    assert text == reply
    assert [sentence for sentence, _ in spoken] == ["Thanks for that answer.", "Next question.",
                                                    "Why do you want this job?"]
    for sentence, pcm in spoken:  # each word is 300 ms of audio in the fake
        assert pcm_duration_ms(len(pcm), 24000) == pytest.approx(len(words(sentence)) * WORD_MS, abs=1)
    assert req.usage["input_tokens"] > 0 and req.usage["output_tokens"] == 10 * len(words(reply))
    assert req.usage["audio_out_ms"] == len(words(reply)) * WORD_MS


async def test_audio_is_resampled_to_the_output_rate(openai_realtime_fake):
    fake = openai_realtime_fake
    fake.replies.append("One two three. Four five.")
    session = open_session(fake, output_sample_rate=16000)
    assert session.tts.sample_rate == 16000
    try:
        _, spoken = await speak(session, request())
    finally:
        await session.close()
    total_ms = pcm_duration_ms(sum(len(pcm) for _, pcm in spoken), 16000)
    assert total_ms == pytest.approx(5 * WORD_MS, abs=5)


async def test_a_sentence_the_response_did_not_say_gets_no_audio(openai_realtime_fake):
    fake = openai_realtime_fake
    fake.replies.append("Hello there.")
    session = open_session(fake)
    try:
        await speak(session, request())
        assert [pcm async for pcm in session.tts.synthesize("Let us move on to the next question.")] == []
    finally:
        await session.close()


async def test_the_candidate_is_heard_on_the_same_connection(openai_realtime_fake):
    fake = openai_realtime_fake
    fake.transcripts.append("I build payment systems.")
    session = open_session(fake)
    try:
        events = await feed_until_final(session.stt, spoken_turn())
        assert [event.text for event in events if event.is_final] == ["I build payment systems."]
        conversation = [ConversationLine("interviewer", f"Hello. {QUESTIONS[0]}"),
                        ConversationLine("candidate", "I build payment systems.")]
        text, _ = await speak(session, request(conversation=conversation))
    finally:
        await session.close()
    assert text == f"Thank you. {QUESTIONS[1]}"
    assert fake.total_connections == 1
    assert list(fake.items_created) == []  # the spoken answer is in the provider's conversation already
    await until(lambda: fake.open_connections == 0)


async def test_a_typed_answer_is_added_to_the_provider_conversation(openai_realtime_fake):
    fake = openai_realtime_fake
    session = open_session(fake)
    try:
        await speak(session, request("opening", 0))
        conversation = [ConversationLine("interviewer", f"Hello. {QUESTIONS[0]}"),
                        ConversationLine("candidate", "I typed this answer.")]
        await speak(session, request(conversation=conversation))
    finally:
        await session.close()
    assert list(fake.items_created) == [{"type": "message", "role": "user",
                                         "content": [{"type": "input_text", "text": "I typed this answer."}]}]


async def test_an_interrupt_mid_response_cancels_and_truncates_to_what_was_heard(openai_realtime_fake):
    fake = openai_realtime_fake
    fake.replies.append("This is a rather long answer that keeps going. " * 4)
    session = open_session(fake)
    try:
        first_audio = asyncio.Event()

        async def play() -> None:
            async for fragment in session.interviewer.respond(request()):
                if fragment.strip().endswith("going."):
                    async for _ in session.tts.synthesize("This is a rather long answer that keeps going."):
                        first_audio.set()

        playing = asyncio.create_task(play())
        await asyncio.wait_for(first_audio.wait(), 3)
        playing.cancel()
        await asyncio.gather(playing, return_exceptions=True)
        session.interrupted(heard_ms=250.7)
        await until(lambda: len(fake.truncates) == 1)
        assert fake.cancels == 1
        item_id, end_ms = fake.truncates[0]
        assert end_ms == 250 and item_id.startswith("item_")
        assert len(fake.events_of("response.cancel")) == 1
        # The provider's conversation is ready for the next line (no response left active).
        text, _ = await speak(session, request())
        assert text == f"Thank you. {QUESTIONS[1]}"
    finally:
        await session.close()


async def test_an_interrupt_after_the_response_truncates_within_its_audio(openai_realtime_fake):
    fake = openai_realtime_fake
    fake.replies.append("Short reply here.")
    session = open_session(fake)
    try:
        await speak(session, request())
        session.interrupted(heard_ms=60_000)
        await until(lambda: len(fake.truncates) == 1)
    finally:
        await session.close()
    assert fake.truncates[0][1] == 3 * WORD_MS  # no more than the audio the item has
    assert fake.events_of("response.cancel") == []


@pytest.mark.parametrize("failure", [ErrorEvent(), Drop(), Malformed(), Failed()],
                         ids=["error-event", "drop", "malformed", "failed"])
async def test_a_failing_response_raises_promptly_and_the_next_one_recovers(openai_realtime_fake, failure):
    fake = openai_realtime_fake
    fake.replies.extend(["Welcome to the interview.", failure])
    session = open_session(fake)
    first = [ConversationLine("interviewer", "Welcome to the interview."),
             ConversationLine("candidate", "Happy to be here.")]
    try:
        await speak(session, request("opening", 0))
        started = time.monotonic()
        with pytest.raises(RealtimeError):
            async for _ in session.interviewer.respond(request(conversation=first)):
                pass
        assert time.monotonic() - started < 2
        text, _ = await speak(session, request(conversation=first))
        assert text == f"Thank you. {QUESTIONS[1]}"
    finally:
        await session.close()
    last = fake.response_creates[-1]["instructions"]
    if isinstance(failure, Failed):  # the connection survived: its conversation holds the interview
        assert fake.total_connections == 1 and "conversation so far" not in last
    else:  # a new connection is told the interview so far
        assert fake.total_connections == 2
        assert "The conversation so far" in last and "Candidate: Happy to be here." in last
    await until(lambda: fake.open_connections == 0)


async def test_a_hang_is_ended_by_the_callers_deadline_and_close_frees_everything(openai_realtime_fake):
    fake = openai_realtime_fake
    fake.replies.append(Hang())
    tasks_before = asyncio.all_tasks()
    session = open_session(fake)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            async for _ in session.interviewer.respond(request()):
                pass
    assert time.monotonic() - started < 1.5
    await session.close()
    assert time.monotonic() - started < 4
    assert asyncio.all_tasks() - tasks_before <= {asyncio.current_task()}
    await until(lambda: fake.open_connections == 0)


async def test_a_session_that_never_spoke_closes_cleanly(openai_realtime_fake):
    session = open_session(openai_realtime_fake)
    await feed(session.stt, silence(200, RATE))
    await until(lambda: openai_realtime_fake.open_connections == 1)
    session.interrupted(heard_ms=100)  # nothing to interrupt
    await session.close()
    await until(lambda: openai_realtime_fake.open_connections == 0)


def test_unknown_turn_detection_is_refused_at_start(openai_realtime_fake):
    with pytest.raises(ValueError):
        OpenAIRealtimeTranscription(make_client(openai_realtime_fake), turn_detection="push_to_talk")
    with pytest.raises(ValueError):
        build_session_factory(make_client(openai_realtime_fake), turn_detection="loud", output_sample_rate=24000)


# --- the fake itself ------------------------------------------------------------------------------


async def test_the_fake_refuses_what_openai_would(openai_realtime_fake):
    """The fake is only worth its passes if it fails what the API would refuse."""
    fake = openai_realtime_fake
    errors_seen, item_ids = [], []
    async with make_client(fake).realtime.connect(model="gpt-realtime", max_retries=0) as connection:
        async def receive() -> dict:
            received = json.loads(await connection.recv_bytes())
            if received["type"] == "response.output_item.added":
                item_ids.append(received["item"]["id"])
            return received

        async def send_and_expect_error(event: dict) -> None:
            await connection.send(event)
            while (received := await receive())["type"] != "error":
                pass
            errors_seen.append(received["error"]["code"])

        pcm16 = {"type": "audio/pcm", "rate": 24000}
        await send_and_expect_error({"type": "input_audio_buffer.append", "audio": "AAAA"})  # before session.update
        await send_and_expect_error({"type": "session.update", "session": {
            "type": "realtime", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}})
        await send_and_expect_error({"type": "session.update", "session": {"type": "transcription"}})
        await send_and_expect_error({"type": "session.update",
                                     "session": {"type": "realtime", "modalities": ["audio"]}})
        await connection.send({"type": "session.update", "session": {"type": "realtime", "audio": {
            "input": {"format": pcm16, "turn_detection": None}, "output": {"format": pcm16, "voice": "marin"}}}})
        await send_and_expect_error({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"abc").decode()})
        await send_and_expect_error({"type": "transcription_session.update", "session": {}})
        await send_and_expect_error({"type": "response.create", "response": {"voice": "marin"}})
        await send_and_expect_error({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": " "}]}})
        await send_and_expect_error({"type": "conversation.item.truncate", "item_id": "item_none",
                                     "content_index": 0, "audio_end_ms": 10})
        await connection.send({"type": "response.create", "response": {"instructions": "Say hello."}})
        await send_and_expect_error({"type": "response.create", "response": {"instructions": "Again."}})
        while (await receive())["type"] != "response.done":
            pass
        await send_and_expect_error({"type": "conversation.item.truncate", "item_id": item_ids[0],
                                     "content_index": 0, "audio_end_ms": 60_000})
    assert errors_seen[-2] == "conversation_already_has_active_response"
    assert len(fake.errors) == len(errors_seen) == 11, list(fake.errors)
    assert any("rate must be 24000" in error for error in fake.errors)
    assert any("beyond the" in error for error in fake.errors), "\n".join(fake.errors)
    fake.errors.clear()  # all expected


async def test_the_fake_refuses_a_realtime_connection_without_a_known_model(openai_realtime_fake):
    with pytest.raises(Exception) as raised:
        await make_client(openai_realtime_fake).realtime.connect(model="whisper-1", max_retries=0).enter()
    assert "400" in str(raised.value)
    assert any("not supported in realtime mode" in error for error in openai_realtime_fake.errors)
    openai_realtime_fake.errors.clear()
