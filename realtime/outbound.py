"""How many bytes daphne still holds for a connection: the slow-reader gauge.

daphne hands every send to Twisted, whose transport buffers without limit when the
client stops reading. The ASGI `send` that daphne passes is `partial(handle_reply,
protocol)`, so the transport is reachable, under whatever middleware wrapped it
(Channels' session middleware keeps the inner one as `real_send`); anything else
(Channels' test communicator) reads as an empty buffer.
"""

from __future__ import annotations

import functools
import socket


class OutboundGauge:
    def __init__(self, transport=None):
        self._transport = transport

    @classmethod
    def for_send(cls, send) -> "OutboundGauge":
        for _ in range(8):  # a few layers of middleware at most
            if isinstance(send, functools.partial):
                protocol = send.args[0] if send.args else None
                return cls(getattr(protocol, "transport", None))
            send = getattr(getattr(send, "__self__", None), "real_send", None)
            if send is None:
                break
        return cls()

    def unsent_bytes(self) -> int:
        transport = self._transport
        if transport is None:
            return 0
        try:
            return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
        except AttributeError:  # not a Twisted file-descriptor transport
            return 0

    def limit_kernel_buffer(self, size: int) -> None:
        """Cap what the kernel queues for this client (Linux would grow it to megabytes), so
        a client that stops reading is seen by `unsent_bytes` soon, and costs little."""
        try:
            self._transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        except (AttributeError, OSError):
            pass
