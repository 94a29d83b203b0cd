"""A recogniser for runtime tests that hands out one stream, whose `feed` a test writes."""


class StreamStub:
    """A recognition stream with nothing to flush, reset or close; subclasses feed."""

    async def flush(self):
        return []

    def reset(self):
        pass

    async def close(self):
        pass


class OneStream:
    """The recogniser: every session it opens gets `stream`."""

    def __init__(self, stream: StreamStub):
        self.stream = stream

    def open_stream(self, *, sample_rate):
        return self.stream
