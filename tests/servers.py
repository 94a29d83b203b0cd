"""Real daphne processes for end-to-end tests and benchmarks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPS_TOKEN = "test-ops-token"
# Workers that test sockets, storage or recovery rather than speech start with the light
# embedded options (PocketSphinx, eSpeak NG, the fixed 700 ms turn rule: ~0.1 GB and no
# model load); `light_speech=False`, or a test's own REALTIME_* values, give the defaults.
LIGHT_SPEECH = {"REALTIME_STT": "pocketsphinx", "REALTIME_TTS": "espeak", "REALTIME_TURN_TAKING": "fixed"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


class DaphneServer:
    """One daphne worker serving the project, with its own database and key directory."""

    def __init__(self, *, port: int | None = None, env: dict | None = None, var_dir: str | None = None,
                 log_path: str | None = None, light_speech: bool = True):
        self.port = port or free_port()
        self.var_dir = var_dir or tempfile.mkdtemp(prefix="daphne-")
        self.env = {**os.environ, "VAR_DIR": self.var_dir, "DEMO_BASE_URL": self.base_url,
                    "PYTHONUNBUFFERED": "1", "REALTIME_OPS_TOKEN": OPS_TOKEN, **(env or {})}
        if light_speech and self.env.get("REALTIME_PROVIDERS", "local") == "local":
            self.env = {**LIGHT_SPEECH, **self.env}
        self.log_path = log_path or os.path.join(self.var_dir, f"daphne-{self.port}.log")
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/interview-socket"

    def manage(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=120)
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def migrate(self) -> None:
        self.manage("migrate", "--noinput", "-v", "0")

    def start(self) -> "DaphneServer":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "realtime.serve", "-b", "127.0.0.1", "-p", str(self.port), "interview_site.asgi:application"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        # Generous: a worker loads the speech models before it listens, slower while other tests run.
        wait_for_port(self.port, timeout=120, process=self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def demo_session(self, user: str | None = None, ttl: int | None = None) -> dict:
        args = ["demo_session", "--base-url", self.base_url]
        if user:
            args += ["--user", user]
        if ttl:
            args += ["--ttl", str(ttl)]
        return json.loads(self.manage(*args).strip().splitlines()[-1])

    def stats(self) -> dict:
        """What the worker holds right now (connections, runtimes, user slots, tasks, memory)."""
        import httpx

        response = httpx.get(f"{self.base_url}/api/ops/stats", headers={"Authorization": f"Bearer {OPS_TOKEN}"},
                             timeout=10)
        response.raise_for_status()
        return response.json()

    def shell(self, code: str) -> str:
        """Run Python in the server's environment (its database); returns the last printed line."""
        return self.manage("shell", "-c", code).strip().splitlines()[-1]

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""


@contextmanager
def one_worker(env: dict | None = None):
    """A migrated worker on its own SQLite database, stopped afterwards."""
    server = DaphneServer(env=env)
    server.migrate()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def two_workers_on_postgres_and_redis(env: dict | None = None):
    """Two workers on a fresh PostgreSQL database and the machine's Redis (skipped, or
    failed in CI, when either is missing)."""
    from tests.services import postgres_database, redis_url

    with postgres_database() as database_url:
        with two_workers({"DATABASE_URL": database_url, "REDIS_URL": redis_url(), **(env or {})}) as pair:
            yield pair


@contextmanager
def two_workers(env: dict):
    """Two workers sharing a database and a channel layer, as behind a load balancer:
    one demo signing key, one public URL (worker A's)."""
    a = DaphneServer(env=env)
    b = DaphneServer(env=env, var_dir=a.var_dir)
    b.env["DEMO_BASE_URL"] = a.base_url
    a.migrate()
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()
