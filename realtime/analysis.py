"""The language model's analysis of a finished session, written in the background.

`server-session-ended` never waits for it: the session is stored as ended first, then
the analysis runs in the worker with a deadline per attempt and a few retries, and its
status (pending, done, failed) is stored on the session's result for recruiters.
`manage.py analyse_results` retries what a stopped worker left pending.
"""

from __future__ import annotations

import asyncio
import logging

from .db import database_call
from django.conf import settings

from interviews import selectors, services

from .providers.base import ConversationLine, EvaluationRequest, Evaluator
from .supabase_writeback import writeback_schedule

log = logging.getLogger(__name__)

_running: set[asyncio.Task] = set()  # held so they are not collected mid-flight
RETRY_BASE_SECONDS = 2.0


def analyse_in_background(*, session_id: str, evaluator: Evaluator) -> asyncio.Task:
    task = asyncio.create_task(analyse(session_id=session_id, evaluator=evaluator), name=f"analysis-{session_id}")
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


async def analyse(*, session_id: str, evaluator: Evaluator, attempts: int | None = None,
                  deadline_s: float | None = None) -> bool:
    """Try to analyse the session; store the analysis or, after the last attempt, the failure."""
    attempts = attempts or settings.REALTIME["EVALUATION_ATTEMPTS"]
    deadline_s = deadline_s or settings.REALTIME["EVALUATION_DEADLINE_SECONDS"]
    error = "unknown"
    for attempt in range(1, attempts + 1):
        try:
            request = evaluation_request(await database_call(selectors.session_analysis_input)(
                session_id=session_id))
            async with asyncio.timeout(deadline_s):
                analysis = await evaluator.evaluate(request)
            await database_call(services.result_analysis_store)(
                session_id=session_id, analysis=analysis, attempts=attempt)
            log.info("session %s: analysis written (attempt %d)", session_id, attempt)
            writeback_schedule(session_id)  # and to Supabase, when it is the source
            return True
        except Exception as failure:  # the kind only: a vendor's message may echo request details
            error = "deadline missed" if isinstance(failure, TimeoutError) else type(failure).__name__
            log.warning("session %s: analysis attempt %d of %d failed: %s", session_id, attempt, attempts, error)
        if attempt < attempts:
            await asyncio.sleep(RETRY_BASE_SECONDS * 2 ** (attempt - 1))
    try:
        await database_call(services.result_analysis_failed)(
            session_id=session_id, error=error, attempts=attempts)
        writeback_schedule(session_id)
    except Exception:
        log.exception("session %s: analysis failure not stored", session_id)
    return False


def evaluation_request(data: dict) -> EvaluationRequest:
    return EvaluationRequest(
        title=data["title"],
        role=data["role"],
        skills=tuple(data["skills"]),
        questions=tuple(data["questions"]),
        conversation=tuple(ConversationLine(speaker, text) for speaker, text in data["conversation"]),
    )
