"""A test client for the interview socket over Channels' in-process communicator."""

from __future__ import annotations

import asyncio
import base64
import json

from channels.testing import WebsocketCommunicator

from interview_site.asgi import application

ORIGIN = (b"origin", b"http://localhost:8000")


class Client:
    def __init__(self, communicator: WebsocketCommunicator):
        self.ws = communicator
        self.seen: list[dict] = []
        self.close_code: int | None = None

    @classmethod
    async def open(cls, path: str = "/api/interview-socket", origin=ORIGIN) -> "Client":
        communicator = WebsocketCommunicator(application, path, headers=[origin] if origin else [])
        connected, _ = await communicator.connect()
        assert connected
        return cls(communicator)

    async def send(self, kind: str, **payload) -> None:
        message = {"type": kind}
        if payload:
            message["payload"] = payload
        await self.ws.send_to(text_data=json.dumps(message))

    async def send_raw(self, text: str) -> None:
        await self.ws.send_to(text_data=text)

    async def send_audio(self, pcm: bytes) -> None:
        await self.send("client-audio-chunk", data=base64.b64encode(pcm).decode())

    async def auth(self, info) -> dict:
        await self.send("client-auth", token=info.token, sessionId=info.session_id)
        return await self.expect("server-auth-success")

    async def next(self, timeout: float = 10) -> dict:
        # Not receive_output(): its timeout cancels the application under test.
        if self.ws.future.done():
            self.ws.future.result()
        output = await asyncio.wait_for(self.ws.output_queue.get(), timeout)
        if output["type"] == "websocket.close":
            self.close_code = output.get("code", 1000)
            raise ConnectionClosed(self.close_code)
        message = json.loads(output["text"])
        self.seen.append(message)
        return message

    async def expect(self, kind: str, timeout: float = 15, **match) -> dict:
        """Read until a message of `kind` (whose payload has `match`) arrives."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no {kind} within {timeout}s; saw {[m['type'] for m in self.seen[-15:]]}")
            message = await self.next(remaining)
            if message["type"] == kind and all(message["payload"].get(k) == v for k, v in match.items()):
                return message["payload"]

    async def expect_close(self, timeout: float = 10) -> int:
        try:
            while True:
                await self.next(timeout)
        except ConnectionClosed as closed:
            return closed.code

    def of_type(self, kind: str) -> list[dict]:
        return [m["payload"] for m in self.seen if m["type"] == kind]

    def captions(self) -> str:
        """Everything the interviewer said so far, as the captions showed it."""
        return " ".join(c["text"] for c in self.of_type("server-ai-text"))

    async def drain(self, seconds: float) -> None:
        """Read whatever arrives for a while."""
        try:
            while True:
                await self.next(seconds)
        except (asyncio.TimeoutError, ConnectionClosed):
            pass

    async def read_for(self, seconds: float) -> None:
        """Read whatever arrives during `seconds` (e.g. while some speech is heard)."""
        deadline = asyncio.get_running_loop().time() + seconds
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                await self.next(remaining)
            except asyncio.TimeoutError:
                return

    async def close(self) -> None:
        await self.ws.disconnect()


class ConnectionClosed(Exception):
    def __init__(self, code):
        super().__init__(f"closed with code {code}")
        self.code = code
