"""Gemini Live as one speech-to-speech session: it listens, words the reply and speaks it.

One `client.aio.live.connect()` WebSocket per interview connection serves the three roles
the runtime knows (`.stt`, `.interviewer`, `.tts`); it opens on first use, and again after
it was lost (a short pause first, so a dead server is not hammered 25 times a second).

How the runtime stays in charge of the interview's flow
--------------------------------------------------------
Left to itself, the Live API answers whenever it decides the candidate has finished
speaking, with words of its own choosing. Here it answers only when the runtime asks:

- Automatic activity detection is off. A small energy detector here finds the candidate's
  speech and opens an *activity* (`activity_start`), then streams the audio in it
  (`audio/pcm;rate=16000`, with ~300 ms from before the onset so no syllable is lost).
  Audio outside an activity is not sent.
- The server transcribes the activity (`input_transcription`): those words are the
  interim events. When the detector has heard `end_silence_ms` of silence and the
  transcript has been quiet for `settle_ms` (at most `max_settle_ms`), `feed()` returns
  the final event. The activity stays open: closing it would make the model answer.
- `respond(request)` first replaces the system instruction with the runtime's
  (`prompts.interviewer_instructions`, its "Now:" line is `prompts.direction`) by a
  `context_update`, which the server applies in order with the other input, and then
  asks for the reply: `activity_end` when the candidate's activity is open, otherwise
  (the opening, after a resume or a typed answer) a `client_content` turn with the
  direction and `turn_complete=True`. Lines the model never heard (the interview so far on
  a new connection, a typed answer, a fallback line the runtime spoke) go with it: as
  turns in `client_content`, or as a transcript in the instruction.
- Follow-ups are not offered here: a tool call would need a round trip mid-speech, so the
  instruction is the one without the follow-up tool and `FOLLOW_UP` is never yielded.

Speech out: `respond()` yields the reply's `output_transcription` text as it comes. The
model's audio (24 kHz PCM inline in `model_turn`, resampled to the runtime's output rate)
is tagged, as it arrives, with the length of the transcript so far; `tts.synthesize(
sentence)` yields the pieces tagged up to that sentence's end in the transcript, and the
last sentence of a finished turn takes the rest.

Barge-in: the session is configured with START_OF_ACTIVITY_INTERRUPTS, Gemini's own
barge-in: when the candidate starts speaking, the server stops generating. When the
runtime interrupts a response (`interrupted(heard_ms)`), the rest of its audio is
dropped; if the model is still generating, an `activity_start` stops it (the candidate's
next turn begins there). What the candidate heard goes into the next instruction.

Failures raise: a `go_away`, a dropped connection, a frame that is not JSON, an error
close, a reply that does not progress within `reply_timeout_s`, or a setup that does not
complete within `connect_timeout_s`. Usage (`usage_metadata`) goes into `request.usage`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import re
from dataclasses import dataclass
from typing import AsyncIterator, Callable

import numpy as np
from google import genai
from google.genai import types

from realtime.audio import BYTES_PER_SAMPLE, Resampler, pcm_duration_ms, pcm_to_array

from . import prompts
from .base import ConversationLine, InterviewerRequest, TranscriptEvent

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gemini-live-2.5-flash-preview"
DEFAULT_VOICE = "Kore"
INPUT_RATE = 16000  # what the session sends: audio/pcm;rate=16000
VENDOR_OUTPUT_RATE = 24000  # what Gemini speaks unless its mime type says otherwise
_INPUT_MIME = f"audio/pcm;rate={INPUT_RATE}"
_BASE_INSTRUCTION = (
    "You are a professional, friendly job interviewer speaking with a candidate by voice. "
    "Before each of your replies you are told what to say next in a line that starts with 'Now:'. Follow it."
)
_MAX_TURNS_IN_FLIGHT = 3  # the reply being dropped, the one asked for, and one spare
_MAX_REPLY_AUDIO_S = 180
_MAX_TRANSCRIPT_CHARS = 20_000
_MAX_UNHEARD_LINES = 200
_RECENT = 16  # replies and finals remembered to tell heard lines from unheard ones


class GeminiLiveError(RuntimeError):
    """The Live connection failed or broke the protocol."""


@dataclass(frozen=True)
class VadSettings:
    """The energy detector that finds the candidate's speech (16 kHz, 20 ms frames)."""

    threshold_rms: float = 500.0  # about -36 dBFS
    onset_ms: int = 60  # voiced this long: speech started
    end_silence_ms: int = 700  # silent this long after speech: the utterance ended
    preroll_ms: int = 300  # audio from before the onset sent with it
    settle_ms: int = 300  # after the end, how long the transcript must be quiet before the final
    max_settle_ms: int = 1500  # ... but no longer than this
    frame_ms: int = 20


