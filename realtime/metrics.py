"""Prometheus metrics of one worker (scrape each worker's /metrics).

Gauges of what the worker holds are read at scrape time from `stats`; counters and
histograms are updated where the events happen.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from . import stats

REGISTRY = CollectorRegistry()

TURNS = Counter("interview_turns", "Finished turns stored, by speaker.", ["speaker"], registry=REGISTRY)
TURN_TO_FIRST_AUDIO = Histogram(
    "interview_turn_to_first_audio_seconds", "End of the candidate's turn to the interviewer's first audio sent.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10), registry=REGISTRY)
BARGE_IN = Histogram(
    "interview_barge_in_seconds", "client-interrupt received to server-ai-interrupted sent.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25), registry=REGISTRY)
PROVIDER_FAILURES = Counter(
    "interview_provider_failures", "Provider calls that failed or missed their deadline.", ["role", "kind"],
    registry=REGISTRY)
AUDIO_DROPPED = Counter(
    "interview_audio_dropped_bytes", "Candidate audio dropped: faster than real time, or the worker behind.",
    ["reason"], registry=REGISTRY)
CLOSED_BY_SERVER = Counter(
    "interview_closed_by_server", "Candidate sockets the server closed, by close code.", ["code"], registry=REGISTRY)


class _Holdings:
    def collect(self):
        now = stats.snapshot(user_slots=0)
        yield GaugeMetricFamily("interview_connections", "Open sockets (candidates and live views).",
                                value=now["connections"])
        yield GaugeMetricFamily("interview_live_sessions", "Sessions with a running runtime.", value=now["runtimes"])
        yield GaugeMetricFamily("interview_asyncio_tasks", "Tasks on the event loop.", value=now["tasks"])
        yield GaugeMetricFamily("interview_resident_memory_bytes", "Resident memory of the worker.",
                                value=now["rssBytes"])


REGISTRY.register(_Holdings())
