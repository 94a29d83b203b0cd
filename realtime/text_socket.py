"""The text-era socket (`/ws`): the candidate's consumer with the text dialect.

Everything else is the voice socket's: authentication, takeover, limits, the one
clean-up path and the same `SessionRuntime`. What differs:

- the runtime runs with no speech in or out (the client types, and fetches each
  interviewer line as a signed audio URL), so nothing is recognised or synthesized for
  this connection;
- when the interview ends, the results follow INTERVIEW_ENDED: what the session's
  evaluation holds at once, and, when a language model's analysis is pending, the
  analysis as soon as it is stored (the live event `result` of the session's group),
  waiting at most RESULTS_WAIT_SECONDS; then the socket closes with 1000;
- joining a session that already ended answers with its results before the refusal.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from .db import database_call

from interviews.models import AnalysisStatus, SessionResult
from interviews.selectors import SessionAccessError

from . import protocol as p
from .consumers import InterviewConsumer
from .dialects.text import TextDialect, results_message
from .groups import live_group
from .layer import LAYER_ERRORS, memberships
from .providers.base import Providers, TranscriptEvent

log = logging.getLogger(__name__)

RESULTS_POLL_SECONDS = 5.0  # a live event can be lost (the layer restarting): look again this often


class TextInterviewConsumer(InterviewConsumer):
    dialect_class = TextDialect
    results_task: asyncio.Task | None = None
    watching_results = False

    def session_providers(self, providers: Providers) -> Providers:
        return text_providers(providers)

    async def _runtime_close(self, code: int) -> None:
        if code != p.CloseCode.NORMAL or self.closed or self.session_id is None:
            await self._close(code)
            return
        # The interview ended: the results follow before the socket closes. Not awaited:
        # this is the runtime's (or the message loop's) call, and the analysis may take a while.
        self.finished = True
        self._analysis_settled = asyncio.Event()
        self.results_task = asyncio.create_task(self._deliver_results(), name=f"results-{self.session_id}")

    async def _deliver_results(self) -> None:
        try:
            try:  # before reading, so an analysis stored meanwhile is not missed
                await memberships.add(self.channel_layer, live_group(self.session_id), self.channel_name)
                self.watching_results = True
            except LAYER_ERRORS:
                log.info("session %s: channel layer away; results are polled", self.session_id)
            result = await database_call(result_payload)(session_id=self.session_id)
            if result is None:
                return
            pending = result["analysisStatus"] == AnalysisStatus.PENDING
            await self._send_text(results_message(result, final=not pending))
            if pending:
                result = await self._settled_result(result)
                await self._send_text(results_message(result, final=True))
        except Exception:
            log.exception("session %s: results not delivered", self.session_id)
        finally:
            await self._close(p.CloseCode.NORMAL)

    async def _settled_result(self, result: dict) -> dict:
        """The result once its analysis is done or failed; as it stands after the wait, else."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits["RESULTS_WAIT_SECONDS"]
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.info("session %s: analysis still pending after %.0fs; closing", self.session_id,
                         self.limits["RESULTS_WAIT_SECONDS"])
                return result
            try:
                async with asyncio.timeout(min(remaining, RESULTS_POLL_SECONDS)):
                    await self._analysis_settled.wait()
            except TimeoutError:
                pass
            self._analysis_settled.clear()
            result = await database_call(result_payload)(session_id=self.session_id)
            if result["analysisStatus"] != AnalysisStatus.PENDING:
                return result

    async def session_event(self, message: dict) -> None:
        """A live event of the session (only joined once the interview ended)."""
        if message.get("event", {}).get("event") == "result" and self.results_task is not None:
            self._analysis_settled.set()

    async def _refuse_access(self, error: SessionAccessError, session_id: str) -> None:
        if error.code == "session_finished":  # its owner asks again: the results, then the refusal
            try:
                result = await database_call(result_payload)(session_id=session_id)
            except Exception:
                log.exception("session %s: results not read", p.log_safe(session_id))
                result = None
            if result is not None:
                await self._send_text(results_message(result, final=result["analysisStatus"] != AnalysisStatus.PENDING))
        await super()._refuse_access(error, session_id)

    async def cleanup(self) -> None:
        if self.results_task is not None and not self.results_task.done():
            self.results_task.cancel()
        try:
            await super().cleanup()
        finally:
            if self.watching_results:
                try:
                    await memberships.discard(self.channel_layer, live_group(self.session_id), self.channel_name)
                except Exception:
                    log.warning("session %s: could not leave the live group", self.session_id)


def result_payload(*, session_id: str) -> dict | None:
    """The results of a finished session as the candidate's socket shows them."""
    result = SessionResult.objects.select_related("session").filter(session_id=session_id).first()
    if result is None:
        return None
    details = result.details or {}
    return {
        "sessionId": str(result.session_id),
        "endReason": result.session.end_reason,
        "summary": result.summary,
        "answeredQuestions": result.answered_questions,
        "questionCount": result.session.question_count,
        "questions": details.get("questions", []),
        "analysisStatus": result.analysis_status,
        "analysis": result.analysis or None,
    }


# --- providers without speech ------------------------------------------------------------

class _NoSpeechStream:
    """Nothing is heard on the text socket: typed answers only."""

    async def feed(self, pcm16: bytes) -> list[TranscriptEvent]:
        return []

    async def flush(self) -> list[TranscriptEvent]:
        return []

    def reset(self) -> None:
        pass

    async def close(self) -> None:
        pass


class _NoSpeechToText:
    def open_stream(self, *, sample_rate: int) -> _NoSpeechStream:
        return _NoSpeechStream()


class _NoTextToSpeech:
    """Nothing is spoken on the text socket; each line's audio is a URL, made on request."""

    sample_rate = 24000

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        return
        yield  # an async generator that yields nothing


_text_providers: dict[int, tuple[Providers, Providers]] = {}


def text_providers(providers: Providers) -> Providers:
    """The same interviewer and evaluator, with no speech in or out.

    A speech-to-speech set's sessions are one vendor connection that listens and speaks;
    a typed interview needs neither, so it runs with the set's own text interviewer.
    """
    cached = _text_providers.get(id(providers))
    if cached is None or cached[0] is not providers:
        cached = (providers, Providers(stt=_NoSpeechToText(), interviewer=providers.interviewer,
                                       tts=_NoTextToSpeech(), name=f"{providers.name}/text",
                                       evaluator=providers.evaluator))
        _text_providers[id(providers)] = cached
    return cached[1]
