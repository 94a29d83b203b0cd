"""One OpenAI Realtime (GA) WebSocket connection: opened lazily, written in order, read by one task.

Both the streaming transcription and the speech-to-speech session sit on this. It owns
the `client.realtime.connect(...)` connection of the openai SDK, sends `session.update`
first thing after connecting, serializes every outgoing event through one bounded outbox
(so a synchronous caller, such as an interrupt, can still queue events in order), and
hands each incoming event (a dict) to its owner.

A connection that fails (an `error` event, a dropped socket, a frame that is not JSON,
a failed connect) is closed and remembered as `failure`; `failures` counts them so each
role can report a failure once. Nothing reconnects by itself: the next caller that needs
the connection opens a new one (not before `retry_after_s`, so a broken configuration
does not turn into a connection per audio chunk). The API key never appears in an
exception or a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Callable

log = logging.getLogger(__name__)

OPENAI_SAMPLE_RATE = 24000  # the only rate of GA audio/pcm
PCM_FORMAT = {"type": "audio/pcm", "rate": OPENAI_SAMPLE_RATE}
# Errors that only mean a race with the server lost harmlessly (the response had already
# ended; voice activity detection had already committed the buffer).
BENIGN_ERROR_CODES = frozenset({"response_cancel_not_active", "input_audio_buffer_commit_empty"})
OUTBOX_EVENTS = 256  # about 10 s of 40 ms audio chunks


class RealtimeError(RuntimeError):
    """The realtime connection failed or refused a request."""


class Pulse:
    """Wakes every coroutine waiting for 'something changed' (no lost wake-ups on one loop)."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future] = set()

    def notify(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait(self, timeout_s: float) -> None:
        """Until the next notify(); TimeoutError after `timeout_s`."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        finally:
            self._waiters.discard(waiter)


class RealtimeLink:
    """A lazily opened realtime connection with ordered sends and a receive task."""

    def __init__(self, client, *, connect_kwargs: dict, session: dict,
                 on_event: Callable[[dict], None] | None = None,
                 on_failure: Callable[[Exception], None] | None = None, connect_timeout_s: float = 10.0,
                 close_timeout_s: float = 1.0, retry_after_s: float = 1.0):
        self._client = client
        self._connect_kwargs = connect_kwargs  # model=... or extra_query={"intent": "transcription"}
        self._session = session
        self.on_event = on_event  # every event but fatal errors, on the receive task
        self.on_failure = on_failure  # the connection failed (after it was marked so)
        self._connect_timeout_s = connect_timeout_s
        self._close_timeout_s = close_timeout_s
        self._retry_after_s = retry_after_s
        self.state = "idle"  # idle | connecting | open | failed | closed
        self.epoch = 0  # which connection is (or was last) open
        self.failure: Exception | None = None
        self.failures = 0
        self._retry_at = 0.0
        self._connection = None
        self._outbox: asyncio.Queue | None = None
        self._connecting: asyncio.Task | None = None
        self._reader: asyncio.Task | None = None
        self._writer: asyncio.Task | None = None
        self._closing: set[asyncio.Task] = set()

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    # --- opening ------------------------------------------------------------------------

    def start(self) -> None:
        """Begin connecting in the background, unless open, connecting, closed or backing off."""
        if self.state in ("open", "connecting", "closed") or time.monotonic() < self._retry_at:
            return
        self.state = "connecting"
        self._connecting = asyncio.create_task(self._connect(), name="openai-realtime-connect")

    async def open(self) -> None:
        """Connected now, or RealtimeError saying why not (an explicit open skips the back-off)."""
        if self.state == "closed":
            raise RealtimeError("the OpenAI Realtime session is closed")
        if self.state != "open":
            self._retry_at = 0.0
            self.start()
            await asyncio.shield(self._connecting)  # a cancelled caller must not kill a shared connect
        if self.state != "open":
            raise RealtimeError("could not connect to the OpenAI Realtime API") from self.failure

    async def _connect(self) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                connection = await self._client.realtime.connect(
                    max_retries=0,  # the runtime's fallback is the retry
                    websocket_connection_options={"open_timeout": self._connect_timeout_s,
                                                  "close_timeout": self._close_timeout_s},
                    **self._connect_kwargs,
                ).enter()
                try:
                    await connection.send({"type": "session.update", "session": self._session})
                except BaseException:
                    await connection.close()
                    raise
        except asyncio.CancelledError:
            raise
        except Exception as error:  # refused handshake (401, 429, 5xx), timeout, unreachable host
            reason = self._describe(error)
            self._record_failure(RealtimeError(f"could not connect to the OpenAI Realtime API: {reason}"))
            return
        if self.state != "connecting":  # closed meanwhile
            await connection.close()
            return
        self.epoch += 1
        self._connection = connection
        self._outbox = asyncio.Queue(maxsize=OUTBOX_EVENTS)
        self.state = "open"
        epoch = self.epoch
        self._reader = asyncio.create_task(self._read(connection, epoch), name="openai-realtime-read")
        self._writer = asyncio.create_task(self._write(connection, self._outbox, epoch), name="openai-realtime-write")

    # --- sending ------------------------------------------------------------------------

    async def send(self, event: dict) -> None:
        """Queue an event for the open connection (waits while the outbox is full)."""
        if self.state != "open":
            raise RealtimeError("the OpenAI Realtime connection is not open") from self.failure
        await self._outbox.put(event)

    def send_nowait(self, event: dict) -> bool:
        """Queue an event from synchronous code; False when there is no open connection."""
        if self.state != "open":
            return False
        try:
            self._outbox.put_nowait(event)
        except asyncio.QueueFull:
            self._lose(self.epoch, RealtimeError("the OpenAI Realtime connection is not taking events"))
            return False
        return True

    async def _write(self, connection, outbox: asyncio.Queue, epoch: int) -> None:
        try:
            while True:
                event = await outbox.get()
                await connection.send(event)  # through the SDK, which serializes the event
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._lose(epoch, RealtimeError(f"could not send to the OpenAI Realtime API: {self._describe(error)}"))

    # --- receiving ----------------------------------------------------------------------

    async def _read(self, connection, epoch: int) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                raw = await connection.recv_bytes()
                event = _parse(raw)
                if event["type"] == "error" and _error_code(event) not in BENIGN_ERROR_CODES:
                    raise RealtimeError(f"the OpenAI Realtime API reported an error: {_error_summary(event)}")
                self.on_event(event)
        except asyncio.CancelledError:
            raise
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else 1006
            failure: Exception = RealtimeError(f"the OpenAI Realtime connection was closed (code {code})")
        except RealtimeError as error:
            failure = error
        except Exception as error:  # a bug in an owner's handler must not leave a zombie reader
            log.exception("OpenAI Realtime event handling failed")
            failure = RealtimeError(f"OpenAI Realtime event handling failed: {type(error).__name__}")
        self._lose(epoch, failure)

    # --- failing and closing ------------------------------------------------------------

    def _record_failure(self, failure: Exception) -> None:
        self.failure = failure
        self.failures += 1
        self._retry_at = time.monotonic() + self._retry_after_s
        if self.state != "closed":
            self.state = "failed"
        log.warning("OpenAI Realtime: %s", failure)
        if self.on_failure is not None:
            self.on_failure(failure)

    def _lose(self, epoch: int, failure: Exception) -> None:
        """The connection of `epoch` is unusable: close it in the background and say so."""
        if epoch != self.epoch or self.state != "open":
            return
        connection, self._connection = self._connection, None
        for task in (self._reader, self._writer):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        self._reader = self._writer = None
        self._outbox = None
        self._record_failure(failure)
        closing = asyncio.create_task(self._close_connection(connection), name="openai-realtime-close")
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def _close_connection(self, connection) -> None:
        try:
            async with asyncio.timeout(self._close_timeout_s + 1.0):
                await connection.close()
        except Exception as error:  # already gone: nothing left to free
            log.debug("OpenAI Realtime: close failed (%s)", type(error).__name__)

    async def close(self) -> None:
        """Close the connection and every task; the link cannot be opened again."""
        if self.state == "closed" and not self._closing:
            return
        self.state = "closed"
        tasks = [task for task in (self._connecting, self._reader, self._writer) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._connecting = self._reader = self._writer = None
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._close_connection(connection)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _describe(self, error: Exception) -> str:
        """An error as words safe for a log line: never the API key."""
        text = f"{type(error).__name__}: {error}"[:300]
        key = getattr(self._client, "api_key", None)
        return text.replace(key, "***") if key else text


def _parse(raw: bytes | str) -> dict:
    try:
        event = json.loads(raw)
    except (ValueError, RecursionError):
        raise RealtimeError("the OpenAI Realtime API sent a malformed event (not JSON)") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise RealtimeError("the OpenAI Realtime API sent a malformed event (no type)")
    return event


def _error_code(event: dict) -> str | None:
    error = event.get("error")
    return error.get("code") if isinstance(error, dict) else None


def _error_summary(event: dict) -> str:
    error = event.get("error") if isinstance(event.get("error"), dict) else {}
    kind = error.get("code") or error.get("type") or "unknown"
    return f"{kind}: {str(error.get('message') or '')[:200]}"
