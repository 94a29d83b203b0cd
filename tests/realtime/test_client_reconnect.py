"""The terminal client's socket across a worker restart (4012), against a local server.

A typed answer must reach the session once: sent twice, the new worker refuses the
second with "answer_pending" (or, once the first is stored, stores it twice). A frame the
run writes while the client reconnects belongs to the old socket: the run decides what
the resumed session still lacks (it compares the resumed conversation) and sends that
itself, unless the answer already went out on the socket the session resumed on.
"""

import asyncio
import io
import json

from websockets.asyncio.server import serve

from realtime.client import Credentials, Run, VoiceWire, open_connection

AUDIO = {"input": {"encoding": "pcm16", "sampleRate": 16000, "channels": 1},
         "output": {"encoding": "pcm16", "sampleRate": 24000, "channels": 1}}


async def test_a_frame_written_during_a_reconnect_is_not_sent_on_the_new_socket():
    """...and one written after the reconnect waits for the server's welcome: before it the
    server takes nothing but the authentication (it closes with 4002 `auth_required`)."""
    frames: list[list[dict]] = []  # per connection, what the server received
    handshake_gate = asyncio.Event()
    welcoming: set[asyncio.Task] = set()

    async def slow_handshake(connection, request):
        if frames:  # the reconnect: held open until the test has written its frame
            await handshake_gate.wait()

    async def handler(ws):
        received: list[dict] = []
        frames.append(received)
        first = len(frames) == 1
        async for raw in ws:
            received.append(json.loads(raw))
            if first:
                await ws.close(4012, "restarting")
                return
            if received[-1]["type"] == "client-auth":  # welcomed after checking the token,
                welcoming.add(asyncio.create_task(welcome(ws, received)))  # frames noted meanwhile

    async def welcome(ws, received):
        await asyncio.sleep(0.2)
        received.append({"type": "(welcomed)"})
        await ws.send(json.dumps({"type": "server-auth-success", "payload": {
            "sessionId": "s-1", "resumed": True, "audio": AUDIO, "questionIndex": 0,
            "questionCount": 3, "status": "live", "conversation": []}}))

    async with serve(handler, "127.0.0.1", 0, process_request=slow_handshake) as server:
        port = server.sockets[0].getsockname()[1]
        conn = await open_connection(f"ws://127.0.0.1:{port}/", None, VoiceWire(),
                                     Credentials(session_id="s-1", token="t-1"))
        try:
            await conn.authenticate()
            while not frames or conn._open.is_set():  # closed with 4012: reconnecting now
                await asyncio.sleep(0.01)
            answer = asyncio.create_task(conn.send(VoiceWire().answer("My typed answer.")))
            await asyncio.sleep(0.1)
            handshake_gate.set()
            event = await conn.next(5)
            assert event.kind == "reconnected"
            await asyncio.wait_for(conn.send(VoiceWire().answer("Sent after the reconnect.")), 5)
            await asyncio.wait_for(answer, 5)
            await asyncio.sleep(0.1)
        finally:
            await conn.close()
    old, new = frames
    assert [f["type"] for f in old] == ["client-auth"]
    # The new socket: authentication first, then only what was written after the reconnect,
    # once the server had welcomed it.
    assert [f["type"] for f in new] == ["client-auth", "(welcomed)", "client-text-message"], new
    assert new[2]["payload"]["text"] == "Sent after the reconnect."


async def test_an_answer_sent_after_the_reconnect_is_not_sent_again_when_the_run_reads_the_resume():
    """The reconnect finished (the resumed session's welcome is queued, not read yet) when
    the run typed its answer: the answer went out on the new socket, and reading the welcome
    afterwards must not send it a second time."""
    received: list[list[dict]] = []

    async def handler(ws):
        frames: list[dict] = []
        received.append(frames)
        first = len(received) == 1
        async for raw in ws:
            frame = json.loads(raw)
            frames.append(frame)
            if frame["type"] == "client-auth":
                await ws.send(json.dumps({"type": "server-auth-success", "payload": {
                    "sessionId": "s-1", "resumed": not first, "audio": AUDIO, "questionIndex": 0,
                    "questionCount": 3, "status": "live", "conversation": []}}))
                if first:
                    await ws.close(4012, "restarting")
                    return
            elif frame["type"] == "client-text-message":
                await ws.send(json.dumps({"type": "server-final-transcript", "payload": {
                    "transcript": frame["payload"]["text"], "turnId": f"t-{len(frames)}", "source": "text"}}))

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        conn = await open_connection(f"ws://127.0.0.1:{port}/", None, VoiceWire(),
                                     Credentials(session_id="s-1", token="t-1"))
        run = Run(conn, io.StringIO(), timeout=5, wait_analysis=False)
        try:
            await run.start()
            while conn.queue.qsize() < 2:  # "reconnected", then the resumed session's welcome
                await asyncio.sleep(0.01)
            await asyncio.wait_for(run.answer_text("My typed answer."), 5)
            await asyncio.sleep(0.2)
        finally:
            await conn.close()
    answers = [f for f in received[1] if f["type"] == "client-text-message"]
    assert len(answers) == 1, received
    assert run.turns[0].heard == "My typed answer."
