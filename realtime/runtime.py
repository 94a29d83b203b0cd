"""The live session: listens, decides whose turn it is, speaks, obeys interrupts.

One runtime per connected session, living in the worker that holds the socket. It
runs as asyncio tasks: the speech-to-text loop and at most one interviewer response.
The consumer calls it with parsed messages and never waits on a provider; every
database write goes through the session's recorder.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from interviews import services
from interviews.models import SessionStatus, Speaker

from . import protocol as p
from . import metrics, stats
from .analysis import analyse_in_background
from .audio import pcm_duration_ms
from .chunker import SentenceChunker
from .pacing import SpeechPacer
from .providers.base import FOLLOW_UP, ConversationLine, InterviewerRequest, Providers, TranscriptEvent
from .recorder import SessionRecorder
from .response import Response, SpokenSentence

log = logging.getLogger(__name__)

FALLBACK_LINE = "Could you tell me more about your experience?"
END_ALL_ANSWERED = "All questions answered."
END_BY_CANDIDATE = "The candidate ended the interview."
LIVE_EVENT_INTERVAL_S = 0.2
ANSWER_PENDING = "Your previous answer is still being saved; please say this again in a moment."
ANSWER_NOT_STORED = "Your answer could not be saved; please say it again."
_WORDS = re.compile(r"[\w']+")


def end_reason_from_candidate(reason: str) -> str:
    """The candidate's own words are marked as theirs: they cannot pass for the server's reasons."""
    return f"{END_BY_CANDIDATE[:-1]}: {reason}" if reason else END_BY_CANDIDATE


@dataclass
class SessionSnapshot:
    """Where a session stands, as loaded from the database when a connection takes it."""

    session_id: str
    interview_title: str
    questions: tuple[str, ...]
    question_index: int
    status: str
    connection_number: int
    conversation: list[ConversationLine] = field(default_factory=list)
    role: str = ""
    skills: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuntimeConfig:
    input_sample_rate: int
    output_sample_rate: int
    speech_chunk_ms: int
    speech_lead_ms: int
    llm_deadline_s: float
    tts_deadline_s: float
    stt_deadline_s: float
    audio_queue_chunks: int
    write_retry_s: float = 10.0
    # A final transcript shorter than this while the interviewer speaks, with no
    # client-interrupt, is taken for echo or noise rather than a barge-in.
    min_interruption_words: int = 2
    # Short follow-ups an interviewer that can judge answers may ask per main question.
    max_follow_ups: int = 1
    # Start the reply when the recogniser says the turn will likely end (its words look
    # finished), holding it until the final transcript confirms them.
    speculative_reply: bool = True

    @classmethod
    def from_settings(cls, realtime: dict) -> "RuntimeConfig":
        return cls(
            input_sample_rate=realtime["INPUT_SAMPLE_RATE"],
            output_sample_rate=realtime["OUTPUT_SAMPLE_RATE"],
            speech_chunk_ms=realtime["SPEECH_CHUNK_MS"],
            speech_lead_ms=realtime["SPEECH_LEAD_MS"],
            llm_deadline_s=realtime["LLM_DEADLINE_SECONDS"],
            tts_deadline_s=realtime["TTS_DEADLINE_SECONDS"],
            stt_deadline_s=realtime["STT_DEADLINE_SECONDS"],
            audio_queue_chunks=realtime["AUDIO_QUEUE_CHUNKS"],
            write_retry_s=realtime["WRITE_RETRY_SECONDS"],
            min_interruption_words=realtime["MIN_INTERRUPTION_WORDS"],
            max_follow_ups=realtime["FOLLOW_UPS_PER_QUESTION"],
            speculative_reply=realtime["SPECULATIVE_REPLY"],
        )


@dataclass
class TentativeTurn:
    """A turn begun when the recogniser foresaw its end; `decided` gets the final's words,
    or None if the candidate went on."""

    text: str
    decided: asyncio.Future


@dataclass(frozen=True)
class TurnUndo:
    """What a candidate turn changes, as it was before, for a turn that never happened."""

    question_index: int
    follow_ups: dict[int, int]
    follow_up_for: int | None
    audio_in_ms: float


def same_words(a: str, b: str) -> bool:
    """The same words, whatever the punctuation and case ("deadline." and "Deadline,")."""
    return _WORDS.findall(a.lower()) == _WORDS.findall(b.lower())


SendText = Callable[[str], Awaitable[None]]
Encode = Callable[..., "str | None"]  # (kind, **payload) -> the frame of the connection's dialect, or None
Publish = Callable[[dict], Awaitable[None]]
Close = Callable[[int], Awaitable[None]]


class SessionRuntime:
    def __init__(
        self,
        *,
        snapshot: SessionSnapshot,
        providers: Providers,
        config: RuntimeConfig,
        send: SendText,
        publish: Publish,
        close: Close,
        encode: Encode = p.server_message,
        watched: Callable[[], bool] | None = None,
    ):
        self.snapshot = snapshot
        self._providers = providers
        self._config = config
        self._send_text = send
        self._encode = encode
        self._publish = publish
        self._watched = watched or (lambda: True)  # whether anyone watches the live words
        self._close = close
        self._question_index = snapshot.question_index
        self._conversation = list(snapshot.conversation)
        self._paused = snapshot.status == SessionStatus.PAUSED
        self._ending = False
        self._stopped = False
        stats.runtimes.add(self)
        self._response: Response | None = None
        self._last_response_id: str | None = None
        self._last_interim = ""
        self._audio: asyncio.Queue[bytes] = asyncio.Queue(maxsize=config.audio_queue_chunks)
        self._recorder = SessionRecorder(snapshot.session_id, retry_seconds=config.write_retry_s)
        self._storing_turn: asyncio.Task | None = None
        # Follow-ups asked per main question, and the question the last one was about.
        self._follow_ups: dict[int, int] = {}
        self._follow_up_for: int | None = None
        self._tentative: TentativeTurn | None = None  # a turn begun before its final transcript
        self._providers_session = providers.open_session(sample_rate=config.input_sample_rate)
        self._stt = self._providers_session.stt
        self._stt_task: asyncio.Task | None = None
        self._feed_started: float | None = None  # when the feed in progress began (loop time)
        self._feed_overdue = False
        self._feed_watch: asyncio.TimerHandle | None = None
        self._end_task: asyncio.Task | None = None
        self._live_sent_at = float("-inf")
        self._live_task: asyncio.Task | None = None
        self._side_tasks: set[asyncio.Task] = set()
        self._audio_in_ms = 0.0  # candidate audio heard since the last answer (usage per turn)

    @property
    def stopped(self) -> bool:
        return self._stopped

    # --- what the consumer calls -------------------------------------------------------

    async def start(self, *, resumed: bool) -> None:
        if self._stopped:
            return
        self._stt_task = asyncio.create_task(self._listen(), name=f"stt-{self.snapshot.session_id}")
        self._feed_watch = asyncio.get_running_loop().call_later(self._config.stt_deadline_s / 4, self._watch_feed)
        await self._send_state()
        if self._paused:
            return
        if self._question_index >= len(self.snapshot.questions):
            self._respond("closing")
        else:
            self._respond("resume" if resumed else "opening")

    def feed_audio(self, pcm: bytes) -> bool:
        """Queue candidate audio for recognition. False if the queue is full (audio dropped)."""
        if self._paused or self._ending or self._stopped:
            return True  # nobody is listening: drop silently
        try:
            self._audio.put_nowait(pcm)
        except asyncio.QueueFull:
            return False
        return True

    async def interrupt(self) -> None:
        if self._stopped:
            return
        await self._retract_tentative()  # a reply held for a turn that has not ended was never heard
        response = self._response
        if response is not None:
            self._cancel_response(response)
        await self._send(p.SERVER_AI_INTERRUPTED, responseId=response.id if response else self._last_response_id,
                         wasSpeaking=response is not None)

    async def submit_text(self, text: str) -> None:
        if self._stopped:
            return
        # A typed answer ends whatever was being said aloud; its partial speech is dropped.
        self._stt.reset()
        self._last_interim = ""
        await self._candidate_turn(text, source="text", ended_at=time.monotonic())

    async def pause(self) -> None:
        if self._stopped:
            return
        if self._ending or self._paused:
            await self._send_state()
            return
        self._paused = True
        await self._silence()
        self._stt.reset()
        self._drain_audio()
        self._recorder.submit(services.session_set_status, coalesce=True, status=SessionStatus.PAUSED)
        await self._send_state()

    async def resume(self) -> None:
        if self._stopped:
            return
        if self._ending or not self._paused:
            await self._send_state()
            return
        self._paused = False
        self._recorder.submit(services.session_set_status, coalesce=True, status=SessionStatus.LIVE)
        await self._send_state()
        self._respond("resume" if self._question_index < len(self.snapshot.questions) else "closing")

    async def end(self, reason: str) -> None:
        if self._ending or self._stopped:
            return
        self._ending = True
        await self._silence()
        evaluator = self._providers.evaluator
        completion = self._recorder.submit(services.session_complete, reason=reason,
                                           analysis_pending=evaluator is not None)
        try:
            await completion
        except Exception:
            # Not stored as ended, so not ended: the candidate can try again.
            log.exception("session %s: could not be marked completed", self.snapshot.session_id)
            self._ending = False
            self._end_task = None
            await self._send(p.SERVER_ERROR, code="end_failed", error="The interview could not be closed; please try again.")
            return
        log.info("session %s ended: %s", self.snapshot.session_id, reason)
        if evaluator is not None:  # never awaited: the candidate is not kept waiting for it
            analyse_in_background(session_id=self.snapshot.session_id, evaluator=evaluator)
        await self._send(p.SERVER_SESSION_ENDED, reason=reason)
        await self._close(p.CloseCode.NORMAL)

    async def stop(self, *, taken_over: bool = False) -> None:
        """The connection is gone: keep what was said, free every task."""
        if self._stopped:
            return
        self._stopped = True
        if self._response is not None:
            self._cancel_response(self._response)
        for task in (self._stt_task, self._live_task, self._storing_turn, *self._side_tasks):
            if task is not None:
                task.cancel()
        if self._feed_watch is not None:
            self._feed_watch.cancel()
        if not self._ending and not taken_over:
            self._recorder.submit(services.session_disconnect, connection_number=self.snapshot.connection_number)
        await self._recorder.close()
        await self._providers_session.close()

    # --- listening ---------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            pieces = [await self._audio.get()]
            while not self._audio.empty():  # catch up in one call when behind
                pieces.append(self._audio.get_nowait())
            await self._hear(pieces)

    async def _hear(self, pieces: list[bytes]) -> None:
        """Recognise a few chunks of candidate audio and act on what was recognised."""
        # The deadline is kept by _watch_feed, not by asyncio.timeout: a timer armed and
        # cancelled per 40 ms chunk cost more than a synthetic recogniser's whole feed.
        self._feed_started = asyncio.get_running_loop().time()
        try:
            events = await self._stt.feed(b"".join(pieces))
        except asyncio.CancelledError:
            if not self._feed_overdue or asyncio.current_task().uncancel() > 0 or self._stopped:
                raise
            self._feed_overdue = False
            log.warning("session %s: speech recognition missed its deadline", self.snapshot.session_id)
            metrics.PROVIDER_FAILURES.labels("stt", "deadline").inc()
            return
        except Exception:
            log.exception("session %s: speech recognition failed", self.snapshot.session_id)
            metrics.PROVIDER_FAILURES.labels("stt", "error").inc()
            return
        finally:
            self._feed_started = None
        self._audio_in_ms += pcm_duration_ms(sum(map(len, pieces)), self._config.input_sample_rate)
        for event in events:
            await self._on_transcript(event)

    def _watch_feed(self) -> None:
        """Every quarter of the STT deadline: a feed running for longer than the deadline is
        cancelled (so the deadline holds to within a quarter of itself) and listening goes on."""
        if self._stopped:
            return
        started = self._feed_started
        loop = asyncio.get_running_loop()
        if started is not None and not self._feed_overdue and loop.time() - started >= self._config.stt_deadline_s:
            self._feed_overdue = True
            self._stt_task.cancel()
        self._feed_watch = loop.call_later(self._config.stt_deadline_s / 4, self._watch_feed)

    async def _on_transcript(self, event: TranscriptEvent) -> None:
        if self._paused or self._ending:
            return
        text = p.clean_text(event.text).strip()  # providers' text is stored and logged like a client's
        if self._tentative is not None and not same_words(text, self._tentative.text):
            await self._retract_tentative()  # the candidate went on (or was heard otherwise)
        if not event.is_final:
            if event.turn_ending and text and self._may_speculate():
                await self._candidate_turn(text, source="speech", ended_at=time.monotonic(), tentative=True)
            if text != self._last_interim:
                self._last_interim = text
                await self._send(p.SERVER_LIVE_TRANSCRIPT, transcript=text)
                self._publish_interim(text)
            return
        self._last_interim = ""
        if not text:
            return
        if self._tentative is not None:  # the turn ends as foreseen: its reply may go out
            self._tentative.decided.set_result(text)
            self._tentative = None
            return
        if self._response is not None and len(text.split()) < self._config.min_interruption_words:
            log.info("session %s: ignored a %d-word utterance over the interviewer (likely echo or noise)",
                     self.snapshot.session_id, len(text.split()))
            return
        await self._candidate_turn(text, source="speech", ended_at=time.monotonic())

    def _publish_interim(self, text: str) -> None:
        """Live words for watchers, without making the listener wait.

        Watchers need no 40 ms updates: the newest words go out at most once per
        LIVE_EVENT_INTERVAL_S and the rest are dropped (a channel layer send per audio
        chunk cost a quarter of the ingest capacity, docs/performance.md); the stored
        turn event carries the complete text when the candidate's turn ends.
        """
        now = time.monotonic()
        if now - self._live_sent_at < LIVE_EVENT_INTERVAL_S or (self._live_task and not self._live_task.done()):
            return
        if not self._watched():  # nobody watches: the audio path never touches the channel layer
            return
        self._live_sent_at = now
        self._live_task = asyncio.create_task(self._publish_quietly({"event": "live-transcript", "transcript": text}))

    def _publish_spoken(self, response: Response, text: str) -> None:
        """The interviewer's words for watchers, a sentence at a time as the candidate hears
        them (the stored turn, with what was heard, follows when the reply ends)."""
        if not self._watched():
            return
        task = asyncio.create_task(self._publish_quietly(
            {"event": "interviewer-speaking", "responseId": response.id, "text": text}))
        self._side_tasks.add(task)  # cancelled by stop(); at most one per sentence in flight
        task.add_done_callback(self._side_tasks.discard)

    async def _publish_quietly(self, event: dict) -> None:
        try:
            await self._publish(event)
        except Exception:
            log.warning("session %s: live event not published", self.snapshot.session_id)

    def _drain_audio(self) -> None:
        while not self._audio.empty():
            self._audio.get_nowait()

    # --- turns -------------------------------------------------------------------------

    async def _candidate_turn(self, text: str, *, source: str, ended_at: float, tentative: bool = False) -> None:
        await self._retract_tentative()
        if self._ending or self._end_task is not None or self._paused:
            if self._paused:
                await self._send(p.SERVER_ERROR, code="session_paused", error="The interview is paused: resume it to answer.")
            return
        if self._storing_turn is not None:  # only while the database is slow or away
            await self._send(p.SERVER_ERROR, code="answer_pending", error=ANSWER_PENDING, transcript=text)
            return
        cut_off = self._response
        if cut_off is not None:  # the candidate spoke over the interviewer
            await self.interrupt()
        before = TurnUndo(question_index=self._question_index, follow_ups=dict(self._follow_ups),
                          follow_up_for=self._follow_up_for, audio_in_ms=self._audio_in_ms)
        last = len(self.snapshot.questions) - 1
        answered = self._question_index
        # Talking over the next question (or the goodbye) before having heard it means the
        # candidate was still answering the previous one: keep the words there, ask again.
        still_answering = cut_off is not None and cut_off.kind in ("next_question", "closing") and (
            cut_off.kind == "closing" or not cut_off.mostly_heard()
        )
        # An answer to a follow-up (or words over one) belongs to the question it was about;
        # the interview had already moved on when the follow-up was asked.
        follow_up_answer = cut_off.question_index if cut_off is not None and cut_off.kind == "follow_up" \
            else self._follow_up_for
        self._follow_up_for = None
        if still_answering:
            answered = min(cut_off.question_index - 1, last)
        elif follow_up_answer is not None:
            answered = follow_up_answer
        advance_to = None if still_answering or follow_up_answer is not None \
            else min(answered + 1, len(self.snapshot.questions))
        turn_id = f"t-{time.time_ns():x}"
        # The answer and the progress it makes are stored together; the candidate hears
        # it was taken (server-final-transcript) only once it is. The interviewer starts
        # on its reply meanwhile, but nothing of the reply goes out before that. A
        # tentative turn is stored only once the final transcript confirms its words.
        heard_ms = self._audio_in_ms if source == "speech" else 0.0
        self._audio_in_ms = 0.0
        record = functools.partial(
            self._recorder.submit, services.turn_record, speaker=Speaker.CANDIDATE, question_index=answered,
            source=source, public_id=turn_id, advance_to=advance_to,
            metrics={"audio_in_ms": round(heard_ms)} if heard_ms else None,
        )
        line = ConversationLine(Speaker.CANDIDATE, text)
        self._conversation.append(line)
        ends = still_answering and cut_off.kind == "closing" and cut_off.mostly_heard()  # a last word after goodbye
        gate = asyncio.get_running_loop().create_future()
        reply = None
        if not ends:
            if advance_to is not None:
                self._question_index = advance_to
            more = self._question_index < len(self.snapshot.questions)
            kind = cut_off.kind if still_answering else ("next_question" if more else "closing")
            follow_up = None if still_answering or self._follow_ups.get(answered, 0) >= self._config.max_follow_ups \
                else answered
            reply = self._respond(kind, turn_ended_at=ended_at, gate=gate, follow_up_about=follow_up)
        decided = None
        if tentative:
            decided = asyncio.get_running_loop().create_future()
            self._tentative = TentativeTurn(text=text, decided=decided)
        else:
            record = record(text=text)  # submitted now, in order with the session's other writes
        self._storing_turn = asyncio.create_task(self._after_stored(
            record, decided=decided, gate=gate, reply=reply, line=line, before=before, ends=ends,
            text=text, turn_id=turn_id, source=source, answered=answered, advanced=advance_to is not None,
        ))

    async def _after_stored(self, stored: asyncio.Future | Callable[..., asyncio.Future], *,
                            decided: asyncio.Future | None, gate: asyncio.Future, reply: Response | None,
                            line: ConversationLine, before: TurnUndo, ends: bool, text: str, turn_id: str,
                            source: str, answered: int, advanced: bool) -> None:
        """Release the reply once the answer is stored. `stored` is the write's future, or
        for a tentative turn (`decided` set) the write to submit once the final confirms it."""
        try:
            if decided is not None:  # tentative: the final's words, or None if the candidate went on
                final = await decided
                if final is None:
                    self._undo_turn(before, gate=gate, reply=reply, line=line)
                    return
                text = final  # the same words; stored as the final spelled them
                line = self._replace_line(line, ConversationLine(Speaker.CANDIDATE, text))
                if reply is not None:
                    reply.turn_ended_at = time.monotonic()
                stored = stored(text=text)
            await stored
        except Exception:
            log.warning("session %s: candidate turn %s not stored; asking for it again",
                        self.snapshot.session_id, turn_id)
            self._undo_turn(before, gate=gate, reply=reply, line=line)
            await self._send(p.SERVER_ERROR, code="answer_not_stored", error=ANSWER_NOT_STORED, transcript=text)
            return
        finally:
            self._storing_turn = None
        metrics.TURNS.labels(Speaker.CANDIDATE).inc()
        await self._send(p.SERVER_FINAL_TRANSCRIPT, transcript=text, turnId=turn_id, source=source)
        log.info("session %s: candidate turn %s (%s, %d chars) for question %d",
                 self.snapshot.session_id, turn_id, source, len(text), answered + 1)
        if advanced:
            await self._send_state()
        gate.set_result(None)
        if ends:
            self._end_task = asyncio.create_task(self.end(END_ALL_ANSWERED))

    def _may_speculate(self) -> bool:
        """A reply may start before the turn ends only when nothing else is going on."""
        return (self._config.speculative_reply and self._tentative is None and self._response is None
                and self._storing_turn is None and self._end_task is None and not self._ending and not self._paused)

    async def _retract_tentative(self) -> None:
        """The turn begun early did not end as foreseen: forget it and its held reply."""
        tentative, self._tentative = self._tentative, None
        if tentative is None:
            return
        if not tentative.decided.done():
            tentative.decided.set_result(None)
        if self._storing_turn is not None:
            await asyncio.wait([self._storing_turn])  # it undoes the turn

    def _undo_turn(self, before: TurnUndo, *, gate: asyncio.Future, reply: Response | None,
                   line: ConversationLine) -> None:
        """The turn never happened (not stored, or retracted): nothing of its reply was
        sent, so the interview stands where it stood before it."""
        gate.cancel()
        if reply is not None:
            self._drop_unsent(reply)
        self._question_index = before.question_index
        self._follow_ups, self._follow_up_for = before.follow_ups, before.follow_up_for
        self._audio_in_ms += before.audio_in_ms
        self._conversation = [known for known in self._conversation if known is not line]

    def _replace_line(self, old: ConversationLine, new: ConversationLine) -> ConversationLine:
        self._conversation = [new if known is old else known for known in self._conversation]
        return new

    def _drop_unsent(self, response: Response) -> None:
        """Forget a response nothing of which was sent (its answer was not stored)."""
        response.cancelled = response.finished = True
        if response.task is not None:
            response.task.cancel()
        if self._response is response:
            self._response = None

    # --- speaking ----------------------------------------------------------------------

    def _respond(self, kind: str, *, turn_ended_at: float | None = None, gate: asyncio.Future | None = None,
                 follow_up_about: int | None = None) -> Response | None:
        if self._stopped or self._ending:
            return None
        response = Response(kind=kind, question_index=self._question_index, turn_ended_at=turn_ended_at, gate=gate,
                            follow_up_about=follow_up_about)
        self._response = response
        self._last_response_id = response.id
        response.task = asyncio.create_task(self._speak_response(response), name=f"response-{response.id}")
        return response

    async def _speak_response(self, response: Response) -> None:
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        writer = asyncio.create_task(self._write_response(response, sentences))
        response.pacer = SpeechPacer(
            sample_rate=self._config.output_sample_rate,
            chunk_ms=self._config.speech_chunk_ms,
            lead_ms=self._config.speech_lead_ms,
            send_chunk=lambda chunk, seq: self._send_speech_chunk(response, chunk, seq),
        )
        try:
            if response.gate is None or response.gate.done():
                await self._send_for(response, p.SERVER_AI_THINKING)
            else:  # held (its answer being stored, or its turn foreseen): say it with the first words
                response.thinking_unsent = True
            while (sentence := await sentences.get()) is not None:
                await self._speak_sentence(response, sentence)
            await response.pacer.finish()
            await self._send_for(response, p.SERVER_AI_SPEECH_END)
            # The turn is over when the candidate has heard it, not when it was sent.
            await asyncio.sleep(response.pacer.remaining_s())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session %s: response %s failed", self.snapshot.session_id, response.id)
            await self._send(p.SERVER_ERROR, code="speech_failed", error="The interviewer could not finish speaking.")
        finally:
            writer.cancel()
        if not response.cancelled:
            self._finish_response(response, interrupted=False)

    async def _write_response(self, response: Response, sentences: asyncio.Queue) -> None:
        """The interviewer's words, cut into sentences for speech; a fallback line on failure."""
        chunker = SentenceChunker()
        request = InterviewerRequest(
            kind=response.kind,
            questions=self.snapshot.questions,
            question_index=min(response.question_index, max(len(self.snapshot.questions) - 1, 0)),
            conversation=tuple(self._conversation),
            interview_title=self.snapshot.interview_title,
            role=self.snapshot.role,
            skills=self.snapshot.skills,
            follow_up_allowed=response.follow_up_about is not None,
        )
        planned_as = (response.kind, response.question_index)
        try:
            async with asyncio.timeout(self._config.llm_deadline_s):
                async for fragment in self._providers_session.interviewer.respond(request):
                    if fragment is FOLLOW_UP:
                        self._asking_follow_up(response, request)
                        continue
                    response.mark("llm_first_token_ms")
                    self._plan(response, sentences, chunker.push(fragment))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("session %s: interviewer failed (%s); using a fallback line",
                        self.snapshot.session_id, type(error).__name__)
            metrics.PROVIDER_FAILURES.labels("llm", "deadline" if isinstance(error, TimeoutError) else "error").inc()
            if not response.planned:
                response.source = "fallback"
                response.kind, response.question_index = planned_as
                chunker = SentenceChunker()
                self._plan(response, sentences, chunker.push(self._fallback_line(request)))
        finally:
            response.metrics.update({f"llm_{name}": value for name, value in request.usage.items()})
        self._plan(response, sentences, chunker.flush())
        sentences.put_nowait(None)

    @staticmethod
    def _plan(response: Response, sentences: asyncio.Queue, pieces: list[str]) -> None:
        for sentence in pieces:
            response.planned.append(sentence)
            sentences.put_nowait(sentence)

    def _asking_follow_up(self, response: Response, request: InterviewerRequest) -> None:
        """The interviewer chose to ask about the answer just given before moving on."""
        if response.follow_up_about is None or response.planned:
            raise ValueError("the interviewer asked a follow-up it was not offered")
        response.kind, response.question_index = "follow_up", response.follow_up_about
        self._follow_ups[response.follow_up_about] = self._follow_ups.get(response.follow_up_about, 0) + 1
        log.info("session %s: follow-up on question %d", self.snapshot.session_id, response.follow_up_about + 1)

    def _fallback_line(self, request: InterviewerRequest) -> str:
        if request.kind == "closing":
            return "Thank you for your time. That concludes our interview."
        if request.questions:
            return request.questions[request.question_index]
        return FALLBACK_LINE

    async def _speak_sentence(self, response: Response, text: str) -> None:
        pacer = response.pacer
        sentence = SpokenSentence(text=text, start_ms=pacer.sent_ms)
        voice = self._providers_session.tts
        if response.source == "fallback" and self._providers.fallback_tts is not None:
            voice = self._providers.fallback_tts  # the model never said this line: another voice must
        stream = voice.synthesize(text).__aiter__()
        try:
            while True:
                try:
                    # Not wait_for: on Python 3.11 it can swallow the cancellation of an interrupt.
                    async with asyncio.timeout(self._config.tts_deadline_s):
                        pcm = await stream.__anext__()
                except StopAsyncIteration:
                    break
                if not response.spoken or response.spoken[-1] is not sentence:
                    response.mark("tts_first_audio_ms")
                    response.spoken.append(sentence)
                    await self._send_for(response, p.SERVER_AI_TEXT, text=text)
                    self._publish_spoken(response, text)
                await pacer.push(pcm)
        except TimeoutError:
            log.warning("session %s: speech synthesis missed its deadline", self.snapshot.session_id)
            metrics.PROVIDER_FAILURES.labels("tts", "deadline").inc()
        finally:
            await stream.aclose()
        if not response.spoken or response.spoken[-1] is not sentence:
            # No audio came: the candidate still reads the words as captions.
            response.spoken.append(sentence)
            await self._send_for(response, p.SERVER_AI_TEXT, text=text)
            self._publish_spoken(response, text)
        sentence.end_ms = pacer.sent_ms

    async def _send_speech_chunk(self, response: Response, chunk: bytes, seq: int) -> None:
        if response.cancelled:
            raise asyncio.CancelledError  # never a chunk of an interrupted response
        if seq == 0 and response.turn_ended_at is not None:
            response.mark("turn_to_first_audio_ms", since=response.turn_ended_at)
            metrics.TURN_TO_FIRST_AUDIO.observe(response.metrics["turn_to_first_audio_ms"] / 1000)
        await self._send_for(response, p.SERVER_AI_SPEECH_CHUNK, data=p.encode_audio(chunk), seq=seq)

    async def _send_for(self, response: Response, kind: str, **payload) -> None:
        """A message about a response; nothing of it goes out after it was interrupted, nor
        before the answer it replies to is stored (its gate)."""
        gate = response.gate
        if gate is not None and not gate.done():
            await asyncio.wait([gate])
        if gate is not None and gate.cancelled():
            raise asyncio.CancelledError  # the answer was not stored: this reply never happened
        if response.cancelled:
            return
        if response.thinking_unsent:
            response.thinking_unsent = False
            await self._send(p.SERVER_AI_THINKING, responseId=response.id)
        await self._send(kind, responseId=response.id, **payload)

    def _cancel_response(self, response: Response) -> None:
        response.cancelled = True
        if response.task is not None:
            response.task.cancel()
        try:  # a speech-to-speech provider keeps in its own conversation only what was heard
            self._providers_session.interrupted(heard_ms=response.pacer.played_ms() if response.pacer else 0.0)
        except Exception:
            log.warning("session %s: provider could not be told of the interrupt", self.snapshot.session_id)
        self._finish_response(response, interrupted=True)

    async def _silence(self) -> None:
        """Stop speaking now (pause, end), telling the client to flush what it holds."""
        await self._retract_tentative()
        if self._response is not None:
            await self.interrupt()

    def _finish_response(self, response: Response, *, interrupted: bool) -> None:
        if response.finished:
            return
        response.finished = True
        if self._response is response:
            self._response = None
        text = response.heard_text() if interrupted else response.planned_text
        if not text:
            return  # cut off before a word was heard: nothing was said
        if response.kind == "follow_up":
            self._follow_up_for = response.question_index
        if response.pacer is not None:
            response.metrics["audio_out_ms"] = round(response.pacer.played_ms() if interrupted else response.pacer.sent_ms)
        set_question = getattr(self._stt, "set_question", None)
        if set_question is not None:  # the question being answered is one signal for turn-taking
            set_question(text)
        self._conversation.append(ConversationLine(Speaker.INTERVIEWER, text))
        self._recorder.submit(
            services.turn_record, speaker=Speaker.INTERVIEWER, text=text, planned_text=response.planned_text,
            question_index=response.question_index, source=response.source, interrupted=interrupted,
            public_id=response.id, metrics=response.metrics,
        )
        metrics.TURNS.labels(Speaker.INTERVIEWER).inc()
        if interrupted:
            log.info("session %s: response %s interrupted after %.0f ms of speech",
                     self.snapshot.session_id, response.id, response.pacer.played_ms() if response.pacer else 0)
        # A goodbye that was cut off is not the end: what the candidate says next is heard.
        if response.kind == "closing" and not interrupted and not self._ending and not self._stopped:
            self._end_task = asyncio.create_task(self.end(END_ALL_ANSWERED))

    # --- output ------------------------------------------------------------------------

    async def _send_state(self) -> None:
        status = SessionStatus.PAUSED if self._paused else SessionStatus.LIVE
        await self._send(p.SERVER_SESSION_STATE, status=status, questionIndex=self._question_index,
                         questionCount=len(self.snapshot.questions))

    async def _send(self, kind: str, **payload) -> None:
        if self._stopped:
            return
        frame = self._encode(kind, **payload)
        if frame is not None:
            await self._send_text(frame)
