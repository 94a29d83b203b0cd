"""Opt-in log of socket operations (REALTIME_LOG_MESSAGES=1), for both dialects.

One line per message, in and out: the connection, its session once known, the dialect,
the message type, its size in bytes and when it passed (seconds since the connection
opened; for a received message, when it arrived and how long handling it took). When the connection
ends, one summary line: messages and bytes each way, by type. Only type names and
numbers are logged: never a token, audio or what the candidate wrote or said (a type
the server does not know is logged as `unknown`).

    socket c=1f3a9b2e session=6d0c... text in USER_MESSAGE 57B t=12.408s handled=0.4ms
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter

from django.conf import settings

from .dialects import frame_type

log = logging.getLogger("realtime.socketlog")


def utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class SocketLog:
    def __init__(self, dialect: str):
        self.connection = secrets.token_hex(4)
        self.dialect = dialect
        self.opened = time.monotonic()
        self.session_id: str | None = None
        self.counts: Counter[tuple[str, str]] = Counter()
        self.sizes: Counter[str] = Counter()

    @classmethod
    def for_connection(cls, dialect: str) -> "SocketLog | None":
        return cls(dialect) if settings.REALTIME["LOG_MESSAGES"] else None

    def received(self, kind: str, size: int, started: float) -> None:
        self._line("in", kind, size, started, f" handled={(time.monotonic() - started) * 1000:.1f}ms")

    def sent(self, frame: str) -> None:
        self._line("out", frame_type(frame), utf8_size(frame), time.monotonic(), "")

    def closed(self, code) -> None:
        by_type = ", ".join(f"{direction} {kind} x{n}" for (direction, kind), n in sorted(self.counts.items()))
        log.info("socket c=%s session=%s %s closed code=%s after %.3fs: in %d msgs %dB, out %d msgs %dB (%s)",
                 self.connection, self.session_id or "-", self.dialect, code if code is not None else "-",
                 time.monotonic() - self.opened,
                 sum(n for (d, _), n in self.counts.items() if d == "in"), self.sizes["in"],
                 sum(n for (d, _), n in self.counts.items() if d == "out"), self.sizes["out"], by_type)

    def _line(self, direction: str, kind: str, size: int, now: float, extra: str) -> None:
        self.counts[(direction, kind)] += 1
        self.sizes[direction] += size
        log.info("socket c=%s session=%s %s %s %s %dB t=%.3fs%s", self.connection, self.session_id or "-",
                 self.dialect, direction, kind, size, now - self.opened, extra)
