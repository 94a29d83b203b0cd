"""A WebSocket to a path nobody serves: refused at the handshake (HTTP 403), quietly."""

from channels.generic.websocket import AsyncWebsocketConsumer


class NotFoundConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        await self.close()
