"""Liveness and readiness, for a load balancer or an orchestrator.

`/healthz`: the process answers. `/readyz`: it can take a new candidate now: the
database and the channel layer answer within a deadline, the provider set builds, and
the worker is not shutting down. Either answers JSON; readiness is 503 when not ready.
"""

from __future__ import annotations

import asyncio

from .db import database_call
from channels.layers import get_channel_layer
from django.db import connection
from django.http import JsonResponse

from . import shutdown
from .providers.registry import get_providers

CHECK_SECONDS = 2.0


async def healthz(request):
    return JsonResponse({"status": "ok"})


async def readyz(request):
    checks = {}
    for name, check in (("database", _database), ("channelLayer", _channel_layer), ("providers", _providers)):
        try:
            async with asyncio.timeout(CHECK_SECONDS):
                await check()
            checks[name] = "ok"
        except Exception as error:  # each failure is reported, none raised
            checks[name] = f"failed: {type(error).__name__}"
    if shutdown.draining:
        checks["worker"] = "shutting down"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)


async def _database() -> None:
    await database_call(_select_one)()


def _select_one() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _channel_layer() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "health.check"})
    await layer.receive(channel)


async def _providers() -> None:
    get_providers()
