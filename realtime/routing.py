from django.urls import path, re_path

from .consumers import InterviewConsumer
from .live import LiveSessionConsumer
from .not_found import NotFoundConsumer

websocket_urlpatterns = [
    path("api/interview-socket", InterviewConsumer.as_asgi()),
    path("api/interview-socket/", InterviewConsumer.as_asgi()),
    re_path(r"^api/live/(?P<session_id>[0-9a-fA-F-]{36})/?$", LiveSessionConsumer.as_asgi()),
    re_path(r"", NotFoundConsumer.as_asgi()),  # anything else: refused at the handshake, not a 500
]
