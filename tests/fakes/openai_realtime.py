"""A strict local stand-in for the OpenAI Realtime API (GA), over WebSocket.

It speaks the documented wire protocol the `openai` SDK's `client.realtime.connect()`
uses (see https://platform.openai.com/docs/api-reference/realtime): the SDK connects to
`{websocket_base_url}/realtime?model=...` (a conversation, session type "realtime") or
`?intent=transcription` (session type "transcription") with `Authorization: Bearer`.

Strict: every client event is checked (known type, no unknown or missing fields, the
`session.update` shape, base64 audio of whole PCM16 samples at audio/pcm 24000 Hz, no
`response.create` while a response is active, a `conversation.item.truncate` naming an
assistant audio item and not beyond the audio sent for it, ...). A violation gets the
`error` event OpenAI would send *and* is recorded in `errors`, which the fixture requires
to be empty. Two races a correct client can lose (a cancel that arrives just after its
response ended, a commit just after voice activity detection committed) are forgiven
for a second, as the real API's errors for them are harmless.

Hearing is deterministic: an energy detector on the appended audio (a 20 ms frame above
the threshold is speech); after `turn_detection.silence_duration_ms` (default 500) of
silence the turn ends: speech_started, speech_stopped, committed, conversation.item.added,
then (when transcription is configured) transcription deltas word by word and completed,
with the words taken from `fake.transcripts` (else `DEFAULT_TRANSCRIPT`).

Responses: the words come from `fake.replies` (else "Thank you. " and the question quoted
in the instructions' "Now:" line, or a goodbye for closing); each word is a transcript
delta and ~300 ms of a 24 kHz tone in audio deltas, sent faster than real time with
small sleeps so that a `response.cancel` can land mid-response.

Failures to script: put `ErrorEvent(...)`, `Drop()`, `Malformed()`, `Hang()` or
`Failed()` in `fake.replies` (applied after the first word of that response), or in
`fake.audio_failures` (applied at the next `input_audio_buffer.append`); put
`HandshakeStatus(429)` (or 401, 500...) in `fake.connect_failures` to refuse the next
connection with OpenAI's error JSON.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import http
import itertools
import json
import math
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from . import BackgroundLoop

__all__ = [
    "OpenAIRealtimeFake", "openai_realtime_fake", "ErrorEvent", "Drop", "Malformed", "Hang", "Failed",
    "HandshakeStatus", "DEFAULT_TRANSCRIPT", "SAMPLE_RATE", "WORD_MS",
]  # fmt: skip

SAMPLE_RATE = 24000
FRAME_MS = 20
WORD_MS = 300  # of audio per word of a response
AUDIO_PIECE_MS = 100  # per response.output_audio.delta
MIN_COMMIT_MS = 100
RACE_GRACE_S = 1.0
MAX_APPEND_BYTES = 15 * 1024 * 1024
MAX_RECORDED = 2000
DEFAULT_TRANSCRIPT = "I have five years of experience building web services in Python."
GOODBYE = "Thank you for your time. Goodbye."

REALTIME_MODEL_PREFIXES = ("gpt-realtime", "gpt-4o-realtime", "gpt-4o-mini-realtime", "gpt-audio")
TRANSCRIPTION_MODELS = {
    "whisper-1", "gpt-transcribe", "gpt-live-transcribe", "gpt-4o-transcribe", "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15", "gpt-4o-transcribe-diarize", "gpt-realtime-whisper",
}  # fmt: skip
VOICES = {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"}

# Client events: (required fields, optional fields) besides "type" and "event_id".
CLIENT_EVENTS = {
    "session.update": ({"session"}, set()),
    "input_audio_buffer.append": ({"audio"}, set()),
    "input_audio_buffer.commit": (set(), set()),
    "input_audio_buffer.clear": (set(), set()),
    "conversation.item.create": ({"item"}, {"previous_item_id"}),
    "conversation.item.retrieve": ({"item_id"}, set()),
    "conversation.item.truncate": ({"item_id", "content_index", "audio_end_ms"}, set()),
    "conversation.item.delete": ({"item_id"}, set()),
    "response.create": (set(), {"response"}),
    "response.cancel": (set(), {"response_id"}),
    "output_audio_buffer.clear": (set(), set()),  # WebRTC/SIP only: refused on a WebSocket
}
TRANSCRIPTION_EVENTS = {"session.update", "input_audio_buffer.append", "input_audio_buffer.commit",
                        "input_audio_buffer.clear"}
REALTIME_SESSION_KEYS = {
    "type", "audio", "include", "instructions", "max_output_tokens", "model", "output_modalities",
    "parallel_tool_calls", "prompt", "reasoning", "tool_choice", "tools", "tracing", "truncation",
}  # fmt: skip
TRANSCRIPTION_SESSION_KEYS = {"type", "audio", "include"}
RESPONSE_KEYS = {
    "audio", "conversation", "input", "instructions", "max_output_tokens", "metadata", "output_modalities",
    "parallel_tool_calls", "prompt", "reasoning", "tool_choice", "tools",
}  # fmt: skip
TURN_DETECTION_KEYS = {
    "server_vad": {"type", "create_response", "idle_timeout_ms", "interrupt_response", "prefix_padding_ms",
                   "silence_duration_ms", "threshold"},
    "semantic_vad": {"type", "create_response", "eagerness", "interrupt_response"},
}


# --- what a test can script ---------------------------------------------------------------


@dataclass(frozen=True)
class ErrorEvent:
    """An `error` event (mid-response, the response is then abandoned)."""

    code: str = "rate_limit_exceeded"
    type: str = "invalid_request_error"
    message: str = "Rate limit reached for requests. Please try again later."


@dataclass(frozen=True)
class Drop:
    """Cut the TCP connection without a closing handshake."""


@dataclass(frozen=True)
class Malformed:
    """Send a text frame that is not JSON."""


@dataclass(frozen=True)
class Hang:
    """Stop answering: send nothing more, ignore everything, until the client closes."""


@dataclass(frozen=True)
class Failed:
    """End the response with `response.done` status "failed"."""

    code: str = "server_error"


@dataclass(frozen=True)
class HandshakeStatus:
    """Refuse the WebSocket upgrade with this HTTP status and OpenAI's error JSON."""

    status: int


