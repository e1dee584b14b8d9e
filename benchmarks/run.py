"""Benchmarks of the engine on this machine (``make bench`` or ``python -m benchmarks.run``).

1. One annual step, numba kernel vs NumPy reference, same inputs, same process: best-of-N wall
   time per step and their ratio, for 1, 100 and 1,000 draws of the 14-prefecture model and
   1 and 10 draws of the 111-county model.
2. A deterministic 2020-2050 projection in process (build + 30 steps), and ``python -m sim``
   end to end in a subprocess with a warm numba cache (the issue's "under 5 s" figure).
3. Writing all of a run's figures, for the deterministic run and for 1,000 draws.

Writes ``benchmarks/results/latest.{json,md}``. ``--quick`` is the CI-sized smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np
import xarray as xr

from sim import kernel, reference
from sim.app import prepare
from sim.axes import N_AGES, N_SEXES, N_STATES
from sim.reference import new_outputs
from sim.runner import project
from sim.schema import Config

HERE = Path(__file__).resolve().parent


def best_time(fn, number: int, repeat: int = 5) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def bench_step(draws: int, quick: bool, geography: str = "guangxi_prefectures") -> dict:
    cfg = Config()
    cfg.geography.name = geography
    model = prepare(cfg)
    p = model.step_inputs(2021)
    R = model.pop0.shape[0]
    pop0 = np.broadcast_to(model.pop0, (draws, R, N_STATES, N_SEXES, N_AGES)).copy()
    land0 = np.broadcast_to(model.land0, (draws, R)).copy()
    settled0 = np.zeros((draws, R))
    out = new_outputs(draws, R, N_STATES, N_SEXES, N_AGES)
    pop, land, settled = pop0.copy(), land0.copy(), settled0.copy()

    def reset():
        pop[...] = pop0
        land[...] = land0
        settled[...] = settled0

    def k():
        reset()
        kernel.step(pop, land, settled, p, out)

    def r():
        reset()
        reference.step(pop, land, settled, p, out)

    k()  # compile / load the cache
    t_reset = best_time(reset, number=max(1, 2000 // draws), repeat=3 if quick else 7)
    n_k = max(1, (200 if quick else 2000) // draws)
    n_r = max(1, (20 if quick else 200) // draws)
    t_k = best_time(k, number=n_k, repeat=3 if quick else 7) - t_reset
    t_r = best_time(r, number=n_r, repeat=3 if quick else 7) - t_reset
    return {"geography": geography, "regions": R, "draws": draws, "kernel_s": t_k, "numpy_s": t_r, "ratio": t_r / t_k}


def bench_projection() -> dict:
    cfg = Config()
    t0 = time.perf_counter()
    model = prepare(cfg)
    t1 = time.perf_counter()
    project(model, backend="numba")
    t2 = time.perf_counter()
    project(model, backend="numpy")
    t3 = time.perf_counter()
    return {"prepare_s": t1 - t0, "project_numba_s": t2 - t1, "project_numpy_s": t3 - t2}


def bench_figures(quick: bool) -> dict:
    """All run figures (write_figures) for the deterministic 2020-2050 run and for a 1,000-draw
    ensemble 2020-2035. Until calibrated parameter draws exist every draw is identical, so the
    ensemble is the run's dataset repeated with its urban shares, populations and land spread
    by a normal factor per draw (same sizes and the same work for the figures)."""
    from sim.figures import write_figures
    from sim.io import to_dataset
    from sim.schema import FiguresConfig

    cfg = Config()
    cfg.end_year = 2035 if quick else 2050
    model = prepare(cfg)
    ds = to_dataset(model, project(model))
    fc = FiguresConfig()
    out = {}
    with tempfile.TemporaryDirectory() as d:
        write_figures(ds, d, fc)  # imports, font cache
        t0 = time.perf_counter()
        write_figures(ds, d, fc)
        out["figures_run_s"] = time.perf_counter() - t0
        n = 20 if quick else 1000
        e = ds.sel(year=slice(2020, 2035)).expand_dims(draw=np.arange(n)).copy()
        f = xr.DataArray(np.random.default_rng(0).normal(1.0, 0.02, n), dims="draw")
        for v in ("total_urban_share", "urban_share", "hukou_urban_share", "population", "urban_land", "land_required", "urban_population", "migration_od", "residents"):
            e[v] = (e[v] * f).assign_attrs(ds[v].attrs)
        t0 = time.perf_counter()
        write_figures(e, d, fc)
        out["figures_ensemble_s"] = time.perf_counter() - t0
        out["figures_ensemble_draws"] = n
    return out


def bench_cli() -> dict:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(HERE.parent / ".numba_cache"))
    times = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(3):  # the first run may compile; the later ones use the cache
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "sim", f"hydra.run.dir={d}/{i}", "quiet=true"], env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            if r.returncode:
                raise RuntimeError(r.stderr)
    return {"cli_first_s": times[0], "cli_warm_s": min(times[1:])}


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__, "numba_threads": numba.get_num_threads()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="CI-sized smoke run (seconds)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    res = {"machine": machine(), "command": "python -m benchmarks.run" + (" --quick" if args.quick else "")}
    res["step"] = [bench_step(d, args.quick) for d in ((1, 10) if args.quick else (1, 100, 1000))]
    res["step"] += [bench_step(d, args.quick, "guangxi_counties") for d in ((1,) if args.quick else (1, 10))]
    res["projection_2020_2050"] = bench_projection()
    res.update(bench_figures(args.quick))
    if not args.quick:
        res.update(bench_cli())
    lines = [f"# Benchmarks ({res['command']})", "", f"Machine: {res['machine']}", "", "| regions | draws | kernel per step (ms) | NumPy per step (ms) | ratio |", "|---:|---:|---:|---:|---:|"]
    for s in res["step"]:
        lines.append(f"| {s['regions']} | {s['draws']} | {1e3 * s['kernel_s']:.3f} | {1e3 * s['numpy_s']:.3f} | {s['ratio']:.1f}x |")
    pj = res["projection_2020_2050"]
    lines += ["", f"2020-2050 projection in process: prepare {pj['prepare_s']:.2f} s, numba {pj['project_numba_s']:.3f} s, NumPy {pj['project_numpy_s']:.3f} s"]
    lines.append(f"All figures: {res['figures_run_s']:.2f} s for the deterministic run, {res['figures_ensemble_s']:.2f} s for {res['figures_ensemble_draws']} draws (2020-2035)")
    if "cli_warm_s" in res:
        lines.append(f"`python -m sim` end to end: first {res['cli_first_s']:.2f} s, warm cache {res['cli_warm_s']:.2f} s")
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        write_results(args.out, "latest", res, text)
    return res


def write_results(out: Path, name: str, res: dict, text: str) -> None:
    """``out/name.json`` (every figure) and ``out/name.md`` (the table)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(res, indent=2))
    (out / f"{name}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
