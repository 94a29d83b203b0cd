"""A terminal client for the interview sockets: smoke-test a deployment, or hold an interview.

    python -m realtime.client --url https://interview.example.com --session <id> \\
        --answer "I build backend services." --answer @answer.wav      # the voice socket
    python -m realtime.client --url ... --session <id> --dialect text --answer "..."  # /ws

The access token comes from $INTERVIEW_TOKEN (or --token, which other users of the
machine can see in the process list). `--join` takes the JSON line that
`python manage.py demo_session` prints ({sessionId, token, url}), or a file holding it.

Automated (answers given with --answer or --script): runs the whole interview, each
answer when the interviewer has finished its line (in the voice dialect, once its audio
would have been heard). An answer is typed text, `@file.wav` (streamed in real time as
speech, voice dialect only), or a command: /pause, /resume, /end [reason]. Prints the
transcript and each turn's latency, and exits 0 only if the interview ran to its end
without an error (1 otherwise; 2 for bad arguments). After the last answer the client
ends the interview itself if questions remain.

Interactive (--interactive, or no answers): type answers, or /pause, /resume,
/interrupt, /end [reason], /wav FILE (voice dialect), /quit; the interviewer's captions,
your live transcript and the session's state print as they arrive. No sound device is
needed: the interviewer's audio is counted, not played.

A worker that restarts closes the socket with 4012: the client reconnects at once (through
the same URL, so a load balancer sends it to another worker), authenticates again and goes
on; a typed answer it had sent but not seen stored is sent again unless the resumed session
has it. With a refresh token (`--join`'s `refreshToken`, or $INTERVIEW_REFRESH_TOKEN) the
client renews its access token a minute before it expires, as the page does: at Supabase's
auth server when $SUPABASE_URL is set (with $SUPABASE_ANON_KEY), else at the server's own
`/auth/v1/token`, and hands the new token over on the open socket.

The client needs only `websockets` (and numpy, plus soxr when a WAV's sample rate
differs from the server's, for speech answers).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

PATHS = {"voice": "/api/interview-socket", "text": "/ws"}
CHUNK_MS = 40
TRAILING_SILENCE_MS = 3000  # the most silence streamed after a spoken answer, waiting to be heard
RECONNECT_NOW_CLOSE_CODE = 4012  # the worker is restarting (docs/protocol.md)
RECONNECT_DELAYS_S = (0.0, 0.5, 1.0, 2.0, 4.0)  # at once, then backing off; then the run fails
RENEW_AHEAD_S = 60.0  # renew the access token this long before it expires


class ClientError(Exception):
    """Something went wrong: the run fails with this message."""


@dataclass
class Event:
    kind: str  # started, typing, caption, line, audio, live, heard, state, paused, resumed, ended, results, error, pong
    data: dict
    at: float = field(default_factory=time.monotonic)
    socket: int = 0  # which of the connection's sockets it came on (one more per reconnect)


# --- the two dialects, as the client speaks them -------------------------------------------

class VoiceWire:
    name = "voice"

    def __init__(self):
        self.output_rate = 24000
        self.input_rate = 16000
        self._sentences: dict[str, list[str]] = {}

    def auth(self, token: str, session_id: str) -> str:
        return _frame("client-auth", token=token, sessionId=session_id)

    def answer(self, text: str) -> str:
        return _frame("client-text-message", text=text)

    def pause(self) -> str:
        return _frame("client-pause")

    def resume(self) -> str:
        return _frame("client-resume")

    def end(self, reason: str) -> str:
        return _frame("client-end", reason=reason) if reason else _frame("client-end")

    def interrupt(self) -> str | None:
        return _frame("client-interrupt")

    def audio(self, pcm: bytes) -> str:
        return _frame("client-audio-chunk", data=base64.b64encode(pcm).decode("ascii"))

    def refresh(self, token: str) -> str:
        return _frame("client-token-refresh", token=token)

    def events(self, kind: str, payload: dict) -> list[Event]:
        if kind == "server-auth-success":
            self.input_rate = payload["audio"]["input"]["sampleRate"]
            self.output_rate = payload["audio"]["output"]["sampleRate"]
            return [Event("started", payload)]
        if kind == "server-ai-thinking":
            self._sentences[payload["responseId"]] = []
            return [Event("typing", {"typing": True, **payload})]
        if kind == "server-ai-text":
            self._sentences.setdefault(payload["responseId"], []).append(payload["text"])
            return [Event("caption", payload)]
        if kind == "server-ai-speech-chunk":
            ms = len(base64.b64decode(payload["data"])) / 2 / self.output_rate * 1000
            return [Event("audio", {"responseId": payload["responseId"], "ms": ms, "seq": payload["seq"]})]
        if kind == "server-ai-speech-end":
            text = " ".join(self._sentences.pop(payload["responseId"], []))
            return [Event("line", {"responseId": payload["responseId"], "text": text, "audioUrl": None})]
        if kind == "server-ai-interrupted":
            self._sentences.pop(payload.get("responseId"), None)
            return [Event("interrupted", payload)]
        if kind == "server-live-transcript":
            return [Event("live", {"text": payload["transcript"]})]
        if kind == "server-final-transcript":
            return [Event("heard", {"text": payload["transcript"], "turnId": payload["turnId"],
                                    "source": payload["source"]})]
        if kind == "server-session-state":
            return [Event("state", payload)]
        if kind == "server-session-ended":
            return [Event("ended", payload)]
        if kind in ("server-error", "server-auth-failure"):
            return [Event("error", {"code": payload.get("code"), "message": payload.get("error", "")})]
        if kind == "server-pong":
            return [Event("pong", payload)]
        if kind == "server-token-refreshed":
            return [Event("renewed", payload)]
        return []


class TextWire:
    name = "text"
    input_rate = output_rate = 0

    def auth(self, token: str, session_id: str) -> str:
        return _frame("START_INTERVIEW", token=token, sessionId=session_id)

    def answer(self, text: str) -> str:
        return _frame("USER_MESSAGE", text=text)

    def pause(self) -> str:
        return _frame("PAUSE_INTERVIEW")

    def resume(self) -> str:
        return _frame("RESUME_INTERVIEW")

    def end(self, reason: str) -> str:
        return _frame("END_INTERVIEW", reason=reason) if reason else _frame("END_INTERVIEW")

    def interrupt(self) -> str | None:
        return None  # nothing is spoken on the text socket

    def audio(self, pcm: bytes) -> str:
        raise ClientError("the text dialect does not take audio: use --dialect voice for WAV answers")

    def refresh(self, token: str) -> str:
        return _frame("REFRESH_TOKEN", token=token)

    _KINDS = {"INTERVIEW_STARTED": "started", "AI_TYPING": "typing", "AI_MESSAGE": "line",
              "MESSAGE_RECEIVED": "heard", "INTERVIEW_STATE": "state", "INTERVIEW_PAUSED": "state",
              "INTERVIEW_RESUMED": "state", "INTERVIEW_ENDED": "ended", "INTERVIEW_RESULTS": "results",
              "ERROR": "error", "PONG": "pong", "TOKEN_REFRESHED": "renewed"}

    def events(self, kind: str, payload: dict) -> list[Event]:
        mapped = self._KINDS.get(kind)
        return [Event(mapped, payload)] if mapped else []


def _frame(kind: str, **payload: Any) -> str:
    return json.dumps({"type": kind, "payload": payload} if payload else {"type": kind})


# --- credentials ------------------------------------------------------------------------------

@dataclass
class Credentials:
    """The session to join and the access token to join it with, renewed when a refresh
    token is known (GoTrue's `POST /auth/v1/token?grant_type=refresh_token`)."""

    session_id: str
    token: str
    refresh_token: str | None = None
    expires_at: float | None = None  # Unix time
    renew_url: str | None = None
    api_key: str | None = None  # Supabase's `apikey` header

    def renew_in(self) -> float | None:
        """Seconds until the token should be renewed; None when it cannot be."""
        if not self.refresh_token or not self.renew_url or self.expires_at is None:
            return None
        left = self.expires_at - time.time()
        return max(0.0, left - min(RENEW_AHEAD_S, left / 2))

    async def renew(self) -> None:
        import urllib.error
        import urllib.request

        body = json.dumps({"refresh_token": self.refresh_token}).encode()
        headers = {"Content-Type": "application/json", **({"apikey": self.api_key} if self.api_key else {})}
        request = urllib.request.Request(self.renew_url, data=body, headers=headers, method="POST")

        def post() -> tuple[str, str, float]:
            try:
                with urllib.request.urlopen(request, timeout=15) as response:
                    tokens = json.loads(response.read())
                return tokens["access_token"], tokens["refresh_token"], float(tokens["expires_at"])
            except urllib.error.HTTPError as refused:
                try:
                    why = json.loads(refused.read()).get("error_description", "")
                except ValueError:
                    why = ""
                raise ClientError(f"renewing the access token was refused (HTTP {refused.code}) {why}".strip()) from None
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise ClientError(f"renewing the access token failed: {error!r}") from None

        self.token, self.refresh_token, self.expires_at = await asyncio.to_thread(post)


def token_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT, read without checking it (the server checks it)."""
    try:
        payload = token.split(".")[1]
        return float(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None


# --- one connection ------------------------------------------------------------------------

class Connection:
    """The socket, read in the background into a queue of dialect-neutral events; opened
    again at once when the worker restarts (4012), and handed renewed access tokens."""

    def __init__(self, url: str, origin: str | None, wire, credentials: Credentials, *, on_event=None):
        self.url, self.origin = url, origin
        self.wire = wire
        self.credentials = credentials
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.on_event = on_event
        self.ws = None
        self.close_code: int | None = None
        self.reconnects = 0
        self.audio_ms: dict[str, float] = {}  # interviewer audio received, per response
        self.first_audio_at: dict[str, float] = {}
        self._open = asyncio.Event()  # cleared while reconnecting
        self.reader: asyncio.Task | None = None
        self.renewer: asyncio.Task | None = None

    async def open(self) -> None:
        self.ws = await _connect(self.url, self.origin)
        self._open.set()
        self.reader = asyncio.create_task(self._read())
        self.renewer = asyncio.create_task(self._renew())

    async def authenticate(self) -> None:
        await self.send(self._auth_frame())

    def _auth_frame(self) -> str:
        return self.wire.auth(self.credentials.token, self.credentials.session_id)

    async def close(self) -> None:
        for task in (self.reader, self.renewer):
            if task is not None:
                task.cancel()
        if self.ws is not None:
            await self.ws.close()

    def _emit(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)
        self.queue.put_nowait(event)

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                try:
                    async for raw in self.ws:
                        if isinstance(raw, bytes):
                            continue
                        message = json.loads(raw)
                        for event in self.wire.events(message.get("type"), message.get("payload") or {}):
                            event.socket = self.reconnects
                            if event.kind == "audio":
                                response = event.data["responseId"]
                                self.first_audio_at.setdefault(response, event.at)
                                self.audio_ms[response] = self.audio_ms.get(response, 0.0) + event.data["ms"]
                            self._emit(event)
                            if event.kind == "started":
                                self._open.set()  # after a reconnect: the session is back, send on
                except ConnectionClosed:
                    pass
                self.close_code = self.ws.close_code
                if self.close_code != RECONNECT_NOW_CLOSE_CODE or not await self._reconnect():
                    return
        finally:
            self._open.set()  # a sender waiting for the socket finds it closed
            self.queue.put_nowait(None)

    async def _reconnect(self) -> bool:
        """The worker is restarting: connect again (another worker resumes the session).
        Other frames wait until the server has welcomed the new socket: before that it
        takes nothing but the authentication (4002 `auth_required`)."""
        from websockets.exceptions import ConnectionClosed

        self._open.clear()
        for delay in RECONNECT_DELAYS_S:
            await asyncio.sleep(delay)
            try:
                ws = await _connect(self.url, self.origin)
                # Authenticate before any other frame can go out on the new socket.
                await ws.send(self._auth_frame())
            except (ClientError, ConnectionClosed):
                continue
            self.ws = ws
            self.reconnects += 1
            self._emit(Event("reconnected", {"code": self.close_code}))
            return True
        return False

    async def _renew(self) -> None:
        while (wait := self.credentials.renew_in()) is not None:
            await asyncio.sleep(wait)
            try:
                await self.credentials.renew()
            except ClientError as error:
                self._emit(Event("error", {"code": "token_renewal_failed", "message": str(error)}))
                return
            try:
                await self.send(self.wire.refresh(self.credentials.token))
            except ClientError:
                return  # closed: a reconnect authenticates with the new token

    async def send(self, frame: str | None) -> int | None:
        """Write `frame`; the number of the socket it went out on (`Event.socket`), or None
        when it did not go out because that socket closed with 4012."""
        from websockets.exceptions import ConnectionClosed

        if frame is None:
            return None
        ws, socket = self.ws, self.reconnects
        await self._open.wait()
        if self.ws is not ws:
            # Written for the socket that closed with 4012: the run decides what the resumed
            # session still needs (Run.awaiting), so it does not arrive twice.
            return None
        try:
            await ws.send(frame)
        except ConnectionClosed:
            if ws.close_code == RECONNECT_NOW_CLOSE_CODE and self.reader is not None and not self.reader.done():
                return None  # the reader reconnects; this frame is lost with the old socket (see Run.awaiting)
            raise ClientError(f"the server closed the connection (code {ws.close_code})") from None
        return socket

    async def next(self, timeout: float) -> Event | None:
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            raise ClientError(f"nothing from the server in {timeout:.0f} s") from None


async def _connect(url: str, origin: str | None):
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    try:
        return await connect(url, origin=origin, max_size=2**22, open_timeout=15)
    except InvalidStatus as refused:
        raise ClientError(f"the server refused the connection (HTTP {refused.response.status_code}); "
                          "check the URL and --origin") from None
    except (OSError, TimeoutError) as error:
        raise ClientError(f"cannot connect to {url}: {error}") from None


async def open_connection(url: str, origin: str | None, wire, credentials: Credentials, *, on_event=None) -> Connection:
    conn = Connection(url, origin, wire, credentials, on_event=on_event)
    await conn.open()
    return conn


# --- automated mode ----------------------------------------------------------------------------

@dataclass
class Turn:
    answer: str
    sent_at: float  # when the answer ended (typed: sent; spoken: its last audio chunk)
    heard_at: float | None = None
    heard: str | None = None
    reply_at: float | None = None  # the interviewer's first output after it


class Run:
    def __init__(self, conn: Connection, out, *, timeout: float, wait_analysis: bool):
        self.conn = conn
        self.out = out
        self.timeout = timeout
        self.wait_analysis = wait_analysis
        self.transcript: list[dict] = []
        self.turns: list[Turn] = []
        self.problems: list[str] = []
        self.state: dict = {}
        self.started: dict = {}
        self.ended: dict | None = None
        self.results: list[dict] = []
        self.awaiting: str | None = None  # a typed answer sent and not yet seen stored ...
        self.awaiting_socket: int | None = None  # ... and the socket it went out on

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    async def wait_for(self, *kinds: str, timeout: float | None = None) -> Event:
        """The next event of `kinds`; the others are noted on the way (errors, state)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            event = await self.conn.next(max(0.1, deadline - time.monotonic()))
            if event is None:
                raise ClientError(f"the server closed the connection (code {self.conn.close_code}) "
                                  f"while waiting for {'/'.join(kinds)}")
            self.note(event)
            if event.kind == "started" and self.started and self.awaiting is not None and (
                    self.awaiting_socket is None or self.awaiting_socket < event.socket):
                event = await self._resumed_with_answer(event)
            if event.kind in kinds:
                return event
            if event.kind == "ended" and "ended" not in kinds:
                raise ClientError(f"the interview ended while waiting for {'/'.join(kinds)}")
            if time.monotonic() > deadline:
                raise ClientError(f"no {'/'.join(kinds)} in {timeout or self.timeout:.0f} s")

    async def _resumed_with_answer(self, started: Event) -> Event:
        """Back on the session (another worker) with a typed answer whose storing was not seen:
        its acknowledgement if the session has it, else the answer goes again."""
        answer = self.awaiting
        if any(line["speaker"] == "candidate" and line["text"] == answer
               for line in started.data.get("conversation", [])[-2:]):
            return Event("heard", {"text": answer, "source": "text"}, at=started.at)
        self.say("(sending the last answer again: the restarted worker did not store it)")
        self.awaiting_socket = await self.conn.send(self.conn.wire.answer(answer))
        return started

    def note(self, event: Event) -> None:
        if event.kind == "reconnected":
            self.say(f"(the worker restarted ({event.data['code']}): reconnected)")
        elif event.kind == "started" and self.started:
            self.say(f"(resumed at question {event.data['questionIndex'] + 1})")
        elif event.kind == "renewed":
            self.say("(access token renewed)")
        elif event.kind == "error":
            self.problems.append(f"server error {event.data.get('code')}: {event.data.get('message')}")
            self.say(f"! error {event.data.get('code')}: {event.data.get('message')}")
        elif event.kind == "state":
            self.state = event.data
        elif event.kind == "ended":
            self.ended = event.data
        elif event.kind == "results":
            self.results.append(event.data)
        elif event.kind in ("audio", "caption", "line") and self.turns and self.turns[-1].reply_at is None \
                and self.turns[-1].heard_at is not None:  # the interviewer's first words or sound
            self.turns[-1].reply_at = event.at

    async def start(self) -> None:
        await self.conn.authenticate()
        event = await self.wait_for("started")
        self.started = event.data
        self.state = {k: event.data[k] for k in ("status", "questionIndex", "questionCount") if k in event.data}
        self.say(f"connected ({self.conn.wire.name} dialect): session {event.data['sessionId']}, "
                 f"{event.data['questionCount']} questions, "
                 f"{'resumed at question ' + str(event.data['questionIndex'] + 1) if event.data['resumed'] else 'new'}")
        for line in event.data.get("conversation", []):
            self.transcript.append({"speaker": line["speaker"], "text": line["text"], "earlier": True})
            self.say(f"  (earlier) {line['speaker']}: {line['text']}")

    async def interviewer_line(self) -> dict:
        """The interviewer's next whole line; in the voice dialect, once its audio was heard."""
        event = await self.wait_for("line")
        response = event.data["responseId"]
        if self.conn.wire.name == "voice" and response in self.conn.first_audio_at:
            heard_at = self.conn.first_audio_at[response] + self.conn.audio_ms[response] / 1000
            await asyncio.sleep(max(0.0, heard_at - time.monotonic()))
        self.transcript.append({"speaker": "interviewer", "text": event.data["text"],
                                "audioUrl": event.data.get("audioUrl")})
        audio = f"  [audio {event.data['audioUrl']}]" if event.data.get("audioUrl") else ""
        if response in self.conn.audio_ms:
            audio = f"  [{self.conn.audio_ms[response] / 1000:.1f} s of speech]"
        self.say(f"interviewer: {event.data['text']}{audio}")
        return event.data

    async def answer_text(self, text: str) -> None:
        self.awaiting = text
        self.awaiting_socket = await self.conn.send(self.conn.wire.answer(text))
        await self._acknowledged(Turn(answer=text, sent_at=time.monotonic()))
        self.awaiting = None

    async def answer_wav(self, path: Path) -> None:
        wire = self.conn.wire
        pcm = read_wav(path, wire.input_rate)
        chunk_bytes = wire.input_rate * CHUNK_MS // 1000 * 2
        started = time.monotonic()
        sent = 0
        for offset in range(0, len(pcm), chunk_bytes):
            await self.conn.send(wire.audio(pcm[offset:offset + chunk_bytes]))
            sent += 1
            await asyncio.sleep(max(0.0, started + sent * CHUNK_MS / 1000 - time.monotonic()))
        turn = Turn(answer=f"@{path.name}", sent_at=time.monotonic())
        # Silence, as a microphone would go on sending, until the server hears the end.
        silence = bytes(chunk_bytes)
        streaming = asyncio.create_task(self._stream_silence(silence, started, sent))
        try:
            await self._acknowledged(turn)
        finally:
            streaming.cancel()

    async def _stream_silence(self, chunk: bytes, started: float, sent: int) -> None:
        for _ in range(TRAILING_SILENCE_MS // CHUNK_MS):
            await self.conn.send(self.conn.wire.audio(chunk))
            sent += 1
            await asyncio.sleep(max(0.0, started + sent * CHUNK_MS / 1000 - time.monotonic()))

    async def _acknowledged(self, turn: Turn) -> None:
        self.turns.append(turn)
        event = await self.wait_for("heard")
        turn.heard_at, turn.heard = event.at, event.data["text"]
        self.transcript.append({"speaker": "candidate", "text": turn.heard})
        self.say(f"you: {turn.heard}  [stored after {(turn.heard_at - turn.sent_at) * 1000:.0f} ms]")

    async def command(self, name: str, argument: str) -> bool:
        """/pause, /resume or /end; True when the interviewer will speak next."""
        wire = self.conn.wire
        if name == "/pause":
            await self.conn.send(wire.pause())
            await self._status("paused")
            self.say("(paused)")
            return False
        if name == "/resume":
            await self.conn.send(wire.resume())
            await self._status("live")
            self.say("(resumed)")
            return True
        if name == "/end":
            await self.conn.send(wire.end(argument))
            return False
        raise ClientError(f"unknown command {name} in the script")

    async def _status(self, status: str) -> None:
        while True:
            event = await self.wait_for("state")
            if event.data.get("status") == status:
                return

    def questions_remain(self) -> bool:
        return self.state.get("questionIndex", 0) < self.state.get("questionCount", 0)

    async def finish(self) -> None:
        if self.ended is None:
            await self.wait_for("ended")
        self.say(f"interview ended: {self.ended.get('reason')}")
        if self.conn.wire.name == "text":
            while not self.results or (self.wait_analysis and not self.results[-1].get("final")):
                await self.wait_for("results", timeout=max(self.timeout, 180) if self.results else self.timeout)
            result = self.results[-1]
            self.say(f"results: {result['summary']} (analysis: {result['analysisStatus']})")
        # The server closes once it is done.
        while (event := await self.conn.next(self.timeout)) is not None:
            self.note(event)
        if self.conn.close_code != 1000:
            self.problems.append(f"the connection closed with {self.conn.close_code}, not 1000")

    def latencies(self) -> list[dict]:
        return [{"answer": t.answer,
                 "storedMs": round((t.heard_at - t.sent_at) * 1000) if t.heard_at else None,
                 "firstReplyMs": round((t.reply_at - t.sent_at) * 1000) if t.reply_at else None}
                for t in self.turns]


async def run_automated(args, steps: list[str], out) -> int:
    wire = VoiceWire() if args.dialect == "voice" else TextWire()
    conn = await open_connection(args.ws_url, args.origin, wire, args.credentials)
    run = Run(conn, out, timeout=args.timeout, wait_analysis=args.wait_analysis)
    ok = False
    try:
        await run.start()
        interviewer_next = run.started.get("status") != "paused"
        for step in steps:
            if interviewer_next:
                await run.interviewer_line()
                interviewer_next = False
                if run.ended is not None:
                    break
            if run.ended is not None:
                break
            if step.startswith("/"):
                name, _, argument = step.partition(" ")
                interviewer_next = await run.command(name, argument.strip())
                if name == "/end":
                    break
            elif step.startswith("@"):
                await run.answer_wav(Path(step[1:]).expanduser())
                interviewer_next = True
            else:
                await run.answer_text(step)
                interviewer_next = True
        if run.ended is None and interviewer_next:
            await run.interviewer_line()
        if run.ended is None and run.questions_remain():
            run.say("(the script is over; ending the interview)")
            await conn.send(wire.end("The script of answers is over."))
        await run.finish()
        ok = not run.problems
    except ClientError as error:
        run.problems.append(str(error))
        run.say(f"! {error}")
    finally:
        await conn.close()
    summary = [f"{i}: {t['firstReplyMs']} ms" for i, t in enumerate(run.latencies(), 1) if t["firstReplyMs"] is not None]
    if summary:
        values = [t["firstReplyMs"] for t in run.latencies() if t["firstReplyMs"] is not None]
        run.say(f"turn latency (end of answer -> first reply): {', '.join(summary)}; median {statistics.median(values):.0f} ms")
    for problem in run.problems:
        run.say(f"FAILED: {problem}")
    if args.json:
        print(json.dumps({"ok": ok, "dialect": wire.name, "sessionId": args.session, "transcript": run.transcript,
                          "turns": run.latencies(), "endReason": (run.ended or {}).get("reason"),
                          "results": run.results[-1] if run.results else None, "problems": run.problems,
                          "closeCode": conn.close_code, "reconnects": conn.reconnects}), file=out, flush=True)
    return 0 if ok else 1


# --- interactive mode --------------------------------------------------------------------------

HELP = ("Type an answer and press Enter. Commands: /pause  /resume  /interrupt  /end [reason]  "
        "/wav FILE (voice)  /quit  /help")


def _printer(out, wire):
    def show(event: Event) -> None:
        kind, data = event.kind, event.data
        if kind == "caption":
            line = f"interviewer: {data['text']}"
        elif kind == "line" and wire.name == "text":
            audio = f"  [audio {data['audioUrl']}]" if data.get("audioUrl") else ""
            line = f"interviewer: {data['text']}{audio}"
        elif kind == "typing":
            line = "(interviewer is typing...)" if data.get("typing") else None
        elif kind == "live":
            line = f"(hearing) {data['text']}"
        elif kind == "heard":
            line = f"you: {data['text']}"
        elif kind == "state":
            line = f"(state: {data['status']}, question {min(data['questionIndex'] + 1, data['questionCount'])} " \
                   f"of {data['questionCount']})"
        elif kind == "interrupted":
            line = "(interviewer interrupted)"
        elif kind == "ended":
            line = f"(interview ended: {data.get('reason')})"
        elif kind == "results":
            line = f"results: {data['summary']} (analysis: {data['analysisStatus']})"
        elif kind == "error":
            line = f"! error {data.get('code')}: {data.get('message')}"
        elif kind == "reconnected":
            line = f"(the worker restarted ({data['code']}): reconnecting)"
        elif kind == "renewed":
            line = "(access token renewed)"
        elif kind == "started":
            line = (f"(connected: {data['questionCount']} questions, "
                    f"{'resumed' if data['resumed'] else 'new session'}, status {data['status']})")
            for earlier in data.get("conversation", []):
                line += f"\n  (earlier) {earlier['speaker']}: {earlier['text']}"
        else:
            line = None  # audio chunks are counted, not played
        if line:
            print(line, file=out, flush=True)
    return show


async def run_interactive(args, out) -> int:
    wire = VoiceWire() if args.dialect == "voice" else TextWire()
    conn = await open_connection(args.ws_url, args.origin, wire, args.credentials, on_event=_printer(out, wire))
    print(HELP, file=out, flush=True)
    await conn.authenticate()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    stdin = sys.stdin.fileno()
    buffer = bytearray()

    def readable() -> None:
        try:
            data = os.read(stdin, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(stdin)
            lines.put_nowait(None)
            return
        buffer.extend(data)
        while b"\n" in buffer:
            line, _, rest = bytes(buffer).partition(b"\n")
            buffer[:] = rest
            lines.put_nowait(line.decode("utf-8", "replace").rstrip("\r"))

    try:
        loop.add_reader(stdin, readable)
    except (PermissionError, OSError):  # a regular file: it is all there already
        for line in sys.stdin.read().splitlines():
            lines.put_nowait(line)
        lines.put_nowait(None)
    ended = False
    status = 0
    try:
        watcher = asyncio.create_task(_watch(conn))
        while True:
            getting = asyncio.create_task(lines.get())
            done, _ = await asyncio.wait({getting, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher in done:
                getting.cancel()
                ended = watcher.result()
                break
            line = getting.result()
            if line is None or line.strip() == "/quit":
                break
            if not await _interactive_command(conn, wire, line.strip(), out):
                continue
    finally:
        try:
            loop.remove_reader(stdin)
        except (PermissionError, OSError, ValueError):
            pass
        await conn.close()
    if not ended and conn.close_code not in (None, 1000):
        print(f"(connection closed with {conn.close_code})", file=out, flush=True)
        status = 1
    print("bye", file=out, flush=True)
    return status


async def _watch(conn: Connection) -> bool:
    """Until the server closes; whether the interview ended."""
    ended = False
    while (event := await conn.queue.get()) is not None:
        ended = ended or event.kind == "ended"
    return ended


async def _interactive_command(conn: Connection, wire, line: str, out) -> bool:
    if not line:
        return False
    name, _, argument = line.partition(" ")
    try:
        if name == "/help":
            print(HELP, file=out, flush=True)
        elif name == "/pause":
            await conn.send(wire.pause())
        elif name == "/resume":
            await conn.send(wire.resume())
        elif name == "/end":
            await conn.send(wire.end(argument.strip()))
        elif name == "/interrupt":
            frame = wire.interrupt()
            if frame is None:
                print("(nothing to interrupt: the text dialect does not speak)", file=out, flush=True)
            await conn.send(frame)
        elif name == "/wav":
            pcm = read_wav(Path(argument.strip()).expanduser(), wire.input_rate)
            chunk_bytes = wire.input_rate * CHUNK_MS // 1000 * 2
            pcm += bytes(wire.input_rate * 2)  # a second of silence: the end of the utterance
            started = time.monotonic()
            for index, offset in enumerate(range(0, len(pcm), chunk_bytes), 1):
                await conn.send(wire.audio(pcm[offset:offset + chunk_bytes]))
                await asyncio.sleep(max(0.0, started + index * CHUNK_MS / 1000 - time.monotonic()))
        elif name.startswith("/"):
            print(f"(unknown command {name}) {HELP}", file=out, flush=True)
        else:
            await conn.send(wire.answer(line))
    except ClientError as error:
        print(f"! {error}", file=out, flush=True)
    except OSError as error:
        print(f"! {error}", file=out, flush=True)
    return True


# --- audio files ---------------------------------------------------------------------------------

def read_wav(path: Path, rate: int) -> bytes:
    """A WAV file as PCM16 mono at `rate`."""
    import numpy as np

    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2:
                raise ClientError(f"{path}: only 16-bit PCM WAV files are supported")
            channels, source_rate = wav.getnchannels(), wav.getframerate()
            samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    except (OSError, EOFError, wave.Error) as error:
        raise ClientError(f"{path}: {error}") from None
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype("<i2")
    if source_rate != rate:
        import soxr

        samples = soxr.resample(samples, source_rate, rate).astype("<i2")
    return samples.tobytes()


# --- the command line ----------------------------------------------------------------------------

def socket_url(url: str, dialect: str) -> str:
    """http(s)://host[:port][/path] or ws(s)://... -> the dialect's socket URL."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ClientError(f"unsupported URL scheme in {url!r}")
    path = parts.path if parts.path not in ("", "/") else PATHS[dialect]
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def default_origin(ws_url: str) -> str:
    parts = urlsplit(ws_url)
    return f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m realtime.client", description=__doc__.split("\n\n")[0],
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="the server (http(s)://host:port) or a socket URL (ws(s)://host/path)")
    parser.add_argument("--dialect", choices=("voice", "text"), default="voice",
                        help="voice: /api/interview-socket; text: the text-era /ws (default: voice)")
    parser.add_argument("--session", help="the interview session id")
    parser.add_argument("--token", help="the access token (default: $INTERVIEW_TOKEN)")
    parser.add_argument("--join", help="the JSON line of `manage.py demo_session` ({sessionId, token, url}), "
                                       "or a file holding it")
    parser.add_argument("--answer", action="append", default=[],
                        help="an answer, in order: text, @file.wav (spoken), or /pause, /resume, /end [reason]")
    parser.add_argument("--script", help="a file of answers, one a line (same forms as --answer; # comments)")
    parser.add_argument("--interactive", action="store_true", help="type answers and commands yourself")
    parser.add_argument("--origin", help="the Origin header (default: the server's own origin)")
    parser.add_argument("--timeout", type=float, default=60.0, help="the longest wait for the server, in seconds")
    parser.add_argument("--wait-analysis", action="store_true",
                        help="text dialect: wait for the language model's analysis before exiting")
    parser.add_argument("--json", action="store_true", help="automated: print a JSON summary as the last line")
    args = parser.parse_args(argv)
    joined: dict = {}
    if args.join:
        raw = args.join if args.join.lstrip().startswith("{") else Path(args.join).read_text()
        joined = json.loads(raw.strip().splitlines()[-1])
    args.session = args.session or joined.get("sessionId")
    args.token = args.token or os.environ.get("INTERVIEW_TOKEN") or joined.get("token")
    url = args.url or (f"{urlsplit(joined['url']).scheme}://{urlsplit(joined['url']).netloc}" if joined.get("url") else None)
    if not url or not args.session or not args.token:
        parser.error("need --url, --session and a token ($INTERVIEW_TOKEN or --token), or --join")
    args.ws_url = socket_url(url, args.dialect)
    args.origin = args.origin or default_origin(args.ws_url)
    refresh_token = os.environ.get("INTERVIEW_REFRESH_TOKEN") or joined.get("refreshToken")
    supabase = os.environ.get("SUPABASE_URL", "").rstrip("/")
    args.credentials = Credentials(
        session_id=args.session, token=args.token, refresh_token=refresh_token,
        expires_at=token_expiry(args.token) or joined.get("expiresAt"),
        renew_url=f"{supabase or default_origin(args.ws_url)}/auth/v1/token?grant_type=refresh_token",
        api_key=os.environ.get("SUPABASE_ANON_KEY") if supabase else None)
    steps = list(args.answer)
    if args.script:
        steps += [line.strip() for line in Path(args.script).read_text().splitlines()
                  if line.strip() and not line.lstrip().startswith("#")]
    if args.dialect == "text" and any(step.startswith("@") for step in steps):
        parser.error("WAV answers are speech: they need --dialect voice")
    args.steps = steps
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except (OSError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        if args.interactive or not args.steps:
            return asyncio.run(run_interactive(args, sys.stdout))
        return asyncio.run(run_automated(args, args.steps, sys.stdout))
    except ClientError as error:
        print(f"! {error}", file=sys.stdout, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
