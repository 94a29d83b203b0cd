"""What one client may send: frame size in bytes, message rate, control rate, audio rate.

Checked for every frame before it is parsed, so a flood costs the server a counter
update and is closed within a bounded number of messages.
"""

from __future__ import annotations

from . import protocol as p
from .limits import Throttle, TokenBucket

Refusal = tuple[str, str, int]
MEASURABLE_BACKLOG = 16  # (error code, message for the client, close code)


class InboundLimits:
    def __init__(self, limits: dict):
        self.max_bytes = limits["MAX_MESSAGE_BYTES"]
        self.max_backlog = limits["INBOUND_BACKLOG_MESSAGES"]
        self.messages = TokenBucket(rate=limits["MESSAGES_PER_SECOND"], capacity=limits["MESSAGE_BURST"])
        self.control = TokenBucket(rate=limits["CONTROL_MESSAGES_PER_SECOND"], capacity=limits["CONTROL_BURST"])
        audio_rate = limits["AUDIO_BYTES_PER_SECOND"]
        self.audio = TokenBucket(rate=audio_rate, capacity=audio_rate * limits["AUDIO_BURST_SECONDS"])
        # Dropped audio is tolerated up to half the allowed rate again, in bursts of
        # AUDIO_ABUSE_BYTES: a client sending at more than 1.5x the limit, sustained, is closed.
        self.audio_excess = TokenBucket(rate=audio_rate / 2, capacity=limits["AUDIO_ABUSE_BYTES"])
        self.messages_before_auth = 0
        self.error_throttle = Throttle(1.0)

    def check_message(self, text: str, *, authenticated: bool, backlog: int = 0) -> Refusal | None:
        limit = self.max_bytes if authenticated else min(self.max_bytes, p.MAX_MESSAGE_BYTES_BEFORE_AUTH)
        if p.utf8_length_exceeds(text, limit):
            return "message_too_big", f"Messages may be at most {limit} bytes.", p.CloseCode.MESSAGE_TOO_BIG
        if not authenticated:
            self.messages_before_auth += 1
            if self.messages_before_auth > p.MAX_MESSAGES_BEFORE_AUTH:
                return ("auth_required", "Send client-auth first, then wait for server-auth-success.",
                        p.CloseCode.AUTH_REQUIRED)
        # A rate is only measured while we keep up: when the worker is behind (a backlog),
        # frames are handled in bursts that the client never sent, and only a backlog far
        # beyond what a live client causes is refused.
        over_rate = backlog <= MEASURABLE_BACKLOG and not self.messages.take(1)
        if over_rate or backlog > self.max_backlog:
            return "rate_limited", "Too many messages; slow down.", p.CloseCode.RATE_LIMITED
        return None

    def control_allowed(self) -> bool:
        return self.control.take(1)

    def check_audio(self, size: int) -> str:
        """'ok', 'dropped' (faster than real time), or 'abuse' (far faster, for long)."""
        if self.audio.take(size):
            return "ok"
        return "dropped" if self.audio_excess.take(size) else "abuse"
