"""The batched launcher against the joblib launcher, measured in the same run
(``python -m benchmarks.batched``): wall time of the whole command, start-up to end.

- ``levers_summary``: the same with ``hydra.launcher.outputs=summary`` (totals per year and
  region: one call of the ensemble kernel, a small file).
- ``levers``: 64 jobs that differ in per-draw levers only (``policy.hukou.conversion_rate`` x 8,
  ``policy.reclassification.rate`` x 8), 2020-2035, figures off: the batched launcher projects
  them as one kernel call.
- ``groups``: the 64-job sweep of ``benchmarks.sweep`` (config groups: scenario, hukou, land,
  reclassification, services), 2020-2050, figures off: jobs that differ in a config group are
  batches of their own, so this measures composition once per group set and the in-process path.

Both launchers' results are compared (collected datasets, 1e-12 relative). Writes
``benchmarks/results/batched.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from benchmarks import machine, write_results
from benchmarks.sweep import AXES

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CASES = {
    "levers_summary": ["policy.hukou.conversion_rate=0.02,0.05,0.08,0.11,0.14,0.17,0.2,0.25", "policy.reclassification.rate=0.002,0.004,0.006,0.008,0.01,0.012,0.015,0.02", "end_year=2035", "hydra.launcher.outputs=summary"],
    "levers": ["policy.hukou.conversion_rate=0.02,0.05,0.08,0.11,0.14,0.17,0.2,0.25", "policy.reclassification.rate=0.002,0.004,0.006,0.008,0.01,0.012,0.015,0.02", "end_year=2035"],
    "groups": list(AXES),
}


def _run(args: list[str]) -> float:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "sim", "-m", *args, "figures.enabled=false", "quiet=true"], cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr[-3000:])
    return time.perf_counter() - t0


def _max_rel(a: xr.Dataset, b: xr.Dataset) -> float:
    """Largest relative difference over the variables both have (values below 1e-6 compared
    absolutely)."""
    b = b.sel(scenario=a.scenario.values)
    worst = 0.0
    for k in a.data_vars:
        if k not in b or a[k].shape != b[k].shape:  # reduced outputs: totals where the full ones have detail
            continue
        x, y = a[k].values, b[k].values
        if x.dtype.kind == "f":
            d = np.abs(x - y) / np.maximum(np.abs(y), 1e-6)
            worst = max(worst, float(np.nanmax(d)) if d.size else 0.0)
    return worst


def bench(case: str) -> dict:
    from sim.outputs.collection import collect, write_collected

    with tempfile.TemporaryDirectory() as d:
        t_batched = _run([*CASES[case], "hydra/launcher=batched", f"hydra.sweep.dir={d}/batched"])
        t_joblib = _run([*[a for a in CASES[case] if not a.startswith("hydra.launcher.")], "hydra/launcher=joblib", f"hydra.sweep.dir={d}/joblib"])
        ds, _, rows = collect(f"{d}/joblib")
        write_collected(ds, rows, f"{d}/joblib")
        with xr.open_dataset(f"{d}/batched/collected.nc") as a, xr.open_dataset(f"{d}/joblib/collected.nc") as b:
            n = a.sizes["scenario"]
            diff = _max_rel(a.load(), b.load())
    return {"case": case, "jobs": n, "batched_s": t_batched, "joblib_s": t_joblib, "speedup": t_joblib / t_batched, "max_relative_difference": diff}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    a = ap.parse_args(argv)
    rows = [bench(c) for c in a.cases]
    res = {"machine": machine(), "command": "python -m benchmarks.batched", "cases": rows}
    lines = [f"# Batched launcher ({res['command']})", "", f"Machine: {res['machine']}", "",
             "| case | jobs | batched (s) | joblib (s) | joblib / batched | max relative difference |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['case']} | {r['jobs']} | {r['batched_s']:.1f} | {r['joblib_s']:.1f} | {r['speedup']:.1f}x | {r['max_relative_difference']:.1e} |" for r in rows]
    text = "\n".join(lines)
    print(text)
    write_results(a.out, "batched", res, text)
    return res


if __name__ == "__main__":
    main()
