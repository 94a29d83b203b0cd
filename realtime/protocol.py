"""The wire protocol: message names, parsing and validation, close codes.

docs/protocol.md is the reference for clients; this module is its executable form.
"""

from __future__ import annotations

import binascii
import enum
import json
import re
from dataclasses import dataclass
from typing import Any

# Client -> server
CLIENT_AUTH = "client-auth"
CLIENT_AUDIO_CHUNK = "client-audio-chunk"
CLIENT_INTERRUPT = "client-interrupt"
CLIENT_TEXT_MESSAGE = "client-text-message"
CLIENT_PAUSE = "client-pause"
CLIENT_RESUME = "client-resume"
CLIENT_END = "client-end"
CLIENT_PING = "client-ping"
CLIENT_TOKEN_REFRESH = "client-token-refresh"

# Server -> client
SERVER_AUTH_SUCCESS = "server-auth-success"
SERVER_AUTH_FAILURE = "server-auth-failure"
SERVER_LIVE_TRANSCRIPT = "server-live-transcript"
SERVER_FINAL_TRANSCRIPT = "server-final-transcript"
SERVER_AI_THINKING = "server-ai-thinking"
SERVER_AI_TEXT = "server-ai-text"
SERVER_AI_SPEECH_CHUNK = "server-ai-speech-chunk"
SERVER_AI_SPEECH_END = "server-ai-speech-end"
SERVER_AI_INTERRUPTED = "server-ai-interrupted"
SERVER_SESSION_STATE = "server-session-state"
SERVER_SESSION_ENDED = "server-session-ended"
SERVER_ERROR = "server-error"
SERVER_PONG = "server-pong"
SERVER_TOKEN_REFRESHED = "server-token-refreshed"

MAX_TEXT_MESSAGE_CHARS = 4000
MAX_END_REASON_CHARS = 200
MAX_ID_CHARS = 200
MAX_TOKEN_CHARS = 16_000
# Before authentication only client-auth (and one client-ping) may come, and small.
MAX_MESSAGE_BYTES_BEFORE_AUTH = MAX_TOKEN_CHARS + 2 * 1024
MAX_MESSAGES_BEFORE_AUTH = 2
# Messages that change the session (and may write to the database), as opposed to audio.
CONTROL_MESSAGES = frozenset({"client-interrupt", "client-text-message", "client-pause", "client-resume",
                              "client-end", "client-token-refresh", "client-auth"})


class CloseCode(enum.IntEnum):
    """Close codes the application sends; docs/protocol.md lists these and the transport's own.

    A WebSocket application may only send 1000 or 3000-4999 (autobahn refuses the rest).
    """

    NORMAL = 1000  # the interview ended
    AUTH_FAILED = 4001  # the token was rejected or expired: get a fresh one before reconnecting
    AUTH_REQUIRED = 4002  # a message other than client-auth came first
    SESSION_FORBIDDEN = 4003  # the session belongs to another user
    SESSION_NOT_FOUND = 4004
    SESSION_FINISHED = 4005  # nothing left to resume
    AUTH_TIMEOUT = 4008  # no client-auth in time
    SERVER_RESTARTING = 4012  # this worker is stopping: reconnect now, another one resumes the session
    MESSAGE_TOO_BIG = 4013  # a frame above the size limit
    SLOW_READER = 4015  # the client stopped reading: too much unsent for too long
    RATE_LIMITED = 4029  # too many messages, or audio far above real time
    TAKEN_OVER = 4409  # another connection took this session
    INTERNAL_ERROR = 4500  # a bug on our side; reconnecting resumes the session
    SERVER_UNAVAILABLE = 4503  # a dependency (JWKS, database, channel layer) failed: retry shortly


