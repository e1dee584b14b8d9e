"""The benchmark suite runs (CI-sized, in a fresh process), so it never rots. No timing is
asserted here: speed goals are measured by ``make bench``, not in tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_suite_smoke_run(tmp_path):
    r = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / "smoke.json").read_text())
    cases = {(b["extra_info"]["case"], b["extra_info"].get("backend"), b["extra_info"].get("draws"), b["extra_info"].get("threads")) for b in res["benchmarks"]}
    steps = {(c, b, d) for c, b, d, _ in cases if c == "step"}
    assert {("step", "numba", 1), ("step", "numpy", 1)} <= steps
    assert {("ensemble", None, 20, 1), ("ensemble", None, 20, 2), ("geography", None, None, None)} <= cases
    assert all(b["stats"]["min"] > 0 for b in res["benchmarks"])
    text = (tmp_path / "smoke.md").read_text()
    assert "| 1 |" in text and "kernel (ms)" in text and res["machine"]["cores"] >= 1
