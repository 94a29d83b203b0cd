"""What an operator's Prometheus sees of a real worker."""

import re

import httpx
import pytest

from tests.e2e.helpers import authenticated, message, receive_until
from tests.servers import OPS_TOKEN, one_worker

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    with one_worker() as daphne:
        yield daphne


def scrape(server, token=OPS_TOKEN) -> httpx.Response:
    return httpx.get(f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def value(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert found, f"{name} not in the scrape"
    return float(found.group(1))


async def test_a_turn_a_barge_in_and_the_live_session_show_in_the_metrics(server):
    assert scrape(server, token="wrong").status_code == 403
    ws = await authenticated(server, server.demo_session())
    await receive_until(ws, "server-ai-speech-chunk")
    await ws.send(message("client-interrupt"))
    await receive_until(ws, "server-ai-interrupted")
    await ws.send(message("client-text-message", text="Counted."))
    await receive_until(ws, "server-ai-speech-chunk")
    during = scrape(server).text
    assert value(during, "interview_live_sessions") == 1
    assert value(during, 'interview_turns_total{speaker="candidate"}') == 1
    assert value(during, "interview_barge_in_seconds_count") == 1
    assert value(during, "interview_turn_to_first_audio_seconds_count") >= 1
    await ws.close()
