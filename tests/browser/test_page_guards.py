"""The page outside the happy path: bad links, the barge-in guard, a phone-sized screen."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.browser


def test_rejected_token_says_so_and_does_not_retry(new_page, server):
    session = server.demo_session()
    driver = new_page()
    driver.page.goto(f"{server.base_url}/interview/{session['sessionId']}/#token=not-a-real-token")
    assert "token" not in driver.page.url
    driver.page.get_by_role("button", name="Start interview").click()
    driver.wait_for("() => interviewPage.state === 'failed'", "the page to give up on a rejected token")
    assert driver.evaluate("() => interviewPage.hooks.finalCloseCode") == 4001
    assert driver.page.locator("#end-title").inner_text() == "This link has expired"
    assert "reconnecting" not in driver.evaluate("() => interviewPage.hooks.stateHistory")
    # A rejected token is forgotten, so a reload does not try it again.
    assert driver.evaluate("(id) => sessionStorage.getItem('interview-token:' + id)", session["sessionId"]) is None


def test_unknown_session_is_reported(new_page, server):
    session = server.demo_session()
    driver = new_page()
    driver.page.goto(f"{server.base_url}/interview/{uuid.uuid4()}/#token={session['token']}")
    driver.page.get_by_role("button", name="Start interview").click()
    driver.wait_for("() => interviewPage.state === 'failed'", "the page to report a missing session")
    assert driver.evaluate("() => interviewPage.hooks.finalCloseCode") == 4004
    assert driver.page.locator("#end-title").inner_text() == "Interview not found"


def test_link_without_token_explains_instead_of_connecting(new_page, server):
    driver = new_page()
    driver.page.goto(f"{server.base_url}/interview/{uuid.uuid4()}/")
    driver.wait_for("() => window.interviewPage && interviewPage.state === 'failed'", "the missing-token message")
    assert driver.page.locator("#start-button").is_hidden()
    assert "personal link" in driver.page.locator("#end-reason").inner_text()


def test_page_headers_keep_everything_on_this_origin(new_page, server):
    driver = new_page()
    response = driver.page.goto(f"{server.base_url}/interview/{uuid.uuid4()}/")
    headers = response.headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"
    assert "no-cache" in headers["cache-control"] or "max-age=0" in headers["cache-control"]
    script = driver.page.request.get(f"{server.base_url}/static/interview/capture-worklet.js")
    assert script.ok and "javascript" in script.headers["content-type"]
    # Only files the staticfiles finders know are served, not the project's sources.
    assert driver.page.request.get(f"{server.base_url}/static/interviews/views.py").status == 404
    assert driver.page.request.get(f"{server.base_url}/static/interview/nope.js").status == 404


def test_second_window_takes_over_and_the_first_does_not_reconnect(new_page, server):
    session = server.demo_session()
    first, second = new_page(), new_page()
    first.page.goto(session["url"])
    first.page.get_by_role("button", name="Start interview").click()
    first.wait_for("() => interviewPage.state === 'live'", "the first window to be live")
    second.page.goto(session["url"])
    second.page.get_by_role("button", name="Start interview").click()
    second.wait_for("() => interviewPage.state === 'live'", "the second window to be live")
    first.wait_for("() => interviewPage.state === 'failed'", "the first window to be told it was taken over")
    assert first.evaluate("() => interviewPage.hooks.finalCloseCode") == 4409
    assert first.page.locator("#end-title").inner_text() == "Opened in another window"
    assert "reconnecting" not in first.evaluate("() => interviewPage.hooks.stateHistory")
    # The candidate may take it back, explicitly.
    first.page.get_by_role("button", name="Continue here").click()
    first.wait_for("() => interviewPage.state === 'live'", "the first window to take the interview back")
    second.wait_for("() => interviewPage.hooks.finalCloseCode === 4409", "the second window to let go")


def test_barge_in_needs_sustained_speech_while_the_interviewer_talks(new_page, server):
    driver = new_page()
    driver.page.goto(f"{server.base_url}/interview/{uuid.uuid4()}/")
    result = driver.evaluate(
        """async () => {
            const { BargeInDetector } = await import('/static/interview/barge-in.js');
            const run = (frames, playing = true) => {
                const d = new BargeInDetector();
                for (let i = 0; i < 50; i++) d.update(-65, false, i * 40);   // learn a quiet room
                let t = 2000, fired = -1;
                for (let i = 0; i < 30; i++) d.update(-65, playing, (t += 40));  // past the grace period
                frames.forEach((level, i) => { if (d.update(level, playing, (t += 40)) && fired < 0) fired = i; });
                return fired;
            };
            const loud = -20, echo = -48, quiet = -65;
            return {
                speech: run(Array(10).fill(loud)),
                cough: run([loud, loud, loud, quiet, quiet, quiet, loud, loud, quiet, quiet]),
                speechWithDip: run([loud, loud, loud, quiet, loud, loud, loud, loud]),
                echo: run(Array(20).fill(echo)),
                notPlaying: run(Array(20).fill(loud), false),
            };
        }"""
    )
    assert result["speech"] == 6  # the 7th 40 ms frame: 280 ms of speech
    assert result["cough"] == -1
    assert result["speechWithDip"] == 7
    assert result["echo"] == -1
    assert result["notPlaying"] == -1


def test_phone_width_layout(new_page, server, artifacts_dir):
    session = server.demo_session()
    driver = new_page(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True, device_scale_factor=2)
    driver.page.goto(session["url"])
    assert driver.evaluate("() => document.documentElement.scrollWidth") <= 375
    driver.page.get_by_role("button", name="Start interview").click()
    driver.wait_for("() => interviewPage.state === 'live' && interviewPage.player.secondsPlayed > 2",
                    "the interview to run on a phone-sized screen", timeout=20)
    assert driver.evaluate("() => document.documentElement.scrollWidth") <= 375
    for name in ("Interrupt", "Pause", "End interview", "Send"):
        box = driver.page.get_by_role("button", name=name).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375, name
        assert box["height"] >= 40, f"{name} is too small to tap"
    driver.page.screenshot(path=str(artifacts_dir / "interview-page-phone.png"), full_page=True)
