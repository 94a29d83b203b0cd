"""Summaries, the printed table and the JSON file."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (inf counts: an unanswered chunk is worse than any latency)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latency_row(figure: str, metric: str, samples: list[float], baseline: str, base: list[float], **extra) -> dict:
    """A latency figure (seconds in, ms out) beside its baseline."""
    p50, p99 = percentile(samples, 50) * 1000, percentile(samples, 99) * 1000
    b50, b99 = percentile(base, 50) * 1000, percentile(base, 99) * 1000
    return {"figure": figure, "metric": metric, "unit": "ms", "n": len(samples), "p50": _r(p50), "p99": _r(p99),
            "baseline": baseline, "baseline_n": len(base), "baseline_p50": _r(b50), "baseline_p99": _r(b99),
            "ratio_p50": _ratio(p50, b50), "ratio_p99": _ratio(p99, b99), **extra}


def value_row(figure: str, metric: str, value: float, unit: str, n: int, baseline: str, base: float,
              p50: float | None = None, p99: float | None = None, **extra) -> dict:
    """A count or size (capacity, memory) beside its baseline; p50/p99 are the latencies at that point."""
    return {"figure": figure, "metric": metric, "unit": unit, "value": _r(value), "n": n,
            "p50": _r(p50), "p99": _r(p99), "baseline": baseline, "baseline_value": _r(base),
            "ratio": _ratio(value, base), **extra}


def _r(x):
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return None if x is None or math.isnan(x) else "inf"
    return round(x, 2)


def _ratio(a, b):
    try:
        return round(a / b, 2) if b and not math.isnan(a) and not math.isnan(b) else None
    except TypeError:
        return None


def table(rows: list[dict]) -> str:
    head = ("figure", "metric", "value", "n", "p50 ms", "p99 ms", "baseline", "base value/p50/p99", "ratio")
    lines = []
    for row in rows:
        if "value" in row:
            value = f"{row['value']} {row['unit']}"
            base = f"{row['baseline_value']} {row['unit']}"
            ratio = f"x{row['ratio']}"
        else:
            value = ""
            base = f"{row['baseline_p50']} / {row['baseline_p99']} ms (n={row['baseline_n']})"
            ratio = f"x{row['ratio_p50']} / x{row['ratio_p99']}"
        lines.append((row["figure"], row["metric"], value, str(row["n"]), _s(row.get("p50")), _s(row.get("p99")),
                      row["baseline"], base, ratio))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    fmt = lambda cells: " | ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([fmt(head), "-+-".join("-" * w for w in widths), *map(fmt, lines)])


def markdown(rows: list[dict]) -> str:
    text = table(rows).splitlines()
    cells = [[c.strip() for c in line.split(" | ")] for line in text[:1] + text[2:]]
    out = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    out += ["| " + " | ".join(r) + " |" for r in cells[1:]]
    return "\n".join(out)


def _s(x) -> str:
    return "" if x is None else str(x)


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    versions = {name: _version(name) for name in ("daphne", "channels", "channels-redis", "Django", "Twisted",
                                                  "autobahn", "websockets", "redis")}
    redis_version = _run(["redis-server", "--version"])
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": sys.version.split()[0], "platform": platform.platform(),
            "versions": versions, "redis_server": redis_version}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _run(command: list[str]) -> str | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def save(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str))
