"""A strict local Gemini Live API (BidiGenerateContent over a TLS WebSocket) for tests.

google-genai always connects to wss:// (it swaps the base URL's scheme), so the fake
serves TLS with a self-signed certificate made at start-up. A client trusts it through
SSL_CERT_FILE, which google-genai reads when a `genai.Client` is built (set
`SSL_CERT_FILE=fake.ca_file` before `make_client`, in the test process or in a daphne
subprocess's environment). No provider code changes for it.

The server, as documented for the Live API and as the SDK speaks it:
- the first message is `setup` (model, generationConfig with AUDIO and a prebuilt voice,
  systemInstruction, input/output audio transcription, realtimeInputConfig); the answer
  is `setupComplete`;
- `realtimeInput`: audio must be `audio/pcm;rate=16000`; with automatic activity
  detection disabled, `activityStart`/`activityEnd` must alternate and audio is only
  taken inside an activity; `audioStreamEnd` only with automatic detection;
- candidate speech (audio frames with energy) is "recognised" as words of a scripted
  sentence (`queue_transcript`, else `DEFAULT_TRANSCRIPT`): one word per 300 ms of voice,
  the rest of the sentence after a 200 ms pause or at `activityEnd`, each sent as
  `serverContent.inputTranscription`;
- a reply starts on `activityEnd` or on `clientContent` with `turnComplete`; its words
  come from `queue_reply`, else acknowledge and ask the question quoted in the "Now:"
  line of the newest direction (a clientContent turn or the system instruction, which
  `contextUpdate` replaces). Per word: `outputTranscription`, then ~300 ms of 24 kHz PCM
  tone as `modelTurn` inline audio in 100 ms pieces with small pauses; then
  `generationComplete`, and `turnComplete` with `usageMetadata`;
- `activityStart` (unless activityHandling is NO_INTERRUPTION) or `clientContent`
  during a reply interrupts it: `interrupted: true`, then `turnComplete`.

Anything else (unknown fields, a second setup, markers out of order, a wrong audio
format, empty turns, clientContent inside an open activity) goes to `errors`; the
`gemini_live` fixture fails the test when that is not empty at teardown.

Failures: `queue_failure(kind)` for the next reply: "go_away" (goAway, then the server
closes), "drop" (the TCP connection is cut mid-reply), "malformed" (a frame that is not
JSON), "hang" (nothing more is sent), "error" (close 1011). `queue_setup_failure(kind)`
for the next connection: "hang" (no setupComplete) or "error" (close 1008).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import datetime
import ipaddress
import json
import math
import re
import ssl
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from tests.fakes import BackgroundLoop

API_KEY = "test-gemini-key"
DEFAULT_TRANSCRIPT = "I have five years of experience building Python services."
INPUT_RATE = 16000
OUTPUT_RATE = 24000
WORD_MS = 300
PIECE_MS = 100
PAUSE_MS = 200
REPLY_FAILURES = ("go_away", "drop", "malformed", "hang", "error")
SETUP_FAILURES = ("hang", "error")
_PATH = re.compile(r"^/ws/google\.ai\.generativelanguage\.(v1|v1beta|v1alpha)\.GenerativeService\.BidiGenerateContent$")
_QUESTION_IN_DIRECTION = re.compile(r'Now: .*Question \d+: "(.*)"')
_VOICE_RMS = 300.0
_PIECE_DELAY_S = 0.003
_SETUP_FIELDS = {
    "model", "generationConfig", "systemInstruction", "tools", "inputAudioTranscription",
    "outputAudioTranscription", "realtimeInputConfig", "sessionResumption", "contextWindowCompression",
    "proactivity",
}  # fmt: skip
_GENERATION_FIELDS = {"responseModalities", "speechConfig", "temperature", "topP", "topK", "maxOutputTokens",
                      "seed", "thinkingConfig", "mediaResolution", "enableAffectiveDialog"}
_REALTIME_CONFIG_FIELDS = {"automaticActivityDetection", "activityHandling", "turnCoverage"}
_ACTIVITY_DETECTION_FIELDS = {"disabled", "startOfSpeechSensitivity", "endOfSpeechSensitivity", "prefixPaddingMs",
                              "silenceDurationMs"}
_ACTIVITY_HANDLING = {"ACTIVITY_HANDLING_UNSPECIFIED", "START_OF_ACTIVITY_INTERRUPTS", "NO_INTERRUPTION"}
_TURN_COVERAGE = {"TURN_COVERAGE_UNSPECIFIED", "TURN_INCLUDES_ONLY_ACTIVITY", "TURN_INCLUDES_ALL_INPUT"}
_REALTIME_FIELDS = {"audio", "activityStart", "activityEnd", "audioStreamEnd", "text", "video", "mediaChunks"}


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _camel_keys(value: object) -> dict | None:
    """An object's field names as lowerCamel (protobuf JSON takes both spellings)."""
    return {_camel(key): item for key, item in value.items()} if isinstance(value, dict) else None


