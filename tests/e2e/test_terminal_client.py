"""The terminal client (`python -m realtime.client`) against a real daphne: automated runs in
both dialects (one with a spoken WAV answer), failures that exit non-zero, and the
interactive mode driven through a pseudo-terminal."""

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
import wave

import pytest

from tests.e2e.helpers import stored_turns
from tests.factories import speech
from tests.servers import ROOT, one_worker

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    with one_worker() as daphne:
        yield daphne


@pytest.fixture(scope="module")
def spoken_answer(tmp_path_factory):
    """A WAV file of a spoken answer, at 22.05 kHz (the client resamples it to the server's rate)."""
    path = tmp_path_factory.mktemp("speech") / "answer.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(22050)
        wav.writeframes(speech("my name is john and i like python programming", 22050))
    return path


def client(server, info, *args, token_in_env=True, timeout=180):
    env = {**os.environ, "INTERVIEW_TOKEN": info["token"]} if token_in_env else dict(os.environ)
    return subprocess.run([sys.executable, "-m", "realtime.client", "--url", server.base_url,
                           "--session", info["sessionId"], *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def summary(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_automated_text_interview(server):
    info = server.demo_session()
    result = client(server, info, "--dialect", "text", "--json",
                    "--answer", "I am a backend engineer.", "--answer", "/pause", "--answer", "/resume",
                    "--answer", "A payments platform.", "--answer", "Queues and caches.")
    assert result.returncode == 0, result.stdout + result.stderr
    run = summary(result)
    assert run["ok"] and run["endReason"] == "All questions answered." and run["closeCode"] == 1000
    spoken = [line for line in run["transcript"] if line["speaker"] == "candidate"]
    assert [line["text"] for line in spoken] == ["I am a backend engineer.", "A payments platform.", "Queues and caches."]
    assert all(line["audioUrl"] for line in run["transcript"] if line["speaker"] == "interviewer")
    assert len(run["turns"]) == 3 and all(t["storedMs"] is not None and t["firstReplyMs"] is not None for t in run["turns"])
    assert run["results"]["answeredQuestions"] == 3 and run["results"]["final"] is True
    assert "interviewer: Hello" in result.stdout and "(paused)" in result.stdout and "(resumed)" in result.stdout
    assert "turn latency (end of answer -> first reply)" in result.stdout


def test_the_client_renews_its_access_token_before_it_expires(server):
    # A token that lives 4 s, an interview that lasts longer: without renewing, the server
    # closes the socket at expiry (token_expired) and the run fails.
    info = server.demo_session(ttl=4)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "realtime.client", "--join", json.dumps(info), "--json",
                             "--answer", "I am a backend engineer.", "--answer", "A payments platform.",
                             "--answer", "Queues and caches."],
                            cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started > 4 + 2  # the first token expired while the interview went on
    run = summary(result)
    assert run["ok"] and run["endReason"] == "All questions answered." and run["closeCode"] == 1000
    assert "(access token renewed)" in result.stdout


def test_automated_voice_interview_with_a_spoken_answer(server, spoken_answer, tmp_path):
    info = server.demo_session()
    script = tmp_path / "answers.txt"
    script.write_text(f"# a spoken answer, then typed ones\n@{spoken_answer}\nA payments platform.\n")
    result = client(server, info, "--dialect", "voice", "--json", "--script", str(script))
    assert result.returncode == 0, result.stdout + result.stderr
    run = summary(result)
    assert run["ok"] and run["closeCode"] == 1000
    assert run["turns"][0]["answer"] == "@answer.wav" and run["turns"][0]["firstReplyMs"] is not None
    heard = [line["text"] for line in run["transcript"] if line["speaker"] == "candidate"]
    assert heard[0] and heard[1] == "A payments platform."
    # The script ran out with a question left: the client ended the interview itself.
    assert run["endReason"] == "The candidate ended the interview: The script of answers is over."
    assert "s of speech]" in result.stdout
    stored = [t for t in stored_turns(server, info["sessionId"]) if t["speaker"] == "candidate"]
    assert stored[0]["text"] == heard[0]


def test_failures_exit_non_zero(server, spoken_answer):
    info = server.demo_session()
    forged = client(server, {**info, "token": "not-a-token"}, "--dialect", "text", "--answer", "hello")
    assert forged.returncode == 1 and "token_malformed" in forged.stdout
    nothing_there = subprocess.run([sys.executable, "-m", "realtime.client", "--url", "http://127.0.0.1:9",
                                    "--session", info["sessionId"], "--token", "t", "--answer", "x"],
                                   cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert nothing_there.returncode == 1 and "cannot connect" in nothing_there.stdout
    wrong_origin = client(server, info, "--origin", "http://evil.example", "--answer", "x")
    assert wrong_origin.returncode == 1 and "refused the connection (HTTP 403)" in wrong_origin.stdout
    speech_on_text = client(server, info, "--dialect", "text", "--answer", f"@{spoken_answer}")
    assert speech_on_text.returncode == 2 and "need --dialect voice" in speech_on_text.stderr
    assert client(server, info, token_in_env=False).returncode == 2  # no token at all


class Terminal:
    """The client in interactive mode on a pseudo-terminal, as a person would run it."""

    def __init__(self, server, info, dialect: str):
        master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "realtime.client", "--url", server.base_url, "--session", info["sessionId"],
             "--dialect", dialect, "--interactive"],
            cwd=ROOT, env={**os.environ, "INTERVIEW_TOKEN": info["token"]},
            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        self.master = master
        self.output = ""
        self._seen = 0

    def expect(self, pattern: str, timeout: float = 30) -> re.Match:
        """Wait for `pattern` in what was printed after the last match."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.compile(pattern).search(self.output, self._seen)
            if match:
                self._seen = match.end()
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {pattern!r} in {timeout}s; the terminal shows:\n{self.output[self._seen:]}")
            ready, _, _ = select.select([self.master], [], [], min(remaining, 0.2))
            if ready:
                try:
                    self.output += os.read(self.master, 65536).decode("utf-8", "replace")
                except OSError:  # the client exited and the terminal closed
                    if self.process.poll() is not None:
                        time.sleep(0.1)

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def exit_code(self, timeout: float = 30) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            os.close(self.master)


def test_interactive_voice_session_in_a_terminal(server, spoken_answer):
    info = server.demo_session()
    terminal = Terminal(server, info, "voice")
    try:
        terminal.expect(r"\(connected: 3 questions, new session")
        terminal.expect(r"interviewer: .*about yourself and your background\?")
        terminal.type("/interrupt")
        terminal.expect(r"\(interviewer interrupted\)")
        terminal.type(f"/wav {spoken_answer}")
        terminal.expect(r"\(hearing\) \S+")  # live transcript while the answer is spoken
        terminal.expect(r"you: \S+")
        terminal.expect(r"interviewer: .*proud of")
        terminal.type("/pause")
        terminal.expect(r"\(state: paused")
        terminal.type("/resume")
        terminal.expect(r"\(state: live")
        terminal.type("I led the backend of a payments platform.")
        terminal.expect(r"you: I led the backend of a payments platform\.")
        terminal.type("/end time is up")
        terminal.expect(r"\(interview ended: The candidate ended the interview: time is up\)")
        terminal.expect("bye")
        assert terminal.exit_code() == 0
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()


def test_interactive_text_session_in_a_terminal(server):
    info = server.demo_session()
    terminal = Terminal(server, info, "text")
    try:
        terminal.expect(r"interviewer: Hello.*\[audio /api/sessions/")
        terminal.type("I am a tester.")
        terminal.expect(r"you: I am a tester\.")
        terminal.expect(r"\(interviewer is typing\.\.\.\)")
        terminal.expect(r"interviewer: .*proud of")
        terminal.type("/interrupt")
        terminal.expect(r"nothing to interrupt")
        terminal.type("/bogus")
        terminal.expect(r"unknown command /bogus")
        terminal.type("/end")
        terminal.expect(r"\(interview ended: The candidate ended the interview\.\)")
        terminal.expect(r"results: 1 of 3 questions answered")
        terminal.expect("bye")
        assert terminal.exit_code() == 0
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()
