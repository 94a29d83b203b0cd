"""The text-era dialect (/ws) in process: its codec, and a whole typed interview on the
same runtime as the voice socket (the real-daphne tests are in tests/e2e/test_text_socket.py)."""

import asyncio
import logging

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from interviews.models import AnalysisStatus, SessionResult, Turn
from realtime import protocol as p
from realtime.dialects import VoiceDialect, frame_type
from realtime.dialects.text import COMMANDS, TextDialect
from realtime.providers.base import Providers
from realtime.providers.registry import get_providers
from tests.factories import QUESTIONS
from tests.realtime.polling import until
from tests.realtime.wsclient import Client

pytestmark = pytest.mark.django_db(transaction=True)


# --- the codec ---------------------------------------------------------------------------

@pytest.mark.parametrize("wire, payload, command, parsed", [
    ("START_INTERVIEW", {"token": "t", "sessionId": "s"}, p.CLIENT_AUTH, {"token": "t", "sessionId": "s"}),
    ("USER_MESSAGE", {"text": " my answer "}, p.CLIENT_TEXT_MESSAGE, {"text": "my answer"}),
    ("PAUSE_INTERVIEW", {}, p.CLIENT_PAUSE, {}),
    ("RESUME_INTERVIEW", None, p.CLIENT_RESUME, {}),
    ("END_INTERVIEW", {"reason": "done"}, p.CLIENT_END, {"reason": "done"}),
    ("END_INTERVIEW", {}, p.CLIENT_END, {"reason": ""}),
    ("PING", {"id": 7}, p.CLIENT_PING, {"id": 7}),
    ("REFRESH_TOKEN", {"token": "t2"}, p.CLIENT_TOKEN_REFRESH, {"token": "t2"}),
])
def test_each_text_message_is_the_voice_sockets_command(wire, payload, command, parsed):
    import json

    message = {"type": wire} if payload is None else {"type": wire, "payload": payload}
    result = TextDialect().parse(json.dumps(message))
    assert (result.type, result.payload) == (command, parsed)
    assert COMMANDS[wire] == command


def test_fields_may_sit_beside_the_type_and_bad_input_gets_the_voice_sockets_codes():
    dialect = TextDialect()
    assert dialect.parse('{"type": "USER_MESSAGE", "text": "flat"}').payload == {"text": "flat"}
    for frame, code in [('{"type": "client-text-message", "payload": {"text": "x"}}', "unknown_type"),
                        ('{"type": "client-audio-chunk", "payload": {"data": "AAAA"}}', "unknown_type"),
                        ('{"type": "USER_MESSAGE", "payload": {"text": "  "}}', "invalid_payload"),
                        ('{"type": "START_INTERVIEW", "payload": {"token": "t"}}', "invalid_payload"),
                        ('{"type": "USER_MESSAGE", "payload": []}', "invalid_payload"),
                        ("not json", "invalid_json"), ('["USER_MESSAGE"]', "invalid_message")]:
        with pytest.raises(p.ProtocolError) as refused:
            dialect.parse(frame)
        assert refused.value.code == code, frame
    with pytest.raises(p.ProtocolError) as refused:
        VoiceDialect().parse('{"type": "USER_MESSAGE", "payload": {"text": "x"}}')
    assert refused.value.code == "unknown_type"


