"""The measurements. Each returns raw samples (seconds) or counts; report.py summarizes.

Every function is bounded in time and count and closes the connections it opened.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

from . import clients as c
from .clients import Conn, close_all, message, now, open_many, open_session
from .report import percentile

BOUND_S = 0.050  # figure 1: chunk -> interim p99 must stay under this


# --- baseline: echo round trip --------------------------------------------------------------


async def echo_rtt(url: str, concurrency: int, rounds: int) -> list[float]:
    """Round trips of a client-text-message on the echo socket, each connection at its own pace."""
    conns = await open_many(lambda _: Conn.open(url), range(concurrency))
    samples: list[float] = []

    async def run(conn: Conn) -> None:
        for _ in range(rounds):
            await asyncio.sleep(random.uniform(0.05, 0.25))
            sent = await conn.send(message("client-text-message", text="An answer typed by the candidate."))
            arrived, _ = await conn.expect("server-echo")
            samples.append(arrived - sent)

    try:
        await asyncio.gather(*(run(conn) for conn in conns))
    finally:
        await close_all(conns)
    return samples


# --- figure 1 and 6: ingest capacity ---------------------------------------------------------


async def capacity(opener, steps: tuple[int, ...], *, seconds: float, warmup: float, budget_s: float,
                   workers: list, resolution: float = 0.25, min_gap: int = 2, quota: float | None = None) -> dict:
    """Step the number of concurrent real-time audio streams up until chunk -> interim p99
    passes BOUND_S (or chunks go unanswered, or the server reports errors), then bisect while
    the gap between the best passing and the lowest failing count is wider than
    max(min_gap, resolution x best). A failing step is measured twice (a stall of the shared
    machine is not capacity), three times when every worker stayed under 70 % of its CPU
    `quota` (a worker that is not busy is not at its capacity). Connections are kept across
    steps."""
    deadline = now() + budget_s
    conns: list[Conn] = []
    results: list[dict] = []
    best, failed_at = 0, None
    todo = list(steps)
    try:
        while todo and now() < deadline:
            count = todo.pop(0)
            if count > len(conns):
                conns += await open_many(opener, range(len(conns), count))
            else:
                await close_all(conns[count:])
                del conns[count:]
            step = await _stream_step(conns, seconds, warmup, workers)
            passed = _passes(step)
            tries = 1
            while not passed and now() < deadline and (tries < 2 or (tries < 3 and quota is not None and max(
                    step["server_cpu"]) < 0.7 * quota)):  # a stall of a shared machine is not capacity
                await asyncio.sleep(0.5)
                retry = await _stream_step(conns, seconds, warmup, workers)
                retry["first_try"] = step
                step, passed = retry, _passes(retry)
                tries += 1
            step["passed"] = passed
            results.append(step)
            if passed:
                best = max(best, count)
            else:
                failed_at = count if failed_at is None else min(failed_at, count)
            if failed_at is not None:  # bisect while the gap is wider than a quarter of the best
                middle = (best + failed_at) // 2
                tried = {s["count"] for s in results}
                todo = [middle] if best and failed_at - best > max(min_gap, best * resolution) and middle not in tried \
                    else []
    finally:
        await close_all(conns)
    passing = [s for s in results if s["passed"]]
    top = max(passing, key=lambda s: s["count"]) if passing else None
    return {"capacity": best, "at_capacity": top, "steps": results, "first_failure": failed_at}


def _passes(step: dict) -> bool:
    return step["p99_ms"] < BOUND_S * 1000 and not step["unheard"] and not step["errors"]


async def _stream_step(conns: list[Conn], seconds: float, warmup: float, workers: list) -> dict:
    for conn in conns:
        conn.recording, conn.latencies, conn.errors = False, [], []
        conn.forget_unheard()
    start = now() + 0.05
    # Spread the connections over the 40 ms period, as independent clients would be.
    tasks = [asyncio.create_task(c.stream_all(conns, seconds, start))]
    await asyncio.sleep(warmup)
    for conn in conns:
        conn.forget_unheard()
        conn.recording = True
    cpu0 = [w.cpu_seconds() for w in workers]
    client0, wall0 = time.process_time(), now()
    await asyncio.gather(*tasks)
    wall = now() - wall0
    server_cpu = [round((w.cpu_seconds() - c0) / wall, 2) for w, c0 in zip(workers, cpu0)]
    client_cpu = round((time.process_time() - client0) / wall, 2)
    await asyncio.sleep(0.3)  # answers still in flight
    samples = [x for conn in conns for x in conn.latencies]
    unheard = sum(conn.unheard() for conn in conns)
    errors = Counter(e for conn in conns for e in conn.errors)
    for conn in conns:
        conn.recording = False
    samples += [float("inf")] * unheard
    return {"count": len(conns), "n": len(samples), "p50_ms": _ms(percentile(samples, 50)),
            "p99_ms": _ms(percentile(samples, 99)), "unheard": unheard, "errors": dict(errors),
            "server_cpu": server_cpu, "client_cpu": client_cpu}


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2) if seconds != float("inf") else float("inf")


# --- figure 2: turn overhead -----------------------------------------------------------------


async def turn_overhead(url: str, infos: list[dict], turns: int) -> dict:
    """Each session alternates spoken and typed answers. Spoken: the final transcript arriving
    -> the first speech chunk of the reply; typed: client-text-message sent -> first chunk."""
    conns = await open_many(lambda info: open_session(url, info), infos)
    out: dict[str, list[float]] = {"spoken": [], "typed": [], "end_chunk_to_audio": []}

    async def run(conn: Conn) -> None:
        await asyncio.sleep(random.uniform(0, 0.5))
        for turn in range(turns):
            await asyncio.sleep(random.uniform(0.3, 0.5))  # the reply has been heard
            conn.clear()
            if turn % 2 == 0:
                await conn.stream(0.4)  # 10 voiced chunks of 40 ms
                ended = await conn.send_chunk(c.SILENT)
                final, _ = await conn.expect("server-final-transcript")
                first, _ = await conn.expect("server-ai-speech-chunk", seq=0)
                out["spoken"].append(first - final)
                out["end_chunk_to_audio"].append(first - ended)
            else:
                sent = await conn.send(message("client-text-message", text="An answer typed by the candidate."))
                first, _ = await conn.expect("server-ai-speech-chunk", seq=0)
                out["typed"].append(first - sent)
            await conn.expect("server-ai-speech-end")

    try:
        await asyncio.gather(*(run(conn) for conn in conns))
    finally:
        await close_all(conns)
    return out


# --- figure 3: barge-in --------------------------------------------------------------------


async def barge_in(url: str, infos: list[dict], rounds: int) -> dict:
    """Interrupt the interviewer while it speaks: client-interrupt sent -> server-ai-interrupted,
    then count speech chunks of that response arriving after the acknowledgement (must be 0)."""
    conns = await open_many(lambda info: open_session(url, info), infos)
    latencies: list[float] = []
    late, acknowledged_other = 0, 0

    async def run(conn: Conn) -> None:
        nonlocal late, acknowledged_other
        for _ in range(rounds):
            await asyncio.sleep(random.uniform(0.3, 0.5))
            conn.clear()
            await conn.send(message("client-text-message", text="An answer typed by the candidate."))
            _, first = await conn.expect("server-ai-speech-chunk", seq=0)
            response_id = first["responseId"]
            await asyncio.sleep(random.uniform(0.0, 0.4))  # somewhere in the 1 s reply
            sent = await conn.send(message("client-interrupt"))
            acked, ack = await conn.expect("server-ai-interrupted")
            latencies.append(acked - sent)
            acknowledged_other += ack.get("responseId") != response_id
            after = await conn.collect(0.6)
            late += sum(1 for t, m in after if m.get("type") == "server-ai-speech-chunk"
                        and m["payload"].get("responseId") == response_id and t > acked)

    try:
        await asyncio.gather(*(run(conn) for conn in conns))
    finally:
        await close_all(conns)
    return {"latency": latencies, "late_chunks": late, "acked_other_response": acknowledged_other}


# --- figure 4: fan-out through Redis -------------------------------------------------------


async def fan_out(url_a: str, url_b_live: str, infos: list[dict], cookie: str, seconds: float) -> dict:
    """Candidates on worker A stream audio; a recruiter per session watches on worker B.
    Sample: the interim reaching the candidate (on A) -> the same live-transcript on B."""
    candidates = await open_many(lambda info: open_session(url_a, info), infos)
    viewers: list[Conn] = []
    try:
        viewers = await open_many(
            lambda info: Conn.open(url_b_live.format(session_id=info["sessionId"]), {"Cookie": cookie}), infos)
        await asyncio.sleep(0.3)  # group_add has reached Redis
        for conn in candidates + viewers:
            conn.track_interims = True
        start = now() + 0.05
        await asyncio.gather(*(conn.stream(seconds, start=start + 0.04 * i / len(candidates))
                               for i, conn in enumerate(candidates)))
        await asyncio.sleep(0.5)
        fan, missing = [], 0
        for cand, view in zip(candidates, viewers):
            for n, at_a in cand.interim_at.items():
                at_b = view.interim_at.get(n)
                if at_b is None:
                    missing += 1
                    continue
                fan.append(at_b - at_a)
        return {"fanout": fan, "missing": missing, "viewers_closed": sum(v.closed is not None for v in viewers)}
    finally:
        await close_all(candidates + viewers)


# --- figure 5: memory ------------------------------------------------------------------------


async def memory(worker, opener, count: int, stream_seconds: float) -> dict:
    """RSS of the worker: before, with `count` idle sessions, and while they all stream."""
    warm = await opener(-1)  # load every lazily imported module first
    await warm.stream(0.2)
    await warm.close()
    await asyncio.sleep(0.5)
    before = worker.rss_kb()
    conns = await open_many(opener, range(count))
    try:
        await asyncio.sleep(1.0)
        idle = worker.rss_kb()
        start = now() + 0.05
        tasks = [asyncio.create_task(conn.stream(stream_seconds, start=start + 0.04 * i / count))
                 for i, conn in enumerate(conns)]
        await asyncio.sleep(stream_seconds * 0.8)
        streaming = worker.rss_kb()
        await asyncio.gather(*tasks)
    finally:
        await close_all(conns)
    return {"sessions": count, "rss_before_kb": before, "rss_idle_kb": idle, "rss_streaming_kb": streaming,
            "idle_kb_per_session": (idle - before) / count, "streaming_kb_per_session": (streaming - before) / count}


# --- figure 7: voice to voice with the local providers -------------------------------------


SENTENCES = (
    "my name is john and i like python programming",
    "i worked on a web service for online payments",
    "i would use a queue and several worker processes",
    "testing and code review matter a lot to me",
)


def _last_voiced(pieces: list[bytes], min_dbfs: float = -50.0) -> int:
    import numpy as np

    floor = 32768.0 * 10 ** (min_dbfs / 20)
    last = 0
    for i, pcm in enumerate(pieces):
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        if samples.size and float(np.sqrt(np.mean(samples * samples))) >= floor:
            last = i
    return last


async def speak_until_reply(conn, texts: list[str], last: int, quiet: str) -> tuple[float, float | None, float | None]:
    """Send an answer's chunks in real time, then keep the microphone open (silence in real
    time) until the reply starts or 8 s pass. Returns when the last voiced chunk was sent,
    when the final transcript arrived and when the reply's first chunk arrived (None: not yet)."""
    start = now()
    last_voiced_at = 0.0
    for k, text in enumerate(texts):
        await asyncio.sleep(max(0.0, start + k * 0.04 - now()))
        sent = await conn.send(text)
        if k == last:
            last_voiced_at = sent
    final_at = first_at = None
    k = len(texts)
    while first_at is None and now() - last_voiced_at < 8:
        await asyncio.sleep(max(0.0, start + k * 0.04 - now()))
        await conn.send(quiet)
        k += 1
        for arrived, msg in list(conn.inbox):
            if msg["type"] == "server-final-transcript" and final_at is None:
                final_at = arrived
            if msg["type"] == "server-ai-speech-chunk" and msg["payload"]["seq"] == 0 and final_at:
                first_at = arrived
    return last_voiced_at, final_at, first_at


