"""`python -m bench.per_chunk [COUNT]`: the worker's CPU per audio chunk at a fixed count of
streams (default 30), the interview socket (synthetic providers) against `/echo-direct`
(the same dispatch, no per-message hop) and `/echo-loop` (the interview socket's message
loop too: what the interview's own work costs), no CPU quota, measured in turn three times each.

Figure 1's capacity searches answer the same question through a 50 ms latency bound under
a 0.5-core quota, which swings by more than the difference between the two paths on a
shared machine; CPU per chunk at one count is steadier. The ratio of the medians, inverted,
is the capacity the interview's per-chunk path allows against the echo's.
"""

from __future__ import annotations

import asyncio
import statistics
import sys

from . import figures as f
from .clients import CHUNK_MS, FastConn, open_session
from .servers import ECHO_APP, Cluster


async def cpu_per_chunk_us(cluster: Cluster, opener, count: int) -> float:
    """The lower of two 5 s steps (a stall of the shared machine is not a cost)."""
    conns = await f.open_many(opener, range(count))
    try:
        costs = []
        for _ in range(2):
            step = await f._stream_step(conns, 5.0, 0.75, cluster.workers)
            costs.append(sum(step["server_cpu"]) / (count * 1000 / CHUNK_MS) * 1e6)
        return min(costs)
    finally:
        await f.close_all(conns)


async def main(count: int) -> dict:
    with Cluster(providers="synthetic") as interview, Cluster(app=ECHO_APP) as echo:
        pool = interview.prepare(count)["sessions"]
        url = interview.url("/api/interview-socket")
        measure = {
            "interview": lambda: cpu_per_chunk_us(interview, lambda i: open_session(url, pool[i], fast=True), count),
            "echo-direct": lambda: cpu_per_chunk_us(echo, lambda i: FastConn.open(echo.url("/echo-direct")), count),
            "echo-loop": lambda: cpu_per_chunk_us(echo, lambda i: FastConn.open(echo.url("/echo-loop")), count),
        }
        runs: dict[str, list[float]] = {name: [] for name in measure}
        for name in ("echo-direct", "interview", "echo-loop", "interview", "echo-loop", "echo-direct",
                     "echo-loop", "echo-direct", "interview"):
            runs[name].append(round(await measure[name]()))
            print(f"{name}: {runs[name][-1]} µs a chunk at {count} streams", flush=True)
            await asyncio.sleep(1)
    ratios = {}
    for baseline in ("echo-direct", "echo-loop"):
        ratio = statistics.median(runs["interview"]) / statistics.median(runs[baseline])
        ratios[baseline] = round(ratio, 2)
        print(f"interview / {baseline}: x{ratio:.2f} the CPU a chunk, x{1 / ratio:.2f} the capacity")
    return {"count": count, "us_per_chunk": runs, "cpu_ratio": ratios}


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
