"""Local servers that speak cloud vendors' documented wire protocols, for tests.

Each fake is strict: an unknown event type, a missing field, a wrong audio format or a
call out of order is recorded in `errors`, and the fixture that started it fails the
test when `errors` is not empty. Each counts the connections it holds open, so a test
can prove nothing was left open after a session ends.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future


class BackgroundLoop:
    """An asyncio loop in a daemon thread: fakes live there, reachable from any test
    (async tests, sync tests, and daphne processes started by the tests)."""

    def __init__(self, name: str = "fake-server"):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro, timeout: float = 10.0):
        """Run a coroutine on the loop and wait for its result."""
        future: Future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
