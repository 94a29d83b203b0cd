"""Recruiters' control of live sessions across workers (installed into interviews.control).

Ending a live session: the request goes to the session's owner group (realtime/groups.py),
which holds the one connection that owns it on whichever worker; that connection says
at once that it has the request, ends the session as the candidate's own `client-end`
would (the result is written, the candidate gets `server-session-ended` with the
reason) and replies on a private channel. No acknowledgement within ACK_WAIT_SECONDS
means nobody holds it (its worker died, or it just left): the caller then ends it in the
database without waiting the whole END_WAIT_SECONDS that a holder may take.

The candidate's link: demo tokens (an access token and a refresh token, in the fragment)
are issued here only when tokens do not come from Supabase (`SUPABASE_URL` unset).
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from .auth import demo_link_fragment
from .groups import owner_group
from .layer import LAYER_ERRORS, with_one_retry

log = logging.getLogger(__name__)

ACK_WAIT_SECONDS = 1.0  # a live holder's message loop answers in milliseconds; a dead one never
END_WAIT_SECONDS = 5.0  # the holder stops the interviewer and writes the result first
LINK_TOKEN_TTL_SECONDS = 7 * 24 * 3600  # a link a recruiter sends is opened days later


def end_live(session_id: str, reason: str) -> bool:
    layer = get_channel_layer()
    if layer is None:
        return False
    return async_to_sync(end_live_async)(layer, session_id, reason)


async def end_live_async(layer, session_id: str, reason: str) -> bool:
    try:
        reply = await layer.new_channel()
        await with_one_retry(layer.group_send, owner_group(session_id),
                             {"type": "session.end_requested", "reason": reason, "reply": reply})
        async with asyncio.timeout(ACK_WAIT_SECONDS):
            answer = await layer.receive(reply)
        if answer.get("type") == "session.end_accepted":
            async with asyncio.timeout(END_WAIT_SECONDS):
                answer = await layer.receive(reply)
    except TimeoutError:
        log.info("session %s: no connection answered the end request", session_id)
        return False
    except LAYER_ERRORS as error:
        log.warning("session %s: end request not delivered: %s", session_id, type(error).__name__)
        return False
    return bool(answer.get("ended"))


def link_token(user_id: str) -> str | None:
    """The fragment of a candidate's link: a demo access token and the refresh token that
    renews it (`access_token=...&expires_at=...&refresh_token=...&token_type=bearer`)."""
    if settings.SUPABASE_URL:
        return None  # the candidate signs in with Supabase; the page gets its token there
    fragment, _ = demo_link_fragment(user_id=user_id, ttl_seconds=LINK_TOKEN_TTL_SECONDS)
    return fragment
