"""The terminal client's socket across a worker restart (4012), against a local server.

A frame the run writes while the client reconnects belongs to the old socket: the run
decides what the resumed session still lacks (it compares the resumed conversation) and
sends that itself. Sent on the new socket as well, a typed answer reached the new worker
twice and the candidate saw "answer_pending" for an answer that was stored once.
"""

import asyncio
import json

from websockets.asyncio.server import serve

from realtime.client import Credentials, VoiceWire, open_connection


async def test_a_frame_written_during_a_reconnect_is_not_sent_on_the_new_socket():
    frames: list[list[dict]] = []  # per connection, what the server received
    handshake_gate = asyncio.Event()

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
            await asyncio.wait_for(answer, 5)
            event = await conn.next(5)
            assert event.kind == "reconnected"
            await conn.send(VoiceWire().answer("Sent after the reconnect."))
            while len(frames) < 2 or len(frames[1]) < 2:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
        finally:
            await conn.close()
    old, new = frames
    assert [f["type"] for f in old] == ["client-auth"]
    # The new socket: authentication first, then only what was written after the reconnect.
    assert new[0]["type"] == "client-auth"
    assert [f for f in new[1:] if "My typed answer." in json.dumps(f)] == []
    assert ["Sent after the reconnect." in json.dumps(f) for f in new[1:]] == [True]
