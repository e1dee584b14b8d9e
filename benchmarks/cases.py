"""The benchmarked work, shared by the pytest-benchmark suite (``benchmarks/test_benchmarks.py``)
and by :func:`measure`, which runs a case once in a fresh process for its peak memory.

    python -m benchmarks.cases ensemble 10000 2    # draws, threads: prints {"wall_s", "peak_rss_mb"}
    python -m benchmarks.cases geography china_counties
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENSEMBLE_END = 2035  # 2020 -> 2035: 15 years


def model(geography: str = "guangxi_prefectures", end_year: int = ENSEMBLE_END, draws: int = 1, uncertain: bool = False, reduced: bool = False):
    from sim.config.compose import compose_config
    from sim.engine.prepare import prepare

    ov = [f"geography={geography}", f"end_year={end_year}", f"draws.count={draws}", "od_flows=false", "figures.enabled=false"]
    if uncertain:
        ov.append("uncertainty.enabled=true")
    return prepare(compose_config(ov), reduced=reduced)


def step_case(draws: int, backend: str, geography: str = "guangxi_prefectures", m=None):
    """One annual step (2020 -> 2021) of ``draws`` copies of the jump-off state, full outputs:
    returns ``(reset, step)``; ``reset()`` puts the jump-off state back (the step works in
    place), ``step()`` is the annual step alone. ``m``: the model, if already built
    (``model(geography, 2021)``)."""
    from sim.engine.contract import new_outputs
    from sim.engine.runner import get_step

    m = m if m is not None else model(geography, 2021)
    step_fn = get_step(backend)
    p = m.step_inputs(2021)
    R, K, S, A = m.pop0.shape
    pop0 = np.broadcast_to(m.pop0, (draws, R, K, S, A)).copy()
    land0 = np.broadcast_to(m.land0, (draws, R)).copy()
    pop, land, settled = pop0.copy(), land0.copy(), np.zeros((draws, R))
    out = new_outputs(draws, R, K, S, A, od=True)

    def reset():
        pop[...] = pop0
        land[...] = land0
        settled[...] = 0.0

    def step():
        step_fn(pop, land, settled, p, out)

    reset()
    step()  # compile or load the numba cache
    return reset, step


def ensemble_case(draws: int):
    """The 2020 -> 2035 ensemble of the 14 prefectures with per-draw parameters and reduced
    outputs (urban share and totals per region, year and draw): one kernel call."""
    from sim.engine.runner import project_summary

    m = model(draws=draws, uncertain=True, reduced=True)
    project_summary(m)  # compile or load the cache (the first call of a process)
    return lambda: project_summary(m)


def geography_case(geography: str):
    """A deterministic 2020 -> 2035 run: inputs loaded, model built, projected (full outputs
    in memory, no region-to-region matrix), as ``python -m sim`` does before writing."""
    from sim.engine.runner import project

    def run():
        return project(model(geography))

    return run


def cli(cache_dir: str, out_dir: str, *args: str) -> float:
    """``python -m sim [args]`` (the default run, 2020 -> 2050, written with its figures) in a
    new process with ``NUMBA_CACHE_DIR=cache_dir``: wall seconds."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "sim", f"hydra.run.dir={out_dir}", "quiet=true", *args], env=env, capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return time.perf_counter() - t0


def cold_and_warm_start() -> dict:
    """``python -m sim`` with an empty numba cache, then again with the cache it filled (the
    best of 3); the default run projects with the reference (``backend=auto``), so the kernel's
    own cold start is measured with ``backend=numba`` (an empty cache: every kernel compiled)."""
    with tempfile.TemporaryDirectory() as d:
        cold = cli(f"{d}/cache", f"{d}/cold")
        warm = min(cli(f"{d}/cache", f"{d}/warm{i}") for i in range(3))
        cold_kernel = cli(f"{d}/kcache", f"{d}/kcold", "backend=numba")
        warm_kernel = min(cli(f"{d}/kcache", f"{d}/kwarm{i}", "backend=numba") for i in range(3))
    return {"cold_s": cold, "warm_s": warm, "cold_kernel_s": cold_kernel, "warm_kernel_s": warm_kernel}


def measure(*args: str) -> dict:
    """Run ``python -m benchmarks.cases ARGS`` in a fresh process: its wall time for the case
    (JIT warmed first) and its peak resident memory."""
    r = subprocess.run([sys.executable, "-m", "benchmarks.cases", *args], capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    kind = argv[0]
    if kind == "ensemble":
        import numba

        numba.set_num_threads(int(argv[2]))
        run = ensemble_case(int(argv[1]))
    elif kind == "geography":
        ensemble_case(2)()  # loads the compiled kernel, so that the wall time is the run's
        run = geography_case(argv[1])
    else:
        raise SystemExit(f"unknown case {kind!r}: allowed: ensemble, geography")
    t0 = time.perf_counter()
    run()
    wall = time.perf_counter() - t0
    print(json.dumps({"wall_s": wall, "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM, which starts afresh at exec (ru_maxrss does
    not: a child started by vfork + exec inherits its parent's high-water mark)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main(sys.argv[1:])
