"""The candidate's WebSocket: parse, validate, enqueue. Never waits on a provider.

Channels hands a consumer one message at a time, so nothing here blocks the message
loop: authentication runs as a task, audio goes to the runtime's queue, control
messages act at once. Every way the connection ends goes through `cleanup()`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter

from .db import database_call
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError

from interviews import services
from interviews.selectors import SessionAccessError

from . import metrics
from . import protocol as p
from . import shutdown
from .auth import AuthError, Identity, get_token_verifier
from .consumer_base import RealtimeConsumer
from .dialects import VoiceDialect
from .groups import live_group, owner_group
from .inbound import InboundLimits
from .layer import LAYER_ERRORS, memberships, with_one_retry
from .live import LiveInterest, ask_watchers
from .providers.registry import get_providers
from .runtime import RuntimeConfig, SessionRuntime, end_reason_from_candidate
from .sessions import session_holder, session_questions_ensure, session_take
from .supabase_reader import SupabaseUnavailable, session_load
from .supabase_writeback import writeback_schedule
from .socketlog import SocketLog, utf8_size
from .user_slots import cluster_slots

log = logging.getLogger(__name__)

MAX_CONNECTIONS_PER_USER = 5
TAKEOVER_WAIT_SECONDS = 1.5
TAKEOVER_POLL_SECONDS = 0.05  # how often a takeover looks whether a closing holder has flushed
RIVAL_CLAIM_WAIT_SECONDS = 1.0  # a rival that joined at the same moment claims within milliseconds
_connections_per_user: Counter[str] = Counter()

_ACCESS_CLOSE_CODES = {
    "session_not_found": p.CloseCode.SESSION_NOT_FOUND,
    "session_forbidden": p.CloseCode.SESSION_FORBIDDEN,
    "session_finished": p.CloseCode.SESSION_FINISHED,
}
_UNAVAILABLE = ("server_unavailable", "The interview service is busy right now; trying again in a few seconds will work.")


class InterviewConsumer(RealtimeConsumer, AsyncWebsocketConsumer):
    """The voice socket; with another `dialect_class`, another wire format of the same
    session (see realtime/dialects and realtime/text_socket.py)."""

    dialect_class = VoiceDialect
    # What cleanup() may find, however early the connection ended.
    runtime: SessionRuntime | None = None
    session_id: str | None = None
    user_id: str | None = None
    superseded = False
    closed = False
    auth_timer: asyncio.Task | None = None
    auth_task: asyncio.Task | None = None
    expiry_timer: asyncio.Task | None = None
    socket_log: SocketLog | None = None
    close_code: int | None = None
    finished = False  # the interview ended on this connection (it may stay open a moment)
    cluster_slot: str | None = None  # its slot in the per-user limit across workers (user_slots.py)

    async def connect(self):
        if shutdown.draining:  # this worker is stopping: refused at the handshake, the client retries
            await self.close()
            return
        self.limits = settings.REALTIME
        self.dialect = self.dialect_class()
        self.socket_log = SocketLog.for_connection(self.dialect.name)
        self.identity: Identity | None = None
        self.connection_number: int | None = None
        self.stalled_since: float | None = None
        self.inbound = InboundLimits(self.limits)
        self.live_interest = LiveInterest()  # recruiters watching this session (realtime/live.py)
        self.message_loop = asyncio.current_task()
        self.rivals: set[str] = set()  # connections that asked for the session while we joined it
        self.rivals_claimed: set[str] = set()
        self.rival_claimed = asyncio.Event()
        self.outbound.limit_kernel_buffer(self.limits["SOCKET_SEND_BUFFER_BYTES"])
        await self.accept()
        self.auth_timer = asyncio.create_task(self._expire_unauthenticated())
        log.info("connection opened from %s", _client_address(self.scope))

    async def disconnect(self, code):
        self.closed = True
        if self.close_code is None:
            self.close_code = code
        log.info("session %s: connection closed (code %s)", self.session_id or "-", code)

    async def cleanup(self) -> None:
        self.closed = True
        for timer in (self.auth_timer, self.expiry_timer):
            if timer is not None:
                timer.cancel()
        self._release_user_slot()  # the socket is gone: it no longer counts, even while we flush
        try:
            if self.auth_task is not None and not self.auth_task.done():
                # Let it settle: it may have marked the session live, which the runtime's stop undoes.
                await asyncio.wait([self.auth_task], timeout=TAKEOVER_WAIT_SECONDS + 3)
                self.auth_task.cancel()
                self._release_user_slot()  # it may have taken one meanwhile
            if self.runtime is not None:
                await self.runtime.stop(taken_over=self.superseded)
                writeback_schedule(self.session_id)  # ended or left: tell Supabase (background)
        finally:
            if self.session_id is not None:
                try:
                    await memberships.discard(self.channel_layer, owner_group(self.session_id), self.channel_name)
                except Exception:  # the layer being down must not keep anything alive
                    log.warning("session %s: could not leave the owner group", self.session_id)
            if self.socket_log is not None:
                self.socket_log.closed(self.close_code)

    async def shut_down(self) -> None:
        """The worker is stopping: 4012 at once (the candidate reconnects while we flush),
        then flush. The worker it lands on waits only until this session is marked
        disconnected (`_take_over`), not for all this worker's sessions."""
        await self._close(p.CloseCode.SERVER_RESTARTING)  # nothing more is sent once this is
        await self._cleanup_shielded()

    async def receive(self, text_data=None, bytes_data=None):
        if self.closed:  # queued behind our own close: nobody is listening any more
            return
        if self.socket_log is None:
            await self._receive(text_data, bytes_data)
            return
        started = time.monotonic()
        kind = "binary" if bytes_data is not None else "invalid"
        try:
            kind = await self._receive(text_data, bytes_data) or kind
        finally:
            size = len(bytes_data) if bytes_data is not None else utf8_size(text_data or "")
            self.socket_log.received(kind, size, started)

    async def _receive(self, text_data: str | None, bytes_data: bytes | None) -> str | None:
        """Handle one frame; returns its type as the client named it, once parsed (for the log)."""
        if bytes_data is not None:
            await self._error("binary_not_supported", "Send JSON text messages (see docs/protocol.md).")
            return None
        authenticated = self.runtime is not None
        refusal = self.inbound.check_message(text_data, authenticated=authenticated, backlog=self.inbound_backlog())
        if refusal is not None:
            code, message, close_code = refusal
            log.warning("session %s: %s; closing", self.session_id or "-", code)
            await self._refuse_or_error(code, message, close_code, authenticated=authenticated)
            return "refused"
        try:
            message = self.dialect.parse(text_data)
        except p.ProtocolError as error:
            await self._error(error.code, error.message)
            return "unknown" if error.code == "unknown_type" else None
        kind = self.dialect.wire_name(message.type)
        if not authenticated:
            await self._before_auth(message)
            return kind
        if self.finished and message.type != p.CLIENT_PING:
            await self._error("session_finished", "This interview has ended.")
            return kind
        if message.type in p.CONTROL_MESSAGES and not self.inbound.control_allowed():
            if self.inbound.error_throttle.ready():
                await self._error("rate_limited", "Too many control messages; this one was ignored.")
            return kind
        await self._HANDLERS[message.type](self, message)
        return kind

    # --- authentication ----------------------------------------------------------------

    async def _before_auth(self, message: p.ClientMessage) -> None:
        if message.type == p.CLIENT_PING and self.inbound.messages_before_auth == 1:  # one, first
            await self._on_ping(message)
            return
        if message.type != p.CLIENT_AUTH or self.auth_task is not None:
            await self._refuse("auth_required", "Send client-auth first, then wait for server-auth-success.",
                               p.CloseCode.AUTH_REQUIRED)
            return
        # It arrived in time; checking it may take a JWKS fetch or a database wait, which
        # must not hold up this loop (it still has to refuse a flood meanwhile).
        self.auth_timer.cancel()
        self.auth_task = asyncio.create_task(
            self._authenticate(message.payload["token"], message.payload["sessionId"]))

    async def _authenticate(self, token: str, session_id: str) -> None:
        try:
            await self._authenticate_or_refuse(token, session_id)
        except (DatabaseError, SupabaseUnavailable, *LAYER_ERRORS) as error:
            log.warning("auth for session %s failed: %s unavailable", p.log_safe(session_id), type(error).__name__)
            self._release_user_slot()
            await self._refuse(*_UNAVAILABLE, p.CloseCode.SERVER_UNAVAILABLE)
        except Exception:
            log.exception("auth for session %s failed", p.log_safe(session_id))
            self._release_user_slot()
            await self._refuse("server_error", "Something went wrong on our side; reconnecting will work.",
                               p.CloseCode.INTERNAL_ERROR)

    async def _authenticate_or_refuse(self, token: str, session_id: str) -> None:
        try:
            identity = await get_token_verifier().verify(token)
        except AuthError as error:
            log.info("auth refused for session %s: %s", p.log_safe(session_id), error.code)
            close = p.CloseCode.SERVER_UNAVAILABLE if error.code == "jwks_unavailable" else p.CloseCode.AUTH_FAILED
            await self._refuse(error.code, error.message, close)
            return
        if not await self._take_user_slot(identity.user_id):
            await self._refuse("too_many_connections", "Too many open connections for this user.", p.CloseCode.RATE_LIMITED)
            return
        self.identity = identity
        try:
            if settings.SUPABASE_SOURCE_ENABLED:  # the session and its questions come from Supabase
                await session_load(token=token, session_id=session_id, identity=identity)
            holder = await database_call(session_holder)(session_id=session_id, user_id=identity.user_id)
        except AuthError as error:  # Supabase did not accept the token we did
            self._release_user_slot()
            await self._refuse(error.code, error.message, p.CloseCode.AUTH_FAILED)
            return
        except SessionAccessError as error:
            self._release_user_slot()
            log.info("auth refused for session %s: %s", p.log_safe(session_id), error.code)
            await self._refuse_access(error, session_id)
            return
        # Join the owner group before anything else, so a connection that claims the
        # session after us (on any worker) always reaches us.
        session_id = self.session_id = str(uuid.UUID(session_id))  # one spelling, one group
        await memberships.add(self.channel_layer, owner_group(session_id), self.channel_name)
        # Live views announce themselves to the group's members; asked now, their answers
        # arrive while the session is taken, before the interviewer's first words.
        await ask_watchers(self.channel_layer, session_id)
        await self._take_over(session_id, holder=holder)
        if self.closed:  # the client left (or the worker is draining): a newer connection may hold it
            return
        try:
            snapshot, history, resumed = await database_call(session_take)(
                session_id=session_id, user_id=identity.user_id
            )
        except SessionAccessError as error:
            self._release_user_slot()
            log.info("auth refused for session %s: %s", p.log_safe(session_id), error.code)
            await self._refuse_access(error, session_id)
            return
        self.connection_number = snapshot.connection_number
        if self.closed:
            await self._give_back(session_id)
            return
        writeback_schedule(session_id)  # live, in Supabase too (background; no-op unless configured)
        config = RuntimeConfig.from_settings(self.limits)
        providers = get_providers()
        snapshot = await session_questions_ensure(snapshot, interviewer=providers.interviewer,
                                                  count=self.limits["DRAFTED_QUESTIONS"],
                                                  deadline_s=self.limits["LLM_DEADLINE_SECONDS"])
        if self.socket_log is not None:
            self.socket_log.session_id = session_id
        self.runtime = SessionRuntime(
            snapshot=snapshot,
            providers=self.session_providers(providers),
            config=config,
            send=self._send_text,
            encode=self.dialect.encode,
            publish=self._publish_live,
            watched=self.live_interest.active,
            close=self._runtime_close,
        )
        if self.closed:  # gone meanwhile: cleanup() stops the runtime; never claim over a newer connection
            return
        # One owner, always: whoever joined at the same moment with a lower number lets go.
        await with_one_retry(self.channel_layer.group_send, owner_group(session_id), {
            "type": "session.claimed", "channel": self.channel_name, "connection": self.connection_number})
        if self.superseded:
            await self._let_go()
        elif self.rivals - self.rivals_claimed:
            await self._await_rival_claims()
        if self.closed:
            return
        log.info("session %s: authenticated user %s (%s)", self.session_id, self.user_id,
                 "resumed" if resumed else "new")
        await self._emit(
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
            expiresAt=identity.expires_at,
        )
        self.expiry_timer = asyncio.create_task(self._expire_token())
        await self.runtime.start(resumed=resumed)

    async def _take_over(self, session_id: str, *, holder: int | None) -> None:
        """Ask whoever holds the session (on any worker) to let go.

        For a live session, waits briefly until that holder has written what it had, so
        the conversation loaded next is complete (a reconnect often finds its own
        half-open socket here). A paused one has nothing in flight.
        """
        wait = holder is not None
        reply = await self.channel_layer.new_channel() if wait else None
        await with_one_retry(self.channel_layer.group_send, owner_group(session_id),
                              {"type": "session.takeover", "channel": self.channel_name, "reply": reply})
        if not wait:
            return
        released = asyncio.ensure_future(self.channel_layer.receive(reply))
        try:
            async with asyncio.timeout(TAKEOVER_WAIT_SECONDS):
                while not released.done():
                    await asyncio.wait([released], timeout=TAKEOVER_POLL_SECONDS)
                    # A connection that is already closing (a draining worker, a dropped
                    # socket) cannot answer; it marks the session disconnected once flushed.
                    # A newer holder (a rival that joined meanwhile) hears our claim instead.
                    if not released.done() and await database_call(session_holder)(
                            session_id=session_id, user_id=self.identity.user_id) != holder:
                        break
        except TimeoutError:  # its worker is gone: the database already has what it wrote
            log.info("session %s: no answer from the previous connection; taking over", session_id)
        finally:
            released.cancel()

    async def _give_back(self, session_id: str) -> None:
        """This connection took the session but closed before it could serve it: mark it
        disconnected (a no-op if a newer connection has taken it since), never claim it."""
        log.info("session %s: connection closed while authenticating; not taking the session", session_id)
        await database_call(services.session_disconnect)(
            session_id=session_id, connection_number=self.connection_number)

    async def _take_user_slot(self, user_id: str) -> bool:
        """Count this connection against its user: in this worker first (before any wait,
        so two of its connections cannot both pass), then across workers when Redis is
        configured (realtime/user_slots.py)."""
        if _connections_per_user[user_id] >= MAX_CONNECTIONS_PER_USER:
            return False
        _connections_per_user[user_id] += 1
        self.user_id = user_id
        shared = cluster_slots()
        if shared is not None:
            slot = await shared.take(user_id, MAX_CONNECTIONS_PER_USER)
            if slot is False:
                self._release_user_slot()
                return False
            self.cluster_slot = slot or None  # None: Redis is away, this worker's count applies
        return True

    def _release_user_slot(self) -> None:
        if self.cluster_slot is not None:  # even after the local slot went (a take still in flight)
            shared = cluster_slots()
            if shared is not None:
                shared.release(self.cluster_slot)
            self.cluster_slot = None
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

    async def _expire_token(self) -> None:
        """An access token is good until it expires; past that, only a renewed one keeps the socket."""
        while True:
            await asyncio.sleep(max(0.0, self.identity.expires_at - time.time()))
            if time.time() >= self.identity.expires_at:
                break
        log.info("session %s: access token expired and was not renewed", self.session_id)
        await self._error("token_expired", "Your access token expired; sign in again to continue.")
        await self._close(p.CloseCode.AUTH_FAILED)

    async def _refuse(self, code: str, message: str, close_code: int) -> None:
        await self._emit(p.SERVER_AUTH_FAILURE, error=message, code=code)
        await self._close(close_code)

    async def _refuse_access(self, error: SessionAccessError, session_id: str) -> None:
        """The token is good but the session may not be joined (not found, another user's, ended)."""
        await self._refuse(error.code, error.message, _ACCESS_CLOSE_CODES[error.code])

    def session_providers(self, providers):
        """The providers this dialect's sessions run with (the voice socket: all of them)."""
        return providers

    async def _runtime_close(self, code: int) -> None:
        """The runtime closes the connection (the interview ended)."""
        await self._close(code)

    async def _refuse_or_error(self, code: str, message: str, close_code: int, *, authenticated: bool) -> None:
        if authenticated:
            await self._error(code, message)
            await self._close(close_code)
        else:
            await self._refuse(code, message, close_code)

    # --- after authentication ----------------------------------------------------------

    async def _on_audio(self, message: p.ClientMessage) -> None:
        verdict = self.inbound.check_audio(len(message.audio))
        if verdict == "abuse":
            log.warning("session %s: audio far above real time; closing", self.session_id)
            await self._error("rate_limited", "Audio arrived far faster than real time.")
            await self._close(p.CloseCode.RATE_LIMITED)
            return
        if verdict == "dropped":
            metrics.AUDIO_DROPPED.labels("faster_than_real_time").inc(len(message.audio))
            if self.inbound.error_throttle.ready():
                await self._error("rate_limited", "Audio is arriving faster than real time; chunks were dropped.")
            return
        if not self.runtime.feed_audio(message.audio):
            metrics.AUDIO_DROPPED.labels("worker_behind").inc(len(message.audio))
            if self.inbound.error_throttle.ready():
                await self._error("audio_overloaded", "The server is behind on your audio; chunks were dropped.")

    async def _on_auth_again(self, message: p.ClientMessage) -> None:
        await self._error("already_authenticated", "This connection is already authenticated.")

    async def _on_token_refresh(self, message: p.ClientMessage) -> None:
        try:
            identity = await get_token_verifier().verify(message.payload["token"])
        except AuthError as error:
            await self._error(error.code, error.message)
            return
        if identity.user_id != self.identity.user_id:
            await self._error("token_wrong_user", "The new token belongs to another user.")
            return
        self.identity = identity
        await self._emit(p.SERVER_TOKEN_REFRESHED, expiresAt=identity.expires_at)

    async def _on_interrupt(self, message: p.ClientMessage) -> None:
        with metrics.BARGE_IN.time():
            await self.runtime.interrupt()

    async def _on_text(self, message: p.ClientMessage) -> None:
        await self.runtime.submit_text(message.payload["text"])

    async def _on_pause(self, message: p.ClientMessage) -> None:
        await self.runtime.pause()

    async def _on_resume(self, message: p.ClientMessage) -> None:
        await self.runtime.resume()

    async def _on_end(self, message: p.ClientMessage) -> None:
        await self.runtime.end(end_reason_from_candidate(message.payload["reason"]))

    async def _on_ping(self, message: p.ClientMessage) -> None:
        # Browsers cannot see WebSocket pings: this lets the page notice a half-open socket.
        await self._emit(p.SERVER_PONG, id=message.payload["id"])

    _HANDLERS = {
        p.CLIENT_AUTH: _on_auth_again,
        p.CLIENT_AUDIO_CHUNK: _on_audio,
        p.CLIENT_INTERRUPT: _on_interrupt,
        p.CLIENT_TEXT_MESSAGE: _on_text,
        p.CLIENT_PAUSE: _on_pause,
        p.CLIENT_RESUME: _on_resume,
        p.CLIENT_END: _on_end,
        p.CLIENT_PING: _on_ping,
        p.CLIENT_TOKEN_REFRESH: _on_token_refresh,
    }

    # --- channel layer -----------------------------------------------------------------

    async def _await_rival_claims(self) -> None:
        """Another connection asked for the session while this one was joining (two joins
        at once): say nothing until its claim shows which of us keeps it, so the one that
        loses never speaks a word."""
        try:
            async with asyncio.timeout(RIVAL_CLAIM_WAIT_SECONDS):
                while self.rivals - self.rivals_claimed and not self.superseded and not self.closed:
                    self.rival_claimed.clear()
                    await self.rival_claimed.wait()
        except TimeoutError:  # it never got as far as taking the session
            pass
        if self.superseded:
            await self._let_go()

    async def session_takeover(self, event):
        if event["channel"] == self.channel_name:
            return
        if self.runtime is None:
            if self.session_id is not None:  # joining too: its claim decides (_await_rival_claims)
                self.rivals.add(event["channel"])
                # and ours decides for it: it may have joined the group after we asked
                try:
                    await self.channel_layer.send(event["channel"], {"type": "session.joining",
                                                                     "channel": self.channel_name})
                except LAYER_ERRORS:
                    log.warning("session %s: could not tell a rival it is joining too", self.session_id)
            return
        log.info("session %s: taken over by another connection", self.session_id)
        self.superseded = True
        await self._let_go(reply=event.get("reply"))

    async def session_joining(self, event):
        """A connection that was joining when we asked for the session: wait for its claim
        before speaking (_await_rival_claims)."""
        if self.runtime is None and event["channel"] != self.channel_name:
            self.rivals.add(event["channel"])

    async def session_end_requested(self, event):
        """A recruiter ended the session (realtime/control.py): end it as `client-end`
        would, so the candidate is told why, then tell the requester."""
        if self.runtime is None or self.superseded or self.closed:
            return  # not the holder: the one that is answers
        log.info("session %s: ended by a recruiter", self.session_id)
        if event.get("reply"):  # held here: the requester now waits for the end, not for a dead worker
            try:
                await self.channel_layer.send(event["reply"], {"type": "session.end_accepted"})
            except Exception:
                log.warning("session %s: could not acknowledge the end request", self.session_id)
        await self.runtime.end(str(event.get("reason", ""))[:200])
        if event.get("reply"):
            try:
                await self.channel_layer.send(event["reply"], {"type": "session.ended", "ended": self.closed})
            except Exception:  # the requester gives up on its own and ends it in the database
                log.warning("session %s: could not confirm the end to the recruiter", self.session_id)

    async def session_claimed(self, event):
        """Another connection took the session; the highest connection number keeps it."""
        if event["channel"] != self.channel_name:
            self.rivals_claimed.add(event["channel"])
            self.rival_claimed.set()
        if event["channel"] == self.channel_name or self.connection_number is None:
            return  # ours, or we have not taken it yet (our own claim will be the higher)
        if event["connection"] > self.connection_number and not self.superseded:
            log.info("session %s: connection %s superseded by %s", self.session_id,
                     self.connection_number, event["connection"])
            self.superseded = True
            if self.runtime is not None:
                await self._let_go()
            # else: _authenticate sees `superseded` after its claim and lets go itself

    async def _let_go(self, reply: str | None = None) -> None:
        if self.closed:
            return  # cleanup() stops the runtime, without marking the session disconnected
        await self._error("session_taken_over", "This interview was opened in another window; this one is closed.")
        if self.runtime is not None:
            await self.runtime.stop(taken_over=True)  # its writes are flushed when this returns
        if reply:
            try:
                await self.channel_layer.send(reply, {"type": "session.released"})
            except Exception:  # the new owner stops waiting on its own after a moment
                log.warning("session %s: could not tell the new owner it was released", self.session_id)
        await self._close(p.CloseCode.TAKEN_OVER)

    async def session_watching(self, event):
        """A recruiter's live view watches this session, or stopped (realtime/live.py)."""
        self.live_interest.note(event)

    async def _publish_live(self, event: dict) -> None:
        await self.channel_layer.group_send(live_group(self.session_id), {"type": "session.event", "event": event})

    # --- output ------------------------------------------------------------------------

    async def _emit(self, kind: str, **payload) -> None:
        """An event of the voice protocol's, as this connection's dialect renders it."""
        frame = self.dialect.encode(kind, **payload)
        if frame is not None:
            await self._send_text(frame)

    async def _send_text(self, text: str) -> None:
        if self.closed:
            return
        if self.outbound.unsent_bytes() > self.limits["OUTBOUND_HIGH_WATER_BYTES"] and not await self._reader_caught_up():
            return
        self.stalled_since = None
        try:
            await self.send(text_data=text)
        except Exception:  # the client went away under us (autobahn's Disconnected): nothing to tell it
            self.closed = True
            return
        if self.socket_log is not None:
            self.socket_log.sent(text)

    async def _reader_caught_up(self) -> bool:
        """The client is not reading. Producers (the interviewer's speech) wait for it;
        replies from the message loop are dropped, so the loop goes on refusing floods.
        Either way the connection is closed once it has been stuck for SLOW_READER_SECONDS
        (it has caught up when a quarter of the high-water mark is left unsent)."""
        if self.stalled_since is None:
            self.stalled_since = time.monotonic()
        # Another sender may clear stalled_since while this one waits: keep our own copy.
        stalled_since = self.stalled_since
        may_wait = asyncio.current_task() is not self.message_loop
        while not self.closed:
            if time.monotonic() - stalled_since > self.limits["SLOW_READER_SECONDS"]:
                log.warning("session %s: client stopped reading (%d bytes unsent); closing",
                            self.session_id or "-", self.outbound.unsent_bytes())
                await self._close(p.CloseCode.SLOW_READER)
                return False
            if self.outbound.unsent_bytes() <= self.limits["OUTBOUND_HIGH_WATER_BYTES"] // 4:
                return True
            if not may_wait:
                return False
            await asyncio.sleep(0.05)
        return False

    async def _error(self, code: str, message: str) -> None:
        await self._emit(p.SERVER_ERROR, code=code, error=message)

    async def _close(self, code: int) -> None:
        if not self.closed:
            self.closed = True
            self.close_code = int(code)
            metrics.CLOSED_BY_SERVER.labels(str(int(code))).inc()
            try:
                await self.close(code=int(code))
            except Exception:  # already gone
                pass


def user_slots_in_use() -> int:
    return sum(_connections_per_user.values())


def _client_address(scope) -> str:
    client = scope.get("client") or ("?", 0)
    return f"{client[0]}:{client[1]}"
