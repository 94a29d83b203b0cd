"""Recruiters' live view of a session: every event the session publishes, as JSON.

For the users the admin lets read sessions (the `view_interviewsession` permission,
checked per connection against a session that exists). Events arrive through the
channel layer group of the session, so the watcher may sit on any worker.

The first message is a snapshot (status, progress and every stored turn), sent after
joining the group: an event that lands between the two is in both, and the page keeps
turns by sequence, so nothing is missed or shown twice. A watcher that reconnects (or
whose events were dropped: channels-redis silently drops a group message to a full
channel) resyncs from a fresh snapshot; live events are best effort, the stored turns
are the record.
"""

from __future__ import annotations

import uuid

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from interviews.selectors import session_exists, session_watch_snapshot

from .consumer_base import RealtimeConsumer
from .groups import live_group
from .layer import LAYER_ERRORS, memberships

VIEW_PERMISSION = "interviews.view_interviewsession"


class LiveSessionConsumer(RealtimeConsumer, AsyncJsonWebsocketConsumer):
    session_id: str | None = None

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_active or not user.is_staff:
            await self.close(code=4003)
            return
        try:
            session_id = str(uuid.UUID(self.scope["url_route"]["kwargs"]["session_id"]))
        except ValueError:
            await self.close(code=4004)
            return
        allowed, exists = await database_sync_to_async(_may_watch)(user, session_id)
        if not allowed:
            await self.close(code=4003)
            return
        if not exists:
            await self.close(code=4004)
            return
        try:
            await memberships.add(self.channel_layer, live_group(session_id), self.channel_name)
        except LAYER_ERRORS:
            await self.close(code=4503)
            return
        self.session_id = session_id
        await self.accept()
        snapshot = await database_sync_to_async(session_watch_snapshot)(session_id=session_id)
        await self.send_json({"sessionId": session_id, **snapshot})

    async def cleanup(self):
        if self.session_id is not None:
            try:
                await memberships.discard(self.channel_layer, live_group(self.session_id), self.channel_name)
            except LAYER_ERRORS:
                pass  # the group entry expires on its own

    async def receive_json(self, content, **kwargs):
        pass  # watchers only listen

    async def session_event(self, message):
        try:
            await self.send_json({"sessionId": self.session_id, **message["event"]})
        except Exception:  # the watcher left under us; its disconnect cleans up
            pass


def _may_watch(user, session_id: str) -> tuple[bool, bool]:
    """The same permission the admin checks to show a session; then whether it exists."""
    if not user.has_perm(VIEW_PERMISSION):
        return False, False
    return True, session_exists(session_id=session_id)
