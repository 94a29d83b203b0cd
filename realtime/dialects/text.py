"""The text-era dialect (`/ws`): START_INTERVIEW, USER_MESSAGE, PAUSE/RESUME/END_INTERVIEW.

A codec over the same runtime as the voice socket (docs/protocol.md, "The text-era
socket"): client messages become the voice protocol's internal commands, the runtime's
events become whole text messages. The client never sends or receives audio on the
socket; each interviewer message carries a signed URL of its speech instead.
"""

from __future__ import annotations

import json
from typing import Any

from .. import protocol as p
from ..question_audio import audio_url

# Client -> server
START_INTERVIEW = "START_INTERVIEW"
USER_MESSAGE = "USER_MESSAGE"
PAUSE_INTERVIEW = "PAUSE_INTERVIEW"
RESUME_INTERVIEW = "RESUME_INTERVIEW"
END_INTERVIEW = "END_INTERVIEW"
PING = "PING"
REFRESH_TOKEN = "REFRESH_TOKEN"

# Server -> client
INTERVIEW_STARTED = "INTERVIEW_STARTED"
AI_TYPING = "AI_TYPING"
AI_MESSAGE = "AI_MESSAGE"
MESSAGE_RECEIVED = "MESSAGE_RECEIVED"
INTERVIEW_STATE = "INTERVIEW_STATE"
INTERVIEW_PAUSED = "INTERVIEW_PAUSED"
INTERVIEW_RESUMED = "INTERVIEW_RESUMED"
INTERVIEW_ENDED = "INTERVIEW_ENDED"
INTERVIEW_RESULTS = "INTERVIEW_RESULTS"
ERROR = "ERROR"
PONG = "PONG"
TOKEN_REFRESHED = "TOKEN_REFRESHED"

# Each text message and the internal command (the voice message) it stands for.
COMMANDS = {
    START_INTERVIEW: p.CLIENT_AUTH,
    USER_MESSAGE: p.CLIENT_TEXT_MESSAGE,
    PAUSE_INTERVIEW: p.CLIENT_PAUSE,
    RESUME_INTERVIEW: p.CLIENT_RESUME,
    END_INTERVIEW: p.CLIENT_END,
    PING: p.CLIENT_PING,
    REFRESH_TOKEN: p.CLIENT_TOKEN_REFRESH,
}
_WIRE_NAMES = {command: name for name, command in COMMANDS.items()}

# The few error texts that name a message of the voice protocol.
_ERROR_TEXTS = {
    "auth_required": "Send START_INTERVIEW first, then wait for INTERVIEW_STARTED.",
    "auth_timeout": "No START_INTERVIEW message arrived in time.",
    "binary_not_supported": "Send JSON text messages (see docs/protocol.md, the text-era socket).",
    "end_failed": "The interview could not be closed; send END_INTERVIEW again.",
}


def results_message(result: dict, *, final: bool) -> str:
    """INTERVIEW_RESULTS from `realtime.results.result_payload`; `final`: no later one comes."""
    return _frame(INTERVIEW_RESULTS, **result, final=final)


def _frame(kind: str, **payload: Any) -> str:
    return json.dumps({"type": kind, "payload": payload}, separators=(",", ":"))


