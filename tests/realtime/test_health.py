"""Liveness and readiness as a load balancer sees them (in process; the outages are in
tests/e2e/test_cluster_faults.py)."""

import pytest
from django.test import AsyncClient

from realtime import shutdown

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_ready_worker_says_so_and_a_draining_one_does_not(monkeypatch):
    client = AsyncClient()
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    monkeypatch.setattr(shutdown, "draining", True)
    draining = await client.get("/readyz")
    assert draining.status_code == 503 and draining.json()["checks"]["worker"] == "shutting down"
    assert (await client.get("/healthz")).json() == {"status": "ok"}
