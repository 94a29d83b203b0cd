"""What every realtime consumer shares: one clean-up path, whatever ends the connection.

Channels' own `__call__` lets any exception escape to daphne, which then closes the
socket with 1011 and never calls `disconnect()`: the session's runtime, its tasks and
the user's connection slot would be orphaned. Here every way out (the client leaving,
a handler raising, the channel layer failing, the worker shutting down) ends in
`cleanup()`, which subclasses make idempotent.
"""

from __future__ import annotations

import asyncio
import logging

from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer

from . import stats
from .dispatch import DirectDispatchMixin, MessageLoopMixin
from .layer import LAYER_ERRORS, memberships
from .outbound import OutboundGauge
from .protocol import CloseCode

log = logging.getLogger(__name__)

CLEANUP_SECONDS = 8.0
CHANNEL_RETRY_MAX_SECONDS = 2.0


class RealtimeConsumer(MessageLoopMixin, DirectDispatchMixin):
    """Mixin for AsyncWebsocketConsumer subclasses (put it first in the bases)."""

    cleaned_up = False
    socket_gone = False  # the closing handshake is over (or the client dropped)

    async def __call__(self, scope, receive, send):
        self.scope = scope
        self.base_send = send
        stats.consumers.add(self)
        self.outbound = OutboundGauge.for_send(send)
        # daphne's `receive` is the get() of the connection's (unbounded) input queue.
        queue = getattr(receive, "__self__", None)
        self._inbound_queue = queue if isinstance(queue, asyncio.Queue) else None
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
        try:
            await self._dispatch_loop(receive)
        except StopConsumer:
            pass
        except asyncio.CancelledError:
            # The worker is shutting down (or daphne gave up on us): still flush and free.
            await self._cleanup_shielded()
            raise
        except Exception:
            log.exception("%s: unexpected error; closing the connection", type(self).__name__)
            await self._close_quietly(CloseCode.INTERNAL_ERROR)
        await self._cleanup_shielded()

    async def websocket_disconnect(self, message):
        self.socket_gone = True
        await super().websocket_disconnect(message)

    def inbound_backlog(self) -> int:
        """Frames daphne has read from the client that this consumer has not handled yet."""
        return self._inbound_queue.qsize() if self._inbound_queue is not None else 0

    async def cleanup(self) -> None:
        """Free what the connection holds. Called once, whatever ended it."""

    async def shut_down(self) -> None:
        """The worker is stopping: ask the client to reconnect elsewhere, and flush."""
        await self._close_quietly(CloseCode.SERVER_RESTARTING)
        await self._cleanup_shielded()

    async def _cleanup_shielded(self) -> None:
        if self.cleaned_up:
            return
        self.cleaned_up = True
        task = asyncio.ensure_future(self.cleanup())
        try:
            # Shielded: a second cancellation (shutdown) must not cut a flush in half.
            async with asyncio.timeout(CLEANUP_SECONDS):
                await asyncio.shield(task)
        except TimeoutError:
            log.error("%s: clean-up did not finish in %.0fs", type(self).__name__, CLEANUP_SECONDS)
        except asyncio.CancelledError:
            await asyncio.wait([task], timeout=CLEANUP_SECONDS)
        except Exception:
            log.exception("%s: clean-up failed", type(self).__name__)

    async def _close_quietly(self, code: int) -> None:
        try:
            await self.base_send({"type": "websocket.close", "code": int(code)})  # autobahn refuses an IntEnum
        except Exception:  # the socket may be gone already
            pass

    async def _channel_receive(self):
        """The channel layer's next message; an outage (Redis restarting) is waited out.

        Redis is not on the audio path: a session must keep talking to its candidate
        while the layer is away, and pick up takeovers and live events once it is back.
        """
        delay = 0.1
        while True:
            receiving = asyncio.ensure_future(self.channel_layer.receive(self.channel_name))
            try:
                return await asyncio.shield(receiving)
            except asyncio.CancelledError:
                # A receive that is reconnecting to Redis can take long to obey a cancel;
                # the connection's clean-up must not wait for it.
                receiving.cancel()
                receiving.add_done_callback(_retrieve)
                raise
            except LAYER_ERRORS as error:
                memberships.layer_failed(self.channel_layer)
                if delay == 0.1:
                    log.warning("%s: channel layer unavailable (%s); retrying",
                                type(self).__name__, type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, CHANNEL_RETRY_MAX_SECONDS)


def _retrieve(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()  # nobody waits for it any more; do not warn about it
