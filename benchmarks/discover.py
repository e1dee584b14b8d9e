"""The policy search at its issue's size (``python -m benchmarks.discover``): 2,000 lever packages
x 200 posterior draws (400,000 projections, 2020-2035, 14 prefectures, reduced outputs) with
``python -m experiments.discover samples=1000 draws=200`` (the shipped spec: 1,000 Latin-hypercube
points x 2 service options), wall time of the whole command and its peak memory; against it, in
the same run, the per-package path: a few packages each projected alone as its own ensemble of
200 draws (compose, build, project; the first one's start-up not counted), their mean time x
2,000. Writes ``benchmarks/results/discover.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import machine, write_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GOAL_S = 300.0  # issue 20: 2,000 packages x 200 draws in 5 minutes
PEAK = "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)"


def per_package(n: int, draws: int) -> float:
    """Mean seconds of one package projected alone (its own ensemble: composed, built and
    projected), over ``n`` packages of the shipped spec's levers (random points of its ranges,
    its first option of each group)."""
    import numpy as np
    import yaml

    from sim.config.compose import compose_config
    from sim.engine.prepare import prepare
    from sim.engine.runner import project_summary

    spec = yaml.safe_load((ROOT / "experiments" / "discover.yaml").read_text(encoding="utf-8"))
    rng = np.random.default_rng(1)
    times = []
    for k in range(n + 1):
        ov = list(spec["base_overrides"]) + [f"draws.count={draws}"]
        for name, v in spec["levers"].items():
            if "range" in v:
                ov.append(f"{name}={rng.uniform(*v['range']):.6g}")
            else:
                ov.append(f"{name}={v['options'][0]}")
        t0 = time.perf_counter()
        project_summary(prepare(compose_config(ov), reduced=True))
        if k:  # the first one pays the start-up (imports, compilation)
            times.append(time.perf_counter() - t0)
    return sum(times) / len(times)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=200)
    a = ap.parse_args(argv)
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "experiments.discover", f"samples={a.samples}", f"draws={a.draws}", f"out={d}"],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode:
            raise RuntimeError(r.stderr[-3000:])
        peak_gb = int(r.stderr.strip().splitlines()[-1]) / 1024**2
    packages = 2 * a.samples
    one = per_package(5, a.draws)
    res = {"machine": machine(), "packages": packages, "draws": a.draws, "projections": packages * a.draws, "wall_s": wall, "peak_gb": peak_gb,
           "per_package_s": one, "per_package_s_for_all": one * packages, "speedup": one * packages / wall, "goal_s": GOAL_S, "met": wall <= GOAL_S}
    text = "\n".join([
        "# Policy search (python -m benchmarks.discover)", "",
        f"Machine: {res['machine']['cpu']}, {res['machine']['cores']} cores, numba threads {res['machine']['numba_threads']}.", "",
        "| case | figure | goal | met |", "|---|---:|---:|---|",
        f"| {packages} packages x {a.draws} draws ({packages * a.draws:,} projections), wall | {wall:.1f} s | <= {GOAL_S:.0f} s | {'yes' if res['met'] else 'no'} |",
        f"| peak memory | {peak_gb:.2f} GB | | |",
        f"| per-package path (each package its own ensemble), x {packages} | {one * packages:.0f} s ({one:.2f} s a package) | | |",
        f"| ratio | {res['speedup']:.1f}x | | |",
    ])
    write_results(a.out, "discover", res, text)
    return res


if __name__ == "__main__":
    main()
