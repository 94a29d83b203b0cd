"""Real Chromium against a real daphne: fixtures for the interview page tests.

Chromium comes from Debian (`apt-get install chromium`), Playwright from PyPI; Playwright's
own browser downloads are never used. Without Chromium the tests are skipped on a dev
machine and fail in CI (CI=true), so a broken CI image cannot pass silently.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import wave
from pathlib import Path

import pytest

from tests.servers import ROOT, DaphneServer

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"

# The fake microphone, in time order from the moment the page opens it: silence while the
# opening question plays (~10 s; up to 12 s on a busy machine, when the answer then overlapped
# it and barged in), the spoken answer, then silence long enough to end the utterance. "%noloop" stops Chromium replaying the file (it loops by default), so the
# answer is given once; after the end of the file the microphone delivers silence.
MIC_RATE = 48000
MIC_LEAD_SILENCE_MS = 15000
MIC_ANSWER = "my name is john and i like python programming"
MIC_TRAILING_SILENCE_MS = 4000


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str):
    if _in_ci():
        pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (os.path.isfile(CHROMIUM_PATH) and os.access(CHROMIUM_PATH, os.X_OK)):
        _unavailable(f"no Chromium at {CHROMIUM_PATH} (install it with `apt-get install -y chromium`, "
                     "or set CHROMIUM_PATH)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -r requirements-dev.txt)")
    return CHROMIUM_PATH


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def mic_wav(tmp_path_factory) -> str:
    from tests.factories import silence, speech

    pcm = silence(MIC_LEAD_SILENCE_MS, MIC_RATE) + speech(MIC_ANSWER, MIC_RATE) + silence(MIC_TRAILING_SILENCE_MS, MIC_RATE)
    path = tmp_path_factory.mktemp("mic") / "candidate.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(MIC_RATE)
        out.writeframes(pcm)
    return str(path)


@pytest.fixture(scope="package")
def server(chromium_path):
    """One daphne for the whole browser suite (tests may restart it: same port, same DB),
    on the default providers a candidate meets (Moonshine, Piper, adaptive turn-taking)."""
    var_dir = tempfile.mkdtemp(prefix="browser-daphne-")
    daphne = DaphneServer(var_dir=var_dir, env={"LOG_LEVEL": "INFO"}, light_speech=False)
    daphne.migrate()
    daphne.start()
    yield daphne
    daphne.stop()
    shutil.rmtree(var_dir, ignore_errors=True)


@pytest.fixture(scope="package")
def browser(chromium_path, mic_wav):
    # Package scope, not session: while the sync API is active it keeps an asyncio loop
    # running in this thread, which would break every async test collected after this package.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path,
            args=[
                "--no-sandbox",
                "--headless=new",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={mic_wav}%noloop",
                "--autoplay-policy=no-user-gesture-required",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


class PageDriver:
    """A page with its console kept, and waits that explain themselves when they time out."""

    def __init__(self, page, server: DaphneServer):
        self.page = page
        self.server = server
        self.console: list[str] = []
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))

    def snapshot(self) -> dict:
        try:
            return self.page.evaluate(
                """() => window.interviewPage ? {
                    state: interviewPage.state, player: interviewPage.player, turns: interviewPage.turns,
                    hooks: interviewPage.hooks, caption: document.getElementById('caption').textContent,
                } : null"""
            )
        except Exception as error:  # the page may be gone
            return {"error": repr(error)}

    def diagnostics(self) -> str:
        return (
            f"\n--- page state ---\n{json.dumps(self.snapshot(), indent=1)[:6000]}"
            f"\n--- browser console ---\n" + "\n".join(self.console[-40:]) +
            f"\n--- server log (tail) ---\n{self.server.log()[-4000:]}"
        )

    def wait_for(self, expression: str, what: str, timeout: float = 20.0, arg=None):
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            return self.page.wait_for_function(expression, arg=arg, timeout=timeout * 1000, polling=100).json_value()
        except PlaywrightTimeout:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}{self.diagnostics()}") from None

    def evaluate(self, expression: str, arg=None):
        return self.page.evaluate(expression, arg)


@pytest.fixture
def new_page(browser, server):
    """Pages in their own browser contexts (own sessionStorage), closed after the test."""
    contexts = []

    def make(**options) -> PageDriver:
        context = browser.new_context(**options)
        contexts.append(context)
        return PageDriver(context.new_page(), server)

    yield make
    for context in contexts:
        context.close()