async def voice_to_voice(url: str, info: dict, turns: int) -> dict:
    """Real synthesized speech in real time, then silence until the interviewer answers:
    last voiced chunk sent -> first chunk of the reply. Each reply is interrupted at once
    so the next turn can start (the interruption is not part of the figure)."""
    import django

    django.setup()  # tests.factories imports the models
    from tests.factories import chunks, silence, speech

    utterances = [chunks(speech(SENTENCES[i % len(SENTENCES)])) for i in range(turns)]
    quiet = c._audio_message(silence(c.CHUNK_MS))
    conn = await open_session(url, info, wait_opening=False)
    out: dict[str, list[float]] = {"voice_to_voice": [], "speech_end_to_final": [], "final_to_audio": []}
    try:
        await conn.expect("server-ai-speech-chunk", timeout=30)
        await conn.send(message("client-interrupt"))
        await conn.expect("server-ai-interrupted")
        for pieces in utterances:
            await asyncio.sleep(0.3)
            conn.clear()
            last = _last_voiced(pieces)
            texts = [c._audio_message(p) for p in pieces]
            last_voiced_at, final_at, first_at = await speak_until_reply(conn, texts, last, quiet)
            if first_at is None:
                continue  # not recognized as a turn; counted by the missing samples
            out["voice_to_voice"].append(first_at - last_voiced_at)
            out["speech_end_to_final"].append(final_at - last_voiced_at)
            out["final_to_audio"].append(first_at - final_at)
            await conn.send(message("client-interrupt"))
            await conn.expect("server-ai-interrupted")
    finally:
        await conn.close()
    return out