class TextDialect:
    name = "text"
    speaks = False  # the runtime need not synthesize: speech is fetched by URL
    auth_message = START_INTERVIEW

    def __init__(self):
        self.session_id: str | None = None
        self.status: str | None = None
        self.question_index = 0
        self.question_count = 0
        self._sentences: dict[str, list[str]] = {}  # responseId -> its sentences so far
        self._acknowledge: str | None = None  # a pause or resume waiting for its answer

    # --- client -> internal command ----------------------------------------------------

    def parse(self, text: str) -> p.ClientMessage:
        kind, payload = p.decode_envelope(text, flat_payload=True)
        command = COMMANDS.get(kind)
        if command is None:
            raise p.ProtocolError("unknown_type", f"Unknown message type '{kind[:40]}'.")
        if command in (p.CLIENT_PAUSE, p.CLIENT_RESUME):
            self._acknowledge = command
        return p.validate_command(command, payload, wire_name=kind)

    def wire_name(self, command: str) -> str:
        return _WIRE_NAMES.get(command, command)

    # --- internal event -> text message ------------------------------------------------

    def encode(self, kind: str, **payload: Any) -> str | None:
        render = self._RENDER.get(kind)
        return render(self, **payload) if render is not None else None

    def _auth_success(self, *, sessionId, resumed, questionIndex, questionCount, status, conversation,
                      expiresAt, **_) -> str:
        self.session_id = sessionId
        self.status, self.question_index, self.question_count = status, questionIndex, questionCount
        return _frame(INTERVIEW_STARTED, sessionId=sessionId, resumed=resumed, status=status,
                      questionIndex=questionIndex, questionCount=questionCount, conversation=conversation,
                      expiresAt=expiresAt)

    def _state(self, *, status, questionIndex, questionCount, **_) -> str:
        changed = self.status is not None and status != self.status
        self.status, self.question_index, self.question_count = status, questionIndex, questionCount
        # A pause (resume) is acknowledged even when the interview already was paused (live).
        asked, self._acknowledge = self._acknowledge, None
        kind = INTERVIEW_STATE
        if status == "paused" and (changed or asked == p.CLIENT_PAUSE):
            kind = INTERVIEW_PAUSED
        elif status == "live" and (changed or asked == p.CLIENT_RESUME):
            kind = INTERVIEW_RESUMED
        return _frame(kind, status=status, questionIndex=questionIndex, questionCount=questionCount)

    def _thinking(self, *, responseId, **_) -> str:
        self._sentences[responseId] = []
        return _frame(AI_TYPING, typing=True, responseId=responseId)

    def _sentence(self, *, responseId, text, **_) -> None:
        self._sentences.setdefault(responseId, []).append(text)

    def _speech_end(self, *, responseId, **_) -> str | None:
        text = " ".join(self._sentences.pop(responseId, ()))
        url = audio_url(self.session_id, text) if text and self.session_id else None
        return _frame(AI_MESSAGE, responseId=responseId, text=text, audioUrl=url,
                      questionIndex=self.question_index, questionCount=self.question_count)

    def _interrupted(self, *, responseId, **_) -> str | None:
        # Only a pause or an end cuts a response off here (nothing is spoken on this socket):
        # it was never shown, so the typing indicator just stops.
        if responseId is None or self._sentences.pop(responseId, None) is None:
            return None
        return _frame(AI_TYPING, typing=False, responseId=responseId)

    def _final_transcript(self, *, transcript, turnId, source, **_) -> str:
        return _frame(MESSAGE_RECEIVED, turnId=turnId, text=transcript, source=source)

    def _ended(self, *, reason, **_) -> str:
        self.status = "completed"
        return _frame(INTERVIEW_ENDED, reason=reason)

    def _error(self, *, code, error, **extra) -> str:
        if self._acknowledge is not None and code == "rate_limited":
            self._acknowledge = None  # that pause or resume was ignored
        fields = {"text": extra["transcript"]} if "transcript" in extra else {}
        return _frame(ERROR, code=code, message=_ERROR_TEXTS.get(code, error), **fields)

    def _pong(self, *, id, **_) -> str:  # noqa: A002 - the wire's name
        return _frame(PONG, id=id)

    def _token_refreshed(self, *, expiresAt, **_) -> str:
        return _frame(TOKEN_REFRESHED, expiresAt=expiresAt)

    _RENDER = {
        p.SERVER_AUTH_SUCCESS: _auth_success,
        p.SERVER_AUTH_FAILURE: _error,
        p.SERVER_SESSION_STATE: _state,
        p.SERVER_AI_THINKING: _thinking,
        p.SERVER_AI_TEXT: _sentence,
        p.SERVER_AI_SPEECH_END: _speech_end,
        p.SERVER_AI_INTERRUPTED: _interrupted,
        p.SERVER_FINAL_TRANSCRIPT: _final_transcript,
        p.SERVER_SESSION_ENDED: _ended,
        p.SERVER_ERROR: _error,
        p.SERVER_PONG: _pong,
        p.SERVER_TOKEN_REFRESHED: _token_refreshed,
        # Never on this socket: server-ai-speech-chunk (speech is a URL), server-live-transcript
        # (no audio comes in).
    }
