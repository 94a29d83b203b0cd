"""The baseline: a bare Channels echo consumer at /echo, served by the same daphne.

It does the least a protocol-shaped server can: for a client-audio-chunk it parses the
JSON, base64-decodes payload.data and answers a server-live-transcript ("word N", N the
chunks received so far), the same shape the interview socket answers; any other message
is answered at once with a server-echo. Same settings (and channel layer) as the project.
/echo-direct is the same consumer with the interview socket's dispatch (realtime/dispatch.py),
and /echo-loop that and the interview socket's message loop as well (the same module): what
the interview socket's own per-chunk work costs beyond Channels' plumbing.
"""

import base64
import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "interview_site.settings")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from channels.exceptions import StopConsumer  # noqa: E402

from realtime.dispatch import DirectDispatchMixin, MessageLoopMixin  # noqa: E402


class EchoConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.chunks = 0
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        message = json.loads(text_data)
        if message.get("type") == "client-audio-chunk":
            base64.b64decode(message["payload"]["data"], validate=True)
            self.chunks += 1
            reply = {"type": "server-live-transcript", "payload": {"transcript": f"word {self.chunks}"}}
        else:
            reply = {"type": "server-echo", "payload": message.get("payload", {})}
        await self.send(text_data=json.dumps(reply, separators=(",", ":")))


class DirectEchoConsumer(DirectDispatchMixin, EchoConsumer):
    pass


class LoopEchoConsumer(MessageLoopMixin, DirectEchoConsumer):
    async def __call__(self, scope, receive, send):
        self.scope, self.base_send, self.channel_layer = scope, send, None  # an echo needs no layer
        try:
            await self._dispatch_loop(receive)
        except StopConsumer:
            pass


application = ProtocolTypeRouter({"websocket": URLRouter([
    path("echo", EchoConsumer.as_asgi()),
    path("echo-direct", DirectEchoConsumer.as_asgi()),  # the proposed change, on the baseline
    path("echo-loop", LoopEchoConsumer.as_asgi()),
])})
