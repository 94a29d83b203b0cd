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

Live words (`live-transcript`, up to 5 a second per session) are only published while
someone watches: the owner of a session would otherwise send them through the channel
layer (a Redis round trip) for every speaking candidate, with nobody listening. A
watcher tells the session's owner group that it watches, for WATCH_SECONDS, and renews
that every RENEW_SECONDS while it is connected (and at once when a new owner asks, see
`ask_watchers`); the owner keeps the interest per watcher (`LiveInterest`), so a watcher
whose worker died stops costing anything within WATCH_SECONDS. Everything else a session
publishes (status, turns, questions, results) is low-rate and always published.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from .db import database_call
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from interviews.selectors import session_exists, session_watch_snapshot

from .consumer_base import RealtimeConsumer
from .groups import live_group, owner_group
from .layer import LAYER_ERRORS, memberships

log = logging.getLogger(__name__)

VIEW_PERMISSION = "interviews.view_interviewsession"
WATCH_SECONDS = 30.0  # how long one announcement of interest lasts without renewal
RENEW_SECONDS = 10.0


def watchers_group(session_id: str) -> str:
    """The live views of a session (only they: the owner asks them to announce themselves)."""
    return f"session-watchers.{session_id}"


class LiveInterest:
    """Who watches one session, as its owner heard it: watcher channel -> when that
    interest expires (this process's monotonic clock; the message says for how long)."""

    def __init__(self, clock=time.monotonic):
        self._until: dict[str, float] = {}
        self._clock = clock

    def note(self, event: dict) -> None:
        channel, seconds = str(event.get("channel", "")), float(event.get("seconds", 0) or 0)
        if seconds > 0:
            self._until[channel] = self._clock() + min(seconds, WATCH_SECONDS)
        else:
            self._until.pop(channel, None)

    def active(self) -> bool:
        if not self._until:
            return False
        now = self._clock()
        for channel, until in list(self._until.items()):
            if until <= now:
                del self._until[channel]
        return bool(self._until)


async def ask_watchers(layer, session_id: str) -> None:
    """A connection took the session: whoever watches it announces itself to the owner at
    once (instead of at its next renewal). Best effort: renewals come anyway."""
    try:
        await layer.group_send(watchers_group(session_id), {"type": "session.watchers_wanted"})
    except LAYER_ERRORS as error:
        log.info("session %s: watchers not asked (%s); they renew within %.0fs", session_id,
                 type(error).__name__, RENEW_SECONDS)


class LiveSessionConsumer(RealtimeConsumer, AsyncJsonWebsocketConsumer):
    session_id: str | None = None
    renewer: asyncio.Task | None = None

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
        allowed, exists = await database_call(_may_watch)(user, session_id)
        if not allowed:
            await self.close(code=4003)
            return
        if not exists:
            await self.close(code=4004)
            return
        try:
            await memberships.add(self.channel_layer, live_group(session_id), self.channel_name)
            await memberships.add(self.channel_layer, watchers_group(session_id), self.channel_name)
        except LAYER_ERRORS:
            await self.close(code=4503)
            return
        self.session_id = session_id
        await self._announce(WATCH_SECONDS)  # before the snapshot: live words flow from here on
        self.renewer = asyncio.create_task(self._renew())
        await self.accept()
        snapshot = await database_call(session_watch_snapshot)(session_id=session_id)
        await self.send_json({"sessionId": session_id, **snapshot})

    async def cleanup(self):
        if self.renewer is not None:
            self.renewer.cancel()
        if self.session_id is not None:
            await self._announce(0)  # no longer watching (else it expires after WATCH_SECONDS)
            for group in (live_group(self.session_id), watchers_group(self.session_id)):
                try:
                    await memberships.discard(self.channel_layer, group, self.channel_name)
                except LAYER_ERRORS:
                    pass  # the group entry expires on its own

    async def _announce(self, seconds: float) -> None:
        """Tell the session's owner (on whichever worker) that this view watches, or no longer."""
        try:
            await self.channel_layer.group_send(owner_group(self.session_id), {
                "type": "session.watching", "channel": self.channel_name, "seconds": seconds})
        except LAYER_ERRORS as error:
            log.info("session %s: watch not announced (%s)", self.session_id, type(error).__name__)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            await self._announce(WATCH_SECONDS)

    async def session_watchers_wanted(self, message):
        """A new owner took the session: announce this view to it now."""
        await self._announce(WATCH_SECONDS)

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
