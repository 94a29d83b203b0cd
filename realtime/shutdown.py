"""A worker asked to stop (SIGTERM) lets every candidate go cleanly, then exits.

daphne's own shutdown cancels every connection at once and then waits on them; how
long it waits, and whether a half-made connection breaks that wait, is not ours to
decide. Here SIGTERM first tells each candidate to reconnect (close 4012: another
worker resumes the session), flushes each session's writes (bounded by the
consumers' clean-up time), and only then stops the reactor.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from . import stats
from .consumer_base import CLEANUP_SECONDS

log = logging.getLogger(__name__)

_installed = False
CLOSE_HANDSHAKE_SECONDS = 2.0
draining = False  # set on SIGTERM: new connections are turned away


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Take over SIGTERM on the server's loop (once; only where signals can be handled)."""
    global _installed
    if _installed:
        return
    _installed = True
    try:
        loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(drain_and_stop()))
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (a test's loop)
        pass


async def drain_and_stop() -> None:
    global draining
    draining = True
    consumers = [c for c in stats.consumers if not c.cleaned_up]
    log.info("SIGTERM: letting %d connections go before stopping", len(consumers))
    if consumers:
        await asyncio.wait([asyncio.ensure_future(c.shut_down()) for c in consumers], timeout=CLEANUP_SECONDS + 2)
        # Stopping the reactor drops every socket; let the close frames (4012) reach the clients first.
        deadline = asyncio.get_running_loop().time() + CLOSE_HANDSHAKE_SECONDS
        while any(not c.socket_gone for c in consumers) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
    from twisted.internet import reactor

    reactor.stop()