def test_events_render_as_whole_text_messages():
    import json

    d = TextDialect()

    def render(kind, **payload):
        frame = d.encode(kind, **payload)  # once: the codec keeps state
        return json.loads(frame) if frame is not None else None

    started = render(p.SERVER_AUTH_SUCCESS, message="m", sessionId="6d0c2f9e-2b1a-4c3d-8e4f-5a6b7c8d9e0f",
                     resumed=False, audio={}, questionIndex=0, questionCount=2, status="live", conversation=[],
                     expiresAt=1)
    assert started["type"] == "INTERVIEW_STARTED" and "audio" not in started["payload"]
    assert render(p.SERVER_SESSION_STATE, status="live", questionIndex=0, questionCount=2)["type"] == "INTERVIEW_STATE"
    assert d.encode(p.SERVER_AI_THINKING, responseId="r1").startswith('{"type":"AI_TYPING"')
    assert d.encode(p.SERVER_AI_TEXT, responseId="r1", text="Hello.") is None
    assert d.encode(p.SERVER_AI_SPEECH_CHUNK, responseId="r1", data="AAAA", seq=0) is None
    assert d.encode(p.SERVER_LIVE_TRANSCRIPT, transcript="x") is None
    d.encode(p.SERVER_AI_TEXT, responseId="r1", text="How are you?")
    message = json.loads(d.encode(p.SERVER_AI_SPEECH_END, responseId="r1"))
    assert message["type"] == "AI_MESSAGE"
    assert message["payload"]["text"] == "Hello. How are you?"
    assert message["payload"]["audioUrl"].startswith("/api/sessions/6d0c2f9e-2b1a-4c3d-8e4f-5a6b7c8d9e0f/question-audio/")
    # A pause is acknowledged, even when it changes nothing; so is a resume.
    d.parse('{"type": "PAUSE_INTERVIEW"}')
    assert render(p.SERVER_SESSION_STATE, status="paused", questionIndex=0, questionCount=2)["type"] == "INTERVIEW_PAUSED"
    d.parse('{"type": "PAUSE_INTERVIEW"}')
    assert render(p.SERVER_SESSION_STATE, status="paused", questionIndex=0, questionCount=2)["type"] == "INTERVIEW_PAUSED"
    d.parse('{"type": "RESUME_INTERVIEW"}')
    assert render(p.SERVER_SESSION_STATE, status="live", questionIndex=0, questionCount=2)["type"] == "INTERVIEW_RESUMED"
    error = render(p.SERVER_ERROR, code="answer_pending", error="e", transcript="again")
    assert error == {"type": "ERROR", "payload": {"code": "answer_pending", "message": "e", "text": "again"}}
    assert render(p.SERVER_AUTH_FAILURE, code="auth_required", error="Send client-auth first")["payload"]["message"] \
        .startswith("Send START_INTERVIEW first")
    assert frame_type(d.encode(p.SERVER_PONG, id=3)) == "PONG"


# --- a typed interview on /ws ---------------------------------------------------------------

class TextClient(Client):
    @classmethod
    async def open(cls, path: str = "/ws", **kwargs) -> "TextClient":
        return await super().open(path, **kwargs)

    async def start(self, info) -> dict:
        await self.send("START_INTERVIEW", token=info.token, sessionId=info.session_id)
        return await self.expect("INTERVIEW_STARTED")

    async def question(self, timeout: float = 20) -> dict:
        return await self.expect("AI_MESSAGE", timeout=timeout)


@database_sync_to_async
def stored_turns(session_id):
    return list(Turn.objects.filter(session_id=session_id).order_by("sequence").values_list("speaker", "text", "source"))


async def test_a_whole_typed_interview_on_the_text_socket(live_session):
    client = await TextClient.open()
    started = await client.start(live_session)
    assert started["resumed"] is False and started["questionCount"] == len(QUESTIONS)
    assert await client.expect("INTERVIEW_STATE") == {"status": "live", "questionIndex": 0, "questionCount": 2}
    typing = await client.expect("AI_TYPING")
    first = await client.question()
    assert typing == {"typing": True, "responseId": first["responseId"]}
    assert QUESTIONS[0] in first["text"] and first["questionIndex"] == 0
    assert first["audioUrl"].startswith(f"/api/sessions/{live_session.session_id}/question-audio/")

    await client.send("USER_MESSAGE", text="I write backend services in Python.")
    received = await client.expect("MESSAGE_RECEIVED")
    assert received["text"] == "I write backend services in Python." and received["source"] == "text"
    assert (await client.expect("INTERVIEW_STATE"))["questionIndex"] == 1
    await client.expect("AI_TYPING")
    second = await client.question()
    assert QUESTIONS[1] in second["text"] and second["questionIndex"] == 1

    await client.send("PAUSE_INTERVIEW")
    assert (await client.expect("INTERVIEW_PAUSED"))["status"] == "paused"
    await client.send("USER_MESSAGE", text="while paused")
    assert (await client.expect("ERROR"))["code"] == "session_paused"
    await client.send("RESUME_INTERVIEW")
    assert (await client.expect("INTERVIEW_RESUMED"))["status"] == "live"
    repeated = await client.question()
    assert QUESTIONS[1] in repeated["text"]

    await client.send("PING", id="p1")
    assert await client.expect("PONG") == {"id": "p1"}
    await client.send("USER_MESSAGE", text="Python, for its readability.")
    await client.expect("MESSAGE_RECEIVED")
    closing = await client.question()
    assert closing["questionIndex"] == 2
    ended = await client.expect("INTERVIEW_ENDED")
    assert ended == {"reason": "All questions answered."}
    results = await client.expect("INTERVIEW_RESULTS")
    assert results["final"] is True and results["answeredQuestions"] == 2 and results["questionCount"] == 2
    assert results["analysisStatus"] == "not_requested" and results["analysis"] is None
    assert [q["answer"] for q in results["questions"]] == ["I write backend services in Python.",
                                                          "Python, for its readability."]
    assert await client.expect_close() == 1000
    # Nothing spoken on this socket, and the store holds the same conversation as a voice session's.
    kinds = {m["type"] for m in client.seen}
    assert not kinds & {"server-ai-speech-chunk", "server-ai-text", "server-live-transcript"}
    turns = await stored_turns(live_session.session_id)
    assert [t[0] for t in turns] == ["interviewer", "candidate", "interviewer", "interviewer", "candidate", "interviewer"]
    assert turns[1] == ("candidate", "I write backend services in Python.", "text")
    assert turns[-1][1] == closing["text"]


