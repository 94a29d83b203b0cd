"""Operators' views of a worker: what it holds right now (JSON), and Prometheus metrics.

Off unless REALTIME_OPS_TOKEN is set; then they answer only `Authorization: Bearer <token>`
(Prometheus sends it with `authorization: {credentials: ...}` in a scrape config).
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import metrics, stats
from .consumers import user_slots_in_use


async def ops_stats(request):
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    return JsonResponse(stats.snapshot(user_slots=user_slots_in_use()))


async def prometheus_metrics(request):
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST)


def _refusal(request):
    token = settings.REALTIME_OPS_TOKEN
    if not token:
        raise Http404
    offered = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not hmac.compare_digest(offered.encode(), token.encode()):
        return JsonResponse({"error": "forbidden"}, status=403)
    return None
