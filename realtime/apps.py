from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"

    def ready(self):
        from interviews import events

        from . import checks  # noqa: F401  (registers the provider check)
        from .publish import publish_to_channel_layer

        events.set_publisher(publish_to_channel_layer)
