"""How `interviews` live events reach watchers: the channel layer group of the session.

Services publish from the database thread. That thread must never wait on the event
loop: at shutdown the loop stops first, and a thread blocked in async_to_sync would
hang the worker for ever with its writes unflushed. So an event is handed to the
loop and the thread goes on; live events are best effort (the stored turn is the
record).
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from .groups import live_group
from .layer import LAYER_ERRORS

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 1000
_loop: asyncio.AbstractEventLoop | None = None
_in_flight: set[asyncio.Task] = set()


def bind_event_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The server's loop, where events are sent from (set by the ASGI application)."""
    global _loop
    _loop = loop


def publish_to_channel_layer(session_id: str, event: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "session.event", "event": event}
    loop = _loop
    if loop is None or loop.is_closed():
        async_to_sync(layer.group_send)(live_group(session_id), message)  # no server here (a command)
        return
    try:
        loop.call_soon_threadsafe(_send_soon, layer, live_group(session_id), message)
    except RuntimeError:  # the loop closed meanwhile: the worker is going away
        log.info("live event for session %s dropped: the server is stopping", session_id)


def _send_soon(layer, group: str, message: dict) -> None:
    if len(_in_flight) >= MAX_IN_FLIGHT:  # the layer is stuck; watchers resync from the stored turns
        return
    task = asyncio.ensure_future(_send(layer, group, message))
    _in_flight.add(task)
    task.add_done_callback(_in_flight.discard)


async def _send(layer, group: str, message: dict) -> None:
    try:
        await layer.group_send(group, message)
    except LAYER_ERRORS as error:
        log.warning("live event for %s not published: %s", group, type(error).__name__)
