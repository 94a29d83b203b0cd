"""Consumer dispatch without Channels' per-message database clean-up."""

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
