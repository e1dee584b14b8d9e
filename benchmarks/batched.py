"""The batched launcher against the joblib launcher, measured in the same run
(``python -m benchmarks.batched``): wall time of the whole command, start-up to end.

- ``levers_summary``: the same with ``hydra.launcher.outputs=summary`` (totals per year and
  region: one call of the ensemble kernel, a small file).
- ``levers``: 64 jobs that differ in per-draw levers only (``policy.hukou.conversion_rate`` x 8,
  ``policy.reclassification.rate`` x 8), 2020-2035, figures off: the batched launcher projects
  them as one kernel call.
- ``groups``: the 64-job sweep of ``benchmarks.sweep`` (config groups: scenario, hukou, land,
  reclassification, services), 2020-2050, figures off: jobs that differ in a config group other
  than land (whose options differ in a per-draw lever only) are batches of their own, so this
  measures composition once per group set and the in-process path; ``groups_summary`` the same
  with ``outputs=summary``.
- ``levers_4096``: 4 levers x 8 values (hukou conversion, reclassification, m2 per settled
  migrant, the fertility path from 2025), 2020-2035, ``outputs=summary``, 16 pieces of 256. The
  joblib launcher runs 64 of its jobs (the last two levers at their first values): its time per
  job x 4,096 is the per-job figure, and the 64 are compared with the batched results.

Peak memory: the largest resident set of any one of the command's processes (``getrusage`` of
the children: for joblib the largest worker or the parent, not their sum).

Both launchers' results are compared (collected datasets, 1e-12 relative; net migration, a
difference of flows, relative to the cell's gross flows: :func:`_scale`; the JSON also has the
difference with net migration relative to itself). The per-job runs of 14 regions project with
the NumPy reference (``backend=auto``), the batched ones with the kernel: the two agree to
rounding, not to the bit. Writes
``benchmarks/results/batched.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
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
    "groups_summary": [*AXES, "hydra.launcher.outputs=summary"],
    "levers_4096": [
        "policy.hukou.conversion_rate=0.02,0.05,0.08,0.11,0.14,0.17,0.2,0.25",
        "policy.reclassification.rate=0.002,0.004,0.006,0.008,0.01,0.012,0.015,0.02",
        "policy.land.m2_per_settled=0,10,20,30,40,50,60,80",
        "demography.fertility.tfr_multiplier=" + ",".join(f"{{2020: 1.0, 2025: {v}}}" for v in (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3)),
        "end_year=2035",
        "hydra.launcher.outputs=summary",
    ],
}
SAMPLED = {"levers_4096": 64}  # cases whose per-job run is measured on the first N jobs


PEAK = "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)"


def _run(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (GB) of ``python -m sim -m ARGS``."""
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "sim", "-m", *args, "figures.enabled=false", "quiet=true"], cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr[-3000:])
    return time.perf_counter() - t0, int(r.stderr.strip().splitlines()[-1]) / 1024**2


def _first_values(args: list[str]) -> list[str]:
    """The sweep ``args`` with its last swept keys held at their first values, one key after
    another from the last, until at most 64 jobs remain."""
    out = list(args)
    for k in range(len(out) - 1, -1, -1):
        key, _, vals = out[k].partition("=")
        if key.startswith("demography.fertility"):
            out[k] = f"{key}={vals.split('},')[0]}}}"
        elif "," in vals and not key.startswith("hydra"):
            out[k] = f"{key}={vals.split(',')[0]}"
        if _count(out) <= 64:
            break
    return out


def _count(args: list[str]) -> int:
    n = 1
    for a in args:
        key, _, vals = a.partition("=")
        if key.startswith("hydra") or key == "end_year":
            continue
        n *= vals.count("},") + 1 if vals.startswith("{") else len(vals.split(","))
    return n


def _scale(b: xr.Dataset, k: str) -> np.ndarray:
    """What a difference in ``b[k]`` is relative to: the value itself, except for net migration,
    a difference of flows (the persons entering less those leaving), whose rounding is that of
    the flows: there the cell's gross flows (the sum of the absolute flows; a cell where 10,000
    arrive and 10,000 leave has a net of about 0 and the flows' rounding)."""
    y = np.abs(b[k].values)
    if k == "net_migration" and "migration" in b:
        gross = np.abs(b.migration).sum("flow").transpose(*b[k].dims).values
        y = np.maximum(y, gross)
    return y


def _max_rel(a: xr.Dataset, b: xr.Dataset, scaled: bool = True) -> tuple[float, str]:
    """Largest relative difference over the variables both have, and its variable (values
    below 1e-6 compared absolutely); ``scaled``: net migration relative to the gross flows
    (:func:`_scale`), else to itself."""
    b = b.sel(scenario=a.scenario.values)
    worst, name = 0.0, ""
    for k in a.data_vars:
        if k not in b or a[k].shape != b[k].shape:  # reduced outputs: totals where the full ones have detail
            continue
        x, y = a[k].values, b[k].values
        if x.dtype.kind == "f" and x.size:
            d = float(np.nanmax(np.abs(x - y) / np.maximum(_scale(b, k) if scaled else np.abs(y), 1e-6)))
            if d > worst:
                worst, name = d, k
    return worst, name


def bench(case: str, repeat: int = 3) -> dict:
    """The batched sweep ``repeat`` times (the machine's noise is +-20 % between runs of seconds;
    the speed-up uses the median), the joblib one once (a minute or more)."""
    from sim.outputs.collection import collect, write_collected

    args = CASES[case]
    per_job_args = [a for a in (_first_values(args) if case in SAMPLED else args) if not a.startswith("hydra.launcher.")]
    with tempfile.TemporaryDirectory() as d:
        runs = []
        for k in range(repeat):  # the first run's files are compared below, the repeats' removed
            runs.append(_run([*args, "hydra/launcher=batched", f"hydra.sweep.dir={d}/batched" + (f"{k}" if k else "")]))
            if k:
                shutil.rmtree(f"{d}/batched{k}")
        times = sorted(t for t, _ in runs)
        t_batched, mem_batched = float(np.median(times)), max(m for _, m in runs)
        t_joblib, mem_joblib = _run([*per_job_args, "hydra/launcher=joblib", f"hydra.sweep.dir={d}/joblib"])
        ds, _, rows = collect(f"{d}/joblib")
        write_collected(ds, rows, f"{d}/joblib")
        with xr.open_dataset(f"{d}/batched/collected.nc") as a, xr.open_dataset(f"{d}/joblib/collected.nc") as b:
            n = a.sizes["scenario"]
            m = b.sizes["scenario"]
            a, b = a.load().sel(scenario=b.scenario.values), b.load()
            diff, var = _max_rel(a, b)
            raw, raw_var = _max_rel(a, b, scaled=False)
    est = t_joblib * n / m
    return {"case": case, "jobs": n, "batched_s": t_batched, "batched_best_s": times[0], "batched_runs_s": times, "batched_peak_gb": mem_batched, "joblib_jobs_run": m, "joblib_s": t_joblib, "joblib_s_for_all_jobs": est,
            "joblib_peak_gb": mem_joblib, "speedup": est / t_batched, "max_relative_difference": diff, "worst_variable": var,
            "max_relative_difference_unscaled": raw, "worst_variable_unscaled": raw_var}


def _merged(out: Path, rows: list[dict]) -> list[dict]:
    """This run's rows, and the rows of the cases it did not run kept from ``out/batched.json``
    (``--cases`` re-measures some without dropping the others), in :data:`CASES` order; each row
    says when and on which machine it was measured."""
    try:
        prev = json.loads((out / "batched.json").read_text())
        known = {"measured": "an earlier run", "cpu": prev["machine"]["cpu"]}  # rows from before rows said so
        old = {r["case"]: {**known, **r} for r in prev["cases"]}
    except (OSError, ValueError, KeyError, TypeError):
        old = {}
    new = {r["case"]: r for r in rows}
    return [new.get(c) or old[c] for c in CASES if c in new or c in old]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    ap.add_argument("--repeat", type=int, default=3, help="runs of each batched sweep (the median is reported, and the best)")
    a = ap.parse_args(argv)
    when = {"measured": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "cpu": machine()["cpu"]}
    rows = _merged(a.out, [{**bench(c, a.repeat), **when} for c in a.cases])
    res = {"machine": machine(), "command": "python -m benchmarks.batched", "cases": rows}
    lines = [f"# Batched launcher ({res['command']})", "", f"Machine: {res['machine']}", "",
             f"Batched: the median of {a.repeat} runs (best in brackets); joblib: one run; the ratio is joblib over the batched median.", "",
             "| case | jobs | batched (s) | batched peak (GB) | joblib (s) | joblib peak (GB) | joblib / batched | max relative difference (variable; net migration: of the gross flows) | measured |", "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        jl = f"{r['joblib_s']:.1f}" if r["joblib_jobs_run"] == r["jobs"] else f"{r['joblib_s']:.1f} for {r['joblib_jobs_run']} jobs, {r['joblib_s_for_all_jobs']:.0f} for all"
        lines.append(f"| {r['case']} | {r['jobs']} | {r['batched_s']:.1f} ({r['batched_best_s']:.1f}) | {r['batched_peak_gb']:.2f} | {jl} | {r['joblib_peak_gb']:.2f} | {r['speedup']:.1f}x | {r['max_relative_difference']:.1e} ({r['worst_variable']}) | {r['measured']}, {r['cpu']} |")
    text = "\n".join(lines)
    write_results(a.out, "batched", res, text)
    return res


if __name__ == "__main__":
    main()
