"""Live events about a session, for whoever watches it (recruiters' live views).

`interviews` never imports the transport: `realtime` installs the publisher when it
starts. Events are sent after the surrounding transaction commits, so a watcher never
sees a turn that was rolled back.
"""

from __future__ import annotations

import logging
from typing import Callable

from django.db import transaction

log = logging.getLogger(__name__)

Publisher = Callable[[str, dict], None]
_publisher: Publisher | None = None


def set_publisher(publisher: Publisher | None) -> None:
    global _publisher
    _publisher = publisher


def publish(session_id, event: dict) -> None:
    publisher = _publisher
    if publisher is None:
        return

    def send() -> None:
        try:
            publisher(str(session_id), event)
        except Exception:  # a watcher's transport must never break a write
            log.exception("live event for session %s was not published", session_id)

    transaction.on_commit(send)