def build_session_factory(client: genai.Client, *, model: str = DEFAULT_MODEL, voice: str = DEFAULT_VOICE,
                          output_sample_rate: int = 24000, vad: VadSettings | None = None,
                          connect_timeout_s: float = 10.0, reply_timeout_s: float = 15.0,
                          retry_after_s: float = 1.0) -> Callable[..., "GeminiLiveSession"]:
    """`Providers.session_factory`: one Gemini Live session per candidate connection."""

    def open_session(*, sample_rate: int) -> GeminiLiveSession:
        return GeminiLiveSession(
            client, model=model, voice=voice, input_sample_rate=sample_rate, output_sample_rate=output_sample_rate,
            vad=vad or VadSettings(), connect_timeout_s=connect_timeout_s, reply_timeout_s=reply_timeout_s,
            retry_after_s=retry_after_s,
        )

    return open_session


# --- the candidate's speech ---------------------------------------------------------------


class _EnergyDetector:
    """Frames of 16 kHz PCM16, each with "start", "end" or None (speech began / ended there)."""

    def __init__(self, settings: VadSettings):
        self._settings = settings
        self.frame_bytes = INPUT_RATE * settings.frame_ms // 1000 * BYTES_PER_SAMPLE
        self._pending = b""
        self.speaking = False
        self._voiced_ms = 0
        self._silent_ms = 0

    def frames(self, pcm: bytes) -> list[tuple[bytes, str | None]]:
        data = self._pending + pcm
        whole = len(data) - len(data) % self.frame_bytes
        self._pending = data[whole:]
        if not whole:
            return []
        samples = pcm_to_array(data[:whole]).astype(np.float32).reshape(-1, self.frame_bytes // BYTES_PER_SAMPLE)
        voiced = np.sqrt(np.mean(samples * samples, axis=1)) >= self._settings.threshold_rms
        out = []
        for index, is_voiced in enumerate(voiced):
            out.append((data[index * self.frame_bytes : (index + 1) * self.frame_bytes], self._step(bool(is_voiced))))
        return out

    def _step(self, voiced: bool) -> str | None:
        step = self._settings.frame_ms
        if not self.speaking:
            self._voiced_ms = self._voiced_ms + step if voiced else 0
            if self._voiced_ms >= self._settings.onset_ms:
                self.speaking, self._silent_ms = True, 0
                return "start"
            return None
        self._silent_ms = 0 if voiced else self._silent_ms + step
        if self._silent_ms >= self._settings.end_silence_ms:
            self.speaking, self._voiced_ms = False, 0
            return "end"
        return None

    def reset(self) -> None:
        self.speaking = False
        self._voiced_ms = self._silent_ms = 0


# --- one reply ------------------------------------------------------------------------------


class _Turn:
    """A reply the runtime asked for: its transcript and its audio, as they arrive."""

    def __init__(self, request: InterviewerRequest, *, output_rate: int):
        self.request = request
        self.transcript = ""
        self.pieces: collections.deque[tuple[int, bytes]] = collections.deque()  # (transcript length, pcm)
        self.complete = self.dropped = False
        self.error: BaseException | None = None
        self.audio_in_ms = 0.0
        self._output_rate = output_rate
        self._resampler: Resampler | None = None
        self._vendor_bytes = 0
        self._vendor_rate = VENDOR_OUTPUT_RATE
        self._sentence_end = 0  # transcript offset where the last synthesized sentence ended
        self._played: list[tuple[float, int]] = []  # (ms of audio yielded so far, its tag)
        self._played_ms = 0.0
        self._changed = asyncio.Event()

    # Arrivals (the connection's reader).

    def add_text(self, text: str) -> None:
        if len(self.transcript) + len(text) > _MAX_TRANSCRIPT_CHARS:
            self.fail(GeminiLiveError("the reply's transcript is too long"))
            return
        self.transcript += text
        self._notify()

    def add_audio(self, pcm: bytes, mime_type: str | None) -> None:
        if self.dropped:
            return
        if self._resampler is None:
            match = re.search(r"rate=(\d+)", mime_type or "")
            self._vendor_rate = int(match.group(1)) if match else VENDOR_OUTPUT_RATE
            self._resampler = Resampler(self._vendor_rate, self._output_rate)
        self._vendor_bytes += len(pcm)
        if pcm_duration_ms(self._vendor_bytes, self._vendor_rate) > _MAX_REPLY_AUDIO_S * 1000:
            self.fail(GeminiLiveError("the reply's audio is too long"))
            return
        out = self._resampler.process(pcm)
        if out:
            self.pieces.append((len(self.transcript), out))
        self._notify()

    def finish(self) -> None:
        if self._resampler is not None and not self.dropped:
            tail = self._resampler.process(b"", last=True)
            if tail:
                self.pieces.append((len(self.transcript), tail))
        self.complete = True
        self._notify()

    def fail(self, error: BaseException) -> None:
        if self.error is None and not self.complete:
            self.error = error
        self._notify()

    def usage(self, metadata: types.UsageMetadata) -> None:
        usage = {"input_tokens": metadata.prompt_token_count or 0,
                 "output_tokens": metadata.response_token_count or 0,
                 "audio_out_ms": round(pcm_duration_ms(self._vendor_bytes, self._vendor_rate))}
        if self.audio_in_ms:
            usage["audio_in_ms"] = round(self.audio_in_ms)
        self.request.usage.update(usage)

    # The runtime's side.

    def sentence_end(self, sentence: str) -> int:
        """Where `sentence` (the next one the runtime speaks) ends in the transcript.

        Counted in non-space characters, so the runtime's trimming does not matter.
        """
        wanted = sum(1 for char in sentence if not char.isspace())
        index = self._sentence_end
        while index < len(self.transcript) and wanted:
            if not self.transcript[index].isspace():
                wanted -= 1
            index += 1
        self._sentence_end = index
        return index

    def take(self, end: int) -> bytes | None:
        """The next piece of audio that belongs to the sentence ending at `end`, if any."""
        if self.dropped or not self.pieces or not self._owns_next(end):
            return None
        _tag, pcm = self.pieces.popleft()
        self._played_ms += pcm_duration_ms(len(pcm), self._output_rate)
        self._played.append((self._played_ms, _tag))
        return pcm

    def sentence_done(self, end: int) -> bool:
        """Nothing more can come for the sentence ending at `end`."""
        if self.dropped or self.error is not None:
            return True
        if self.pieces:
            return not self._owns_next(end)
        return self.complete or len(self.transcript) > end

    def _owns_next(self, end: int) -> bool:
        # The last sentence of a finished reply takes whatever audio is left.
        last = self.complete and end >= len(self.transcript.rstrip())
        return last or self.pieces[0][0] <= end

    def heard_text(self, heard_ms: float) -> str:
        """The transcript up to the audio the candidate had heard."""
        tag = 0
        for played_ms, piece_tag in self._played:
            if played_ms > heard_ms:
                break
            tag = piece_tag
        return self.transcript[:tag].strip()

    def drop(self) -> None:
        self.dropped = True
        self.pieces.clear()
        self._notify()

    async def wait(self, ready: Callable[[], bool], timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not ready():
                await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


@dataclass(eq=False)
class _Connection:
    stack: contextlib.AsyncExitStack
    live: object  # google.genai.live.AsyncSession
    reader: asyncio.Task | None = None
    failure: BaseException | None = None
    turns: collections.deque = dataclasses.field(default_factory=collections.deque)
    history_sent: bool = False
    lines_known: int = 0
    transcripts: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=_RECENT))


