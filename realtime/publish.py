"""How `interviews` live events reach watchers: the channel layer group of the session."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from .groups import live_group


def publish_to_channel_layer(session_id: str, event: dict) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(live_group(session_id), {"type": "session.event", "event": event})
