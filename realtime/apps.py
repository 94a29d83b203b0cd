from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"

    def ready(self):
        from interviews import control as interview_control
        from interviews import events

        from . import checks  # noqa: F401  (registers the provider check)
        from . import control
        from .publish import publish_to_channel_layer

        events.set_publisher(publish_to_channel_layer)
        interview_control.set_live_ender(control.end_live)  # recruiters end live sessions on any worker
        interview_control.set_token_issuer(control.link_token)