def _content_text(content: object, where: str, problems: list, *, roles: tuple) -> str:
    """The text of a Content, noting what is wrong with it."""
    content = _camel_keys(content)
    if content is None:
        problems.append(f"{where} must be an object")
        return ""
    problems.extend(f"{where}: unknown field {key!r}" for key in content if key not in ("role", "parts"))
    if content.get("role") not in roles:
        problems.append(f"{where}: role must be one of {roles}, got {content.get('role')!r}")
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        problems.append(f"{where}: parts must be a non-empty list")
        return ""
    texts = []
    for index, part in enumerate(parts):
        part = _camel_keys(part)
        if part is None or set(part) != {"text"} or not isinstance(part["text"], str) or not part["text"].strip():
            problems.append(f"{where}.parts[{index}] must be a non-empty text part, got {part!r}")
        else:
            texts.append(part["text"])
    return "\n".join(texts)


def tone(ms: float, sample_rate: int, frequency: float = 440.0, amplitude: int = 6000) -> bytes:
    """PCM16 mono sine: what the fake says, and voiced audio for a test to feed."""
    count = int(sample_rate * ms / 1000)
    return struct.pack(f"<{count}h", *(int(amplitude * math.sin(2 * math.pi * frequency * i / sample_rate))
                                       for i in range(count)))


def _default_reply(direction: str) -> str:
    match = _QUESTION_IN_DIRECTION.search(direction)
    if match:
        return f"Thank you. {match.group(1)}"
    return "Thank you for your time. That concludes our interview."


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "fake-gemini-live.pem", directory / "fake-gemini-live.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@dataclass
class LiveRecord:
    """What one connection received, for assertions."""

    setup: dict = field(default_factory=dict)
    # ("activityStart" | "activityEnd" | "audio" | "clientContent" | "contextUpdate", detail)
    messages: list[tuple[str, object]] = field(default_factory=list)
    audio_bytes: int = 0
    instructions: str = ""
    replies: list[str] = field(default_factory=list)
    interruptions: int = 0
    closed: bool = False

    def kinds(self) -> list[str]:
        """Message kinds with runs of audio collapsed: easy to compare in a test."""
        kinds: list[str] = []
        for kind, _ in self.messages:
            if not (kind == "audio" and kinds and kinds[-1] == "audio"):
                kinds.append(kind)
        return kinds


