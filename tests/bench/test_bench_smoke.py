"""`python -m bench --smoke` produces every figure (sizes tiny; speed is not checked here)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ("1 ingest capacity", "2 turn overhead", "3 barge-in", "4 fan-out (Redis)", "5 memory",
           "6 scale-out (Redis)", "7 voice to voice (local)")


@pytest.mark.slow
def test_smoke_run_produces_every_figure(tmp_path):
    out = tmp_path / "smoke.json"
    run = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    document = json.loads(out.read_text())
    assert document["errors"] == {}
    rows = document["rows"]
    assert set(FIGURES) <= {row["figure"] for row in rows}
    for row in rows:
        assert row["n"] > 0, row
        if "value" not in row:  # a latency figure, beside the echo baseline
            assert row["p50"] is not None and row["p99"] is not None, row
            assert row["baseline_n"] > 0, row
    capacity = [row for row in rows if row["unit"] == "sessions"]
    assert len(capacity) >= 3 and all(row["value"] > 0 and row["baseline_value"] > 0 for row in capacity)
    barge = next(row for row in rows if row["figure"] == "3 barge-in" and "value" not in row)
    assert isinstance(barge["late_chunks"], int)
    assert any(row["metric"].startswith("speech chunks after") for row in rows)
    assert document["machine"]["nproc"] >= 1
