"""Operators' view of a worker: what it holds right now (JSON).

Off unless REALTIME_OPS_TOKEN is set; then it answers only `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, JsonResponse

from . import stats
from .consumers import user_slots_in_use


async def ops_stats(request):
    token = settings.REALTIME_OPS_TOKEN
    if not token:
        raise Http404
    offered = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not hmac.compare_digest(offered.encode(), token.encode()):
        return JsonResponse({"error": "forbidden"}, status=403)
    return JsonResponse(stats.snapshot(user_slots=user_slots_in_use()))
