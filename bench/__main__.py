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
from .clients import CHUNK_MS, Conn, FastConn, open_session
from .servers import ECHO_APP, Cluster, NginxBench, Priority


@dataclass(frozen=True)
class Sizes:
    capacity_steps: tuple[int, ...] = (10, 20, 40, 80, 160, 320, 640)
    step_seconds: float = 3.0
    warmup_seconds: float = 0.75
    capacity_budget_s: float = 75.0
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
    # Capacity figures (1 and 6) hold each worker to this CPU quota while they are measured
    # (None: no quota), and bisect until the gap is under this share of the capacity.
    cpu_cores: float | None = 0.5
    capacity_resolution: float = 0.05
    # figures 8 and 9: nginx in front of 1, 2 and 4 workers, each held to the same CPU quota;
    # one worker is measured before, between and after the others (the baseline is the median)
    nginx_workers: tuple[int, ...] = (1, 2, 4)
    nginx_cpu_cores: float = 0.3
    nginx_capacity_budget_s: float = 75.0
    rolling_sessions: int = 20
    rolling_quiet_seconds: float = 5.0


FULL = Sizes()
# Smoke: tiny sizes; the capacity search starts at one stream, which a busy machine (CI
# beside other tests) still carries, so every figure comes out non-zero.
SMOKE = Sizes(capacity_steps=(1, 4), step_seconds=1.0, warmup_seconds=0.3, capacity_budget_s=10, rtt_rounds=5,
              turns_single=2, turns_concurrency=3, turns_multi=2, barge_sessions=1, barge_rounds=2, fanout_pairs=1,
              fanout_seconds=0.6, memory_sessions=3, memory_local_sessions=1, voice_turns=1, profile_sessions=2,
              profile_seconds=1, nginx_workers=(1, 2), nginx_capacity_budget_s=6, rolling_sessions=2,
              rolling_quiet_seconds=1.0, capacity_resolution=0.25)
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

    async def _capacity(self, cluster: Cluster, opener, workers: list | None = None, **extra) -> dict:
        """Figure 1's capacity search on `cluster`, each worker held to the CPU quota meanwhile."""
        s = self.sizes
        with cluster.quota() as cores:
            result = await f.capacity(opener, extra.pop("steps", s.capacity_steps), seconds=s.step_seconds,
                                      warmup=s.warmup_seconds, budget_s=extra.pop("budget_s", s.capacity_budget_s),
                                      workers=workers or cluster.workers, resolution=s.capacity_resolution,
                                      quota=cores, **extra)
        result["cpu_cores_per_worker"] = cores
        result["cpu_us_per_chunk"] = _cpu_per_chunk(result, cores)
        return result

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
        with Cluster(app=ECHO_APP, cpu_cores=s.cpu_cores) as cluster:
            url = cluster.url("/echo")
            opener = lambda i: Conn.open(url)  # noqa: E731
            raw["memory"] = await f.memory(cluster.workers[0], opener, s.memory_sessions, 2.0)
            raw["rtt_1"] = await f.echo_rtt(url, 1, s.rtt_rounds)
            raw["rtt_n"] = await f.echo_rtt(url, s.turns_concurrency, max(2, s.rtt_rounds // 5))
            raw["capacity"] = await self._capacity(cluster, lambda i: FastConn.open(url))
            # The same echo with the interview consumer's dispatch (no per-message DB hop).
            direct = cluster.url("/echo-direct")
            raw["capacity_direct"] = await self._capacity(cluster, lambda i: FastConn.open(direct))
            if self.profile:
                await self._profiled_stream(cluster, opener, "echo")

    async def echo2(self) -> None:
        s = self.sizes
        with Cluster(app=ECHO_APP, workers=2, shared_port=True, cpu_cores=s.cpu_cores) as cluster:
            url = cluster.url("/echo", worker=None)
            self.raw["echo2"] = {"capacity": await self._capacity(cluster, lambda i: FastConn.open(url))}

    # --- the interview socket with instant providers -------------------------------------

    async def synthetic(self) -> None:
        s, raw = self.sizes, self.raw.setdefault("synthetic", {})
        with Cluster(providers="synthetic", cpu_cores=s.cpu_cores) as cluster:
            pool = cluster.prepare(max(max(s.capacity_steps), s.memory_sessions + 1, s.profile_sessions,
                                       s.turns_concurrency + 1 + s.barge_sessions))["sessions"]
            url = cluster.url("/api/interview-socket")
            opener = lambda i: open_session(url, pool[i])  # noqa: E731
            raw["memory"] = await f.memory(cluster.workers[0], lambda i: opener(i + 1), s.memory_sessions, 2.0)
            raw["turns_1"] = await f.turn_overhead(url, pool[:1], s.turns_single)
            raw["turns_n"] = await f.turn_overhead(url, pool[1:1 + s.turns_concurrency], s.turns_multi)
            raw["barge_in"] = await f.barge_in(url, pool[-s.barge_sessions:], s.barge_rounds)
            # Figure 1 against /echo-direct on a worker started beside this one, measured in turn
            # (echo-direct, interview, interview, echo-direct; each figure the mean of its two):
            # a drift of the shared machine weighs on both alike.
            with Cluster(app=ECHO_APP, cpu_cores=s.cpu_cores) as echo:
                direct = echo.url("/echo-direct")
                runs = await _in_turn(
                    ("direct", lambda: self._capacity(echo, lambda i: FastConn.open(direct))),
                    ("interview", lambda: self._capacity(cluster, lambda i: open_session(url, pool[i], fast=True))))
            raw["capacity_runs"] = [run["capacity"] for run in runs["interview"]]
            raw["capacity_direct_runs"] = [run["capacity"] for run in runs["direct"]]
            raw["capacity"] = _mean(runs["interview"])
            raw["capacity_direct"] = _mean(runs["direct"])
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
        """Fan-out; then the Redis layer against the in-memory one on one worker each, measured
        in turn (in-memory, Redis, Redis, in-memory: a drift of the shared machine weighs on
        both alike), each figure the mean of its two; then two Redis workers on one port."""
        s, raw = self.sizes, self.raw.setdefault("redis", {})
        with Cluster(providers="synthetic", workers=2, redis=True, postgres=True, shared_port=True,
                     cpu_cores=s.cpu_cores) as cluster, Cluster(providers="synthetic", cpu_cores=s.cpu_cores) as memory:
            top = max(s.capacity_steps)
            setup = cluster.prepare(top + s.fanout_pairs, staff=True)
            pool = setup["sessions"]
            memory_pool = memory.prepare(top)["sessions"]
            raw["fanout"] = await f.fan_out(cluster.url("/api/interview-socket", 0),
                                            cluster.url("/api/live/{session_id}/", 1),
                                            pool[-s.fanout_pairs:], setup["cookie"], s.fanout_seconds)
            one = cluster.url("/api/interview-socket", 0)
            alone = memory.url("/api/interview-socket")
            runs = await _in_turn(
                ("memory", lambda: self._capacity(memory, lambda i: open_session(alone, memory_pool[i], fast=True))),
                ("redis", lambda: self._capacity(cluster, lambda i: open_session(one, pool[i], fast=True),
                                                 workers=cluster.workers[:1])))
            raw["capacity_1_runs"] = [run["capacity"] for run in runs["redis"]]
            raw["capacity_memory_runs"] = [run["capacity"] for run in runs["memory"]]
            raw["capacity_1"] = _mean(runs["redis"])
            raw["capacity_memory"] = _mean(runs["memory"])
            shared = cluster.url("/api/interview-socket", None)
            # other sessions than the one-worker runs used (those may still be closing)
            raw["capacity_2"] = await self._capacity(
                cluster, lambda i: open_session(shared, pool[(top // 2 + i) % top], fast=True))

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
            steps = dict(seconds=s.step_seconds, warmup=s.warmup_seconds, budget_s=s.nginx_capacity_budget_s,
                         resolution=s.capacity_resolution, min_gap=1,
                         quota=s.nginx_cpu_cores if bench.cpu.active else None)
            for index in range(most):  # every worker warm (modules, pooled connections) before any figure
                url = bench.url("/api/interview-socket", index)
                conns = await f.open_many(lambda info: open_session(url, info), warm[2 * index:2 * index + 2])
                await asyncio.gather(*(conn.stream(0.5) for conn in conns))
                await f.close_all(conns)
            direct = bench.url("/api/interview-socket", 0)
            raw["capacity_direct"] = await f.capacity(lambda i: open_session(direct, pool[i], fast=True),
                                                      s.capacity_steps, workers=bench.workers[:1], **steps)
            through = bench.url("/api/interview-socket")
            opener = lambda i: open_session(through, pool[i], fast=True)  # noqa: E731
            # One worker first, between and last, each of the others twice (1, 2, 4, 1, 4, 2, 1):
            # the baseline is the median of the three one-worker runs and 2 and 4 workers the
            # mean of their two, so neither a drift nor one slow moment of the shared machine
            # sets every ratio.
            runs: dict[int, list[dict]] = {}
            more = [n for n in s.nginx_workers if n > 1]
            order = [1] + more + [1] + more[::-1] + [1]
            for count in order:
                bench.use(count)
                if count == 1:
                    plan = s.capacity_steps if not runs.get(1) else _around(runs[1][0]["capacity"], 1)
                else:
                    plan = _around(_median(runs[1])["capacity"], count)
                # server_cpu per step: each worker's cores, then nginx's (outside the quota)
                result = await f.capacity(opener, plan, workers=bench.workers[:count] + [bench.nginx], **steps)
                runs.setdefault(count, []).append(result)
                await asyncio.sleep(2)  # the sessions are let go before they are opened again
            raw["capacity_1"] = _median(runs[1])
            for count in more:
                raw[f"capacity_{count}"] = _mean(runs[count])
            raw["runs"] = {str(count): [one["capacity"] for one in results] for count, results in runs.items()}
            raw["throttled_s"] = bench.cpu.throttled_seconds()
            bench.cpu.lift()  # figure 9 at full speed: restarted workers would leave their groups anyway
            bench.use(2)
            raw["rolling"] = await f.rolling_restart(bench.cluster, through, rolling,
                                                     workers=[0, 1], quiet_seconds=s.rolling_quiet_seconds)


async def _in_turn(first: tuple, second: tuple) -> dict[str, list[dict]]:
    """Measure two things in turn (first, second, second, first; each given as a name and
    a coroutine function), so that a drift of the shared machine weighs on both alike."""
    runs: dict[str, list[dict]] = {first[0]: [], second[0]: []}
    for name, measure in (first, second, second, first):
        runs[name].append(await measure())
        await asyncio.sleep(2)  # the sessions are let go before they are opened again
    return runs


def _cpu_per_chunk(result: dict, cores: float | None, at: int = 40) -> dict | None:
    """Worker CPU per streamed chunk (all workers together) at the passing step nearest to
    `at` sessions where no worker used more than 80 % of its quota (below saturation, where
    it is a cost and not a ceiling; at one count, since a worker's fixed costs spread over
    more chunks as the count grows): for comparing code paths beside the capacity."""
    usable = [step for step in result["steps"] if step["passed"] and step["count"]
              and (cores is None or max(step["server_cpu"]) <= 0.8 * cores)]
    if not usable:
        return None
    step = min(usable, key=lambda one: abs(one["count"] - at))
    chunks_per_s = step["count"] * 1000 / CHUNK_MS
    return {"us": round(sum(step["server_cpu"]) / chunks_per_s * 1e6, 1), "at": step["count"]}


def _mean(runs: list[dict]) -> dict:
    """The run closest to the mean capacity of `runs`, carrying that mean as its capacity."""
    mean = sum(run["capacity"] for run in runs) / len(runs)
    closest = dict(min(runs, key=lambda run: abs(run["capacity"] - mean)))
    closest["capacity"] = round(mean, 1)
    return closest


def _median(runs: list[dict]) -> dict:
    """The run whose capacity is the median (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda run: run["capacity"])
    return ordered[(len(ordered) - 1) // 2]


def _around(single: int, workers: int) -> tuple[int, ...]:
    """Steps for `workers` workers given one worker's capacity: from half the linear
    expectation up, then bisection takes over at the first failure."""
    expected = max(1, single) * workers
    return tuple(sorted({max(1, round(expected * share)) for share in (0.5, 0.8, 0.95, 1.1, 1.3, 1.7, 2.5)}))


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
                           first_failure=cap["first_failure"], steps=cap["steps"],
                           cpu_us_per_chunk=cap.get("cpu_us_per_chunk"),
                           base_cpu_us_per_chunk=base.get("cpu_us_per_chunk"))

    syn, red, loc = raw.get("synthetic", {}), raw.get("redis", {}), raw.get("local", {})
    add(lambda: cap_row("1 ingest capacity", "streams, chunk->interim p99<50ms", syn["capacity"], echo["capacity"],
                        "echo streams"))
    add(lambda: cap_row("1 ingest capacity", f"same (mean of {syn['capacity_runs']}), against echo without the "
                        f"per-message hop, measured in turn", syn["capacity"], syn["capacity_direct"],
                        f"echo-direct streams (mean of {syn['capacity_direct_runs']})"))
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
    add(lambda: cap_row("6 scale-out (Redis)", f"1 worker, Redis layer (mean of {red['capacity_1_runs']})",
                        red["capacity_1"], red["capacity_memory"],
                        f"1 worker, in-memory layer (mean of {red['capacity_memory_runs']})"))
    add(lambda: cap_row("6 scale-out (Redis)", "2 workers, SO_REUSEPORT", red["capacity_2"], red["capacity_1"],
                        "1 worker, Redis layer"))
    add(lambda: cap_row("6 scale-out (Redis)", "echo, 2 workers, SO_REUSEPORT", raw["echo2"]["capacity"],
                        echo["capacity"], "echo 1 worker"))
    add(lambda: r.latency_row("7 voice to voice (local)", "last voiced chunk->1st reply chunk",
                              loc["voice"]["voice_to_voice"], "echo rtt @1", rtt1,
                              speech_end_to_final_p50_ms=round(r.percentile(loc["voice"]["speech_end_to_final"], 50) * 1000, 1),
                              final_to_audio_p50_ms=round(r.percentile(loc["voice"]["final_to_audio"], 50) * 1000, 1)))
    ngx = raw.get("nginx", {})
    quota = f", {ngx.get('cpu_cores_per_worker')} core each" if ngx.get("cpu_cores_per_worker") else ", no CPU quota"
    add(lambda: cap_row("8 scale-out (nginx)", f"1 worker via nginx{quota} (median of {ngx['runs']['1']})",
                        ngx["capacity_1"], ngx["capacity_direct"], "1 worker direct"))
    for count in sizes.nginx_workers[1:]:
        add(lambda count=count: cap_row("8 scale-out (nginx)", f"{count} workers via nginx{quota} "
                                        f"(mean of {ngx['runs'][str(count)]})",
                                        ngx[f"capacity_{count}"], ngx["capacity_1"], "1 worker via nginx"))
    add(lambda: r.latency_row("9 rolling restart (nginx)", "longest silence per candidate, 2 workers restarted",
                              ngx["rolling"]["restart"], "same, nothing restarted", ngx["rolling"]["quiet"],
                              closes=ngx["rolling"]["closes"], resumed=ngx["rolling"]["resumed"]))
    return out


async def main_async(args) -> int:
    sizes = SMOKE if args.smoke else FULL
    run = Run(sizes, profile=not args.no_profile)
    started = time.time()
    budget = {"echo": 300, "synthetic": 480, "local": 120, "redis": 600, "echo2": 120, "nginx": 900}
    client = Priority("client")  # the load generator ahead of the machine's other jobs (no quota)
    client.add(os.getpid())
    try:
        for name in args.only or SECTIONS:
            await run.section(name, getattr(run, name), budget[name] * (0.5 if args.smoke else 1))
    finally:
        client.close()
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
