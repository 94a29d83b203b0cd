"""Recruiters' live view of a session: every event the session publishes, as JSON.

Staff only (Django admin login). Events arrive through the channel layer group of the
session, so the watcher may sit on any worker.
"""

from __future__ import annotations

import uuid

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from .dispatch import DirectDispatchMixin
from .groups import live_group


class LiveSessionConsumer(DirectDispatchMixin, AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_active or not user.is_staff:
            await self.close(code=4003)
            return
        try:
            self.session_id = str(uuid.UUID(self.scope["url_route"]["kwargs"]["session_id"]))
        except ValueError:
            await self.close(code=4004)
            return
        await self.channel_layer.group_add(live_group(self.session_id), self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if getattr(self, "session_id", None):
            await self.channel_layer.group_discard(live_group(self.session_id), self.channel_name)

    async def receive_json(self, content, **kwargs):
        pass  # watchers only listen

    async def session_event(self, message):
        await self.send_json({"sessionId": self.session_id, **message["event"]})
