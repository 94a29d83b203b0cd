"""A long interview outlives its access token: the page renews it and the socket stays open.

The candidate's link holds an access token that lives 20 s and a refresh token, in the
shape of Supabase's sign-in redirect. The page renews the token before it expires (here,
with this server's stand-in for Supabase's auth server), hands the new one to the server
on the open socket, and the candidate still answers after the first token's expiry, on
the same connection.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

SHORT_TTL = 20
TYPED = "Still here after my first token ran out."


def test_the_page_renews_a_short_token_and_the_interview_goes_on_past_its_expiry(new_page, server):
    session = server.demo_session(ttl=SHORT_TTL)
    driver = new_page()
    page = driver.page
    page.goto(session["url"])
    # The tokens left the address bar at once and are kept for this tab.
    assert "token" not in page.url and "#" not in page.url
    stored = driver.evaluate(
        "(id) => ['interview-token:', 'interview-refresh-token:'].map(key => sessionStorage.getItem(key + id))",
        session["sessionId"],
    )
    assert stored == [session["token"], session["refreshToken"]]

    page.get_by_role("button", name="Start interview").click()
    driver.wait_for("() => interviewPage.state === 'live'", "the page to be live")
    assert driver.evaluate("() => interviewPage.hooks.tokenExpiresAt") == session["expiresAt"]

    # Before the token expires the page renews it and the server accepts the new one.
    driver.wait_for("() => interviewPage.hooks.messageCounts['server-token-refreshed'] >= 1",
                    "server-token-refreshed on the open socket", timeout=SHORT_TTL + 10)
    assert driver.evaluate("() => interviewPage.hooks.tokenRefreshesSent") >= 1
    renewed_until = driver.evaluate("() => interviewPage.hooks.tokenExpiresAt")
    assert renewed_until > session["expiresAt"] + 600  # the renewed token lives an hour

    # Past the first token's expiry (when the server would have closed an unrenewed socket)…
    driver.wait_for("(exp) => Date.now() / 1000 > exp + 2", "the first token's expiry to pass",
                    timeout=SHORT_TTL + 10, arg=session["expiresAt"])
    # …the candidate still answers, on the same connection.
    driver.wait_for("() => !document.getElementById('answer-input').disabled", "the answer box to be open")
    page.locator("#answer-input").fill(TYPED)
    page.locator("#answer-input").press("Enter")
    driver.wait_for(
        "(t) => [...document.querySelectorAll('#turns > li[data-speaker=candidate][data-source=text]')]"
        ".some(li => li.textContent.includes(t))",
        "the typed answer stored after the first token's expiry", arg=TYPED,
    )
    hooks = driver.evaluate("() => interviewPage.hooks")
    assert hooks["authSuccesses"] == 1, hooks  # no reconnect was needed
    assert hooks["finalCloseCode"] is None and "token_expired" not in hooks["errors"], hooks
    assert "reconnecting" not in hooks["stateHistory"], hooks
    assert driver.evaluate("() => interviewPage.state") == "live"
    # A reload or a reconnect would use the renewed tokens (the spent refresh token is gone).
    stored = driver.evaluate(
        "(id) => ['interview-token:', 'interview-refresh-token:'].map(key => sessionStorage.getItem(key + id))",
        session["sessionId"],
    )
    assert stored[0] != session["token"] and stored[1] not in (None, session["refreshToken"])
    assert not [line for line in driver.console if "pageerror" in line or "Content Security Policy" in line]


@pytest.fixture
def supabase_server(chromium_path):
    """A daphne whose tokens come from a Supabase auth server (SUPABASE_URL): the fake GoTrue
    here, on another origin, with access tokens that live 20 s."""
    import shutil
    import tempfile

    from tests.fakes.gotrue_http import FakeGoTrue
    from tests.servers import DaphneServer

    gotrue = FakeGoTrue().start()
    var_dir = tempfile.mkdtemp(prefix="browser-supabase-")
    daphne = DaphneServer(var_dir=var_dir, env={"SUPABASE_URL": gotrue.origin})
    daphne.migrate()
    daphne.start()
    yield daphne, gotrue
    daphne.stop()
    gotrue.stop()
    shutil.rmtree(var_dir, ignore_errors=True)
    assert not gotrue.errors, list(gotrue.errors)


def test_with_supabase_the_page_renews_its_token_at_supabases_auth_server(browser, supabase_server):
    from urllib.parse import urlencode

    from tests.browser.conftest import PageDriver

    server, gotrue = supabase_server
    user = "5b0a6d1e-7f4c-4e2a-9d3b-2c1e0f9a8b7c"
    session_id = server.shell(
        "from interviews import services; "
        f"print(services.session_create(interview=services.interview_ensure_demo(), owner_id='{user}').pk)"
    )
    signed_in = gotrue.sign_in(user, ttl=SHORT_TTL)
    # What Supabase's auth server puts in a magic link's redirect.
    fragment = urlencode({**signed_in, "type": "magiclink"})
    context = browser.new_context()
    try:
        driver = PageDriver(context.new_page(), server)
        driver.page.goto(f"{server.base_url}/interview/{session_id}/#{fragment}")
        assert "#" not in driver.page.url
        driver.page.get_by_role("button", name="Start interview").click()
        driver.wait_for("() => interviewPage.state === 'live'", "the page to be live")
        driver.wait_for("() => interviewPage.hooks.messageCounts['server-token-refreshed'] >= 1",
                        "server-token-refreshed after a renewal at Supabase's auth server", timeout=SHORT_TTL + 10)
        # The page called SUPABASE_URL's token endpoint (cross-origin) with the link's refresh token.
        assert [call["refresh_token"] for call in gotrue.refreshes] == [signed_in["refresh_token"]]
        assert driver.evaluate("() => interviewPage.hooks.tokenExpiresAt") > signed_in["expires_at"] + 600
        driver.wait_for("(exp) => Date.now() / 1000 > exp + 2", "the first token's expiry to pass",
                        timeout=SHORT_TTL + 10, arg=signed_in["expires_at"])
        driver.page.locator("#answer-input").fill(TYPED)
        driver.page.locator("#answer-input").press("Enter")
        driver.wait_for(
            "(t) => [...document.querySelectorAll('#turns > li[data-speaker=candidate][data-source=text]')]"
            ".some(li => li.textContent.includes(t))",
            "the typed answer stored after the first token's expiry", arg=TYPED,
        )
        hooks = driver.evaluate("() => interviewPage.hooks")
        assert hooks["authSuccesses"] == 1 and hooks["finalCloseCode"] is None, hooks
        assert not [line for line in driver.console if "pageerror" in line or "Content Security Policy" in line]
    finally:
        context.close()


def test_a_refused_renewal_ends_with_a_clear_message_when_the_token_runs_out(new_page, server):
    import httpx

    session = server.demo_session(ttl=8)
    # The link's refresh token is spent before the page uses it (rotation: it is refused now).
    spent = httpx.post(f"{server.base_url}/auth/v1/token?grant_type=refresh_token",
                       json={"refresh_token": session["refreshToken"]}, timeout=10)
    assert spent.status_code == 200, spent.text
    driver = new_page()
    driver.page.goto(session["url"])
    driver.page.get_by_role("button", name="Start interview").click()
    driver.wait_for("() => interviewPage.state === 'live'", "the page to be live")
    driver.wait_for("() => interviewPage.state === 'failed'", "the page to stop when the token runs out", timeout=20)
    assert driver.evaluate("() => interviewPage.hooks.finalCloseCode") == 4001
    assert "Already Used" in driver.evaluate("() => interviewPage.token.lastError")
    assert driver.page.locator("#end-title").inner_text() == "Your sign-in expired"
    assert "answers so far are saved" in driver.page.locator("#end-reason").inner_text()
    assert driver.evaluate("() => interviewPage.hooks.authSuccesses") == 1  # the refused token was not retried


def test_a_link_opened_after_its_access_token_expired_is_renewed_before_connecting(new_page, server):
    session = server.demo_session(ttl=1)
    driver = new_page()
    driver.page.goto(session["url"])
    driver.wait_for("(exp) => Date.now() / 1000 > exp + 1", "the link's access token to expire",
                    arg=session["expiresAt"])
    driver.page.get_by_role("button", name="Start interview").click()
    driver.wait_for("() => interviewPage.state === 'live'", "the page to be live on a renewed token")
    hooks = driver.evaluate("() => interviewPage.hooks")
    assert hooks["authSuccesses"] == 1 and hooks["finalCloseCode"] is None and not hooks["errors"], hooks
    assert driver.evaluate("() => interviewPage.token.renewals") == 1
    assert hooks["tokenExpiresAt"] > session["expiresAt"] + 600
