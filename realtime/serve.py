"""Start daphne with the transport limits this project relies on.

    python -m realtime.serve -b 0.0.0.0 -p 8000 interview_site.asgi:application

The same as `python -m daphne ...`, plus a cap on one WebSocket message: without it
autobahn buffers a frame of any size before the application sees it (and refuses it);
with it, a frame past the cap is closed with 1009 as it arrives. The cap sits above
REALTIME_MAX_MESSAGE_BYTES, so ordinary oversize frames still get the application's
clear `message_too_big`.
"""

import sys

from daphne.cli import CommandLineInterface

TRANSPORT_MAX_MESSAGE_BYTES = 1024 * 1024


def main(argv: list[str]) -> None:
    CommandLineInterface().run(["--websocket-max-message-size", str(TRANSPORT_MAX_MESSAGE_BYTES), *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
