"""The production shape on this machine, for tests and the benchmark: nginx (Debian's
package, as an unprivileged process with its own run directory) in front of N daphne
workers sharing PostgreSQL and Redis. The same templates as scripts/cluster.sh and
docker-compose.yml (deploy/nginx/).

    with production_cluster(workers=2, env={...}) as cluster:
        cluster.ws_url          # the candidate's socket, through nginx
        cluster.workers[0]      # a tests.servers.DaphneServer (stats(), shell(), process)
        cluster.kill(0)         # SIGKILL; cluster.terminate(0) SIGTERM; cluster.workers[0].start()
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from deploy.render import render
from tests.servers import ROOT, DaphneServer, free_port, wait_for_port

TEMPLATES = ROOT / "deploy" / "nginx"
FAIL_TIMEOUT_S = 5


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def require_nginx() -> str:
    """nginx's path; a test without it is skipped with the reason (failed under CI=true)."""
    binary = nginx_binary()
    if binary is None:
        message = "nginx is not installed (apt-get install nginx): the production cluster tests need it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


class ClusterWorker(DaphneServer):
    """A worker behind nginx: it takes the client's address from X-Forwarded-For."""

    def start(self) -> "ClusterWorker":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "realtime.serve", "-b", "127.0.0.1", "-p", str(self.port), "--proxy-headers",
             "interview_site.asgi:application"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, process=self.process)
        return self

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker on {self.port} not ready after {timeout}s:\n{self.log()[-2000:]}")
            time.sleep(0.1)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def cpu_seconds(self) -> float:
        """User + system CPU the worker has used (the benchmark's per-worker load)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class NginxCluster:
    def __init__(self, workers: int = 2, *, env: dict, access_log: bool = False, worker_processes: int = 1,
                 run_dir: str | None = None, static: bool = True):
        self.nginx = require_nginx()
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="cluster-"))
        self.port = free_port()
        var_dir = str(self.run_dir / "var")
        self.workers = [ClusterWorker(env=env, var_dir=var_dir) for _ in range(workers)]
        os.makedirs(var_dir, exist_ok=True)
        for worker in self.workers:  # one public URL: nginx's (the page's origin, the demo links)
            worker.env.update(DEMO_BASE_URL=self.base_url, VAR_DIR=var_dir)  # one key, one STATIC_ROOT
        self.access_log = access_log
        self.worker_processes = worker_processes
        self.static = static
        self.upstream = list(range(workers))  # the workers nginx sends to (set_upstream)
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/interview-socket"

    @property
    def static_root(self) -> Path:
        return self.run_dir / "var" / "staticfiles"  # STATIC_ROOT = VAR_DIR / "staticfiles"

    # --- nginx ---------------------------------------------------------------------------

    def write_config(self) -> Path:
        for sub in ("conf", "logs", "tmp"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        servers = "\n    ".join(f"server 127.0.0.1:{self.workers[i].port} max_fails=1 fail_timeout={FAIL_TIMEOUT_S}s;"
                                for i in self.upstream)
        (self.run_dir / "conf" / "interview.conf").write_text(render(TEMPLATES / "interview.conf.template", {
            "NGINX_LISTEN": f"127.0.0.1:{self.port}", "NGINX_UPSTREAM_SERVERS": servers,
            "NGINX_STATIC_ROOT": str(self.static_root)}))
        main = self.run_dir / "conf" / "nginx.conf"
        main.write_text(render(TEMPLATES / "nginx.conf.template", {
            "NGINX_RUN_DIR": str(self.run_dir),
            "NGINX_USER_DIRECTIVE": f"user {getpass.getuser()};" if os.geteuid() == 0 else "",
            "NGINX_WORKER_PROCESSES": str(self.worker_processes),
            "NGINX_ACCESS_LOG": str(self.run_dir / "logs" / "access.log") if self.access_log else "off"}))
        return main

    def _nginx_command(self, *extra: str) -> list[str]:
        return [self.nginx, "-p", str(self.run_dir), "-c", str(self.run_dir / "conf" / "nginx.conf"),
                "-e", str(self.run_dir / "logs" / "error.log"), *extra]

    def start_nginx(self) -> None:
        self.write_config()
        check = subprocess.run(self._nginx_command("-t", "-q"), capture_output=True, text=True, timeout=30)
        if check.returncode:
            raise RuntimeError(f"nginx refused its configuration:\n{check.stderr}")
        self.process = subprocess.Popen(self._nginx_command("-g", "daemon off;"), stdout=subprocess.DEVNULL,
                                        stderr=open(self.run_dir / "logs" / "stderr.log", "ab"))
        wait_for_port(self.port, process=self.process)

    def set_upstream(self, indices: list[int]) -> None:
        """Send to these workers only (the others keep running, idle): configuration
        rewritten and reloaded; new connections follow at once, open ones are not cut."""
        self.upstream = list(indices)
        self.write_config()
        self.process.send_signal(signal.SIGHUP)
        time.sleep(1.0)  # the master starts new worker processes with the new configuration

    def stop_nginx(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # fast shutdown: open sockets are closed, not waited for
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def nginx_cpu_seconds(self) -> float:
        """CPU used so far by nginx's master and worker processes (the benchmark's proxy cost)."""
        pids = [self.process.pid]
        try:
            pids += [int(p) for p in Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()]
        except OSError:
            pass
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except OSError:
                pass
        return total

    def nginx_log(self) -> str:
        try:
            return (self.run_dir / "logs" / "error.log").read_text(errors="replace")
        except OSError:
            return ""

    # --- the whole -----------------------------------------------------------------------

    def start(self) -> "NginxCluster":
        first = self.workers[0]
        first.migrate()
        if self.static:
            first.manage("collectstatic", "--noinput", "-v", "0")
        for worker in self.workers:
            worker.start()
        for worker in self.workers:
            worker.wait_ready()
        self.start_nginx()
        return self

    def stop(self) -> None:
        self.stop_nginx()
        for worker in self.workers:
            worker.stop()

    def kill(self, index: int) -> None:
        """SIGKILL: the worker writes nothing more, as when a host dies."""
        worker = self.workers[index]
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(10)
        worker.process = None

    def terminate(self, index: int) -> float:
        """SIGTERM and wait for the exit (candidates are told 4012); seconds it took."""
        worker = self.workers[index]
        started = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        code = worker.process.wait(30)
        worker.process = None
        if code != 0:
            raise RuntimeError(f"worker {index} exited with {code}:\n{worker.log()[-2000:]}")
        return time.monotonic() - started

    def restart(self, index: int) -> None:
        """Start a stopped (killed or terminated) worker again, on its port; wait until ready."""
        worker = self.workers[index]
        worker.start()
        worker.wait_ready()

    def session_row(self, session_id: str) -> dict:
        """The session's row as the workers see it (status, held_by, lease, connections)."""
        import psycopg

        with psycopg.connect(self.workers[0].env["DATABASE_URL"], connect_timeout=5) as connection:
            row = connection.execute(
                "SELECT status, held_by, lease_expires_at, connection_count FROM interviews_interviewsession "
                "WHERE id = %s", (session_id,)).fetchone()
        return dict(zip(("status", "held_by", "lease_expires_at", "connection_count"), row))

    def holder(self, session_id: str, timeout: float = 10) -> int:
        """The index of the running worker whose lease covers the session (held_by = host:pid)."""
        deadline = time.monotonic() + timeout
        while True:
            held_by = self.session_row(session_id)["held_by"]
            for index, worker in enumerate(self.workers):
                if worker.process is not None and held_by.endswith(f":{worker.pid}"):
                    return index
            if time.monotonic() > deadline:
                raise TimeoutError(f"no running worker holds session {session_id} (held_by={held_by!r})")
            time.sleep(0.1)

    def demo_session(self) -> dict:
        return self.workers[0].demo_session()

    def sessions(self, count: int, *, questions: int = 60) -> list[dict]:
        """`count` sessions ({"sessionId", "token"}), one user each, of an interview with
        `questions` questions (so a session lasts as many answers)."""
        code = (
            "import json, uuid; from interviews import services; from interviews.models import Interview, Question; "
            "from realtime.auth import demo_token_issue; "
            "i = Interview.objects.create(title='Cluster test', role='Tester'); "
            f"Question.objects.bulk_create(Question(interview=i, position=n, text=f'Question {{n + 1}}?') for n in range({questions})); "
            "out = []\n"
            f"for _ in range({count}):\n"
            "    u = str(uuid.uuid4()); s = services.session_create(interview=i, owner_id=u)\n"
            "    out.append({'sessionId': str(s.pk), 'token': demo_token_issue(user_id=u, ttl_seconds=3600)})\n"
            "print(json.dumps(out))"
        )
        return json.loads(self.workers[0].shell(code))

    def __enter__(self) -> "NginxCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
        if exc and exc[0] is not None:
            for worker in self.workers:
                print(f"--- worker {worker.port} ---\n{worker.log()[-3000:]}", file=sys.stderr)
            print(f"--- nginx ---\n{self.nginx_log()[-3000:]}", file=sys.stderr)


@contextmanager
def production_cluster(workers: int = 2, *, env: dict | None = None, **kwargs):
    """nginx + `workers` daphne workers + the test's own redis-server + a fresh PostgreSQL
    database (dropped afterwards). Skipped (failed in CI) when nginx, Redis or PostgreSQL
    is missing."""
    from tests.faults import RedisServer
    from tests.services import postgres_database

    require_nginx()
    redis = RedisServer().start()
    try:
        with postgres_database() as database_url:
            full_env = {"DATABASE_URL": database_url, "REDIS_URL": redis.url, **(env or {})}
            with NginxCluster(workers, env=full_env, **kwargs) as cluster:
                yield cluster
            if not os.environ.get("CLUSTER_KEEP"):  # CLUSTER_KEEP=1 keeps the logs and configuration
                shutil.rmtree(cluster.run_dir, ignore_errors=True)
    finally:
        redis.stop()
