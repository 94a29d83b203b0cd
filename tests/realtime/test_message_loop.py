"""The consumers' message loop (realtime/dispatch.MessageLoopMixin): frames from the client and
messages from the channel layer are handled one at a time, in order per source, and whatever
ends one source's loop ends the connection's, with no task left behind."""

import asyncio

import pytest

from realtime.dispatch import MessageLoopMixin


class Consumer(MessageLoopMixin):
    def __init__(self):
        self.client, self.layer = asyncio.Queue(), asyncio.Queue()
        self.channel_layer = object()
        self.handled, self.busy, self.overlaps = [], False, 0

    async def _channel_receive(self):
        return await self.layer.get()

    async def dispatch(self, message):
        if self.busy:
            self.overlaps += 1
        self.busy = True
        try:
            await asyncio.sleep(0.002)  # a handler that awaits: the other source must wait for it
            if message.get("boom"):
                raise RuntimeError(message["boom"])
            self.handled.append(message["n"])
        finally:
            self.busy = False

    async def run(self):
        await self._dispatch_loop(self.client.get)


async def test_client_and_layer_messages_are_handled_one_at_a_time_in_order():
    consumer = Consumer()
    loop = asyncio.create_task(consumer.run())
    for n in range(50):
        consumer.client.put_nowait({"n": f"c{n}"})
        if n % 5 == 0:
            consumer.layer.put_nowait({"n": f"l{n}"})
    while len(consumer.handled) < 60:
        await asyncio.sleep(0.01)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert consumer.overlaps == 0
    assert [n for n in consumer.handled if n[0] == "c"] == [f"c{n}" for n in range(50)]
    assert [n for n in consumer.handled if n[0] == "l"] == [f"l{n}" for n in range(0, 50, 5)]


async def test_a_failing_layer_message_ends_the_loop_with_its_error_and_leaves_no_task():
    consumer = Consumer()
    before = asyncio.all_tasks()
    loop = asyncio.create_task(consumer.run())
    consumer.client.put_nowait({"n": "c0"})
    await asyncio.sleep(0.05)
    consumer.layer.put_nowait({"boom": "a layer handler failed"})  # while the loop waits for the client
    with pytest.raises(RuntimeError, match="a layer handler failed"):
        await asyncio.wait_for(loop, 2)
    assert consumer.handled == ["c0"]
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before == set()


async def test_a_layer_failure_during_a_client_message_ends_the_loop_after_that_message():
    consumer = Consumer()
    loop = asyncio.create_task(consumer.run())
    consumer.client.put_nowait({"n": "c0"})
    consumer.layer.put_nowait({"boom": "late"})
    consumer.client.put_nowait({"n": "c1"})
    with pytest.raises(RuntimeError, match="late"):
        await asyncio.wait_for(loop, 2)
    assert consumer.overlaps == 0 and consumer.handled[0] == "c0"


async def test_cancelling_the_connection_cancels_the_layer_loop():
    consumer = Consumer()
    before = asyncio.all_tasks()
    loop = asyncio.create_task(consumer.run())
    await asyncio.sleep(0.01)
    assert len(asyncio.all_tasks() - before) == 2  # the loop and its companion for the layer
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before == set()
