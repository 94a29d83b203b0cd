"""Consumer dispatch without Channels' per-message database clean-up and per-message task."""

import asyncio

from channels.consumer import get_handler_name


class DirectDispatchMixin:
    """Calls the handler straight away.

    Since Channels 4.2 every message first runs Django's close_old_connections() on the
    process's one sync thread: a thread hop per audio chunk, queued behind every
    session's database writes (docs/performance.md measured turns of 52-158 ms at 50
    sessions because of it). These consumers never use the ORM on the event loop;
    database_call (realtime/db.py) closes stale connections around each of their writes.
    """

    async def dispatch(self, message):
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)


class MessageLoopMixin:
    """The loop that feeds `dispatch()`: one message at a time, from the client and, if
    `channel_layer` is set, from `_channel_receive()`."""

    _layer_failure: BaseException | None = None  # what ended the channel layer's loop

    async def _dispatch_loop(self, receive) -> None:
        """Channels' `await_many_dispatch` without its task and `asyncio.wait` per message:
        the client's frames (an audio chunk every 40 ms) are awaited in this task, the
        channel layer's messages in a companion task. As there, one message is handled at a
        time; whatever ends the companion's loop (a handler's StopConsumer, an error) ends
        this one too."""
        self._handling = asyncio.Lock()
        companion = None
        if self.channel_layer is not None:
            companion = asyncio.create_task(self._layer_loop(asyncio.current_task()))
        try:
            while self._layer_failure is None:
                message = await receive()
                async with self._handling:
                    await self.dispatch(message)
        except asyncio.CancelledError:
            if self._layer_failure is None:
                raise
            asyncio.current_task().uncancel()  # cancelled by the companion, to hear its news
        finally:
            if companion is not None:
                companion.cancel()
                await asyncio.wait([companion])  # it ends at once: its receive is shielded
        raise self._layer_failure

    async def _layer_loop(self, main: asyncio.Task) -> None:
        try:
            while True:
                message = await self._channel_receive()
                async with self._handling:
                    await self.dispatch(message)
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            self._layer_failure = error
            if not self._handling.locked():  # else the main loop sees it after its message
                main.cancel()