# --- the session --------------------------------------------------------------------------


class GeminiLiveSession:
    """A `ProviderSession` on one Gemini Live connection (see the module docstring)."""

    def __init__(self, client: genai.Client, *, model: str, voice: str, input_sample_rate: int,
                 output_sample_rate: int, vad: VadSettings, connect_timeout_s: float, reply_timeout_s: float,
                 retry_after_s: float):
        self._client = client
        self._model = model
        self._voice = voice
        self._output_rate = output_sample_rate
        self._vad_settings = vad
        self._connect_timeout_s = connect_timeout_s
        self._reply_timeout_s = reply_timeout_s
        self._retry_after_s = retry_after_s
        self.stt = _Listening(self, input_sample_rate)
        self.interviewer = _Interviewing(self)
        self.tts = _Speaking(self, output_sample_rate)
        self._conn: _Connection | None = None
        self._opening: asyncio.Task | None = None
        self._retry_at = 0.0
        self._unreported: BaseException | None = None
        self._closed = False
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()  # requests to the server in flight: cancelled on close
        self._closing: set[asyncio.Task] = set()  # connections being closed: awaited on close
        self._activity_open = False
        self._speaking_turn: _Turn | None = None
        self._cut_note = ""
        self._finals: collections.deque[str] = collections.deque(maxlen=_RECENT)

    # --- ProviderSession --------------------------------------------------------------

    def interrupted(self, *, heard_ms: float) -> None:
        turn, self._speaking_turn = self._speaking_turn, None
        if turn is None or turn.dropped:
            return
        self._cut_note = turn.heard_text(heard_ms) or "(nothing)"
        still_generating = not turn.complete and turn.error is None
        turn.drop()
        conn = self._conn
        if still_generating and conn is not None and conn.failure is None:
            self._spawn(self._stop_generation(conn))

    async def close(self) -> None:
        self._closed = True
        tasks = [task for task in (self._opening, *self._tasks) if task is not None]
        for task in tasks:
            task.cancel()
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._close_connection(conn, GeminiLiveError("the session is closed"))
        await asyncio.gather(*tasks, *self._closing, return_exceptions=True)

    # --- the connection ---------------------------------------------------------------

    def _config(self) -> types.LiveConnectConfig:
        return types.LiveConnectConfig(
            response_modalities=[types.Modality.AUDIO],
            system_instruction=_BASE_INSTRUCTION,
            speech_config=types.SpeechConfig(
                voice_config=types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=self._voice))
            ),
            input_audio_transcription=types.AudioTranscriptionConfig(),
            output_audio_transcription=types.AudioTranscriptionConfig(),
            realtime_input_config=types.RealtimeInputConfig(
                automatic_activity_detection=types.AutomaticActivityDetection(disabled=True),
                activity_handling=types.ActivityHandling.START_OF_ACTIVITY_INTERRUPTS,
            ),
        )

    async def _connection(self, *, quiet: bool = False) -> _Connection | None:
        """The open connection, opened now if need be; None (with `quiet`) while waiting to retry."""
        if self._closed:
            raise GeminiLiveError("the session is closed")
        conn = self._conn
        if conn is not None and conn.failure is None:
            return conn
        if self._unreported is not None:  # say once that it broke; then wait and retry
            error, self._unreported = self._unreported, None
            raise GeminiLiveError(f"the Gemini Live connection failed: {_describe(error)}") from error
        if asyncio.get_running_loop().time() < self._retry_at:
            if quiet:
                return None
            raise GeminiLiveError("Gemini Live is unavailable; retrying shortly")
        if self._opening is None:
            self._opening = asyncio.create_task(self._open(), name="gemini-live-open")
        # Shielded: a caller's deadline must not abandon a half-open connection.
        return await asyncio.shield(self._opening)

    async def _open(self) -> _Connection:
        stack = contextlib.AsyncExitStack()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                live = await stack.enter_async_context(self._client.aio.live.connect(model=self._model,
                                                                                    config=self._config()))
        except BaseException as error:
            await stack.aclose()
            self._retry_at = asyncio.get_running_loop().time() + self._retry_after_s
            if isinstance(error, Exception):
                raise GeminiLiveError(f"could not open a Gemini Live session: {_describe(error)}") from error
            raise
        finally:
            self._opening = None
        conn = _Connection(stack=stack, live=live)
        conn.reader = asyncio.create_task(self._read(conn), name="gemini-live-reader")
        self._conn = conn
        self._activity_open = False
        return conn

    async def _read(self, conn: _Connection) -> None:
        try:
            while True:  # receive() ends with each turn
                async for message in conn.live.receive():
                    self._on_message(conn, message)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._fail(conn, error)

    def _on_message(self, conn: _Connection, message: types.LiveServerMessage) -> None:
        if message.go_away is not None:
            raise GeminiLiveError(f"the server is going away (time left {message.go_away.time_left})")
        if message.tool_call is not None:
            raise GeminiLiveError("unexpected tool call: no tools were declared")
        turn = conn.turns[0] if conn.turns else None
        content = message.server_content
        if content is not None:
            if content.input_transcription is not None and content.input_transcription.text:
                self.stt.heard(content.input_transcription.text)
            if turn is not None:
                if content.output_transcription is not None and content.output_transcription.text:
                    turn.add_text(content.output_transcription.text)
                for part in (content.model_turn.parts if content.model_turn else None) or []:
                    if part.inline_data is not None and part.inline_data.data:
                        turn.add_audio(part.inline_data.data, part.inline_data.mime_type)
        if message.usage_metadata is not None and turn is not None:
            turn.usage(message.usage_metadata)
        if content is not None and content.turn_complete and turn is not None:
            turn.finish()
            conn.turns.popleft()
            conn.transcripts.append(_squash(turn.transcript))

    def _fail(self, conn: _Connection, error: BaseException) -> None:
        if conn.failure is not None:
            return
        conn.failure = error
        log.warning("gemini live: connection lost (%s)", _describe(error))
        failure = GeminiLiveError(f"the Gemini Live connection failed: {_describe(error)}")
        failure.__cause__ = error
        for turn in conn.turns:
            turn.fail(failure)
        if self._conn is conn:
            self._conn = None
            self._activity_open = False
            if not conn.turns:  # a reply in flight raises it; otherwise the next call does, once
                self._unreported = error
            self._retry_at = asyncio.get_running_loop().time() + self._retry_after_s
        closing = asyncio.create_task(self._close_connection(conn, failure), name="gemini-live-close")
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def _close_connection(self, conn: _Connection, error: BaseException) -> None:
        conn.failure = conn.failure or error
        for turn in conn.turns:
            turn.fail(error)
        reader = conn.reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        try:
            await conn.stack.aclose()
        except Exception as close_error:  # already broken: nothing more to close
            log.debug("gemini live: closing: %s", _describe(close_error))

    def _spawn(self, coro, *, name: str = "gemini-live-send") -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _stop_generation(self, conn: _Connection) -> None:
        """Barge-in: a new activity stops the model (START_OF_ACTIVITY_INTERRUPTS)."""
        async with self._send_lock:
            if conn is self._conn and conn.failure is None and not self._activity_open:
                try:
                    await conn.live.send_realtime_input(activity_start=types.ActivityStart())
                except Exception as error:
                    self._fail(conn, error)
                    return
                self._activity_open = True

    async def _send(self, conn: _Connection, **kwargs) -> None:
        """One realtime input; a failure to send is the connection's failure."""
        try:
            await conn.live.send_realtime_input(**kwargs)
        except Exception as error:
            self._fail(conn, error)
            raise GeminiLiveError(f"sending to Gemini Live failed: {_describe(error)}") from error

    # --- listening (stt) ----------------------------------------------------------------

    async def _listen(self, pcm16k: bytes, detector: _EnergyDetector, preroll: collections.deque,
                      on_frame: Callable[[str | None], None]) -> float:
        """Send the candidate's speech; returns the ms of audio sent into the activity."""
        conn = await self._connection(quiet=True)
        if conn is None:  # waiting to reconnect: keep track of the speech all the same
            for frame, event in detector.frames(pcm16k):
                on_frame(event)
                preroll.append(frame)
            return 0.0
        # Its own task: a caller's deadline must not leave an activity half opened.
        sending = self._spawn(self._send_speech(conn, pcm16k, detector, preroll, on_frame), name="gemini-live-listen")
        sending.add_done_callback(_consume_error)
        return await asyncio.shield(sending)

    async def _send_speech(self, conn: _Connection, pcm16k: bytes, detector: _EnergyDetector,
                           preroll: collections.deque, on_frame: Callable[[str | None], None]) -> float:
        async with self._send_lock:
            if conn.failure is not None:
                return 0.0
            batch: list[bytes] = []
            for frame, event in detector.frames(pcm16k):
                on_frame(event)
                if detector.speaking and not self._activity_open:
                    await self._send(conn, activity_start=types.ActivityStart())
                    self._activity_open = True
                    batch.extend(preroll)
                    preroll.clear()
                if self._activity_open:
                    batch.append(frame)
                else:
                    preroll.append(frame)
            if batch:
                pcm = b"".join(batch)
                await self._send(conn, audio=types.Blob(data=pcm, mime_type=_INPUT_MIME))
                return pcm_duration_ms(len(pcm), INPUT_RATE)
        return 0.0

    # --- replying (interviewer) ---------------------------------------------------------

    async def _respond(self, request: InterviewerRequest) -> AsyncIterator[str]:
        self._speaking_turn = None
        conn = await self._connection()
        turn = _Turn(request, output_rate=self._output_rate)
        # Its own task: a caller's deadline must not cut the request for a reply in half.
        asking = self._spawn(self._start_reply(conn, request, turn), name="gemini-live-ask")
        asking.add_done_callback(_consume_error)
        offset = 0
        try:
            await asyncio.shield(asking)
            while True:
                try:
                    await turn.wait(lambda: len(turn.transcript) > offset or turn.complete or turn.error is not None,
                                    self._reply_timeout_s)
                except TimeoutError:
                    error = GeminiLiveError(f"no reply from Gemini Live within {self._reply_timeout_s:g} s")
                    self._fail(conn, error)  # a silent server is a broken connection
                    raise error from None
                if turn.error is not None:
                    raise turn.error
                if len(turn.transcript) > offset:
                    text, offset = turn.transcript[offset:], len(turn.transcript)
                    yield text
                elif turn.complete:
                    return
        except BaseException:
            if not offset:  # given up before a word: nobody will speak this reply (a fallback line may)
                turn.drop()
                if self._speaking_turn is turn:
                    self._speaking_turn = None
            raise

    async def _start_reply(self, conn: _Connection, request: InterviewerRequest, turn: _Turn) -> None:
        async with self._send_lock:
            if conn.failure is not None:
                raise GeminiLiveError("the Gemini Live connection failed") from conn.failure
            if len(conn.turns) >= _MAX_TURNS_IN_FLIGHT:
                raise GeminiLiveError("too many replies in flight")
            conn.turns.append(turn)
            self._speaking_turn = turn
            try:
                await self._ask_for_reply(conn, request, turn)
            except Exception as error:
                self._fail(conn, error)
                raise GeminiLiveError(f"asking Gemini Live for a reply failed: {_describe(error)}") from error

    async def _ask_for_reply(self, conn: _Connection, request: InterviewerRequest, turn: _Turn) -> None:
        instructions = prompts.interviewer_instructions(dataclasses.replace(request, follow_up_allowed=False))
        if self._cut_note:
            instructions += f'\nYour last reply was cut off: the candidate heard only "{self._cut_note}".'
            self._cut_note = ""
        unheard = self._unheard(conn, request)
        if self._activity_open:
            if unheard:
                instructions += "\nSaid without your hearing it, for context:\n" + "\n".join(
                    f"{line.speaker.capitalize()}: {line.text}" for line in unheard)
            await conn.live.send_context_update(system_instruction=instructions)
            await conn.live.send_realtime_input(activity_end=types.ActivityEnd())
            self._activity_open = False
            turn.audio_in_ms = self.stt.activity_closed()
        else:
            await conn.live.send_context_update(system_instruction=instructions)
            turns = _as_turns(unheard)
            direction = types.Part(text=prompts.direction(request))
            if turns and turns[-1].role == "user":
                turns[-1].parts.append(direction)
            else:
                turns.append(types.Content(role="user", parts=[direction]))
            await conn.live.send_client_content(turns=turns, turn_complete=True)
        conn.history_sent = True
        conn.lines_known = len(request.model_conversation())

    def _unheard(self, conn: _Connection, request: InterviewerRequest) -> list[ConversationLine]:
        """Lines of the conversation this connection's model has not heard."""
        lines = request.model_conversation()
        if not conn.history_sent:
            return list(lines[-_MAX_UNHEARD_LINES:])
        unheard = []
        for line in lines[min(conn.lines_known, len(lines)):]:
            said = _squash(line.text)
            if line.speaker == prompts.INTERVIEWER_ROLE:
                heard = any(said in transcript for transcript in conn.transcripts)
            else:
                heard = any(said in final for final in self._finals)
            if not heard:
                unheard.append(line)
        return unheard[-_MAX_UNHEARD_LINES:]

    def _remember_final(self, text: str) -> None:
        self._finals.append(_squash(text))

    # --- speaking (tts) -----------------------------------------------------------------

    async def _synthesize(self, text: str) -> AsyncIterator[bytes]:
        turn = self._speaking_turn
        if turn is None or turn.error is not None or not text.strip():
            return  # no reply of the model's to speak (e.g. the runtime's fallback line)
        end = turn.sentence_end(text)
        while True:
            while (pcm := turn.take(end)) is not None:
                yield pcm
            if turn.sentence_done(end):
                return
            await turn.wait(lambda: bool(turn.pieces) or turn.sentence_done(end), self._reply_timeout_s)


