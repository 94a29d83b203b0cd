from channels.auth import AuthMiddlewareStack
from django.urls import path, re_path

from .consumers import InterviewConsumer
from .live import LiveSessionConsumer
from .not_found import NotFoundConsumer
from .text_socket import TextInterviewConsumer

interview = InterviewConsumer.as_asgi()  # authenticated by its token, not by a Django session
text_interview = TextInterviewConsumer.as_asgi()  # the text-era dialect of the same sessions

websocket_urlpatterns = [
    path("api/interview-socket", interview),
    path("api/interview-socket/", interview),
    path("ws", text_interview),
    path("ws/", text_interview),
    re_path(r"^api/live/(?P<session_id>[0-9a-fA-F-]{36})/?$", AuthMiddlewareStack(LiveSessionConsumer.as_asgi())),
    re_path(r"", NotFoundConsumer.as_asgi()),  # anything else: refused at the handshake, not a 500
]
