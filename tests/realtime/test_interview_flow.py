"""The spoken interview through the socket: every message of the protocol, in order."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from interviews.models import InterviewSession, SessionResult, SessionStatus, Turn
from tests.factories import QUESTIONS, chunks, silence, speech
from tests.realtime.polling import until
from tests.realtime.wsclient import Client

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def turns_of(session_id):
    return list(Turn.objects.filter(session_id=session_id).order_by("sequence").values(
        "speaker", "text", "interrupted", "public_id", "question_index", "source", "metrics"))


@database_sync_to_async
def session_row(session_id):
    return InterviewSession.objects.get(pk=session_id)


async def wait_for_status(session_id, status):
    await until(lambda: session_row(session_id), lambda row: row.status == status, what=f"status {status}")


async def wait_for_turns(session_id, count):
    return await until(lambda: turns_of(session_id), lambda turns: len(turns) >= count, what=f"{count} turns")


async def test_auth_success_announces_audio_formats_and_state(live_session):
    client = await Client.open()
    payload = await client.auth(live_session)
    assert payload["message"] == "Authenticated successfully. Ready to begin."
    assert payload["sessionId"] == live_session.session_id
    assert payload["resumed"] is False
    assert payload["audio"]["input"] == {"encoding": "pcm16le", "sampleRate": 16000, "channels": 1}
    assert payload["audio"]["output"]["encoding"] == "pcm16le"
    assert payload["audio"]["output"]["sampleRate"] == 24000
    assert payload["questionCount"] == len(QUESTIONS)
    assert payload["conversation"] == []
    state = await client.expect("server-session-state")
    assert state == {"status": "live", "questionIndex": 0, "questionCount": 2}
    await client.close()


async def test_first_question_is_spoken_as_paced_speech_chunks_with_captions(live_session):
    client = await Client.open()
    await client.auth(live_session)
    thinking = await client.expect("server-ai-thinking")
    response_id = thinking["responseId"]
    end = await client.expect("server-ai-speech-end", timeout=30, responseId=response_id)
    assert end == {"responseId": response_id}
    speech_chunks = client.of_type("server-ai-speech-chunk")
    assert len(speech_chunks) > 20
    assert [c["seq"] for c in speech_chunks] == list(range(len(speech_chunks)))
    assert {c["responseId"] for c in speech_chunks} == {response_id}
    assert QUESTIONS[0] in client.captions()
    # 40 ms of 24 kHz PCM16 per chunk: small enough for a prompt stop.
    import base64
    assert len(base64.b64decode(speech_chunks[0]["data"])) == 1920
    # The opening is stored once the candidate has heard it.
    turns = await wait_for_turns(live_session.session_id, 1)
    assert turns[0]["speaker"] == "interviewer"
    assert QUESTIONS[0] in turns[0]["text"]
    assert turns[0]["interrupted"] is False
    await client.close()


async def test_spoken_answer_gives_interim_then_final_transcript_and_next_question(live_session, settings):
    client = await Client.open()
    await client.auth(live_session)
    await client.expect("server-ai-speech-end", timeout=30)
    for chunk in chunks(speech("my name is john and i like python programming")):
        await client.send_audio(chunk)
        await asyncio.sleep(0.02)  # twice real time: under the audio rate limit

    async def microphone_stays_open():  # as a page's does: the silence after the answer goes on
        while True:
            await client.send_audio(silence(40))
            await asyncio.sleep(0.04)

    quiet = asyncio.create_task(microphone_stays_open())
    try:
        final = await client.expect("server-final-transcript", timeout=20)
    finally:
        quiet.cancel()
    interims = client.of_type("server-live-transcript")
    assert interims, "interim transcripts arrive before the final one"
    assert final["transcript"].strip()
    assert final["turnId"]
    state = await client.expect("server-session-state")
    assert state["questionIndex"] == 1
    response = await client.expect("server-ai-thinking")
    await client.expect("server-ai-speech-chunk", responseId=response["responseId"])
    turns = await wait_for_turns(live_session.session_id, 2)
    candidate = turns[1]
    assert candidate["speaker"] == "candidate"
    assert candidate["text"] == final["transcript"]
    assert candidate["public_id"] == final["turnId"]
    assert candidate["source"] == "speech"
    assert candidate["question_index"] == 0
    await client.close()


async def test_typed_answers_walk_through_all_questions_and_end_the_session(live_session):
    client = await Client.open()
    await client.auth(live_session)
    await client.expect("server-ai-speech-end", timeout=30)
    await client.send("client-text-message", text="I build backend services in Python.")
    final = await client.expect("server-final-transcript")
    assert final["transcript"] == "I build backend services in Python." and final["source"] == "text"
    await client.expect("server-ai-speech-end", timeout=30)
    assert QUESTIONS[1] in client.captions()
    await client.send("client-text-message", text="Python, for its readability.")
    ended = await client.expect("server-session-ended", timeout=30)
    assert ended == {"reason": "All questions answered."}
    assert await client.expect_close() == 1000
    session = await session_row(live_session.session_id)
    assert session.status == SessionStatus.COMPLETED
    assert session.end_reason == "All questions answered."
    turns = await turns_of(live_session.session_id)
    assert [t["speaker"] for t in turns] == ["interviewer", "candidate", "interviewer", "candidate", "interviewer"]
    assert "goodbye" in turns[-1]["text"].lower()
    assert turns[2]["metrics"]["turn_to_first_audio_ms"] >= 0
    result = await database_sync_to_async(SessionResult.objects.get)(session_id=live_session.session_id)
    assert result.answered_questions == 2


async def test_interrupt_flushes_and_no_chunk_of_that_response_follows(live_session):
    client = await Client.open()
    await client.auth(live_session)
    first = await client.expect("server-ai-speech-chunk", timeout=20)
    response_id = first["responseId"]
    await client.read_for(0.8)  # let a few words be heard
    await client.send("client-interrupt")
    interrupted = await client.expect("server-ai-interrupted")
    assert interrupted["responseId"] == response_id
    seen_before = len(client.seen)
    await client.drain(1.0)
    late = [m for m in client.seen[seen_before:] if m["type"] == "server-ai-speech-chunk"]
    assert late == []
    turns = await wait_for_turns(live_session.session_id, 1)
    assert turns[0]["interrupted"] is True
    # What is stored is what was heard: a prefix of what was planned, not all of it.
    assert len(turns[0]["text"]) < len("Hello, and thank you for joining for the Test interview interview.")
    await client.close()


async def test_interrupt_while_silent_is_acknowledged(live_session):
    client = await Client.open()
    await client.auth(live_session)
    await client.expect("server-ai-speech-end", timeout=30)
    await client.drain(0.8)
    await client.send("client-interrupt")
    payload = await client.expect("server-ai-interrupted")
    assert payload["wasSpeaking"] is False
    await client.close()


async def test_pause_stops_speech_and_resume_asks_the_question_again(live_session):
    client = await Client.open()
    await client.auth(live_session)
    await client.expect("server-ai-speech-chunk", timeout=20)
    await client.send("client-pause")
    await client.expect("server-ai-interrupted")
    assert (await client.expect("server-session-state"))["status"] == "paused"
    await client.send("client-text-message", text="an answer while paused")
    error = await client.expect("server-error")
    assert error["code"] == "session_paused"
    await wait_for_status(live_session.session_id, SessionStatus.PAUSED)
    await client.send("client-resume")
    assert (await client.expect("server-session-state"))["status"] == "live"
    await client.expect("server-ai-speech-end", timeout=30)
    assert "Welcome back" in client.captions() and QUESTIONS[0] in client.captions()
    await client.close()


async def test_end_by_candidate_completes_the_session(live_session):
    client = await Client.open()
    await client.auth(live_session)
    await client.expect("server-ai-speech-chunk", timeout=20)
    await client.send("client-end", reason="I have to leave.")
    reason = "The candidate ended the interview: I have to leave."  # marked as the candidate's words
    assert (await client.expect("server-session-ended")) == {"reason": reason}
    assert await client.expect_close() == 1000
    session = await session_row(live_session.session_id)
    assert session.status == SessionStatus.COMPLETED and session.end_reason == reason


async def test_reconnect_resumes_at_the_current_question_with_the_conversation(live_session):
    client = await Client.open()
    await client.auth(live_session)
    await client.expect("server-ai-speech-end", timeout=30)
    await client.send("client-text-message", text="I am a backend engineer.")
    await client.expect("server-ai-speech-chunk", timeout=20)
    await client.read_for(0.8)  # the next question is partly heard, then the candidate leaves
    await client.close()
    await wait_for_turns(live_session.session_id, 3)

    again = await Client.open()
    payload = await again.auth(live_session)
    assert payload["resumed"] is True
    assert payload["questionIndex"] == 1
    speakers = [t["speaker"] for t in payload["conversation"]]
    assert speakers == ["interviewer", "candidate", "interviewer"]
    assert payload["conversation"][1]["text"] == "I am a backend engineer."
    assert payload["conversation"][2]["interrupted"] is True
    await again.expect("server-ai-speech-end", timeout=30)
    assert "Welcome back" in again.captions() and QUESTIONS[1] in again.captions()
    await again.close()


async def test_second_connection_takes_over_and_the_first_is_told(live_session):
    first = await Client.open()
    await first.auth(live_session)
    await first.expect("server-ai-speech-chunk", timeout=20)
    await first.read_for(0.8)
    second = await Client.open()
    resumed = await second.auth(live_session)
    # The first connection's words were written before the second loaded the conversation.
    assert [(t["speaker"], t["interrupted"]) for t in resumed["conversation"]] == [("interviewer", True)]
    error = await first.expect("server-error")
    assert error["code"] == "session_taken_over"
    assert await first.expect_close() == 4409
    await second.expect("server-ai-speech-end", timeout=30)
    await second.close()
    session = await session_row(live_session.session_id)
    assert session.connection_count == 2


async def test_ping_is_answered_with_pong_before_and_after_auth(live_session):
    client = await Client.open()
    await client.send("client-ping", id="hb-1")
    assert await client.expect("server-pong") == {"id": "hb-1"}
    await client.auth(live_session)
    await client.send("client-ping", id=7)
    assert await client.expect("server-pong") == {"id": 7}
    await client.close()


async def test_a_connection_that_closed_while_authenticating_never_takes_the_session(live_session):
    # The session looks live to a worker that died, so the first connection waits for an
    # answer to its takeover (TAKEOVER_WAIT_SECONDS); the candidate gives up on it meanwhile.
    await database_sync_to_async(InterviewSession.objects.filter(pk=live_session.session_id).update)(
        status=SessionStatus.LIVE)
    stale = await Client.open()
    await stale.send("client-auth", token=live_session.token, sessionId=live_session.session_id)
    await asyncio.sleep(0.3)
    await stale.ws.send_input({"type": "websocket.disconnect", "code": 1006})
    # The dead worker's lease expires; the candidate's new window joins at once.
    await database_sync_to_async(InterviewSession.objects.filter(pk=live_session.session_id).update)(
        status=SessionStatus.DISCONNECTED)
    newer = await Client.open()
    await newer.auth(live_session)
    await newer.read_for(2.5)  # the stale wait has long ended by now
    assert newer.close_code is None
    assert "session_taken_over" not in [e["code"] for e in newer.of_type("server-error")]
    session = await session_row(live_session.session_id)
    assert session.status == SessionStatus.LIVE and session.connection_count == 1
    await newer.close()
