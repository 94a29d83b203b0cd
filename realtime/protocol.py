"""The wire protocol: message names, parsing and validation, close codes.

docs/protocol.md is the reference for clients; this module is its executable form.
"""

from __future__ import annotations

import binascii
import enum
import json
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

MAX_TEXT_MESSAGE_CHARS = 4000
MAX_END_REASON_CHARS = 200
MAX_ID_CHARS = 200


class CloseCode(enum.IntEnum):
    """WebSocket close codes this server uses; 4xxx are documented in docs/protocol.md."""

    NORMAL = 1000  # the interview ended
    MESSAGE_TOO_BIG = 1009
    AUTH_FAILED = 4001  # the token was rejected: get a fresh one before reconnecting
    AUTH_REQUIRED = 4002  # a message other than client-auth came first
    SESSION_FORBIDDEN = 4003  # the session belongs to another user
    SESSION_NOT_FOUND = 4004
    SESSION_FINISHED = 4005  # nothing left to resume
    AUTH_TIMEOUT = 4008  # no client-auth in time
    RATE_LIMITED = 4029  # audio far above real time, persistently
    TAKEN_OVER = 4409  # another connection took this session
    SERVER_UNAVAILABLE = 4503  # a dependency (JWKS, database) failed: retry later


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


def parse_client_message(text: str) -> ClientMessage:
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("invalid_json", "The message is not valid JSON.") from None
    if not isinstance(message, dict):
        raise ProtocolError("invalid_message", "A message must be a JSON object with a 'type'.")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("invalid_message", "A message must be a JSON object with a 'type'.")
    payload = message.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise ProtocolError("invalid_payload", f"The payload of '{kind[:40]}' must be a JSON object.")
    validate = _VALIDATORS.get(kind)
    if validate is None:
        raise ProtocolError("unknown_type", f"Unknown message type '{kind[:40]}'.")
    return validate(kind, payload)


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


def _required_string(kind: str, payload: dict, name: str, limit: int) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ProtocolError("invalid_payload", f"'{kind}' needs payload.{name} as a non-empty string.")
    if len(value) > limit:
        raise ProtocolError("invalid_payload", f"payload.{name} of '{kind}' is longer than {limit} characters.")
    return value


def _auth(kind: str, payload: dict) -> ClientMessage:
    token = _required_string(kind, payload, "token", 16_000)
    session_id = _required_string(kind, payload, "sessionId", MAX_ID_CHARS)
    return ClientMessage(kind, {"token": token, "sessionId": session_id.strip()})


def _audio(kind: str, payload: dict) -> ClientMessage:
    return ClientMessage(kind, {}, audio=decode_audio(payload.get("data")))


def _text(kind: str, payload: dict) -> ClientMessage:
    return ClientMessage(kind, {"text": _required_string(kind, payload, "text", MAX_TEXT_MESSAGE_CHARS).strip()})


def _end(kind: str, payload: dict) -> ClientMessage:
    reason = payload.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ProtocolError("invalid_payload", "payload.reason of 'client-end' must be a string.")
    return ClientMessage(kind, {"reason": (reason or "").strip()[:MAX_END_REASON_CHARS]})


def _ping(kind: str, payload: dict) -> ClientMessage:
    ping_id = payload.get("id")
    if ping_id is not None and not isinstance(ping_id, (str, int)):
        raise ProtocolError("invalid_payload", "payload.id of 'client-ping' must be a string or a number.")
    return ClientMessage(kind, {"id": ping_id if not isinstance(ping_id, str) else ping_id[:MAX_ID_CHARS]})


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
}