FAILURES = (ErrorEvent, Drop, Malformed, Hang, Failed)


# --- helpers ------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """Text as deltas whose concatenation is the text: each word with its trailing space."""
    return re.findall(r"\S+\s*", text.strip())


def tone(ms: float, sample_rate: int = SAMPLE_RATE, frequency: float = 220.0) -> bytes:
    samples = int(sample_rate * ms / 1000)
    t = np.arange(samples) / sample_rate
    return (0.3 * 32767 * np.sin(2 * math.pi * frequency * t)).astype("<i2").tobytes()


def default_reply(instructions: str) -> str:
    """What the fake interviewer says: an acknowledgement and the question it was told to ask."""
    now = next((line for line in instructions.splitlines() if line.startswith("Now:")), "")
    quoted = re.search(r'Question \d+: "(.*)"\s*$', now)
    return f"Thank you. {quoted.group(1)}" if quoted else GOODBYE


def openai_error(message: str, *, type_: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, event_id: str | None = None) -> dict:
    return {"type": type_, "code": code, "message": message, "param": param, "event_id": event_id}


def _unknown(obj: dict, allowed: set[str], where: str) -> list[str]:
    return [f"{where}: unknown parameter {key!r}" for key in obj if key not in allowed]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def format_problems(fmt, where: str) -> list[str]:
    if not isinstance(fmt, dict):
        return [f"{where} must be an object"]
    problems = _unknown(fmt, {"type", "rate"}, where)
    if fmt.get("type") != "audio/pcm":
        problems.append(f"{where}.type must be 'audio/pcm' (the fake models PCM only), not {fmt.get('type')!r}")
    elif fmt.get("rate") != SAMPLE_RATE:
        problems.append(f"{where}.rate must be {SAMPLE_RATE}, not {fmt.get('rate')!r}")
    return problems


def turn_detection_problems(detection, where: str) -> list[str]:
    if detection is None:
        return []
    if not isinstance(detection, dict) or detection.get("type") not in TURN_DETECTION_KEYS:
        return [f"{where}.type must be server_vad or semantic_vad"]
    problems = _unknown(detection, TURN_DETECTION_KEYS[detection["type"]], where)
    for key in ("create_response", "interrupt_response"):
        if key in detection and not isinstance(detection[key], bool):
            problems.append(f"{where}.{key} must be a boolean")
    for key in ("prefix_padding_ms", "silence_duration_ms"):
        if key in detection and (not _is_int(detection[key]) or detection[key] < 0):
            problems.append(f"{where}.{key} must be a non-negative integer")
    threshold = detection.get("threshold", 0.5)
    if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        problems.append(f"{where}.threshold must be from 0 to 1")
    if detection.get("eagerness", "auto") not in ("low", "medium", "high", "auto"):
        problems.append(f"{where}.eagerness is not one of low, medium, high, auto")
    return problems


def transcription_problems(transcription, where: str) -> list[str]:
    if transcription is None:
        return []
    if not isinstance(transcription, dict):
        return [f"{where} must be an object"]
    problems = _unknown(transcription, {"model", "language", "prompt", "languages", "keywords", "delay"}, where)
    if transcription.get("model") not in TRANSCRIPTION_MODELS:
        problems.append(f"{where}.model {transcription.get('model')!r} is not a transcription model")
    for key in ("language", "prompt"):
        if key in transcription and not isinstance(transcription[key], str):
            problems.append(f"{where}.{key} must be a string")
    return problems


def voice_problems(voice, where: str) -> list[str]:
    if isinstance(voice, dict) and set(voice) == {"id"} and isinstance(voice["id"], str):
        return []
    return [] if voice in VOICES else [f"{where}: unknown voice {voice!r}"]


def output_modalities_problems(modalities, where: str) -> list[str]:
    if modalities not in (["audio"], ["text"]):
        return [f"{where} must be ['audio'] or ['text'], not {modalities!r}"]
    return []


