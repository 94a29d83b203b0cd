from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"

    def ready(self):
        from interviews import events

        from .publish import publish_to_channel_layer

        events.set_publisher(publish_to_channel_layer)
