"""The candidate's WebSocket: parse, validate, enqueue. Never waits on a provider.

Channels hands a consumer one message at a time, so everything after authentication
returns at once: audio goes to the runtime's queue, control messages act immediately.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from interviews.selectors import SessionAccessError

from . import protocol as p
from .auth import AuthError, get_token_verifier
from .dispatch import DirectDispatchMixin
from .groups import live_group, owner_group
from .limits import Throttle, TokenBucket
from .providers.registry import get_providers
from .runtime import END_BY_CANDIDATE, RuntimeConfig, SessionRuntime
from .sessions import session_is_live, session_take

log = logging.getLogger(__name__)

MAX_CONNECTIONS_PER_USER = 5
TAKEOVER_WAIT_SECONDS = 1.5
_connections_per_user: Counter[str] = Counter()

_ACCESS_CLOSE_CODES = {
    "session_not_found": p.CloseCode.SESSION_NOT_FOUND,
    "session_forbidden": p.CloseCode.SESSION_FORBIDDEN,
    "session_finished": p.CloseCode.SESSION_FINISHED,
}


class InterviewConsumer(DirectDispatchMixin, AsyncWebsocketConsumer):
    runtime: SessionRuntime | None = None

    async def connect(self):
        self.limits = settings.REALTIME
        self.session_id: str | None = None
        self.user_id: str | None = None
        self.closed = False
        self.audio_bucket = TokenBucket(
            rate=self.limits["AUDIO_BYTES_PER_SECOND"],
            capacity=self.limits["AUDIO_BYTES_PER_SECOND"] * self.limits["AUDIO_BURST_SECONDS"],
        )
        self.rejected_audio_bytes = 0
        self.error_throttle = Throttle(1.0)
        await self.accept()
        self.auth_timer = asyncio.create_task(self._expire_unauthenticated())
        log.info("connection opened from %s", _client_address(self.scope))

    async def disconnect(self, code):
        self.closed = True
        self.auth_timer.cancel()
        try:
            if self.session_id is not None:
                await self.channel_layer.group_discard(owner_group(self.session_id), self.channel_name)
        except Exception:  # the layer being down must not keep the runtime alive
            log.exception("session %s: could not leave the owner group", self.session_id)
        finally:
            self._release_user_slot()
            if self.runtime is not None:
                await self.runtime.stop()
        log.info("session %s: connection closed (code %s)", self.session_id or "-", code)

    async def receive(self, text_data=None, bytes_data=None):
        if self.closed:  # queued behind our own close: nobody is listening any more
            return
        if bytes_data is not None:
            await self._error("binary_not_supported", "Send JSON text messages (see docs/protocol.md).")
            return
        if len(text_data) > self.limits["MAX_MESSAGE_BYTES"]:
            log.warning("session %s: message of %d bytes refused", self.session_id or "-", len(text_data))
            await self._error("message_too_big", f"Messages may be at most {self.limits['MAX_MESSAGE_BYTES']} bytes.")
            await self._close(p.CloseCode.MESSAGE_TOO_BIG)
            return
        try:
            message = p.parse_client_message(text_data)
        except p.ProtocolError as error:
            await self._error(error.code, error.message)
            return
        if self.runtime is None:
            await self._before_auth(message)
            return
        handler = self._HANDLERS.get(message.type)
        await handler(self, message)

    # --- authentication ----------------------------------------------------------------

    async def _before_auth(self, message: p.ClientMessage) -> None:
        if message.type == p.CLIENT_PING:
            await self._on_ping(message)
            return
        if message.type != p.CLIENT_AUTH:
            await self._refuse("auth_required", "Send client-auth as the first message.", p.CloseCode.AUTH_REQUIRED)
            return
        # It arrived in time; checking it may take a JWKS fetch or a database wait.
        self.auth_timer.cancel()
        await self._authenticate(message.payload["token"], message.payload["sessionId"])

    async def _authenticate(self, token: str, session_id: str) -> None:
        try:
            identity = await get_token_verifier().verify(token)
        except AuthError as error:
            log.info("auth refused for session %s: %s", session_id[:64], error.code)
            close = p.CloseCode.SERVER_UNAVAILABLE if error.code == "jwks_unavailable" else p.CloseCode.AUTH_FAILED
            await self._refuse(error.code, error.message, close)
            return
        if not self._take_user_slot(identity.user_id):
            await self._refuse("too_many_connections", "Too many open connections for this user.", p.CloseCode.RATE_LIMITED)
            return
        try:
            live = await database_sync_to_async(session_is_live)(session_id=session_id, user_id=identity.user_id)
            await self._take_over(session_id, wait=live)
            snapshot, history, resumed = await database_sync_to_async(session_take)(
                session_id=session_id, user_id=identity.user_id
            )
        except SessionAccessError as error:
            self._release_user_slot()
            log.info("auth refused for session %s: %s", session_id[:64], error.code)
            await self._refuse(error.code, error.message, _ACCESS_CLOSE_CODES[error.code])
            return
        self.session_id = snapshot.session_id
        await self.channel_layer.group_add(owner_group(self.session_id), self.channel_name)
        config = RuntimeConfig.from_settings(self.limits)
        self.runtime = SessionRuntime(
            snapshot=snapshot,
            providers=get_providers(),
            config=config,
            send=self._send_text,
            publish=self._publish_live,
            close=self._close,
        )
        log.info("session %s: authenticated user %s (%s)", self.session_id, self.user_id,
                 "resumed" if resumed else "new")
        await self._send_text(p.server_message(
            p.SERVER_AUTH_SUCCESS,
            message="Authenticated successfully. Ready to begin.",
            sessionId=self.session_id,
            resumed=resumed,
            audio={
                "input": {"encoding": "pcm16le", "sampleRate": config.input_sample_rate, "channels": 1},
                "output": {"encoding": "pcm16le", "sampleRate": config.output_sample_rate, "channels": 1},
            },
            questionIndex=snapshot.question_index,
            questionCount=len(snapshot.questions),
            status=snapshot.status,
            conversation=history,
        ))
        await self.runtime.start(resumed=resumed)

    async def _take_over(self, session_id: str, *, wait: bool) -> None:
        """One live connection owns a session: whoever holds it (on any worker) lets go.

        For a live session, waits briefly until the old owner has written what it had, so
        the conversation loaded next is complete (a reconnect often finds its own
        half-open socket here). A paused one has nothing in flight.
        """
        reply = await self.channel_layer.new_channel() if wait else None
        await self.channel_layer.group_send(
            owner_group(session_id), {"type": "session.takeover", "channel": self.channel_name, "reply": reply}
        )
        if not wait:
            return
        try:
            async with asyncio.timeout(TAKEOVER_WAIT_SECONDS):
                await self.channel_layer.receive(reply)
        except TimeoutError:  # its worker is gone: the database already has what it wrote
            log.info("session %s: no answer from the previous connection; taking over", session_id)

    def _take_user_slot(self, user_id: str) -> bool:
        """Count this connection against its user (in this worker) before any wait."""
        if _connections_per_user[user_id] >= MAX_CONNECTIONS_PER_USER:
            return False
        _connections_per_user[user_id] += 1
        self.user_id = user_id
        return True

    def _release_user_slot(self) -> None:
        if self.user_id is None:
            return
        _connections_per_user[self.user_id] -= 1
        if _connections_per_user[self.user_id] <= 0:
            del _connections_per_user[self.user_id]
        self.user_id = None

    async def _expire_unauthenticated(self) -> None:
        await asyncio.sleep(self.limits["AUTH_TIMEOUT_SECONDS"])
        if self.runtime is None and not self.closed:
            log.info("connection closed: no client-auth within %.0fs", self.limits["AUTH_TIMEOUT_SECONDS"])
            await self._refuse("auth_timeout", "No client-auth message arrived in time.", p.CloseCode.AUTH_TIMEOUT)

    async def _refuse(self, code: str, message: str, close_code: int) -> None:
        await self._send_text(p.server_message(p.SERVER_AUTH_FAILURE, error=message, code=code))
        await self._close(close_code)

    # --- after authentication ----------------------------------------------------------

    async def _on_audio(self, message: p.ClientMessage) -> None:
        pcm = message.audio
        if not self.audio_bucket.take(len(pcm)):
            self.rejected_audio_bytes += len(pcm)
            if self.rejected_audio_bytes > self.limits["AUDIO_ABUSE_BYTES"]:
                log.warning("session %s: audio far above real time; closing", self.session_id)
                await self._close(p.CloseCode.RATE_LIMITED)
                return
            if self.error_throttle.ready():
                await self._error("rate_limited", "Audio is arriving faster than real time; chunks were dropped.")
            return
        self.rejected_audio_bytes = 0
        if not self.runtime.feed_audio(pcm) and self.error_throttle.ready():
            await self._error("audio_overloaded", "The server is behind on your audio; chunks were dropped.")

    async def _on_auth_again(self, message: p.ClientMessage) -> None:
        await self._error("already_authenticated", "This connection is already authenticated.")

    async def _on_interrupt(self, message: p.ClientMessage) -> None:
        await self.runtime.interrupt()

    async def _on_text(self, message: p.ClientMessage) -> None:
        await self.runtime.submit_text(message.payload["text"])

    async def _on_pause(self, message: p.ClientMessage) -> None:
        await self.runtime.pause()

    async def _on_resume(self, message: p.ClientMessage) -> None:
        await self.runtime.resume()

    async def _on_end(self, message: p.ClientMessage) -> None:
        await self.runtime.end(message.payload["reason"] or END_BY_CANDIDATE)

    async def _on_ping(self, message: p.ClientMessage) -> None:
        # Browsers cannot see WebSocket pings: this lets the page notice a half-open socket.
        await self._send_text(p.server_message(p.SERVER_PONG, id=message.payload["id"]))

    _HANDLERS = {
        p.CLIENT_AUTH: _on_auth_again,
        p.CLIENT_AUDIO_CHUNK: _on_audio,
        p.CLIENT_INTERRUPT: _on_interrupt,
        p.CLIENT_TEXT_MESSAGE: _on_text,
        p.CLIENT_PAUSE: _on_pause,
        p.CLIENT_RESUME: _on_resume,
        p.CLIENT_END: _on_end,
        p.CLIENT_PING: _on_ping,
    }

    # --- channel layer -----------------------------------------------------------------

    async def session_takeover(self, event):
        if event["channel"] == self.channel_name or self.runtime is None:
            return
        log.info("session %s: taken over by another connection", self.session_id)
        await self._error("session_taken_over", "This interview was opened in another window; this one is closed.")
        await self.runtime.stop(taken_over=True)  # its writes are flushed when this returns
        if event.get("reply"):
            await self.channel_layer.send(event["reply"], {"type": "session.released"})
        await self._close(p.CloseCode.TAKEN_OVER)

    async def _publish_live(self, event: dict) -> None:
        await self.channel_layer.group_send(live_group(self.session_id), {"type": "session.event", "event": event})

    # --- output ------------------------------------------------------------------------

    async def _send_text(self, text: str) -> None:
        if not self.closed:
            await self.send(text_data=text)

    async def _error(self, code: str, message: str) -> None:
        await self._send_text(p.server_message(p.SERVER_ERROR, code=code, error=message))

    async def _close(self, code: int) -> None:
        if not self.closed:
            self.closed = True
            await self.close(code=int(code))


def _client_address(scope) -> str:
    client = scope.get("client") or ("?", 0)
    return f"{client[0]}:{client[1]}"