def session_problems(session, mode: str) -> list[str]:
    if not isinstance(session, dict):
        return ["session must be an object"]
    if session.get("type") != mode:
        return [f"session.type must be {mode!r} on this connection, not {session.get('type')!r}"]
    realtime = mode == "realtime"
    problems = _unknown(session, REALTIME_SESSION_KEYS if realtime else TRANSCRIPTION_SESSION_KEYS, "session")
    if "instructions" in session and not isinstance(session["instructions"], str):
        problems.append("session.instructions must be a string")
    if "output_modalities" in session:
        problems += output_modalities_problems(session["output_modalities"], "session.output_modalities")
    if "include" in session and (not isinstance(session["include"], list) or any(
            value != "item.input_audio_transcription.logprobs" for value in session["include"])):
        problems.append("session.include has an unknown value")
    audio = session.get("audio", {})
    if not isinstance(audio, dict):
        return problems + ["session.audio must be an object"]
    problems += _unknown(audio, {"input", "output"} if realtime else {"input"}, "session.audio")
    audio_in = audio.get("input", {})
    if not isinstance(audio_in, dict):
        return problems + ["session.audio.input must be an object"]
    problems += _unknown(audio_in, {"format", "noise_reduction", "transcription", "turn_detection"},
                         "session.audio.input")
    if "format" in audio_in:
        problems += format_problems(audio_in["format"], "session.audio.input.format")
    problems += transcription_problems(audio_in.get("transcription"), "session.audio.input.transcription")
    problems += turn_detection_problems(audio_in.get("turn_detection"), "session.audio.input.turn_detection")
    noise = audio_in.get("noise_reduction")
    if noise is not None and (not isinstance(noise, dict) or noise.get("type") not in ("near_field", "far_field")):
        problems.append("session.audio.input.noise_reduction.type must be near_field or far_field")
    audio_out = audio.get("output", {})
    if not isinstance(audio_out, dict):
        return problems + ["session.audio.output must be an object"]
    problems += _unknown(audio_out, {"format", "speed", "voice"}, "session.audio.output")
    if "format" in audio_out:
        problems += format_problems(audio_out["format"], "session.audio.output.format")
    if "voice" in audio_out:
        problems += voice_problems(audio_out["voice"], "session.audio.output.voice")
    speed = audio_out.get("speed", 1.0)
    if not (isinstance(speed, (int, float)) and 0.25 <= speed <= 1.5):
        problems.append("session.audio.output.speed must be from 0.25 to 1.5")
    return problems


def item_problems(item, where: str) -> list[str]:
    """A conversation item a client may create: a message with non-empty content."""
    if not isinstance(item, dict):
        return [f"{where} must be an object"]
    problems = _unknown(item, {"id", "type", "object", "role", "status", "content"}, where)
    if item.get("type") != "message":
        return problems + [f"{where}.type: the fake models message items only, not {item.get('type')!r}"]
    part_types = {"user": {"input_text", "input_audio"}, "system": {"input_text"}, "assistant": {"output_text"}}
    role = item.get("role")
    if role not in part_types:
        return problems + [f"{where}.role must be user, system or assistant"]
    content = item.get("content")
    if not isinstance(content, list) or not content:
        return problems + [f"{where}.content must be a non-empty list"]
    for index, part in enumerate(content):
        here = f"{where}.content[{index}]"
        if not isinstance(part, dict) or part.get("type") not in part_types[role]:
            problems.append(f"{here}.type must be one of {sorted(part_types[role])} for a {role} message")
            continue
        problems += _unknown(part, {"type", "text", "audio", "transcript"}, here)
        if part["type"] in ("input_text", "output_text"):
            if not isinstance(part.get("text"), str) or not part["text"].strip():
                problems.append(f"{here}.text must be non-empty text")
        elif not isinstance(part.get("audio"), str) or not part["audio"]:
            problems.append(f"{here}.audio must be base64 audio")
    return problems


def response_problems(params, *, voice_locked_to: str | None) -> list[str]:
    if not isinstance(params, dict):
        return ["response must be an object"]
    problems = _unknown(params, RESPONSE_KEYS, "response")
    if "instructions" in params and not isinstance(params["instructions"], str):
        problems.append("response.instructions must be a string")
    if "output_modalities" in params:
        problems += output_modalities_problems(params["output_modalities"], "response.output_modalities")
    if params.get("conversation", "auto") not in ("auto", "none") and not isinstance(params.get("conversation"), str):
        problems.append("response.conversation must be auto, none or an id")
    tokens = params.get("max_output_tokens", "inf")
    if tokens != "inf" and not (_is_int(tokens) and 1 <= tokens <= 4096):
        problems.append("response.max_output_tokens must be from 1 to 4096 or 'inf'")
    for index, item in enumerate(params.get("input") or []):
        problems += item_problems(item, f"response.input[{index}]")
    audio = params.get("audio", {})
    if not isinstance(audio, dict):
        return problems + ["response.audio must be an object"]
    problems += _unknown(audio, {"output"}, "response.audio")
    audio_out = audio.get("output", {})
    if not isinstance(audio_out, dict):
        return problems + ["response.audio.output must be an object"]
    problems += _unknown(audio_out, {"format", "voice"}, "response.audio.output")
    if "format" in audio_out:
        problems += format_problems(audio_out["format"], "response.audio.output.format")
    if "voice" in audio_out:
        problems += voice_problems(audio_out["voice"], "response.audio.output.voice")
        if voice_locked_to is not None and audio_out["voice"] != voice_locked_to:
            problems.append("response.audio.output.voice cannot change once the model has spoken")
    return problems


