"""python -m bench [--smoke] [--only NAME ...] [--out PATH] [--no-profile]

Starts daphne workers (bench/servers.py), drives them from this process over loopback
WebSockets (bench/clients.py, bench/figures.py), prints one table and writes the same
figures as JSON (bench/results/latest.json by default). Every figure sits beside a
baseline measured in the same run: a bare Channels echo consumer under the same daphne.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from . import figures as f
from . import report as r
from .clients import Conn, open_session
from .servers import ECHO_APP, Cluster, NginxBench


@dataclass(frozen=True)
class Sizes:
    capacity_steps: tuple[int, ...] = (10, 20, 40, 80, 160, 320, 640)
    step_seconds: float = 3.0
    warmup_seconds: float = 0.75
    capacity_budget_s: float = 45.0
    rtt_rounds: int = 40  # per connection at concurrency 1; a fifth of it at the high concurrency
    turns_single: int = 10
    turns_concurrency: int = 50
    turns_multi: int = 4
    barge_sessions: int = 10
    barge_rounds: int = 6
    fanout_pairs: int = 10
    fanout_seconds: float = 3.0
    memory_sessions: int = 100
    memory_local_sessions: int = 3
    voice_turns: int = 6
    profile_sessions: int = 60
    profile_seconds: int = 8
    # figures 8 and 9: nginx in front of 1, 2 and 4 workers, each held to the same CPU quota
    nginx_workers: tuple[int, ...] = (1, 2, 4)
    nginx_cpu_cores: float = 0.25
    nginx_capacity_budget_s: float = 45.0
    rolling_sessions: int = 20
    rolling_quiet_seconds: float = 5.0


FULL = Sizes()
SMOKE = Sizes(capacity_steps=(2, 4), step_seconds=1.0, warmup_seconds=0.3, capacity_budget_s=10, rtt_rounds=5,
              turns_single=2, turns_concurrency=3, turns_multi=2, barge_sessions=1, barge_rounds=2, fanout_pairs=1,
              fanout_seconds=0.6, memory_sessions=3, memory_local_sessions=1, voice_turns=1, profile_sessions=2,
              profile_seconds=1, nginx_workers=(1, 2), nginx_capacity_budget_s=6, rolling_sessions=2,
              rolling_quiet_seconds=1.0)
SECTIONS = ("echo", "synthetic", "local", "redis", "echo2", "nginx")


class Run:
    def __init__(self, sizes: Sizes, profile: bool):
        self.sizes, self.profile = sizes, profile
        self.raw: dict = {}  # everything measured, by section
        self.errors: dict[str, str] = {}

    async def section(self, name: str, body, timeout: float) -> None:
        started = time.monotonic()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        try:
            await asyncio.wait_for(body(), timeout)
        except Exception as error:  # report what works even if one part fails
            self.errors[name] = f"{type(error).__name__}: {error}"
            traceback.print_exc()
        print(f"[bench] {name} done in {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)

    async def _profiled_stream(self, cluster: Cluster, opener, key: str) -> None:
        """py-spy on worker 0 while `profile_sessions` connections stream audio."""
        s = self.sizes
        conns = await f.open_many(opener, range(s.profile_sessions))
        out = os.path.join(cluster.var_dir, f"{key}.txt")
        try:
            spy = cluster.profile(0, s.profile_seconds, out)
            await asyncio.gather(*(c.stream(s.profile_seconds + 0.5, start=time.perf_counter() + 0.04 * i / len(conns))
                                   for i, c in enumerate(conns)))
            await asyncio.to_thread(spy.wait, 30)
            self.raw.setdefault("profile", {})[key] = f.summarize_profile(out, s.profile_seconds) if os.path.exists(out) else {
                "error": spy.stderr.read().decode()[-500:]}
        finally:
            await f.close_all(conns)

    # --- the baseline: a bare echo consumer ----------------------------------------------

    async def echo(self) -> None:
        s, raw = self.sizes, self.raw.setdefault("echo", {})
        with Cluster(app=ECHO_APP) as cluster:
            url = cluster.url("/echo")
            opener = lambda i: Conn.open(url)  # noqa: E731
            raw["memory"] = await f.memory(cluster.workers[0], opener, s.memory_sessions, 2.0)
            raw["rtt_1"] = await f.echo_rtt(url, 1, s.rtt_rounds)
            raw["rtt_n"] = await f.echo_rtt(url, s.turns_concurrency, max(2, s.rtt_rounds // 5))
            raw["capacity"] = await f.capacity(opener, s.capacity_steps, seconds=s.step_seconds,
                                               warmup=s.warmup_seconds, budget_s=s.capacity_budget_s,
                                               workers=cluster.workers)
            # The same echo with the interview consumer's dispatch (no per-message DB hop).
            direct = cluster.url("/echo-direct")
            raw["capacity_direct"] = await f.capacity(lambda i: Conn.open(direct), s.capacity_steps,
                                                      seconds=s.step_seconds, warmup=s.warmup_seconds,
                                                      budget_s=s.capacity_budget_s, workers=cluster.workers)
            if self.profile:
                await self._profiled_stream(cluster, opener, "echo")

    async def echo2(self) -> None:
        s = self.sizes
        with Cluster(app=ECHO_APP, workers=2, shared_port=True) as cluster:
            url = cluster.url("/echo", worker=None)
            self.raw["echo2"] = {"capacity": await f.capacity(
                lambda i: Conn.open(url), s.capacity_steps, seconds=s.step_seconds, warmup=s.warmup_seconds,
                budget_s=s.capacity_budget_s, workers=cluster.workers)}

    # --- the interview socket with instant providers -------------------------------------

    async def synthetic(self) -> None:
        s, raw = self.sizes, self.raw.setdefault("synthetic", {})
        with Cluster(providers="synthetic") as cluster:
            pool = cluster.prepare(max(max(s.capacity_steps), s.memory_sessions + 1, s.profile_sessions,
                                       s.turns_concurrency + 1 + s.barge_sessions))["sessions"]
            url = cluster.url("/api/interview-socket")
            opener = lambda i: open_session(url, pool[i])  # noqa: E731
            raw["memory"] = await f.memory(cluster.workers[0], lambda i: opener(i + 1), s.memory_sessions, 2.0)
            raw["turns_1"] = await f.turn_overhead(url, pool[:1], s.turns_single)
            raw["turns_n"] = await f.turn_overhead(url, pool[1:1 + s.turns_concurrency], s.turns_multi)
            raw["barge_in"] = await f.barge_in(url, pool[-s.barge_sessions:], s.barge_rounds)
            raw["capacity"] = await f.capacity(opener, s.capacity_steps, seconds=s.step_seconds,
                                               warmup=s.warmup_seconds, budget_s=s.capacity_budget_s,
                                               workers=cluster.workers)
            if self.profile:
                await self._profiled_stream(cluster, opener, "synthetic")

    # --- the local providers: real speech in, real speech out ----------------------------

    async def local(self) -> None:
        s, raw = self.sizes, self.raw.setdefault("local", {})
        with Cluster(providers="local") as cluster:
            pool = cluster.prepare(s.memory_local_sessions + 2)["sessions"]
            url = cluster.url("/api/interview-socket")
            raw["voice"] = await f.voice_to_voice(url, pool[0], s.voice_turns)
            raw["memory"] = await f.memory(cluster.workers[0], lambda i: open_session(url, pool[i + 2]),
                                           s.memory_local_sessions, 1.0)

    # --- two workers sharing Redis: fan-out and scale-out ---------------------------------

    async def redis(self) -> None:
        s, raw = self.sizes, self.raw.setdefault("redis", {})
        with Cluster(providers="synthetic", workers=2, redis=True, postgres=True, shared_port=True) as cluster:
            setup = cluster.prepare(max(max(s.capacity_steps), s.fanout_pairs), staff=True)
            pool = setup["sessions"]
            raw["fanout"] = await f.fan_out(cluster.url("/api/interview-socket", 0),
                                            cluster.url("/api/live/{session_id}/", 1),
                                            pool[:s.fanout_pairs], setup["cookie"], s.fanout_seconds)
            one = cluster.url("/api/interview-socket", 0)
            raw["capacity_1"] = await f.capacity(lambda i: open_session(one, pool[i]), s.capacity_steps,
                                                 seconds=s.step_seconds, warmup=s.warmup_seconds,
                                                 budget_s=s.capacity_budget_s, workers=cluster.workers[:1])
            shared = cluster.url("/api/interview-socket", None)
            raw["capacity_2"] = await f.capacity(lambda i: open_session(shared, pool[i]), s.capacity_steps,
                                                 seconds=s.step_seconds, warmup=s.warmup_seconds,
                                                 budget_s=s.capacity_budget_s, workers=cluster.workers)


    # --- the production shape: nginx in front of 1, 2 and 4 workers; a rolling restart ---

    async def nginx(self) -> None:
        from tests.cluster import nginx_binary

        if nginx_binary() is None:
            print("[bench] nginx is not installed (apt-get install nginx): figures 8 and 9 skipped",
                  file=sys.stderr, flush=True)
            return
        s, raw = self.sizes, self.raw.setdefault("nginx", {})
        most = max(s.nginx_workers)
        with NginxBench(most, providers="synthetic", cpu_cores=s.nginx_cpu_cores) as bench:
            raw["cpu_cores_per_worker"] = s.nginx_cpu_cores if bench.cpu.active else None
            if bench.cpu.note:
                raw["cpu_note"] = bench.cpu.note
                print(f"[bench] note: {bench.cpu.note}", file=sys.stderr, flush=True)
            top = max(s.capacity_steps)
            pool = bench.prepare(top + s.rolling_sessions + 2 * most)["sessions"]
            rolling, warm = pool[top:top + s.rolling_sessions], pool[top + s.rolling_sessions:]
            steps = dict(seconds=s.step_seconds, warmup=s.warmup_seconds, budget_s=s.nginx_capacity_budget_s)
            for index in range(most):  # every worker warm (modules, pooled connections) before any figure
                url = bench.url("/api/interview-socket", index)
                conns = await f.open_many(lambda info: open_session(url, info), warm[2 * index:2 * index + 2])
                await asyncio.gather(*(conn.stream(0.5) for conn in conns))
                await f.close_all(conns)
            direct = bench.url("/api/interview-socket", 0)
            raw["capacity_direct"] = await f.capacity(lambda i: open_session(direct, pool[i]), s.capacity_steps,
                                                      workers=bench.workers[:1], **steps)
            through = bench.url("/api/interview-socket")
            for count in s.nginx_workers:
                bench.use(count)
                # server_cpu per step: each worker's cores, then nginx's (outside the quota)
                raw[f"capacity_{count}"] = await f.capacity(lambda i: open_session(through, pool[i]), s.capacity_steps,
                                                            workers=bench.workers[:count] + [bench.nginx], **steps)
            raw["throttled_s"] = bench.cpu.throttled_seconds()
            bench.cpu.lift()  # figure 9 at full speed: restarted workers would leave their groups anyway
            bench.use(2)
            raw["rolling"] = await f.rolling_restart(bench.cluster, through, rolling,
                                                     workers=[0, 1], quiet_seconds=s.rolling_quiet_seconds)


def rows(raw: dict, sizes: Sizes) -> list[dict]:
    """The table: every figure beside its baseline. Missing parts are skipped (see errors)."""
    out: list[dict] = []
    echo = raw.get("echo", {})
    rtt1, rttn = echo.get("rtt_1", []), echo.get("rtt_n", [])

    def add(build):
        try:
            out.append(build())
        except (KeyError, TypeError, IndexError):
            pass

    def cap_row(figure, metric, cap, base, base_name):
        top = cap["at_capacity"] or {}
        return r.value_row(figure, metric, cap["capacity"], "sessions", top.get("n", 0), base_name,
                           base["capacity"], top.get("p50_ms"), top.get("p99_ms"),
                           first_failure=cap["first_failure"], steps=cap["steps"])

    syn, red, loc = raw.get("synthetic", {}), raw.get("redis", {}), raw.get("local", {})
    add(lambda: cap_row("1 ingest capacity", "streams, chunk->interim p99<50ms", syn["capacity"], echo["capacity"],
                        "echo streams"))
    add(lambda: cap_row("1 ingest capacity", "same, against echo without the DB hop", syn["capacity"],
                        echo["capacity_direct"], "echo-direct streams"))
    for key, at, base in (("turns_1", 1, rtt1), ("turns_n", sizes.turns_concurrency, rttn)):
        for kind, what in (("spoken", "spoken: final transcript"), ("end_chunk_to_audio", "spoken: end chunk sent"),
                           ("typed", "typed: text sent")):
            add(lambda key=key, at=at, base=base, kind=kind, what=what: r.latency_row(
                "2 turn overhead", f"{what}->1st chunk @{at}", syn[key][kind], f"echo rtt @{at}", base))
    add(lambda: r.latency_row("3 barge-in", "interrupt->interrupted", syn["barge_in"]["latency"], "echo rtt @1", rtt1,
                              late_chunks=syn["barge_in"]["late_chunks"]))
    add(lambda: r.value_row("3 barge-in", "speech chunks after interrupted (must be 0)",
                            syn["barge_in"]["late_chunks"], "chunks", len(syn["barge_in"]["latency"]), "-", 0))
    add(lambda: r.latency_row("4 fan-out (Redis)", "interim on A -> live view on B", red["fanout"]["fanout"],
                              "echo rtt @1", rtt1, missing=red["fanout"]["missing"]))
    for key, label in (("idle_kb_per_session", "idle"), ("streaming_kb_per_session", "streaming")):
        add(lambda key=key, label=label: r.value_row(
            "5 memory", f"RSS per {label} session (synthetic)", syn["memory"][key], "KiB", syn["memory"]["sessions"],
            f"echo conn ({label})", echo["memory"][key]))
    add(lambda: r.value_row("5 memory", "RSS per idle session (local STT/TTS)", loc["memory"]["idle_kb_per_session"],
                            "KiB", loc["memory"]["sessions"], "echo conn (idle)", echo["memory"]["idle_kb_per_session"]))
    add(lambda: cap_row("6 scale-out (Redis)", "1 worker", red["capacity_1"], echo["capacity"], "echo 1 worker"))
    add(lambda: cap_row("6 scale-out (Redis)", "2 workers, SO_REUSEPORT", red["capacity_2"], raw["echo2"]["capacity"],
                        "echo 2 workers"))
    add(lambda: r.latency_row("7 voice to voice (local)", "last voiced chunk->1st reply chunk",
                              loc["voice"]["voice_to_voice"], "echo rtt @1", rtt1,
                              speech_end_to_final_p50_ms=round(r.percentile(loc["voice"]["speech_end_to_final"], 50) * 1000, 1),
                              final_to_audio_p50_ms=round(r.percentile(loc["voice"]["final_to_audio"], 50) * 1000, 1)))
    ngx = raw.get("nginx", {})
    quota = f", {ngx.get('cpu_cores_per_worker')} core each" if ngx.get("cpu_cores_per_worker") else ", no CPU quota"
    add(lambda: cap_row("8 scale-out (nginx)", f"1 worker via nginx{quota}", ngx["capacity_1"], ngx["capacity_direct"],
                        "1 worker direct"))
    for count in sizes.nginx_workers[1:]:
        add(lambda count=count: cap_row("8 scale-out (nginx)", f"{count} workers via nginx{quota}",
                                        ngx[f"capacity_{count}"], ngx["capacity_1"], "1 worker via nginx"))
    add(lambda: r.latency_row("9 rolling restart (nginx)", "longest silence per candidate, 2 workers restarted",
                              ngx["rolling"]["restart"], "same, nothing restarted", ngx["rolling"]["quiet"],
                              closes=ngx["rolling"]["closes"], resumed=ngx["rolling"]["resumed"]))
    return out


async def main_async(args) -> int:
    sizes = SMOKE if args.smoke else FULL
    run = Run(sizes, profile=not args.no_profile)
    started = time.time()
    budget = {"echo": 240, "synthetic": 200, "local": 120, "redis": 200, "echo2": 90, "nginx": 300}
    for name in args.only or SECTIONS:
        await run.section(name, getattr(run, name), budget[name] * (0.5 if args.smoke else 1))
    table_rows = rows(run.raw, sizes)
    document = {"mode": "smoke" if args.smoke else "full", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z",
                time.localtime(started)), "seconds": round(time.time() - started, 1), "machine": r.machine(),
                "sizes": asdict(sizes), "bound_ms": f.BOUND_S * 1000, "rows": table_rows, "raw": _summaries(run.raw),
                "errors": run.errors}
    r.save(Path(args.out), document)
    print(r.table(table_rows))
    if run.raw.get("profile"):
        for key, prof in run.raw["profile"].items():
            print(f"\nprofile {key}: busy {prof.get('busy_pct_by_thread')}; loop self time {prof.get('loop_self_pct_by_package')}")
    if run.errors:
        print(f"\nerrors: {run.errors}")
    print(f"\nwritten {args.out} in {document['seconds']}s")
    return 1 if run.errors else 0


def _summaries(raw: dict) -> dict:
    """Raw data for the JSON: latency lists become {n, p50_ms, p90_ms, p99_ms, max_ms}."""
    if isinstance(raw, dict):
        return {k: _summaries(v) for k, v in raw.items()}
    if isinstance(raw, list) and raw and all(isinstance(x, float) for x in raw):
        return {"n": len(raw), **{f"p{q}_ms": round(r.percentile(raw, q) * 1000, 2) for q in (50, 90, 99)},
                "max_ms": round(max(raw) * 1000, 2)}
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that every figure is produced")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "latest.json"))
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "interview_site.settings")
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
