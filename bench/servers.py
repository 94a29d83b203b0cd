"""Real daphne workers for the benchmark, each a child process on 127.0.0.1.

A `Cluster` is one or more workers sharing a VAR_DIR (SQLite database and demo signing
key) and an environment (provider set, channel layer). Each worker listens on its own
port; with `shared_port=True` every worker also listens on one common port through its
own SO_REUSEPORT socket (passed with `daphne --fd`), so the kernel spreads connections.
Every process started here is killed when the cluster exits, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
INTERVIEW_APP = "interview_site.asgi:application"
ECHO_APP = "bench.echo_asgi:application"
# The project's settings raise redis-py's read timeout above channels-redis's 5 s blocking
# receive (see docs/performance.md, "Redis"), so the URL needs no socket_timeout of its own.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")  # trust auth

_live: set[subprocess.Popen] = set()


def _kill_all() -> None:
    for process in list(_live):
        _stop(process)


atexit.register(_kill_all)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _live.discard(process)


def server_env(var_dir: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REALTIME_", "REDIS_URL", "DATABASE_URL"))}
    env.update(VAR_DIR=var_dir, PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="interview_site.settings",
               WEBSOCKET_ALLOWED_ORIGINS="http://127.0.0.1")
    env.update(extra)
    return env


class Worker:
    def __init__(self, app: str, env: dict, log_path: str, shared: socket.socket | None = None):
        self.app, self.env, self.log_path, self.shared = app, env, log_path, shared
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "realtime.serve", "-e", f"tcp:port={self.port}:interface=127.0.0.1"]
        fds: tuple[int, ...] = ()
        if self.shared is not None:
            command += ["--fd", str(self.shared.fileno())]
            fds = (self.shared.fileno(),)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command + [self.app], cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, pass_fds=fds)
        _live.add(self.process)
        wait_for_port(self.port, process=self.process)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Cluster:
    """`with Cluster(...) as cluster:` start workers; everything is gone after the block."""

    def __init__(self, *, app: str = INTERVIEW_APP, workers: int = 1, providers: str = "synthetic",
                 redis: bool = False, postgres: bool = False, shared_port: bool = False,
                 extra_env: dict | None = None, cpu_cores: float | None = None):
        self.var_dir = tempfile.mkdtemp(prefix="bench-")
        # Each worker in its own CPU group; the quota is only applied by `quota()` (capacity figures).
        self.cpu = CpuGroups(cpu_cores)
        extra = {"REALTIME_PROVIDERS": providers, **(extra_env or {})}
        if redis:
            extra["REDIS_URL"] = REDIS_URL
        # Several workers writing one SQLite file fail with "database is locked": use PostgreSQL.
        self.database = f"bench_{os.getpid()}_{os.path.basename(self.var_dir)[6:].lower()}" if postgres else None
        if self.database:
            extra["DATABASE_URL"] = f"{POSTGRES_URL}/{self.database}"
        self.env = server_env(self.var_dir, **extra)
        self.app, self.redis = app, redis
        self.port: int | None = None  # the shared port, if any
        self._sockets: list[socket.socket] = []
        if shared_port:
            self.port = free_port()
            self._sockets = [_reuseport_socket(self.port) for _ in range(workers)]
        self.workers = [
            Worker(app, self.env, os.path.join(self.var_dir, f"worker-{i}.log"), self._sockets[i] if shared_port else None)
            for i in range(workers)
        ]

    def prepare(self, sessions: int = 0, staff: bool = False) -> dict:
        """Migrate and create sessions (and a staff cookie) in the cluster's database."""
        command = [sys.executable, "-m", "bench.setup_db", "--sessions", str(sessions)] + (["--staff"] if staff else [])
        result = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300)
        if result.returncode:
            raise RuntimeError(f"setup_db failed:\n{result.stderr[-3000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def __enter__(self) -> "Cluster":
        try:
            if self.redis:
                _flush_redis()
            if self.database:
                _postgres(f'CREATE DATABASE "{self.database}"')
            for worker in self.workers:
                worker.start()
                self.cpu.limit(worker.pid)
            self.cpu.lift()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        for sock in self._sockets:
            sock.close()  # the workers hold their own copies
        return self

    @contextlib.contextmanager
    def quota(self):
        """The cluster's CPU quota per worker for the duration (when cgroups are usable)."""
        if not self.cpu.active:
            yield None
            return
        self.cpu.set(self.cpu.cores)
        try:
            yield self.cpu.cores
        finally:
            self.cpu.lift()

    def __exit__(self, *exc) -> None:
        for worker in self.workers:
            worker.stop()
        self.cpu.close()
        for sock in self._sockets:
            sock.close()
        if exc and exc[0] is not None:
            for worker in self.workers:
                tail = Path(worker.log_path).read_text(errors="replace")[-1500:] if os.path.exists(worker.log_path) else ""
                if tail:
                    print(f"--- {worker.log_path} ---\n{tail}", file=sys.stderr)
        if self.database:
            _postgres(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        if not os.environ.get("BENCH_KEEP"):  # BENCH_KEEP=1 keeps the logs and the SQLite files
            shutil.rmtree(self.var_dir, ignore_errors=True)

    def url(self, path: str, worker: int | None = 0) -> str:
        port = self.port if worker is None else self.workers[worker].port
        return f"ws://127.0.0.1:{port}{path}"

    def profile(self, worker: int, seconds: float, out: str) -> subprocess.Popen:
        """py-spy on one worker for `seconds` (raw collapsed stacks in `out`); wait() on the result."""
        process = subprocess.Popen(
            [_py_spy(), "record", "--pid", str(self.workers[worker].pid), "--duration",
             str(int(seconds)), "--rate", "200", "--nonblocking", "--threads", "--format", "raw", "--output", out],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        _live.add(process)
        return process


def _reuseport_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _postgres(statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True, connect_timeout=5) as connection:
        connection.execute(statement)


def _flush_redis() -> None:
    """Empty the benchmark's own Redis database (never another one)."""
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def _py_spy() -> str:
    """py-spy from the venv that runs the bench, even when that venv is not on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else (shutil.which("py-spy") or "py-spy")


# --- the production shape: nginx in front of N workers (figures 8 and 9) -------------------

CGROUP_CPU = Path(os.environ.get("BENCH_CGROUP_CPU", "/sys/fs/cgroup/cpu"))
# A short period: a worker over its quota waits at most (1 - quota) x 10 ms, well under the
# 50 ms latency bound (with the default 100 ms period a throttled worker stalls for up to 75 ms).
CPU_PERIOD_US = 10_000
# A group's weight against everything else on the machine (a busy process outside any group
# weighs 1024): the measured workers, the load generator and nginx get their CPU first, so
# other jobs on a shared machine do not decide the figures. Quotas still cap the workers.
CPU_SHARES = int(os.environ.get("BENCH_CPU_SHARES", "8192"))


def cgroup_writable() -> bool:
    return os.access(CGROUP_CPU, os.W_OK) and (CGROUP_CPU / "cgroup.procs").exists()


class CpuGroups:
    """One cgroup v1 cpu group per worker, each with the same CPU quota, so 1, 2 and 4
    workers compare at the same per-worker budget. The load generator (this process) and
    nginx stay outside them. Where the controller is not writable, `note` says so and
    nothing is limited."""

    def __init__(self, cores: float | None):
        self.cores = cores
        self.groups: list[Path] = []
        self.note = ""
        self.pids: list[int] = []
        if cores is None:
            self.note = "no CPU quota asked"
        elif not cgroup_writable():
            self.note = f"{CGROUP_CPU} is not a writable cgroup v1 cpu controller: workers run without a CPU quota"

    @property
    def active(self) -> bool:
        return self.cores is not None and not self.note

    def limit(self, pid: int) -> None:
        if not self.active:
            return
        try:
            group = CGROUP_CPU / f"bench-{os.getpid()}-{id(self):x}-{len(self.groups)}"
            group.mkdir(exist_ok=True)
            self.groups.append(group)
            self.pids.append(pid)
            (group / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(int(self.cores * CPU_PERIOD_US)))
            (group / "cpu.shares").write_text(str(CPU_SHARES))
            (group / "cgroup.procs").write_text(str(pid))
        except OSError as error:
            self.note = f"cgroup not usable ({error}): workers run without a CPU quota"
            self.lift()

    def lift(self) -> None:
        """No quota any more (the groups stay until close())."""
        self.set(None)

    def set(self, cores: float | None) -> None:
        """Every group's quota to `cores` (None: unlimited)."""
        for group in self.groups:
            try:
                (group / "cpu.cfs_quota_us").write_text("-1" if cores is None else str(int(cores * CPU_PERIOD_US)))
            except OSError:
                pass
        if cores is not None:
            self.cores = cores

    def throttled_seconds(self) -> list[float]:
        out = []
        for group in self.groups:
            try:
                stat = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines())
                out.append(round(int(stat.get("throttled_time", 0)) / 1e9, 2))
            except (OSError, ValueError):
                out.append(0.0)
        return out

    def close(self) -> None:
        for group in self.groups:
            try:
                for pid in filter(None, (group / "cgroup.procs").read_text().split()):
                    (CGROUP_CPU / "cgroup.procs").write_text(pid)
                group.rmdir()
            except OSError:
                pass
        self.groups = []


class Priority:
    """Processes outside any quota but ahead of the machine's other jobs: the load generator
    (this process) and nginx, in one group with CPU_SHARES. `add(pid)`; `close()` puts them
    back in the root group."""

    def __init__(self, name: str):
        self.group: Path | None = None
        self.pids: list[int] = []
        if not cgroup_writable():
            return
        try:
            self.group = CGROUP_CPU / f"bench-{os.getpid()}-{name}"
            self.group.mkdir(exist_ok=True)
            (self.group / "cpu.shares").write_text(str(CPU_SHARES))
        except OSError:
            self.group = None

    def add(self, pid: int) -> None:
        if self.group is None:
            return
        try:
            (self.group / "cgroup.procs").write_text(str(pid))
            self.pids.append(pid)
        except OSError:
            pass

    def close(self) -> None:
        if self.group is None:
            return
        try:
            for pid in filter(None, (self.group / "cgroup.procs").read_text().split()):
                try:
                    (CGROUP_CPU / "cgroup.procs").write_text(pid)
                except OSError:
                    pass
            self.group.rmdir()
        except OSError:
            pass
        self.group = None


class NginxBench:
    """`with NginxBench(4, cpu_cores=0.25) as bench:` nginx (tests/cluster.py, the same
    templates as scripts/cluster.sh) in front of 4 workers on Redis (db 5, flushed) and a
    PostgreSQL database of its own; each worker in its own CPU group. `use(n)` sends new
    connections to the first n workers only (nginx reloaded; the others stay idle)."""

    def __init__(self, workers: int, *, providers: str = "synthetic", cpu_cores: float | None = None):
        from tests.cluster import NginxCluster

        self.var_dir = tempfile.mkdtemp(prefix="bench-nginx-")
        self.database = f"bench_{os.getpid()}_{os.path.basename(self.var_dir)[12:].lower()}"
        env = server_env(self.var_dir, REALTIME_PROVIDERS=providers, REDIS_URL=REDIS_URL,
                         DATABASE_URL=f"{POSTGRES_URL}/{self.database}")
        self.cluster = NginxCluster(workers, env=env, run_dir=self.var_dir, static=False)
        self.cpu = CpuGroups(cpu_cores)
        self.nginx_priority = Priority("nginx")

    @property
    def workers(self) -> list:
        return self.cluster.workers

    def __enter__(self) -> "NginxBench":
        try:
            _flush_redis()
            _postgres(f'CREATE DATABASE "{self.database}"')
            self.cluster.start()
            for worker in self.cluster.workers:
                self.cpu.limit(worker.pid)
            self.nginx_priority.add(self.cluster.process.pid)  # its worker processes are forked from it
            for pid in _children(self.cluster.process.pid):
                self.nginx_priority.add(pid)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.cluster.stop()
        self.cpu.close()
        self.nginx_priority.close()
        if exc and exc[0] is not None:
            for worker in self.cluster.workers:
                print(f"--- worker {worker.port} ---\n{worker.log()[-1500:]}", file=sys.stderr)
            print(f"--- nginx ---\n{self.cluster.nginx_log()[-1500:]}", file=sys.stderr)
        _postgres(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.var_dir, ignore_errors=True)

    def prepare(self, sessions: int) -> dict:
        command = [sys.executable, "-m", "bench.setup_db", "--sessions", str(sessions)]
        result = subprocess.run(command, cwd=ROOT, env=self.cluster.workers[0].env, capture_output=True, text=True,
                                timeout=300)
        if result.returncode:
            raise RuntimeError(f"setup_db failed:\n{result.stderr[-3000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    @property
    def nginx(self):
        """Something with cpu_seconds() for nginx's processes, to list beside the workers."""
        cluster = self.cluster

        class NginxProcesses:
            def cpu_seconds(self) -> float:
                return cluster.nginx_cpu_seconds()

        return NginxProcesses()

    def use(self, count: int) -> None:
        self.cluster.set_upstream(list(range(count)))

    def url(self, path: str, worker: int | None = None) -> str:
        """Through nginx (worker=None), or straight to one worker."""
        port = self.cluster.port if worker is None else self.cluster.workers[worker].port
        return f"ws://127.0.0.1:{port}{path}"


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []
