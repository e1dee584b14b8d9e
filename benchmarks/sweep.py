"""The 64-job sweep of the 14-prefecture model with the joblib launcher (``make bench-sweep`` or
``python -m benchmarks.sweep``), against the ideal of 64 x one job's time / cores.

- The sweep: ``scenario`` (2) x ``policy/hukou`` (4) x ``policy/land`` (2) x
  ``policy/reclassification`` (2) x ``policy/services`` (2) = 64 jobs, default settings otherwise
  (2020-2050, figures on), ``hydra/launcher=joblib``: 2 workers of 1 numba thread each on 2 cores.
  Its wall time is measured around the whole command: Python start-up, Hydra, spawning the
  workers, every job, and the end of the sweep.
- One job's time: the same job's own time (``seconds`` in its ``status.json``: build, project,
  write the netCDF, the tables and the figures), run alone, with the same 1 numba thread, warm;
  the median of three runs. Start-up is not included: it is paid once per worker in a sweep.
- The ratio wall / (64 x job / 2) is the issue's measure (goal <= 1.3).

Writes ``benchmarks/results/sweep.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import machine, write_results
from sim.outputs.runs import read_status

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
AXES = [
    "scenario=trend,plan",
    "policy/hukou=baseline,easing,full_opening,restricted_big_city",
    "policy/land=off,link",
    "policy/reclassification=baseline,accelerated",
    "policy/services=baseline,equalization",
]


def _env(threads: int | None = None) -> dict:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    if threads:
        env["NUMBA_NUM_THREADS"] = str(threads)
    return env


def sim(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "sim", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr[-3000:])
    return time.perf_counter() - t0


def bench(axes: list[str], cores: int) -> dict:
    first = [a.split("=")[0] + "=" + a.split("=")[1].split(",")[0] for a in axes]
    with tempfile.TemporaryDirectory() as d:
        # one job alone, 1 thread, warm: the median of three runs of the job's own time
        sim([*first, "quiet=true", f"hydra.run.dir={d}/warm"], _env(1))  # loads the cache, warms the disk
        job = []
        for i in range(3):
            sim([*first, "quiet=true", f"hydra.run.dir={d}/alone{i}"], _env(1))
            job.append(read_status(f"{d}/alone{i}")["seconds"])
        t_job = statistics.median(job)
        wall = sim(["-m", *axes, "hydra/launcher=joblib", "quiet=true", f"hydra.sweep.dir={d}/sweep"], _env())
        jobs = sorted(Path(f"{d}/sweep").glob("*/status.json"))
        statuses = [read_status(p.parent)["status"] for p in jobs]
        in_sweep = [read_status(p.parent)["seconds"] for p in jobs]
    n = len(jobs)
    ideal = n * t_job / cores
    return {
        "jobs": n,
        "jobs_ok": statuses.count("ok"),
        "job_alone_s": t_job,
        "job_alone_runs_s": job,
        "job_in_sweep_median_s": statistics.median(in_sweep),
        "sweep_wall_s": wall,
        "ideal_s": ideal,
        "ratio_to_ideal": wall / ideal,
        "ratio_to_ideal_in_sweep_job_time": wall / (n * statistics.median(in_sweep) / cores),
        "cores": cores,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--axes", nargs="*", default=AXES, help="sweep axes (default: the 64-job sweep)")
    a = ap.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    res = {"machine": machine(), "command": "python -m benchmarks.sweep", **bench(a.axes, cores)}
    text = "\n".join(
        [
            f"# Sweep benchmark ({res['command']})",
            "",
            f"Machine: {res['machine']}",
            "",
            f"- {res['jobs']} jobs ({res['jobs_ok']} ok), joblib launcher, {cores} workers x 1 numba thread",
            f"- one job alone (its own time, 1 thread, warm, median of 3): {res['job_alone_s']:.2f} s; the same jobs inside the sweep: median {res['job_in_sweep_median_s']:.2f} s",
            f"- sweep wall time, start-up to end: {res['sweep_wall_s']:.1f} s; ideal {res['jobs']} x {res['job_alone_s']:.2f} / {cores} = {res['ideal_s']:.1f} s",
            f"- ratio to ideal: **{res['ratio_to_ideal']:.2f}** (goal <= 1.3); against the jobs' time inside the sweep: {res['ratio_to_ideal_in_sweep_job_time']:.2f}",
        ]
    )
    write_results(a.out, "sweep", res, text)
    return res


if __name__ == "__main__":
    main()
