"""How many bytes daphne still holds for a connection: the slow-reader gauge.

daphne hands every send to Twisted, whose transport buffers without limit when the
client stops reading. The ASGI `send` that daphne passes is `partial(handle_reply,
protocol)`, so the transport is reachable; anything else (Channels' test
communicator) reads as an empty buffer.
"""

from __future__ import annotations

import functools


class OutboundGauge:
    def __init__(self, transport=None):
        self._transport = transport

    @classmethod
    def for_send(cls, send) -> "OutboundGauge":
        protocol = send.args[0] if isinstance(send, functools.partial) and send.args else None
        return cls(getattr(protocol, "transport", None))

    def unsent_bytes(self) -> int:
        transport = self._transport
        if transport is None:
            return 0
        try:
            return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
        except AttributeError:  # not a Twisted file-descriptor transport
            return 0