class ProtocolError(Exception):
    """Bad input: answered with server-error (or server-auth-failure before auth)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ClientMessage:
    type: str
    payload: dict[str, Any]
    audio: bytes | None = None  # decoded PCM16 for client-audio-chunk


_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"[\r\n\t\u2028\u2029]")


def clean_text(value: str, *, single_line: bool = False) -> str:
    """Text every backend can store and every log can show.

    JSON can carry what no database or encoder accepts: NUL (PostgreSQL text refuses it)
    and lone surrogates (no UTF-8 encoder takes them). Lone surrogates become U+FFFD,
    control characters go; ids and reasons also lose line breaks, so they cannot forge
    a log line.
    """
    if not value.isascii():
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    value = _CONTROL_CHARS.sub("", value)
    if single_line:
        value = _LINE_BREAKS.sub(" ", value)
    return value


def log_safe(value: str, limit: int = 64) -> str:
    """A client-supplied id as it may appear in a log line: short, one line, printable."""
    return clean_text(value[:limit], single_line=True).encode("ascii", "backslashreplace").decode("ascii")


def utf8_length_exceeds(text: str, limit: int) -> bool:
    """Whether `text` is over `limit` bytes as UTF-8, without encoding it when the answer is plain."""
    if len(text) > limit:
        return True
    if len(text) * 4 <= limit or text.isascii():
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


def parse_client_message(text: str) -> ClientMessage:
    kind, payload = decode_envelope(text)
    if kind not in _VALIDATORS:
        raise ProtocolError("unknown_type", f"Unknown message type '{kind[:40]}'.")
    return validate_command(kind, payload)


def decode_envelope(text: str, *, flat_payload: bool = False) -> tuple[str, dict]:
    """`{"type", "payload"}` -> (type, payload), or ProtocolError.

    With `flat_payload` (the text dialect), a message without a `payload` object may
    carry its fields beside `type`, as earlier clients sent them.
    """
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("invalid_json", "The message is not valid JSON.") from None
    if not isinstance(message, dict):
        raise ProtocolError("invalid_message", "A message must be a JSON object with a 'type'.")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("invalid_message", "A message must be a JSON object with a 'type'.")
    if flat_payload and "payload" not in message:
        return kind, {key: value for key, value in message.items() if key != "type"}
    payload = message.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise ProtocolError("invalid_payload", f"The payload of '{kind[:40]}' must be a JSON object.")
    return kind, payload


def validate_command(command: str, payload: dict, *, wire_name: str | None = None) -> ClientMessage:
    """Check a payload as the internal command `command` (a client message type above);
    `wire_name` is what the sender called it, for the error messages."""
    message = _VALIDATORS[command](wire_name or command, payload)
    return message if message.type == command else ClientMessage(command, message.payload, message.audio)


def decode_audio(data: Any) -> bytes:
    if not isinstance(data, str) or not data:
        raise ProtocolError("invalid_audio", "payload.data must be a non-empty base64 string.")
    try:
        pcm = binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("invalid_audio", "payload.data is not valid base64.") from None
    if len(pcm) % 2:
        raise ProtocolError("invalid_audio", "Audio must be PCM16: an even number of bytes.")
    return pcm


def encode_audio(pcm: bytes) -> str:
    return binascii.b2a_base64(pcm, newline=False).decode("ascii")


def server_message(kind: str, **payload: Any) -> str:
    return json.dumps({"type": kind, "payload": payload}, separators=(",", ":"))


def _required_string(kind: str, payload: dict, name: str, limit: int, *, single_line: bool = True) -> str:
    value = payload.get(name)
    if not isinstance(value, str):
        raise ProtocolError("invalid_payload", f"'{kind}' needs payload.{name} as a non-empty string.")
    value = clean_text(value, single_line=single_line).strip()
    if not value:
        raise ProtocolError("invalid_payload", f"'{kind}' needs payload.{name} as a non-empty string.")
    if len(value) > limit:
        raise ProtocolError("invalid_payload", f"payload.{name} of '{kind}' is longer than {limit} characters.")
    return value


def _auth(kind: str, payload: dict) -> ClientMessage:
    token = _required_string(kind, payload, "token", MAX_TOKEN_CHARS)
    session_id = _required_string(kind, payload, "sessionId", MAX_ID_CHARS)
    return ClientMessage(kind, {"token": token, "sessionId": session_id})


def _token_refresh(kind: str, payload: dict) -> ClientMessage:
    return ClientMessage(kind, {"token": _required_string(kind, payload, "token", MAX_TOKEN_CHARS)})


def _audio(kind: str, payload: dict) -> ClientMessage:
    return ClientMessage(kind, {}, audio=decode_audio(payload.get("data")))


def _text(kind: str, payload: dict) -> ClientMessage:
    return ClientMessage(kind, {"text": _required_string(kind, payload, "text", MAX_TEXT_MESSAGE_CHARS,
                                                          single_line=False)})


def _end(kind: str, payload: dict) -> ClientMessage:
    reason = payload.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ProtocolError("invalid_payload", "payload.reason of 'client-end' must be a string.")
    return ClientMessage(kind, {"reason": clean_text(reason or "", single_line=True).strip()[:MAX_END_REASON_CHARS]})


def _ping(kind: str, payload: dict) -> ClientMessage:
    ping_id = payload.get("id")
    if ping_id is not None and not isinstance(ping_id, (str, int)):
        raise ProtocolError("invalid_payload", "payload.id of 'client-ping' must be a string or a number.")
    if isinstance(ping_id, str):
        ping_id = clean_text(ping_id[:MAX_ID_CHARS], single_line=True)
    return ClientMessage(kind, {"id": ping_id})


def _no_payload(kind: str, payload: dict) -> ClientMessage:
    return ClientMessage(kind, {})


_VALIDATORS = {
    CLIENT_AUTH: _auth,
    CLIENT_AUDIO_CHUNK: _audio,
    CLIENT_INTERRUPT: _no_payload,
    CLIENT_TEXT_MESSAGE: _text,
    CLIENT_PAUSE: _no_payload,
    CLIENT_RESUME: _no_payload,
    CLIENT_END: _end,
    CLIENT_PING: _ping,
    CLIENT_TOKEN_REFRESH: _token_refresh,
}
