"""Wire dialects of the candidate's socket: one runtime, several wire formats.

A dialect is a codec. `parse` turns a client frame into an internal command (a
`protocol.ClientMessage` whose type is one of the voice protocol's client messages);
`encode` renders an internal event (the voice protocol's server message kinds, as the
runtime and the consumer emit them) into a frame of the dialect, or None when the
dialect has nothing to say for it. A dialect object lives as long as its connection,
so it may keep state (the text dialect gathers a response's sentences).

- `VoiceDialect` (`/api/interview-socket`): the voice protocol itself, see docs/protocol.md.
- `TextDialect` (`/ws`, `realtime.dialects.text`): the text-era protocol.
"""

from __future__ import annotations

from typing import Any

from .. import protocol as p


class VoiceDialect:
    name = "voice"
    speaks = True  # the client receives the interviewer's audio on the socket
    auth_message = p.CLIENT_AUTH

    def parse(self, text: str) -> p.ClientMessage:
        return p.parse_client_message(text)

    def encode(self, kind: str, **payload: Any) -> str | None:
        return p.server_message(kind, **payload)

    def wire_name(self, command: str) -> str:
        """The name a client gave this command, for logs."""
        return command


def frame_type(frame: str) -> str:
    """The `type` of a frame this server encoded (both dialects start with it), without parsing."""
    if frame.startswith('{"type":"'):
        end = frame.find('"', 9)
        if end > 0:
            return frame[9:end]
    return "?"
