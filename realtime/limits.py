"""Rate limits on what a client may send."""

from __future__ import annotations

import time


class TokenBucket:
    """Allows `rate` units per second on average, with bursts up to `capacity`."""

    def __init__(self, *, rate: float, capacity: float, clock=time.monotonic):
        self._rate = rate
        self._capacity = capacity
        self._tokens = capacity
        self._clock = clock
        self._updated = clock()

    def take(self, amount: float) -> bool:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if amount > self._tokens:
            return False
        self._tokens -= amount
        return True


class Throttle:
    """Lets an event through at most once per `interval` seconds (for repeated error messages)."""

    def __init__(self, interval: float, clock=time.monotonic):
        self._interval = interval
        self._clock = clock
        self._last = float("-inf")

    def ready(self) -> bool:
        now = self._clock()
        if now - self._last < self._interval:
            return False
        self._last = now
        return True
