"""OpenAI Realtime speech to speech: one connection per interview session, in three roles.

The session's `stt`, `interviewer` and `tts` share one GA realtime connection (session
type "realtime", audio out). The runtime stays in charge of the interview: turn detection
neither answers nor cancels by itself; the interviewer speaks when the runtime calls
`respond()`, which sends `response.create` with the instructions for that line and yields
the words of `response.output_audio_transcript.delta`.

The audio of a response arrives with its words. Each `response.output_audio.delta` is
tagged with how much of the transcript (whitespace left out) had arrived with it; the
runtime cuts the words it was given into sentences and asks `tts.synthesize(sentence)`
for each in order, so a sentence owns the audio pieces tagged up to where it ends in the
transcript, and the last one everything until `response.done`.

On barge-in the runtime calls `interrupted(heard_ms)`: the response is cancelled if it is
still running and its item truncated to what the candidate heard, so the provider's own
conversation holds only that.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import dataclasses
import logging
import re
from typing import AsyncIterator

from realtime.audio import Resampler, pcm_duration_ms

from . import prompts
from .base import ConversationLine, InterviewerRequest
from .openai_realtime_input import InputTranscription, input_audio_config
from .openai_realtime_link import OPENAI_SAMPLE_RATE, PCM_FORMAT, Pulse, RealtimeError, RealtimeLink

log = logging.getLogger(__name__)

MAX_RESPONSE_AUDIO_BYTES = OPENAI_SAMPLE_RATE * 2 * 180  # three minutes of speech in one answer
MAX_TRANSCRIPT_CHARS = 20_000
MAX_HISTORY_CHARS = 12_000
PREVIOUS_RESPONSE_END_S = 2.0  # how long a new response waits for a cancelled one to end


def _squeeze(text: str) -> str:
    """Text without whitespace: sentences and transcript are matched on this."""
    return "".join(text.split())


def _normalized(text: str) -> str:
    return re.sub(r"\W+", " ", text).strip().lower()


class _Response:
    """One response as it arrives: its words, its audio (tagged), how it ended."""

    def __init__(self, epoch: int):
        self.epoch = epoch  # the connection it belongs to
        self.id: str | None = None
        self.item_id: str | None = None  # its assistant audio item, for truncation
        self.text: list[str] = []
        self.spoken = ""  # the transcript so far, whitespace left out
        self.audio: collections.deque[tuple[int, bytes]] = collections.deque()  # (transcript length, pcm)
        self.audio_bytes = 0  # received in all
        self.buffered_bytes = 0  # received and not yet synthesized
        self.claimed = 0  # transcript length given to sentences so far
        self.done = False  # nothing more for the consumers
        self.server_ended = False  # the server will send nothing more of it (done, or the connection is gone)
        self.status: str | None = None
        self.detail = ""
        self.usage: dict = {}
        self.failure: Exception | None = None
        self.cancel_sent = False
        self.heard_ms: float | None = None  # set when interrupted: what the candidate heard of it
        self.changed = Pulse()

    @property
    def audio_ms(self) -> float:
        return pcm_duration_ms(self.audio_bytes, OPENAI_SAMPLE_RATE)

    def add_text(self, delta: str) -> None:
        if self.done:
            return
        if len(self.spoken) + len(delta) > MAX_TRANSCRIPT_CHARS:
            self.fail(RealtimeError("the OpenAI Realtime response is longer than any answer should be"))
            return
        self.text.append(delta)
        self.spoken += _squeeze(delta)
        self.changed.notify()

    def add_audio(self, pcm: bytes) -> None:
        if self.done:
            return
        if self.buffered_bytes + len(pcm) > MAX_RESPONSE_AUDIO_BYTES:
            self.fail(RealtimeError("the OpenAI Realtime response has more audio than its buffer holds"))
            return
        self.audio.append((len(self.spoken), pcm))
        self.audio_bytes += len(pcm)
        self.buffered_bytes += len(pcm)
        self.changed.notify()

    def take_audio(self) -> bytes:
        _, pcm = self.audio.popleft()
        self.buffered_bytes -= len(pcm)
        return pcm

    def finish(self, response: dict) -> None:
        self.done = self.server_ended = True
        self.status = response.get("status")
        details = response.get("status_details") or {}
        error = details.get("error") or {}
        self.detail = str(error.get("code") or details.get("reason") or "")[:100]
        self.usage = _usage(response.get("usage") or {})
        self.usage["audio_out_ms"] = round(self.audio_ms)
        self.changed.notify()

    def fail(self, failure: Exception, *, server_ended: bool = False) -> None:
        self.server_ended = self.server_ended or server_ended
        if not self.done:
            self.done = True
            self.failure = failure
        self.changed.notify()


def _usage(usage: dict) -> dict:
    found = {key: usage[key] for key in ("input_tokens", "output_tokens") if isinstance(usage.get(key), int)}
    cached = (usage.get("input_token_details") or {}).get("cached_tokens")
    if isinstance(cached, int) and cached:
        found["cached_tokens"] = cached
    return found


class OpenAIRealtimeSession:
    """ProviderSession: listens, answers and speaks on one OpenAI Realtime connection."""

    def __init__(self, client, *, model: str, voice: str, transcription_model: str, turn_detection: str,
                 sample_rate: int, output_sample_rate: int, silence_ms: int = 500,
                 connect_timeout_s: float = 10.0, idle_timeout_s: float = 15.0):
        self.voice = voice
        self.idle_timeout_s = idle_timeout_s  # longest wait for the next event of a response
        session = {
            "type": "realtime",
            "output_modalities": ["audio"],
            "audio": {
                "input": input_audio_config(transcription_model=transcription_model, turn_detection=turn_detection,
                                            silence_ms=silence_ms, conversational=True),
                "output": {"format": PCM_FORMAT, "voice": voice},
            },
        }
        self.link = RealtimeLink(client, connect_kwargs={"model": model}, session=session,
                                 on_event=self._on_event, on_failure=self._on_failure,
                                 connect_timeout_s=connect_timeout_s)
        self.stt = InputTranscription(self.link, sample_rate=sample_rate, owns_link=False)
        self.interviewer = RealtimeInterviewer(self)
        self.tts = RealtimeVoice(self, sample_rate=output_sample_rate)
        self.response: _Response | None = None
        self._history_epoch = -1  # the connection `_history` was told to
        self._history: tuple[ConversationLine, ...] = ()  # turns from before that connection
        self._typed: collections.deque[str] = collections.deque(maxlen=8)  # typed answers already added

    # --- events -------------------------------------------------------------------------

    def _on_event(self, event: dict) -> None:
        if self.stt.handle(event):
            return
        response = self.response
        if response is None or response.server_ended:
            return
        kind = event["type"]
        if kind == "response.created":
            response.id = response.id or (event.get("response") or {}).get("id")
            return
        response_id = event.get("response_id") or (event.get("response") or {}).get("id")
        if response.id is not None and response_id is not None and response_id != response.id:
            return  # not ours (a response that ended before this one started)
        if kind == "response.output_item.added":
            item = event.get("item") or {}
            if response.item_id is None and item.get("role") == "assistant":
                response.item_id = item.get("id")
                if response.heard_ms is not None:  # interrupted before its item existed
                    self._truncate(response)
        elif kind == "response.output_audio_transcript.delta":
            response.add_text(event.get("delta") or "")
        elif kind == "response.output_audio.delta":
            response.add_audio(base64.b64decode(event.get("delta") or "", validate=True))
        elif kind == "response.done":
            response.finish(event.get("response") or {})
        if response.failure is not None:
            self.cancel(response)  # overflowed: stop the server generating more

    def _on_failure(self, failure: Exception) -> None:
        if self.response is not None:
            self.response.fail(failure, server_ended=True)
        self.stt.connection_lost()

    # --- responses ----------------------------------------------------------------------

    async def start_response(self, request: InterviewerRequest) -> _Response:
        previous = self.response
        if previous is not None and not previous.server_ended and previous.epoch == self.link.epoch:
            self.cancel(previous)  # nobody listens to it any more
            try:
                async with asyncio.timeout(PREVIOUS_RESPONSE_END_S):
                    while not previous.server_ended and self.link.is_open:
                        await previous.changed.wait(PREVIOUS_RESPONSE_END_S)
            except TimeoutError:
                raise RealtimeError("the previous OpenAI Realtime response did not end") from None
        await self.link.open()
        conversation = request.model_conversation()
        if self._history_epoch != self.link.epoch:
            # A new connection holds none of the interview so far: tell each response.
            self._history_epoch, self._history = self.link.epoch, conversation
        elif self._typed_answer(conversation):
            await self.link.send({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user", "content": [{"type": "input_text", "text": conversation[-1].text}],
            }})
        response = _Response(self.link.epoch)
        self.response = response
        await self.link.send({"type": "response.create", "response": {
            "instructions": self._instructions(request),
            "output_modalities": ["audio"],
            "audio": {"output": {"format": PCM_FORMAT, "voice": self.voice}},
        }})
        return response

    def _instructions(self, request: InterviewerRequest) -> str:
        text = prompts.interviewer_instructions(dataclasses.replace(request, follow_up_allowed=False))
        if self._history:
            lines = "\n".join(
                f"{'Interviewer' if line.speaker == prompts.INTERVIEWER_ROLE else 'Candidate'}: {line.text.strip()}"
                for line in self._history
            )
            text += "\nThe conversation so far, which you cannot hear:\n" + lines[-MAX_HISTORY_CHARS:]
        return text

    def _typed_answer(self, conversation: tuple[ConversationLine, ...]) -> bool:
        """The last answer was typed (not heard on this connection) and not yet added."""
        if not conversation or conversation[-1].speaker != prompts.CANDIDATE_ROLE:
            return False
        text = _normalized(conversation[-1].text)
        known = {_normalized(final) for final in self.stt.recent_finals} | set(self._typed)
        if text in known:
            return False
        self._typed.append(text)
        return True

    def cancel(self, response: _Response) -> None:
        """Stop a response the server may still be generating."""
        if response.server_ended or response.cancel_sent or response.epoch != self.link.epoch:
            return
        response.cancel_sent = True
        event = {"type": "response.cancel"}
        if response.id is not None:
            event["response_id"] = response.id
        self.link.send_nowait(event)

    # --- the ProviderSession interface --------------------------------------------------

    def interrupted(self, *, heard_ms: float) -> None:
        response = self.response
        if response is None or response.heard_ms is not None or response.epoch != self.link.epoch \
                or not self.link.is_open:
            return
        response.heard_ms = max(heard_ms, 0.0)
        self.cancel(response)
        if response.item_id is not None:
            self._truncate(response)

    def _truncate(self, response: _Response) -> None:
        """Cut the response's audio item to what was heard (never past the audio it has)."""
        heard = int(min(response.heard_ms, response.audio_ms))
        self.link.send_nowait({"type": "conversation.item.truncate", "item_id": response.item_id,
                               "content_index": 0, "audio_end_ms": heard})

    async def close(self) -> None:
        if self.response is not None:
            self.response.fail(RealtimeError("the OpenAI Realtime session is closed"), server_ended=True)
        await self.stt.close()
        await self.link.close()