def decode_audio(audio) -> tuple[bytes | None, str | None]:
    """Base64 PCM16 -> bytes, or the problem with it."""
    if not isinstance(audio, str) or not audio:
        return None, "audio must be non-empty base64"
    if len(audio) > MAX_APPEND_BYTES * 4 // 3 + 4:
        return None, "audio is larger than 15 MiB"
    try:
        pcm = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        return None, "audio is not valid base64"
    if len(pcm) % 2:
        return None, f"audio must be whole PCM16 samples, got {len(pcm)} bytes"
    return pcm, None


def ms_of(pcm_bytes: int) -> float:
    return pcm_bytes / 2 / SAMPLE_RATE * 1000


# --- one connection -------------------------------------------------------------------------


class _Response:
    def __init__(self, response_id: str, item_id: str, text: str, failure, modalities: list[str]):
        self.id = response_id
        self.item_id = item_id
        self.text = text
        self.failure = failure
        self.modalities = modalities
        self.cancel_reason: str | None = None
        self.spoken = ""


class _Connection:
    """One client's session: its configuration, input buffer, hearing and responses."""

    def __init__(self, fake: "OpenAIRealtimeFake", ws: ServerConnection, mode: str, model: str | None):
        self.fake = fake
        self.ws = ws
        self.mode = mode  # "realtime" or "transcription"
        self.model = model
        self.hung = False
        self.configured = False
        self.transcription: dict | None = None
        self.turn_detection: dict | None = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                            "silence_duration_ms": 500, "create_response": True,
                                            "interrupt_response": True}
        self.voice = "alloy"
        self.voice_locked = False  # the model has spoken: the voice is fixed
        self.output_modalities = ["audio"]
        self.instructions = ""
        self.buffer_ms = 0.0  # audio in the input buffer
        self.position_ms = 0.0  # all audio appended on this connection
        self.buffer_start_ms = 0.0
        self.buffer_has_speech = False  # a loud frame since the last commit or clear
        self.remainder = b""  # less than a frame, waiting for more
        self.speech_item: str | None = None
        self.silence_run_ms = 0.0
        self.items: dict[str, dict] = {}  # id -> {"role", "audio_ms"}
        self.last_item_id: str | None = None
        self.response: _Response | None = None
        self.response_ended_at = 0.0
        self.server_committed_at = 0.0
        self.tasks: set[asyncio.Task] = set()

    # -- the wire --

    async def emit(self, kind: str, **fields) -> None:
        if self.hung:
            return
        event = {"type": kind, "event_id": self.fake.new_id("event"), **fields}
        try:
            await self.ws.send(json.dumps(event))
        except ConnectionClosed:
            pass

    async def refuse(self, event: dict, problems: list[str], code: str = "invalid_value") -> None:
        for problem in problems:
            self.fake.record_error(f"{event.get('type')}: {problem}")
        await self.emit("error", error=openai_error("; ".join(problems), code=code, event_id=event.get("event_id")))

    def spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self) -> None:
        session = {"type": self.mode, "id": self.fake.new_id("sess"), "object": f"realtime.{self.mode}_session"}
        if self.mode == "realtime":
            session["model"] = self.model
        await self.emit("session.created", session=session)
        async for message in self.ws:
            if self.hung:
                continue
            if isinstance(message, bytes):
                self.fake.record_error("a binary frame (client events are JSON text)")
                continue
            try:
                event = json.loads(message)
            except ValueError:
                self.fake.record_error("a frame that is not JSON")
                await self.emit("error", error=openai_error("Invalid JSON", code="invalid_json"))
                continue
            await self.dispatch(event)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    # -- client events --

    async def dispatch(self, event) -> None:
        if not isinstance(event, dict) or event.get("type") not in CLIENT_EVENTS:
            kind = event.get("type") if isinstance(event, dict) else None
            await self.refuse({"type": kind}, [f"unknown client event type {kind!r}"], "invalid_event_type")
            return
        kind = event["type"]
        self.fake.record_event(event)
        required, optional = CLIENT_EVENTS[kind]
        problems = [f"missing required field {key!r}" for key in required if key not in event]
        problems += _unknown(event, required | optional | {"type", "event_id"}, kind)
        if "event_id" in event and not isinstance(event["event_id"], str):
            problems.append("event_id must be a string")
        if self.mode == "transcription" and kind not in TRANSCRIPTION_EVENTS:
            problems.append("not allowed in a transcription session")
        if kind == "output_audio_buffer.clear":
            problems.append("only for WebRTC and SIP connections, not a WebSocket")
        if problems:
            await self.refuse(event, problems)
            return
        await getattr(self, "on_" + kind.replace(".", "_"))(event)

    async def on_session_update(self, event: dict) -> None:
        session = event["session"]
        problems = session_problems(session, self.mode)
        voice = ((session.get("audio") or {}).get("output") or {}).get("voice") if isinstance(session, dict) else None
        if voice is not None and self.voice_locked and voice != self.voice:
            problems.append("the voice cannot change once the model has spoken")
        if problems:
            await self.refuse(event, problems)
            return
        self.fake.session_updates.append(session)
        audio_in = (session.get("audio") or {}).get("input") or {}
        if "transcription" in audio_in:
            self.transcription = audio_in["transcription"]
        if "turn_detection" in audio_in:
            self.turn_detection = audio_in["turn_detection"]
        if voice is not None:
            self.voice = voice
        self.output_modalities = session.get("output_modalities", self.output_modalities)
        self.instructions = session.get("instructions", self.instructions)
        self.configured = True
        await self.emit("session.updated", session={**session, "id": self.fake.new_id("sess")})

    async def on_input_audio_buffer_append(self, event: dict) -> None:
        pcm, problem = decode_audio(event["audio"])
        if not self.configured:
            problem = problem or "audio appended before session.update set the input format"
        if problem:
            await self.refuse(event, [problem])
            return
        self.fake.audio_received_ms += ms_of(len(pcm))
        if self.fake.audio_failures:
            await self.fail(self.fake.audio_failures.popleft())
            return
        self.buffer_ms += ms_of(len(pcm))
        await self.hear(pcm)

    async def on_input_audio_buffer_commit(self, event: dict) -> None:
        if self.buffer_ms < MIN_COMMIT_MS:
            message = (f"Error committing input audio buffer: buffer too small. Expected at least "
                       f"{MIN_COMMIT_MS}ms of audio, but buffer only has {self.buffer_ms:.2f}ms of audio.")
            if time.monotonic() - self.server_committed_at > RACE_GRACE_S:
                self.fake.record_error(f"input_audio_buffer.commit: {message}")
            await self.emit("error", error=openai_error(message, code="input_audio_buffer_commit_empty",
                                                        event_id=event.get("event_id")))
            return
        await self.commit(self.speech_item or self.fake.new_id("item"), by_server=False)

    async def on_input_audio_buffer_clear(self, event: dict) -> None:
        self.buffer_ms, self.buffer_has_speech, self.remainder = 0.0, False, b""
        self.buffer_start_ms = self.position_ms
        self.speech_item = None
        await self.emit("input_audio_buffer.cleared")

    async def on_conversation_item_create(self, event: dict) -> None:
        item = event["item"]
        problems = item_problems(item, "item")
        previous = event.get("previous_item_id")
        if previous is not None and previous != "root" and previous not in self.items:
            problems.append(f"previous_item_id {previous!r} does not exist")
        if problems:
            await self.refuse(event, problems)
            return
        self.fake.items_created.append(item)
        item = {**item, "id": item.get("id") or self.fake.new_id("item"), "object": "realtime.item",
                "status": "completed"}
        self.items[item["id"]] = {"role": item["role"], "audio_ms": 0.0}
        previous_id, self.last_item_id = self.last_item_id, item["id"]
        await self.emit("conversation.item.added", item=item, previous_item_id=previous_id)
        await self.emit("conversation.item.done", item=item, previous_item_id=previous_id)

    async def on_conversation_item_retrieve(self, event: dict) -> None:
        if event["item_id"] not in self.items:
            await self.refuse(event, [f"item {event['item_id']!r} does not exist"], "item_not_found")
            return
        known = self.items[event["item_id"]]
        await self.emit("conversation.item.retrieved", item={"id": event["item_id"], "object": "realtime.item",
                                                             "type": "message", "role": known["role"], "content": []})

    async def on_conversation_item_delete(self, event: dict) -> None:
        if self.items.pop(event["item_id"], None) is None:
            await self.refuse(event, [f"item {event['item_id']!r} does not exist"], "item_not_found")
            return
        await self.emit("conversation.item.deleted", item_id=event["item_id"])

    async def on_conversation_item_truncate(self, event: dict) -> None:
        item = self.items.get(event["item_id"])
        end_ms, problems = event["audio_end_ms"], []
        if item is None or item["role"] != "assistant":
            problems.append(f"item {event['item_id']!r} is not an assistant audio item of this conversation")
        if event["content_index"] != 0:
            problems.append("content_index must be 0")
        if not _is_int(end_ms) or end_ms < 0:
            problems.append("audio_end_ms must be a non-negative integer")
        elif item is not None and end_ms > item["audio_ms"] + 0.5:
            problems.append(f"audio_end_ms {end_ms} is beyond the {item['audio_ms']:.0f} ms of audio of the item")
        if problems:
            await self.refuse(event, problems)
            return
        self.fake.truncates.append((event["item_id"], end_ms))
        await self.emit("conversation.item.truncated", item_id=event["item_id"], content_index=0, audio_end_ms=end_ms)

    async def on_response_create(self, event: dict) -> None:
        params = event.get("response", {})
        problems = response_problems(params, voice_locked_to=self.voice if self.voice_locked else None)
        if not problems and self.response is not None:
            problems.append(f"Conversation already has an active response in progress: {self.response.id}")
            await self.refuse(event, problems, "conversation_already_has_active_response")
            return
        if problems:
            await self.refuse(event, problems)
            return
        self.fake.response_creates.append(params)
        self.start_response(params)

    async def on_response_cancel(self, event: dict) -> None:
        response = self.response
        wanted = event.get("response_id")
        if response is None or (wanted is not None and wanted != response.id):
            if response is None and time.monotonic() - self.response_ended_at <= RACE_GRACE_S:
                pass  # it ended while the cancel was on its way
            else:
                self.fake.record_error(f"response.cancel: no active response {wanted or ''}".strip())
            await self.emit("error", error=openai_error("Cancellation failed: no active response found",
                                                        code="response_cancel_not_active",
                                                        event_id=event.get("event_id")))
            return
        self.fake.cancels += 1
        response.cancel_reason = response.cancel_reason or "client_cancelled"

    # -- hearing --

    async def hear(self, pcm: bytes) -> None:
        """Energy voice activity detection, frame by frame, ending turns after silence."""
        detection = self.turn_detection or {}
        data = self.remainder + pcm
        frame_bytes = SAMPLE_RATE * FRAME_MS // 1000 * 2
        whole = len(data) - len(data) % frame_bytes
        self.remainder = data[whole:]
        threshold = 32767 * 0.05 * float(detection.get("threshold", 0.5))
        silence_ms = detection.get("silence_duration_ms", 500) if detection.get("type") == "server_vad" else 500
        padding = detection.get("prefix_padding_ms", 300) if detection.get("type") == "server_vad" else 300
        for start in range(0, whole, frame_bytes):
            frame = np.frombuffer(data[start : start + frame_bytes], dtype="<i2").astype(np.float64)
            loud = math.sqrt(float(np.mean(frame * frame))) > threshold
            self.buffer_has_speech = self.buffer_has_speech or loud
            frame_start, self.position_ms = self.position_ms, self.position_ms + FRAME_MS
            if not detection:
                continue  # turns end only when the client commits
            if self.speech_item is None:
                if loud:
                    self.speech_item, self.silence_run_ms = self.fake.new_id("item"), 0.0
                    await self.emit("input_audio_buffer.speech_started", item_id=self.speech_item,
                                    audio_start_ms=int(max(self.buffer_start_ms, frame_start - padding)))
                    barge_in = detection.get("interrupt_response", True) and self.mode == "realtime"
                    if barge_in and self.response is not None:
                        self.response.cancel_reason = self.response.cancel_reason or "turn_detected"
            elif loud:
                self.silence_run_ms = 0.0
            else:
                self.silence_run_ms += FRAME_MS
                if self.silence_run_ms >= silence_ms:
                    await self.emit("input_audio_buffer.speech_stopped", item_id=self.speech_item,
                                    audio_end_ms=int(self.position_ms))
                    await self.commit(self.speech_item, by_server=True)

    async def commit(self, item_id: str, *, by_server: bool) -> None:
        audio_ms, speech = self.buffer_ms, self.buffer_has_speech
        self.buffer_ms, self.buffer_start_ms, self.speech_item = 0.0, self.position_ms, None
        self.buffer_has_speech = False
        if by_server:
            self.server_committed_at = time.monotonic()
        previous_id, self.last_item_id = self.last_item_id, item_id
        self.items[item_id] = {"role": "user", "audio_ms": audio_ms}
        await self.emit("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous_id)
        item = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user", "status": "completed",
                "content": [{"type": "input_audio", "transcript": None}]}
        await self.emit("conversation.item.added", item=item, previous_item_id=previous_id)
        if self.transcription is not None:
            self.spawn(self.transcribe(item, audio_ms, speech))
        else:
            await self.emit("conversation.item.done", item=item, previous_item_id=previous_id)
        detection = self.turn_detection or {}
        if by_server and self.mode == "realtime" and detection.get("create_response", True) and self.response is None:
            self.start_response({})  # what the API does unless told not to

    async def transcribe(self, item: dict, audio_ms: float, speech: bool) -> None:
        """What the candidate said (nothing, for audio without speech), word by word."""
        text = "" if not speech else self.fake.transcripts.popleft() if self.fake.transcripts else DEFAULT_TRANSCRIPT
        for token in words(text):
            await asyncio.sleep(self.fake.transcript_delay_s)
            await self.emit("conversation.item.input_audio_transcription.delta", item_id=item["id"],
                            content_index=0, delta=token)
        await self.emit("conversation.item.input_audio_transcription.completed", item_id=item["id"],
                        content_index=0, transcript=text,
                        usage={"type": "duration", "seconds": round(audio_ms / 1000, 3)})
        done = {**item, "content": [{"type": "input_audio", "transcript": text}]}
        await self.emit("conversation.item.done", item=done)

    # -- speaking --

    def start_response(self, params: dict) -> None:
        scripted = self.fake.replies.popleft() if self.fake.replies else None
        failure = scripted if isinstance(scripted, FAILURES) else None
        instructions = params.get("instructions", self.instructions)
        text = scripted if isinstance(scripted, str) else default_reply(instructions)
        modalities = params.get("output_modalities", self.output_modalities)
        self.response = _Response(self.fake.new_id("resp"), self.fake.new_id("item"), text, failure, modalities)
        self.spawn(self.speak(self.response))

    def _response_body(self, response: _Response, status: str, output: list, **extra) -> dict:
        return {"id": response.id, "object": "realtime.response", "status": status, "output": output,
                "conversation_id": "conv_fake", "output_modalities": response.modalities,
                "audio": {"output": {"format": {"type": "audio/pcm", "rate": SAMPLE_RATE}, "voice": self.voice}},
                "max_output_tokens": "inf", "metadata": None, **extra}

    async def speak(self, response: _Response) -> None:
        audio = response.modalities == ["audio"]
        item = {"id": response.item_id, "object": "realtime.item", "type": "message", "role": "assistant",
                "status": "in_progress", "content": []}
        self.items[response.item_id] = {"role": "assistant", "audio_ms": 0.0}
        previous_id, self.last_item_id = self.last_item_id, response.item_id
        common = {"response_id": response.id, "item_id": response.item_id, "output_index": 0, "content_index": 0}
        await self.emit("response.created", response=self._response_body(response, "in_progress", [],
                                                                           status_details=None, usage=None))
        await self.emit("response.output_item.added", response_id=response.id, output_index=0, item=item)
        await self.emit("conversation.item.added", item=item, previous_item_id=previous_id)
        await self.emit("response.content_part.added", **common,
                        part={"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""})
        for index, token in enumerate(words(response.text)):
            if response.cancel_reason:
                break
            response.spoken += token
            if audio:
                await self.emit("response.output_audio_transcript.delta", **common, delta=token)
                pcm = tone(WORD_MS)
                piece = SAMPLE_RATE * AUDIO_PIECE_MS // 1000 * 2
                for start in range(0, len(pcm), piece):
                    chunk = pcm[start : start + piece]
                    self.items[response.item_id]["audio_ms"] += ms_of(len(chunk))
                    self.voice_locked = True
                    await self.emit("response.output_audio.delta", **common,
                                    delta=base64.b64encode(chunk).decode("ascii"))
            else:
                await self.emit("response.output_text.delta", **common, delta=token)
            if index == 0 and response.failure is not None and not isinstance(response.failure, Failed):
                self.response, self.response_ended_at = None, time.monotonic()
                await self.fail(response.failure)
                return
            await asyncio.sleep(self.fake.word_delay_s)
        await self.end_response(response, item, common, audio)

    async def end_response(self, response: _Response, item: dict, common: dict, audio: bool) -> None:
        failed = isinstance(response.failure, Failed)
        status = "cancelled" if response.cancel_reason else "failed" if failed else "completed"
        transcript = response.spoken.strip()
        if status == "completed":
            if audio:
                await self.emit("response.output_audio.done", **common)
                await self.emit("response.output_audio_transcript.done", **common, transcript=transcript)
            else:
                await self.emit("response.output_text.done", **common, text=transcript)
        part = {"type": "audio", "transcript": transcript} if audio else {"type": "text", "text": transcript}
        await self.emit("response.content_part.done", **common, part=part)
        done_item = {**item, "status": "completed" if status == "completed" else "incomplete",
                     "content": [{"type": "output_audio", "transcript": transcript} if audio
                                 else {"type": "output_text", "text": transcript}]}
        await self.emit("response.output_item.done", response_id=response.id, output_index=0, item=done_item)
        await self.emit("conversation.item.done", item=done_item)
        details = None
        if status == "cancelled":
            details = {"type": "cancelled", "reason": response.cancel_reason}
        elif failed:
            details = {"type": "failed", "error": {"type": "server_error", "code": response.failure.code,
                                                   "message": "The server had an error."}}
        self.response, self.response_ended_at = None, time.monotonic()
        word_count = len(words(transcript))
        usage = {"total_tokens": 60 + len(self.instructions.split()) + 10 * word_count,
                 "input_tokens": 60 + len(self.instructions.split()), "output_tokens": 10 * word_count,
                 "input_token_details": {"text_tokens": 50, "audio_tokens": 10, "image_tokens": 0, "cached_tokens": 0},
                 "output_token_details": {"text_tokens": word_count, "audio_tokens": 9 * word_count}}
        await self.emit("response.done", response=self._response_body(
            response, status, [done_item], status_details=details, usage=usage))

    # -- failing on purpose --

    async def fail(self, failure) -> None:
        self.fake.failures_played.append(type(failure).__name__)
        if isinstance(failure, ErrorEvent):
            await self.emit("error", error=openai_error(failure.message, type_=failure.type, code=failure.code))
        elif isinstance(failure, Drop):
            self.ws.transport.abort()
        elif isinstance(failure, Malformed):
            try:
                await self.ws.send("this is not JSON {")
            except ConnectionClosed:
                pass
        elif isinstance(failure, Hang):
            self.hung = True


# --- the server -------------------------------------------------------------------------


class OpenAIRealtimeFake:
    """The fake server: start/stop, scripts, counters and records (read from any thread)."""

    name = "fake-openai-realtime"

    def __init__(self, *, api_key: str = "sk-fake-openai-0123456789abcdef", word_delay_s: float = 0.01,
                 transcript_delay_s: float = 0.005):
        self.api_key = api_key
        self.word_delay_s = word_delay_s  # between the words of a response
        self.transcript_delay_s = transcript_delay_s  # between transcription deltas
        self.errors: collections.deque[str] = collections.deque(maxlen=200)
        self.transcripts: collections.deque[str] = collections.deque()
        self.replies: collections.deque = collections.deque()
        self.audio_failures: collections.deque = collections.deque()
        self.connect_failures: collections.deque[HandshakeStatus] = collections.deque()
        self.events: collections.deque[dict] = collections.deque(maxlen=MAX_RECORDED)  # client events, audio elided
        self.session_updates: collections.deque[dict] = collections.deque(maxlen=MAX_RECORDED)
        self.response_creates: collections.deque[dict] = collections.deque(maxlen=MAX_RECORDED)
        self.items_created: collections.deque[dict] = collections.deque(maxlen=MAX_RECORDED)
        self.truncates: collections.deque[tuple[str, int]] = collections.deque(maxlen=MAX_RECORDED)
        self.failures_played: collections.deque[str] = collections.deque(maxlen=MAX_RECORDED)
        self.connect_queries: collections.deque[dict] = collections.deque(maxlen=MAX_RECORDED)
        self.cancels = 0
        self.audio_received_ms = 0.0
        self.open_connections = 0
        self.total_connections = 0
        self.port = 0
        self._ids = itertools.count(1)
        self._background: BackgroundLoop | None = None
        self._server = None
        self._connections: set[_Connection] = set()

    # -- lifecycle --

    def start(self) -> "OpenAIRealtimeFake":
        self._background = BackgroundLoop(name=self.name)
        self._server = self._background.run(self._serve())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self):
        # A short close timeout: a client whose event loop is gone must not hold up stop().
        return await serve(self._handle, "127.0.0.1", 0, process_request=self._handshake, max_size=None,
                           compression=None, close_timeout=1)

    def stop(self) -> None:
        if self._background is None:
            return
        self._background.run(self._shutdown())
        self._background.stop()
        self._background = None

    async def _shutdown(self) -> None:
        self._server.close()
        await self._server.wait_closed()
        for connection in list(self._connections):
            await connection.stop()

    def __enter__(self) -> "OpenAIRealtimeFake":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def websocket_base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1"

    # -- records --

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    def record_error(self, message: str) -> None:
        self.errors.append(message)

    def record_event(self, event: dict) -> None:
        self.events.append({key: (f"<{len(value)} base64 chars>" if key == "audio" else value)
                            for key, value in event.items()})

    def events_of(self, kind: str) -> list[dict]:
        return [event for event in list(self.events) if event.get("type") == kind]

    # -- the connection --

    def _handshake(self, connection: ServerConnection, request):
        path, _, query = request.path.partition("?")
        params = parse_qs(query, keep_blank_values=True)
        if path != "/v1/realtime":
            self.record_error(f"handshake: unknown path {path!r}")
            return _http_error(404, f"Invalid URL (GET {path})", "invalid_request_error")
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _http_error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        self.connect_queries.append({key: values[0] for key, values in params.items()})
        if self.connect_failures:
            status = self.connect_failures.popleft().status
            code = {429: "rate_limit_exceeded", 500: "server_error"}.get(status)
            return _http_error(status, http.HTTPStatus(status).phrase, "server_error" if status >= 500 else
                               "requests" if status == 429 else "invalid_request_error", code)
        problems = _query_problems(params)
        if problems:
            for problem in problems:
                self.record_error(f"handshake: {problem}")
            return _http_error(400, "; ".join(problems), "invalid_request_error")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        params = parse_qs(ws.request.path.partition("?")[2])
        mode = "transcription" if params.get("intent") == ["transcription"] else "realtime"
        connection = _Connection(self, ws, mode, (params.get("model") or [None])[0])
        self._connections.add(connection)
        self.open_connections += 1
        self.total_connections += 1
        try:
            await connection.run()
        except ConnectionClosed:
            pass
        finally:
            self.open_connections -= 1
            self._connections.discard(connection)
            await connection.stop()


def _query_problems(params: dict[str, list[str]]) -> list[str]:
    problems = [f"unknown query parameter {key!r}" for key in params if key not in ("model", "intent", "call_id")]
    model, intent = params.get("model", [None])[0], params.get("intent", [None])[0]
    if intent is not None and intent != "transcription":
        problems.append(f"unknown intent {intent!r}")
    elif intent == "transcription":
        if model is not None:
            problems.append("a transcription session takes no model in the URL (set it in the session)")
    elif model is None:
        problems.append("missing model (or intent=transcription)")
    elif not model.startswith(REALTIME_MODEL_PREFIXES):
        problems.append(f"Model {model!r} is not supported in realtime mode")
    return problems


def _http_error(status: int, message: str, type_: str, code: str | None = None) -> Response:
    body = json.dumps({"error": openai_error(message, type_=type_, code=code)}).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


@pytest.fixture
def openai_realtime_fake():
    """A started OpenAIRealtimeFake; the test fails if the fake saw anything OpenAI would refuse."""
    fake = OpenAIRealtimeFake().start()
    try:
        yield fake
    finally:
        fake.stop()
    assert list(fake.errors) == []
