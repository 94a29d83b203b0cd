"""What one client may send, and the text the server keeps of it."""

import pytest

from realtime import protocol as p
from realtime.inbound import InboundLimits

LIMITS = {
    "MAX_MESSAGE_BYTES": 1000, "INBOUND_BACKLOG_MESSAGES": 64, "MESSAGES_PER_SECOND": 100, "MESSAGE_BURST": 5,
    "CONTROL_MESSAGES_PER_SECOND": 5, "CONTROL_BURST": 2, "AUDIO_BYTES_PER_SECOND": 1000,
    "AUDIO_BURST_SECONDS": 1, "AUDIO_ABUSE_BYTES": 2000,
}


@pytest.mark.parametrize("raw, kept", [
    ("caf\u00e9 \ud800 ok", "caf\u00e9 \ufffd ok"),  # a lone surrogate no encoder takes
    ("nul\x00 byte", "nul byte"),  # PostgreSQL text refuses NUL
    ("bell\x07 and \x9b csi", "bell and  csi"),
    ("two\nlines\tkept", "two\nlines\tkept"),
    ("\U0001F600 pair", "\U0001F600 pair"),
])
def test_text_is_cleaned_to_what_every_backend_stores(raw, kept):
    assert p.clean_text(raw) == kept
    kept.encode("utf-8")


def test_ids_lose_their_line_breaks_so_a_log_line_cannot_be_forged():
    assert "\n" not in p.log_safe("abc\r\nFORGED line") and "\r" not in p.log_safe("abc\r\nFORGED line")


def test_frame_size_is_counted_in_bytes():
    limits = InboundLimits(LIMITS)
    assert limits.check_message("x" * 1000, authenticated=True) is None
    assert limits.check_message("\u00e9" * 600, authenticated=True)[0] == "message_too_big"  # 1200 bytes


def test_before_auth_two_messages_at_most():
    limits = InboundLimits(LIMITS)
    assert limits.check_message("{}", authenticated=False) is None
    assert limits.check_message("{}", authenticated=False) is None
    assert limits.check_message("{}", authenticated=False)[2] == p.CloseCode.AUTH_REQUIRED


def test_a_burst_over_the_message_rate_or_a_backlog_is_refused():
    limits = InboundLimits(LIMITS)
    assert [limits.check_message("{}", authenticated=True) is None for _ in range(6)][-1] is False
    assert InboundLimits(LIMITS).check_message("{}", authenticated=True, backlog=65)[2] == p.CloseCode.RATE_LIMITED
    behind = InboundLimits(LIMITS)  # a worker that is behind handles a burst the client never sent
    assert all(behind.check_message("{}", authenticated=True, backlog=20) is None for _ in range(10))


def test_audio_far_above_real_time_turns_from_dropped_to_abuse():
    limits = InboundLimits(LIMITS)
    assert limits.check_audio(1000) == "ok"
    assert [limits.check_audio(1000) for _ in range(3)] == ["dropped", "dropped", "abuse"]