class _Listening:
    """`session.stt`: the candidate's speech into the activity, the server's transcript out."""

    def __init__(self, session: GeminiLiveSession, sample_rate: int):
        self._session = session
        self._settings = session._vad_settings
        self._resampler = Resampler(sample_rate, INPUT_RATE)
        self._detector = _EnergyDetector(self._settings)
        self._preroll: collections.deque[bytes] = collections.deque(
            maxlen=max(1, self._settings.preroll_ms // self._settings.frame_ms))
        self._position_ms = 0.0
        self._words: list[str] = []  # the server's transcript of the current utterance
        self._heard_at = 0.0
        self._final_due_at_ms: float | None = None  # where the utterance ended, once it has
        self._ended_at = 0.0
        self._last_interim = ""
        self._activity_ms = 0.0

    async def feed(self, pcm16: bytes) -> list[TranscriptEvent]:
        sent = await self._session._listen(self._resampler.process(pcm16), self._detector, self._preroll,
                                           self._on_frame)
        self._activity_ms += sent
        return self._events()

    async def flush(self) -> list[TranscriptEvent]:
        if self._final_due_at_ms is None and not self._detector.speaking:
            return []
        self._detector.reset()
        self._final_due_at_ms = self._final_due_at_ms if self._final_due_at_ms is not None else self._position_ms
        return [self._final()]

    def reset(self) -> None:
        self._detector.reset()
        self._words.clear()
        self._final_due_at_ms = None
        self._last_interim = ""

    async def close(self) -> None:
        self.reset()  # the connection is the session's: session.close() ends it

    # The session's side.

    def heard(self, text: str) -> None:
        """A piece of the server's transcript of the candidate."""
        if not self._session._activity_open:
            return  # late words of an activity already closed: that answer is taken
        if sum(map(len, self._words)) + len(text) <= _MAX_TRANSCRIPT_CHARS:
            self._words.append(text)
        self._heard_at = asyncio.get_running_loop().time()

    def activity_closed(self) -> float:
        """The reply was asked for: what was said is taken. Returns the activity's audio ms."""
        self._words.clear()
        self._final_due_at_ms = None
        self._last_interim = ""
        sent, self._activity_ms = self._activity_ms, 0.0
        return sent

    def _on_frame(self, event: str | None) -> None:
        self._position_ms += self._settings.frame_ms
        if event == "start":
            self._final_due_at_ms = None  # speaking again before the final: the same utterance
        elif event == "end":
            self._final_due_at_ms = self._position_ms - self._settings.end_silence_ms
            self._ended_at = asyncio.get_running_loop().time()

    def _events(self) -> list[TranscriptEvent]:
        text = " ".join("".join(self._words).split())
        if self._final_due_at_ms is not None:
            now = asyncio.get_running_loop().time()
            quiet_since = max(self._ended_at, self._heard_at)
            if now - quiet_since >= self._settings.settle_ms / 1000 or \
                    now - self._ended_at >= self._settings.max_settle_ms / 1000:
                return [self._final()]
        if text and text != self._last_interim and (self._detector.speaking or self._final_due_at_ms is not None):
            self._last_interim = text
            return [TranscriptEvent(text=text, is_final=False)]
        return []

    def _final(self) -> TranscriptEvent:
        text = " ".join("".join(self._words).split())
        event = TranscriptEvent(text=text, is_final=True, end_ms=float(self._final_due_at_ms))
        self._words.clear()
        self._final_due_at_ms = None
        self._last_interim = ""
        if text:
            self._session._remember_final(text)
        return event


class _Interviewing:
    """`session.interviewer`: the model words the runtime's direction."""

    def __init__(self, session: GeminiLiveSession):
        self._session = session

    def respond(self, request: InterviewerRequest) -> AsyncIterator[str]:
        return self._session._respond(request)

    async def draft_questions(self, *, title: str, role: str, skills: tuple[str, ...], count: int) -> list[dict]:
        raise NotImplementedError("drafting questions is the text interviewer's job (GeminiInterviewer)")


class _Speaking:
    """`session.tts`: the model's own voice for each sentence of its reply."""

    def __init__(self, session: GeminiLiveSession, sample_rate: int):
        self._session = session
        self.sample_rate = sample_rate

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        return self._session._synthesize(text)


def _as_turns(lines: list[ConversationLine]) -> list[types.Content]:
    turns: list[types.Content] = []
    for line in lines:
        role = "model" if line.speaker == prompts.INTERVIEWER_ROLE else "user"
        if turns and turns[-1].role == role:
            turns[-1].parts.append(types.Part(text=line.text))
        else:
            turns.append(types.Content(role=role, parts=[types.Part(text=line.text)]))
    return turns


def _consume_error(task: asyncio.Task) -> None:
    """A reply request whose caller went away still has its error looked at (and logged)."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("gemini live: asking for a reply failed: %s", _describe(task.exception()))


def _squash(text: str) -> str:
    """Text compared without case, spaces or punctuation."""
    return re.sub(r"[\W_]+", "", text.lower())


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error)[:300]}" if str(error) else type(error).__name__
