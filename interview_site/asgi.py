"""ASGI entry point: HTTP to Django, WebSockets to the realtime consumers."""

import asyncio
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "interview_site.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from realtime import leases, shutdown  # noqa: E402
from realtime.providers.registry import warm_up_providers  # noqa: E402
from realtime.publish import bind_event_loop  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

warm_up_providers()  # a missing key or an unknown provider stops the worker here, saying which; models load now

router = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginValidator(URLRouter(websocket_urlpatterns), settings.WEBSOCKET_ALLOWED_ORIGINS),
    }
)


async def application(scope, receive, send):
    # Live events are published from database threads onto the server's own loop, and
    # SIGTERM is handled there too.
    loop = asyncio.get_running_loop()
    bind_event_loop(loop)
    shutdown.install(loop)
    leases.install(loop)  # renews this worker's session leases, marks dead workers' sessions disconnected
    return await router(scope, receive, send)