class RealtimeInterviewer:
    """The session's Interviewer: the words of a realtime response, as they arrive.

    Follow-ups are not offered (the realtime model is not given the tool)."""

    def __init__(self, session: OpenAIRealtimeSession):
        self._session = session

    async def respond(self, request: InterviewerRequest) -> AsyncIterator[str]:
        session = self._session
        response = await session.start_response(request)
        taken, finished = 0, False
        try:
            while True:
                while taken < len(response.text):
                    taken += 1
                    yield response.text[taken - 1]
                if response.failure is not None:
                    raise RealtimeError(f"the OpenAI Realtime response failed: {response.failure}") \
                        from response.failure
                if response.done:
                    if response.status != "completed":
                        raise RealtimeError(f"the OpenAI Realtime response ended {response.status} "
                                            f"({response.detail or 'no detail'})")
                    request.usage.update(response.usage)
                    finished = True
                    return
                await response.changed.wait(session.idle_timeout_s)
        finally:
            if not finished:
                session.cancel(response)

    async def draft_questions(self, *, title: str, role: str, skills: tuple[str, ...], count: int) -> list[dict]:
        raise NotImplementedError("questions are drafted by the Providers' own interviewer (a chat model)")


class RealtimeVoice:
    """The session's TextToSpeech: the audio of the current response, sentence by sentence."""

    def __init__(self, session: OpenAIRealtimeSession, *, sample_rate: int):
        self._session = session
        self.sample_rate = sample_rate

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        response = self._session.response
        wanted = _squeeze(text)
        if response is None or not wanted:
            return
        start = response.claimed
        arrived = response.spoken[start : start + len(wanted)]
        if not wanted.startswith(arrived) or (response.done and arrived != wanted):
            # Not the next words of the current response (a fallback line): no voice for it.
            log.info("OpenAI Realtime: a sentence that the current response did not say gets no audio")
            return
        end = response.claimed = start + len(wanted)
        resampler = Resampler(OPENAI_SAMPLE_RATE, self.sample_rate)
        while True:
            if response.audio and response.audio[0][0] <= end:
                pcm = resampler.process(response.take_audio())
                if pcm:
                    yield pcm
                continue
            if response.audio or response.done:
                break  # the next piece belongs to a later sentence, or there is no more
            await response.changed.wait(self._session.idle_timeout_s)
        tail = resampler.process(b"", last=True)
        if tail:
            yield tail