async def test_a_reconnect_restores_the_conversation_and_a_finished_session_shows_its_results(live_session):
    client = await TextClient.open()
    await client.start(live_session)
    first = await client.question()
    await client.send("USER_MESSAGE", text="About me: I build things.")
    await client.expect("MESSAGE_RECEIVED")
    await client.question()
    await client.close()

    again = await TextClient.open()
    started = await again.start(live_session)
    assert started["resumed"] is True and started["questionIndex"] == 1
    assert [(line["speaker"], line["text"]) for line in started["conversation"]][:2] == [
        ("interviewer", first["text"]), ("candidate", "About me: I build things.")]
    resumed = await again.question()
    assert QUESTIONS[1] in resumed["text"]
    await again.send("END_INTERVIEW", reason="had to go")
    assert (await again.expect("INTERVIEW_ENDED"))["reason"] == "The candidate ended the interview: had to go"
    assert (await again.expect("INTERVIEW_RESULTS"))["answeredQuestions"] == 1
    assert await again.expect_close() == 1000

    # Joining a finished session: its results, then the voice socket's refusal.
    late = await TextClient.open()
    await late.send("START_INTERVIEW", token=live_session.token, sessionId=live_session.session_id)
    assert (await late.expect("INTERVIEW_RESULTS"))["answeredQuestions"] == 1
    assert (await late.expect("ERROR"))["code"] == "session_finished"
    assert await late.expect_close() == p.CloseCode.SESSION_FINISHED


async def test_refusals_use_the_voice_sockets_codes(live_session, session_factory):
    client = await TextClient.open()
    await client.send("USER_MESSAGE", text="before starting")
    refused = await client.expect("ERROR")
    assert refused["code"] == "auth_required" and "START_INTERVIEW" in refused["message"]
    assert await client.expect_close() == p.CloseCode.AUTH_REQUIRED

    client = await TextClient.open()
    await client.send("START_INTERVIEW", token="not-a-jwt", sessionId=live_session.session_id)
    assert (await client.expect("ERROR"))["code"] == "token_malformed"
    assert await client.expect_close() == p.CloseCode.AUTH_FAILED

    other = await database_sync_to_async(session_factory)()
    client = await TextClient.open()
    await client.send("START_INTERVIEW", token=live_session.token, sessionId=other.session_id)
    assert (await client.expect("ERROR"))["code"] == "session_forbidden"
    assert await client.expect_close() == p.CloseCode.SESSION_FORBIDDEN

    client = await TextClient.open()
    await client.start(live_session)
    await client.send("START_INTERVIEW", token=live_session.token, sessionId=live_session.session_id)
    assert (await client.expect("ERROR"))["code"] == "already_authenticated"
    await client.send("client-text-message", text="the voice dialect's name")
    assert (await client.expect("ERROR"))["code"] == "unknown_type"
    await client.close()


class SlowEvaluator:
    """A language model's analysis that takes a moment."""

    async def evaluate(self, request):
        await asyncio.sleep(0.5)
        return {"summary": "Clear answers.", "recommendation": "advance", "questions": []}


async def test_the_analysis_follows_the_results_when_it_is_stored(live_session, monkeypatch):
    base = get_providers()
    with_analysis = Providers(stt=base.stt, interviewer=base.interviewer, tts=base.tts, name="local+analysis",
                              evaluator=SlowEvaluator())
    monkeypatch.setattr("realtime.consumers.get_providers", lambda: with_analysis)
    client = await TextClient.open()
    await client.start(live_session)
    await client.question()
    await client.send("END_INTERVIEW")
    await client.expect("INTERVIEW_ENDED")
    first = await client.expect("INTERVIEW_RESULTS")
    assert first["analysisStatus"] == "pending" and first["final"] is False
    done = await client.expect("INTERVIEW_RESULTS", timeout=15)
    assert done["analysisStatus"] == "done" and done["final"] is True
    assert done["analysis"]["recommendation"] == "advance"
    assert await client.expect_close() == 1000
    stored = await database_sync_to_async(SessionResult.objects.get)(session_id=live_session.session_id)
    assert stored.analysis_status == AnalysisStatus.DONE


