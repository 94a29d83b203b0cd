from django.urls import path, re_path

from .consumers import InterviewConsumer
from .live import LiveSessionConsumer

websocket_urlpatterns = [
    path("api/interview-socket", InterviewConsumer.as_asgi()),
    path("api/interview-socket/", InterviewConsumer.as_asgi()),
    re_path(r"^api/live/(?P<session_id>[0-9a-fA-F-]{36})/?$", LiveSessionConsumer.as_asgi()),
]
