"""The recruiter's admin pages in real Chromium: the sessions list refreshes itself, the
session page shows a candidate's words as they are said (the candidate is driven by
the test's own WebSocket client), and its End button ends the candidate's interview."""

from __future__ import annotations

import base64
import json
import queue
import threading
import time

import pytest
from websockets.sync.client import connect

from tests.e2e.helpers import auth_message, message, staff_cookie
from tests.factories import chunks, silence, speech

pytestmark = pytest.mark.browser

SPOKEN = "my name is john and i like python programming"


def _recruiter_page(new_page, server, username):
    cookie = staff_cookie(server, username=username)
    server.shell("from django.contrib.auth import get_user_model; from django.contrib.auth.models import Permission; "
                 f"get_user_model().objects.get(username={username!r}).user_permissions.add("
                 "Permission.objects.get(codename='change_interviewsession')); print('ok')")
    driver = new_page()
    driver.page.context.add_cookies([{"name": "sessionid", "value": cookie, "url": server.base_url}])
    return driver


class Candidate(threading.Thread):
    """The candidate's side, on the test client's socket: joins, answers when told, and
    reports every message type it receives (the page's thread keeps Playwright's loop)."""

    def __init__(self, server, info):
        super().__init__(daemon=True)
        self.server, self.info = server, info
        self.say = queue.Queue()
        self.received: queue.Queue = queue.Queue()
        self.leave = threading.Event()

    def run(self):
        with connect(self.server.ws_url, origin=self.server.base_url, max_size=2**22) as ws:
            ws.send(auth_message(self.info))
            while not self.leave.is_set():
                try:
                    self._speak(ws, self.say.get_nowait())
                except queue.Empty:
                    pass
                try:
                    frame = json.loads(ws.recv(timeout=0.1))
                except TimeoutError:
                    continue
                except Exception:  # closed
                    self.received.put(("closed", ws.close_code))
                    return
                if frame["type"] != "server-ai-speech-chunk":
                    self.received.put((frame["type"], frame["payload"]))

    @staticmethod
    def _speak(ws, text: str) -> None:
        """Speech in real time, 40 ms a chunk, as a microphone sends it (then silence)."""
        started = time.monotonic()
        for index, chunk in enumerate(chunks(speech(text, 16000) + silence(4000, 16000), sample_rate=16000)):
            ws.send(message("client-audio-chunk", data=base64.b64encode(chunk).decode()))
            time.sleep(max(0.0, started + (index + 1) * 0.04 - time.monotonic()))

    def wait_for(self, kind: str, timeout: float = 20):
        while True:
            got, payload = self.received.get(timeout=timeout)
            if got == kind:
                return payload


def test_the_sessions_list_updates_without_a_reload(new_page, server):
    info = server.demo_session()
    driver = _recruiter_page(new_page, server, "list-watcher")
    driver.page.goto(f"{server.base_url}/admin/interviews/interviewsession/")
    cell = f".live-cell[data-session='{info['sessionId']}'][data-field='status']"
    assert driver.page.locator(cell).inner_text() == "scheduled"
    candidate = Candidate(server, info)
    candidate.start()
    candidate.wait_for("server-auth-success")
    driver.wait_for(f"() => document.querySelector(\"{cell}\").textContent === 'live'",
                    "the status cell to turn live without a reload")
    worker = f".live-cell[data-session='{info['sessionId']}'][data-field='worker']"
    driver.wait_for(f"() => document.querySelector(\"{worker}\").textContent.includes(':')",
                    "the worker holding the session to appear", timeout=30)
    candidate.leave.set()
    candidate.join(5)


def test_a_recruiter_watches_the_candidates_words_and_ends_the_session(new_page, server, artifacts_dir):
    info = server.demo_session()
    driver = _recruiter_page(new_page, server, "live-watcher")
    driver.page.goto(f"{server.base_url}/admin/interviews/interviewsession/{info['sessionId']}/change/")
    driver.wait_for("() => document.getElementById('live-connection').dataset.state === 'open'",
                    "the live view's socket to open")

    candidate = Candidate(server, info)
    candidate.start()
    candidate.wait_for("server-auth-success")
    driver.wait_for("() => document.getElementById('session-status').textContent === 'live'",
                    "the status to turn live on the page")
    # The interviewer's opening question, once spoken, then the candidate's spoken answer.
    driver.wait_for("() => document.getElementById('live-interim').textContent.startsWith('Interviewer (speaking): ')",
                    "the interviewer's words in the live view while they are spoken", timeout=40)
    candidate.wait_for("server-ai-speech-end", timeout=40)
    driver.wait_for("() => document.querySelector('#live-turns .live-turn-interviewer') !== null",
                    "the interviewer's words in the live view")
    candidate.say.put(SPOKEN)
    driver.wait_for("() => Number(document.getElementById('live-view').dataset.interims || 0) > 0",
                    "interim transcripts of the candidate's speech in the live view", timeout=30)
    heard = candidate.wait_for("server-final-transcript", timeout=30)["transcript"]
    assert heard.strip()
    driver.wait_for("(text) => [...document.querySelectorAll('#live-turns .live-turn-candidate')]"
                    ".some(li => li.textContent.includes(text))", "the candidate's words in the live view",
                    arg=heard)
    driver.page.screenshot(path=str(artifacts_dir / "admin-live-session.png"), full_page=True)

    driver.page.fill("#end-reason", "Thank you, we have what we need")
    driver.page.click("#end-session")
    driver.page.wait_for_load_state()
    assert "the candidate was told" in driver.page.locator(".messagelist").inner_text()
    ended = candidate.wait_for("server-session-ended")
    assert ended["reason"] == "Ended by the recruiter: Thank you, we have what we need"
    assert candidate.wait_for("closed") == 1000
    assert driver.page.locator("#session-status").inner_text() == "completed"
    assert heard in driver.page.locator("#turns").inner_text()  # the stored conversation
    assert driver.page.locator("#live-view").count() == 0


def test_the_live_view_resyncs_from_a_snapshot_after_a_reconnect(new_page, server):
    info = server.demo_session()
    driver = _recruiter_page(new_page, server, "resync-watcher")
    driver.page.goto(f"{server.base_url}/admin/interviews/interviewsession/{info['sessionId']}/change/")
    driver.wait_for("() => document.getElementById('live-connection').dataset.state === 'open'",
                    "the live view's socket to open")
    # Stored by another process: no live event reaches this worker, only the stored turn.
    server.shell("from interviews import services; "
                 f"services.turn_record(session_id='{info['sessionId']}', speaker='candidate', "
                 "text='Stored while the view was away.'); print('ok')")
    assert driver.page.locator("#live-turns li").count() == 0
    server.restart()  # the view's socket drops; it reconnects on its own
    driver.wait_for("() => [...document.querySelectorAll('#live-turns li')]"
                    ".some(li => li.textContent.includes('Stored while the view was away.'))",
                    "the turn from the fresh snapshot after the reconnect", timeout=30)
    assert driver.page.locator("#live-connection").get_attribute("data-state") == "open"