@override_settings(REALTIME={**__import__("django.conf").conf.settings.REALTIME, "RESULTS_WAIT_SECONDS": 0.3})
async def test_the_wait_for_an_analysis_is_bounded(live_session, monkeypatch):
    class NeverDone:
        async def evaluate(self, request):
            await asyncio.sleep(30)

    base = get_providers()
    monkeypatch.setattr("realtime.consumers.get_providers", lambda: Providers(
        stt=base.stt, interviewer=base.interviewer, tts=base.tts, evaluator=NeverDone()))
    client = await TextClient.open()
    await client.start(live_session)
    await client.question()
    await client.send("END_INTERVIEW")
    assert (await client.expect("INTERVIEW_RESULTS"))["final"] is False
    last = await client.expect("INTERVIEW_RESULTS", timeout=5)
    assert last["analysisStatus"] == "pending" and last["final"] is True
    assert await client.expect_close() == 1000


async def test_socket_operations_are_logged_without_tokens_or_answers(live_session, caplog):
    secret_answer = "my very private answer 4711"
    with override_settings(REALTIME={**__import__("django.conf").conf.settings.REALTIME, "LOG_MESSAGES": True}):
        caplog.set_level(logging.INFO, logger="realtime.socketlog")
        client = await TextClient.open()
        await client.start(live_session)
        await client.question()
        await client.send("USER_MESSAGE", text=secret_answer)
        await client.expect("MESSAGE_RECEIVED")
        await client.send("END_INTERVIEW")
        await client.expect_close()
        await client.close()
        await until(_async(lambda: [r for r in caplog.records if "closed code=" in r.getMessage()]), bool,
                    what="the summary line")
    lines = [r.getMessage() for r in caplog.records if r.name == "realtime.socketlog"]
    text = "\n".join(lines)
    assert f"session={live_session.session_id} text in USER_MESSAGE" in text
    assert " text out AI_MESSAGE " in text and " text in START_INTERVIEW " in text
    assert "handled=" in text and "t=" in text
    assert live_session.token not in text and secret_answer not in text and "4711" not in text
    summary = next(line for line in lines if "closed code=" in line)
    assert "code=1000" in summary and "in USER_MESSAGE x1" in summary


def _async(fn):
    async def call():
        return fn()
    return call


async def test_one_session_across_both_dialects(live_session):
    """Started on /ws, resumed on the voice socket; and a connection on either takes over the other."""
    text = await TextClient.open()
    await text.start(live_session)
    first = await text.question()
    await text.send("USER_MESSAGE", text="Typed on the text socket.")
    await text.expect("MESSAGE_RECEIVED")
    await text.question()
    await text.close()

    voice = await Client.open()
    resumed = await voice.auth(live_session)
    assert resumed["resumed"] is True and resumed["questionIndex"] == 1
    assert [line["text"] for line in resumed["conversation"]][:2] == [first["text"], "Typed on the text socket."]
    await voice.expect("server-ai-speech-chunk", timeout=20)  # the voice socket speaks

    again = await TextClient.open()
    await again.start(live_session)
    assert (await voice.expect("server-error"))["code"] == "session_taken_over"
    assert await voice.expect_close() == p.CloseCode.TAKEN_OVER
    assert "Welcome back" in (await again.question())["text"]
    await again.close()


class SlowInterviewer:
    """Types its lines slowly, so a pause can cut one off."""

    def __init__(self, inner):
        self.inner = inner

    async def respond(self, request):
        async for word in self.inner.respond(request):
            await asyncio.sleep(0.1)
            yield word

    async def draft_questions(self, **kwargs):
        return await self.inner.draft_questions(**kwargs)


async def test_a_pause_while_the_interviewer_types_stops_the_indicator(live_session, monkeypatch):
    base = get_providers()
    monkeypatch.setattr("realtime.consumers.get_providers", lambda: Providers(
        stt=base.stt, interviewer=SlowInterviewer(base.interviewer), tts=base.tts))
    client = await TextClient.open()
    await client.start(live_session)
    typing = await client.expect("AI_TYPING", typing=True)
    await client.send("PAUSE_INTERVIEW")
    assert await client.expect("AI_TYPING", typing=False) == {"typing": False, "responseId": typing["responseId"]}
    await client.expect("INTERVIEW_PAUSED")
    await client.read_for(0.5)
    assert client.of_type("AI_MESSAGE") == []  # the cut-off message never comes
    await client.close()