# --- figure 9: a rolling restart through nginx -----------------------------------------------


class _Listener:
    """A candidate streaming in real time through nginx (a silent chunk every 2 s ends an
    answer, so the interviewer speaks too), reconnecting at once whenever the socket
    closes (4012 above all), with every server message timestamped on arrival."""

    def __init__(self, url: str, info: dict):
        self.url, self.info = url, info
        self.arrivals: list[float] = []
        self.closes: Counter[int] = Counter()
        self.joins = 0
        self.resumed = 0
        self.failed_attempts = 0
        self.stop = asyncio.Event()
        self._chunk = 0

    async def run(self) -> None:
        from websockets.asyncio.client import connect

        while not self.stop.is_set():
            try:
                ws = await connect(self.url, origin="http://127.0.0.1", max_size=2**22, compression=None,
                                   open_timeout=20, ping_interval=None)
            except Exception:
                self.failed_attempts += 1
                await asyncio.sleep(0.05)
                continue
            joined = asyncio.Event()
            reader = asyncio.create_task(self._read(ws, joined))
            try:
                await ws.send(message("client-auth", token=self.info["token"], sessionId=self.info["sessionId"]))
                waiter = asyncio.ensure_future(joined.wait())
                await asyncio.wait([reader, waiter], timeout=30, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if joined.is_set():
                    start = now()
                    k = 0
                    while not reader.done() and not self.stop.is_set():
                        await asyncio.sleep(max(0.0, start + k * c.CHUNK_MS / 1000 - now()))
                        self._chunk += 1
                        await ws.send(c.SILENT if self._chunk % 50 == 0 else c.VOICED)
                        k += 1
            except Exception:
                pass
            finally:
                if self.stop.is_set():
                    await ws.close()
                await asyncio.wait([reader], timeout=5)
                reader.cancel()
                self.closes[ws.close_code or 1006] += 1

    async def _read(self, ws, joined: asyncio.Event) -> None:
        import json

        try:
            async for raw in ws:
                self.arrivals.append(now())
                if not joined.is_set() and json.loads(raw).get("type") == "server-auth-success":
                    self.joins += 1
                    self.resumed += bool(json.loads(raw)["payload"].get("resumed"))
                    joined.set()
        except Exception:
            pass

    def longest_silence(self, since: float, until: float) -> float:
        stamps = [t for t in self.arrivals if since <= t <= until]
        return max((b - a for a, b in zip(stamps, stamps[1:])), default=until - since)


async def rolling_restart(cluster, url: str, infos: list[dict], *, workers: list[int], quiet_seconds: float) -> dict:
    """Candidates stream through nginx. First `quiet_seconds` with nothing restarted (the
    baseline), then each worker in turn is sent SIGTERM, waited for, started again and
    waited ready. Sample: per candidate, the longest gap between two server messages in
    each window (the restart window ends 2 s after the last worker is ready again)."""
    listeners = [_Listener(url, info) for info in infos]
    tasks = [asyncio.create_task(listener.run()) for listener in listeners]
    try:
        deadline = now() + 60
        while any(listener.joins == 0 for listener in listeners) and now() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # every opening heard
        quiet_from = now()
        await asyncio.sleep(quiet_seconds)
        quiet_until = restart_from = now()
        stopped_in = []
        for index in workers:
            stopped_in.append(round(await asyncio.to_thread(cluster.terminate, index), 2))
            await asyncio.to_thread(cluster.restart, index)
        await asyncio.sleep(2.0)
        restart_until = now()
    finally:
        for listener in listeners:
            listener.stop.set()
        await asyncio.wait(tasks, timeout=15)
    closes = sum((listener.closes for listener in listeners), Counter())
    return {"quiet": [l.longest_silence(quiet_from, quiet_until) for l in listeners],
            "restart": [l.longest_silence(restart_from, restart_until) for l in listeners],
            "restart_seconds": round(restart_until - restart_from, 1), "worker_stopped_in_s": stopped_in,
            "closes": {str(k): v for k, v in closes.items()}, "joins": sum(l.joins for l in listeners),
            "resumed": sum(l.resumed for l in listeners), "failed_attempts": sum(l.failed_attempts for l in listeners),
            "candidates": len(listeners)}


# --- the profile ---------------------------------------------------------------------------

_BUCKETS = (  # py-spy names frames "function (package/module.py:line)"
    ("twisted", "(twisted/"), ("autobahn (WebSocket framing)", "(autobahn/"), ("daphne", "(daphne/"),
    ("channels", "(channels/"), ("channels_redis / redis", "redis/"), ("asgiref", "(asgiref/"),
    ("json", "(json/"), ("base64", "(base64.py"), ("asyncio", "(asyncio/"), ("realtime (this project)", "(realtime/"),
    ("interviews (this project)", "(interviews/"), ("django", "(django/"), ("logging", "(logging/"),
)


def summarize_profile(path: str, seconds: float, rate: int = 200, top: int = 15) -> dict:
    """py-spy raw output -> how busy each thread was, and for the event loop thread (MainThread)
    the share of its samples by package (self time and inclusive) and the hottest functions."""
    by_bucket: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1].rstrip("_0123456789")
        threads[thread] += n
        if thread != "MainThread":
            continue
        total += n
        leaf = frames[-1]
        by_bucket[next((name for name, key in _BUCKETS if key in leaf), "other")] += n
        by_function[leaf] += n
        for name, key in _BUCKETS:
            if any(key in frame for frame in frames[1:]):
                inclusive[name] += n
    if not total:
        return {"samples": 0}
    share = lambda counter: {k: round(100 * v / total, 1) for k, v in counter.most_common(top)}  # noqa: E731
    return {"loop_samples": total, "busy_pct_by_thread": {k: round(100 * v / (seconds * rate), 1) for k, v in threads.items()},
            "loop_self_pct_by_package": share(by_bucket), "loop_inclusive_pct_by_package": share(inclusive),
            "loop_self_pct_top_functions": share(by_function)}