class FakeGeminiLive:
    def __init__(self, *, api_key: str = API_KEY, input_rate: int = INPUT_RATE, output_rate: int = OUTPUT_RATE):
        self.api_key = api_key
        self.input_rate = input_rate
        self.output_rate = output_rate
        self.errors: list[str] = []
        self.records: list[LiveRecord] = []
        self.piece_delay_s = _PIECE_DELAY_S  # raise it to keep a reply generating for a while
        self.open_connections = 0
        self._lock = threading.Lock()
        self._transcripts: collections.deque[str] = collections.deque(maxlen=100)
        self._replies: collections.deque[str] = collections.deque(maxlen=100)
        self._reply_failures: collections.deque[str] = collections.deque(maxlen=10)
        self._setup_failures: collections.deque[str] = collections.deque(maxlen=10)
        self._loop: BackgroundLoop | None = None
        self._server = None
        self._tempdir: tempfile.TemporaryDirectory | None = None
        self.ca_file = ""
        self.port = 0

    # --- control (any thread) ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        """For `genai.Client(http_options=HttpOptions(base_url=...))`: the SDK makes it wss://."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def websocket_base_url(self) -> str:
        return f"wss://127.0.0.1:{self.port}"

    def start(self) -> "FakeGeminiLive":
        self._tempdir = tempfile.TemporaryDirectory(prefix="fake-gemini-live-")
        cert_file, key_file = _self_signed_certificate(Path(self._tempdir.name))
        self.ca_file = str(cert_file)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self._loop = BackgroundLoop("fake-gemini-live")
        self._server = self._loop.run(self._serve(context))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, context: ssl.SSLContext):
        # open_timeout: a handshake beside the browser tests' speech models has taken over the
        # default 10 s on this 2-core machine (seen twice, from either side).
        return await serve(self._connection, "127.0.0.1", 0, ssl=context, process_request=self._check_handshake,
                           max_size=4 * 1024 * 1024, ping_interval=None, open_timeout=60)

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown():
            self._server.close()
            await self._server.wait_closed()

        self._loop.run(shutdown())
        self._loop.stop()
        self._loop = None
        self._tempdir.cleanup()

    def queue_transcript(self, text: str) -> None:
        with self._lock:
            self._transcripts.append(text)

    def queue_reply(self, text: str) -> None:
        with self._lock:
            self._replies.append(text)

    def queue_failure(self, kind: str) -> None:
        if kind not in REPLY_FAILURES:
            raise ValueError(f"unknown failure {kind!r}; one of {REPLY_FAILURES}")
        with self._lock:
            self._reply_failures.append(kind)

    def queue_setup_failure(self, kind: str) -> None:
        if kind not in SETUP_FAILURES:
            raise ValueError(f"unknown setup failure {kind!r}; one of {SETUP_FAILURES}")
        with self._lock:
            self._setup_failures.append(kind)

    def wait_for_connections(self, count: int, timeout: float = 3.0) -> bool:
        """True once `open_connections` has come to `count` (blocks: sync code only)."""
        deadline = time.monotonic() + timeout
        while self.open_connections != count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.open_connections == count

    async def until_connections(self, count: int, timeout: float = 3.0) -> bool:
        """`wait_for_connections` for async tests: the test's loop keeps running meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.open_connections != count and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return self.open_connections == count

    def _pop(self, queue: collections.deque) -> str | None:
        with self._lock:
            return queue.popleft() if queue else None

    def _error(self, message: str) -> None:
        self.errors.append(message)

    # --- connections -------------------------------------------------------------------

    def _check_handshake(self, connection, request):
        if not _PATH.match(request.path.split("?", 1)[0]):
            self._error(f"unexpected WebSocket path {request.path!r}")
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        if request.headers.get("x-goog-api-key") != self.api_key:
            self._error("missing or wrong x-goog-api-key")
            return connection.respond(HTTPStatus.FORBIDDEN, "API key not valid.\n")
        return None

    async def _connection(self, ws) -> None:
        self.open_connections += 1
        record = LiveRecord()
        self.records.append(record)
        session = _LiveSession(self, ws, record)
        try:
            await session.run()
        except ConnectionClosed:
            pass
        finally:
            await session.stop_reply()
            record.closed = True
            self.open_connections -= 1


class _LiveSession:
    """One client connection: its setup, activity state, recognition and replies."""

    def __init__(self, fake: FakeGeminiLive, ws, record: LiveRecord):
        self.fake = fake
        self.ws = ws
        self.record = record
        self.manual_activity = False
        self.interruptible = True
        self.transcribe_input = self.transcribe_output = False
        self.in_activity = False
        self.direction = ""
        # Recognition of the candidate's speech.
        self.words: list[str] = []
        self.voiced_ms = 0
        self.silent_ms = 0
        self.speaking = False
        self.frame_bytes = fake.input_rate * 20 // 1000 * 2
        self.pending = b""
        # The reply being generated.
        self.reply: asyncio.Task | None = None
        self.stop_requested = asyncio.Event()

    async def run(self) -> None:
        try:
            first = await asyncio.wait_for(self.ws.recv(), 5)
        except TimeoutError:
            self.fake._error("no setup message within 5 s")
            return
        if not self._setup(first):
            await self.ws.close(1007, "Invalid setup.")
            return
        failure = self.fake._pop(self.fake._setup_failures)
        if failure == "hang":
            await self.ws.wait_closed()
            return
        if failure == "error":
            await self.ws.close(1008, "Request contains an invalid argument.")
            return
        await self._send({"setupComplete": {}})
        async for raw in self.ws:
            await self._message(raw)

    # --- client messages ---------------------------------------------------------------

    def _setup(self, raw) -> bool:
        errors = self.fake.errors
        try:
            message = json.loads(raw)
        except (TypeError, ValueError):
            errors.append("the first message is not JSON")
            return False
        if not isinstance(message, dict) or set(message) != {"setup"}:
            errors.append(f"the first message must be only a setup, got {list(message)!r}")
            return False
        setup = _camel_keys(message["setup"]) or {}
        self.record.setup = setup
        problems: list[str] = [f"setup: unknown field {key!r}" for key in setup if key not in _SETUP_FIELDS]
        if not re.match(r"^models/[A-Za-z0-9._-]+$", str(setup.get("model", ""))):
            problems.append(f"setup.model must be models/<name>, got {setup.get('model')!r}")
        generation = _camel_keys(setup.get("generationConfig")) or {}
        problems += [f"generationConfig: unknown field {key!r}" for key in generation if key not in _GENERATION_FIELDS]
        if generation.get("responseModalities") != ["AUDIO"]:
            problems.append(f"responseModalities must be ['AUDIO'], got {generation.get('responseModalities')!r}")
        voice = _camel_keys(_camel_keys(_camel_keys(generation.get("speechConfig")) or {}).get("voiceConfig")) or {}
        prebuilt = _camel_keys(voice.get("prebuiltVoiceConfig")) or {}
        if not isinstance(prebuilt.get("voiceName"), str) or not prebuilt["voiceName"]:
            problems.append("speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName is required")
        if "systemInstruction" in setup:
            self.direction = _content_text(setup["systemInstruction"], "setup.systemInstruction", problems,
                                           roles=("user", None))
            self.record.instructions = self.direction
        for name in ("inputAudioTranscription", "outputAudioTranscription"):
            if name in setup and _camel_keys(setup[name]) is None:
                problems.append(f"setup.{name} must be an object")
        self.transcribe_input = "inputAudioTranscription" in setup
        self.transcribe_output = "outputAudioTranscription" in setup
        realtime = _camel_keys(setup.get("realtimeInputConfig", {})) or {}
        problems += [f"realtimeInputConfig: unknown field {key!r}" for key in realtime
                     if key not in _REALTIME_CONFIG_FIELDS]
        detection = _camel_keys(realtime.get("automaticActivityDetection", {})) or {}
        problems += [f"automaticActivityDetection: unknown field {key!r}" for key in detection
                     if key not in _ACTIVITY_DETECTION_FIELDS]
        self.manual_activity = detection.get("disabled") is True
        handling = realtime.get("activityHandling", "ACTIVITY_HANDLING_UNSPECIFIED")
        if handling not in _ACTIVITY_HANDLING:
            problems.append(f"unknown activityHandling {handling!r}")
        self.interruptible = handling != "NO_INTERRUPTION"
        if realtime.get("turnCoverage", "TURN_COVERAGE_UNSPECIFIED") not in _TURN_COVERAGE:
            problems.append(f"unknown turnCoverage {realtime.get('turnCoverage')!r}")
        errors.extend(problems)
        return not problems

    async def _message(self, raw) -> None:
        try:
            message = json.loads(raw)
        except (TypeError, ValueError):
            self.fake._error(f"a client message is not JSON: {raw[:80]!r}")
            return
        message = _camel_keys(message)
        if not message or len(message) != 1:
            self.fake._error(f"a client message must hold exactly one kind, got {message!r:.200}")
            return
        (kind, value), = message.items()
        if kind == "realtimeInput":
            await self._realtime_input(_camel_keys(value))
        elif kind == "clientContent":
            await self._client_content(_camel_keys(value))
        elif kind == "contextUpdate":
            self._context_update(_camel_keys(value))
        elif kind == "setup":
            self.fake._error("setup sent twice")
        else:
            self.fake._error(f"unexpected client message {kind!r}")

    async def _realtime_input(self, value: dict | None) -> None:
        if not value or len(value) != 1 or set(value) - _REALTIME_FIELDS:
            self.fake._error(f"realtimeInput must hold exactly one known field, got {value!r:.200}")
            return
        (kind, item), = value.items()
        if kind == "audio":
            self._audio(_camel_keys(item) or {})
            await self._recognise()
        elif kind == "activityStart":
            self.record.messages.append(("activityStart", None))
            if not self.manual_activity:
                self.fake._error("activityStart needs automatic activity detection disabled")
            elif self.in_activity:
                self.fake._error("activityStart while an activity is already open")
            self.in_activity = True
            if self.interruptible:
                await self.stop_reply(interrupted=True)
        elif kind == "activityEnd":
            self.record.messages.append(("activityEnd", None))
            if not self.in_activity:
                self.fake._error("activityEnd without an open activity")
                return
            self.in_activity = False
            await self._finish_utterance()
            await self._start_reply(self.direction)
        elif kind == "audioStreamEnd":
            if self.manual_activity:
                self.fake._error("audioStreamEnd is only for automatic activity detection")
        else:
            self.fake._error(f"this fake does not take realtimeInput.{kind}")

    def _audio(self, blob: dict) -> None:
        if set(blob) - {"data", "mimeType"}:
            self.fake._error(f"audio: unknown fields {sorted(set(blob) - {'data', 'mimeType'})}")
        if blob.get("mimeType") != f"audio/pcm;rate={self.fake.input_rate}":
            self.fake._error(f"audio must be audio/pcm;rate={self.fake.input_rate}, got {blob.get('mimeType')!r}")
        try:  # protobuf JSON bytes: standard or URL-safe base64
            data = str(blob.get("data", "")).replace("-", "+").replace("_", "/")
            pcm = base64.b64decode(data, validate=True)
        except ValueError:
            self.fake._error("audio data is not base64")
            pcm = b""
        if not pcm or len(pcm) % 2:
            self.fake._error(f"audio must be whole PCM16 samples, got {len(pcm)} bytes")
        if self.manual_activity and not self.in_activity:
            self.fake._error("audio outside an activity (automatic activity detection is disabled)")
        self.record.messages.append(("audio", len(pcm)))
        self.record.audio_bytes += len(pcm)
        self.pending += pcm[: len(pcm) - len(pcm) % 2]

    async def _client_content(self, value: dict | None) -> None:
        if value is None or set(value) - {"turns", "turnComplete"}:
            self.fake._error(f"clientContent: unknown fields in {value!r:.200}")
            return
        problems: list[str] = []
        texts = []
        turns = value.get("turns")
        if turns is not None and (not isinstance(turns, list) or not turns):
            problems.append("clientContent.turns must be a non-empty list when given")
        for index, turn in enumerate(turns or []):
            text = _content_text(turn, f"clientContent.turns[{index}]", problems, roles=("user", "model"))
            if (_camel_keys(turn) or {}).get("role") == "user":
                texts.append(text)
        if self.in_activity:
            problems.append("clientContent while the candidate's activity is open")
        self.fake.errors.extend(problems)
        self.record.messages.append(("clientContent", value))
        if value.get("turnComplete"):
            await self.stop_reply(interrupted=True)  # a client turn interrupts the model
            direction = next((text for text in reversed(texts) if "Now:" in text), self.direction)
            await self._start_reply(direction)

    def _context_update(self, value: dict | None) -> None:
        if not value or set(value) - {"systemInstruction", "tools"}:
            self.fake._error(f"contextUpdate: unknown fields in {value!r:.200}")
            return
        self.record.messages.append(("contextUpdate", value))
        if "systemInstruction" in value:
            problems: list[str] = []
            self.direction = _content_text(value["systemInstruction"], "contextUpdate.systemInstruction", problems,
                                           roles=("user", None))
            self.record.instructions = self.direction
            self.fake.errors.extend(problems)

    # --- recognition -------------------------------------------------------------------

    async def _recognise(self) -> None:
        """Words of the scripted sentence as the candidate's voiced audio goes by."""
        whole = len(self.pending) - len(self.pending) % self.frame_bytes
        frames, self.pending = self.pending[:whole], self.pending[whole:]
        for start in range(0, len(frames), self.frame_bytes):
            samples = np.frombuffer(frames[start : start + self.frame_bytes], dtype="<i2").astype(np.float64)
            if math.sqrt(float(np.mean(samples * samples))) >= _VOICE_RMS:
                if not self.speaking:
                    self.speaking = True
                    self.voiced_ms = self.silent_ms = 0
                    self.words = (self.fake._pop(self.fake._transcripts) or DEFAULT_TRANSCRIPT).split()
                self.silent_ms = 0
                self.voiced_ms += 20
                if self.voiced_ms % WORD_MS == 0 and self.words:
                    await self._transcribe(1)
            elif self.speaking:
                self.silent_ms += 20
                if self.silent_ms >= PAUSE_MS:
                    await self._finish_utterance()

    async def _finish_utterance(self) -> None:
        if self.speaking:
            await self._transcribe(len(self.words))
        self.speaking = False
        self.words = []

    async def _transcribe(self, count: int) -> None:
        taken, self.words = self.words[:count], self.words[count:]
        for word in taken:
            if self.transcribe_input:
                await self._send({"serverContent": {"inputTranscription": {"text": " " + word}}})

    # --- replies -----------------------------------------------------------------------

    async def _start_reply(self, direction: str) -> None:
        if self.reply is not None and not self.reply.done():
            self.fake._error("a new turn while the model is still answering (NO_INTERRUPTION)")
            return
        text = self.fake._pop(self.fake._replies) or _default_reply(direction)
        failure = self.fake._pop(self.fake._reply_failures)
        self.stop_requested = asyncio.Event()
        self.reply = asyncio.create_task(self._reply(text, failure, self.stop_requested))

    async def stop_reply(self, *, interrupted: bool = False) -> None:
        """Interrupt the reply in progress; it tells the client itself, between two messages."""
        reply = self.reply
        if reply is None or reply.done():
            return
        if interrupted:
            self.stop_requested.set()
            await asyncio.wait([reply])
        else:
            reply.cancel()

    async def _reply(self, text: str, failure: str | None, stop: asyncio.Event) -> None:
        if failure == "hang":
            return
        if failure == "go_away":
            await self._send({"goAway": {"timeLeft": "0.100s"}})
            await asyncio.sleep(0.1)
            await self.ws.close(1000, "The session is over.")
            return
        if failure == "malformed":
            await self.ws.send("{\"serverContent\": {\"modelTurn\": ")
            return
        if failure == "error":
            await self.ws.close(1011, "Internal error encountered.")
            return
        self.record.replies.append(text)
        word_audio = tone(WORD_MS, self.fake.output_rate)
        piece_bytes = self.fake.output_rate * PIECE_MS // 1000 * 2
        audio_ms = 0
        for index, word in enumerate(text.split()):
            if self.transcribe_output:
                piece = word if index == 0 else " " + word
                await self._send({"serverContent": {"outputTranscription": {"text": piece}}})
            for start in range(0, len(word_audio), piece_bytes):
                if stop.is_set():
                    self.record.interruptions += 1
                    await self._send({"serverContent": {"interrupted": True}})
                    await self._send({"serverContent": {"turnComplete": True}, "usageMetadata": self._usage(audio_ms)})
                    return
                data = base64.b64encode(word_audio[start : start + piece_bytes]).decode()
                await self._send({"serverContent": {"modelTurn": {"parts": [
                    {"inlineData": {"mimeType": f"audio/pcm;rate={self.fake.output_rate}", "data": data}}]}}})
                audio_ms += PIECE_MS
                await asyncio.sleep(self.fake.piece_delay_s)
            if failure == "drop" and index == 1:
                self.ws.transport.abort()
                return
        await self._send({"serverContent": {"generationComplete": True}})
        await self._send({"serverContent": {"turnComplete": True}, "usageMetadata": self._usage(audio_ms)})

    @staticmethod
    def _usage(audio_ms: int) -> dict:
        output = max(1, audio_ms * 25 // 1000)  # about 25 audio tokens a second
        return {"promptTokenCount": 200, "responseTokenCount": output, "totalTokenCount": 200 + output,
                "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": output}]}

    async def _send(self, message: dict) -> None:
        await self.ws.send(json.dumps(message))


@pytest.fixture
def gemini_live(monkeypatch):
    """A started fake; SSL_CERT_FILE points at its certificate so clients made now trust it."""
    fake = FakeGeminiLive().start()
    monkeypatch.setenv("SSL_CERT_FILE", fake.ca_file)
    try:
        yield fake
    finally:
        fake.stop()
    assert fake.errors == []
