"""The benchmark suite (pytest-benchmark): ``make bench``, or ``python -m benchmarks``.

Every case warms the JIT in its setup. ``URBSIM_BENCH_SMOKE=1`` shrinks every case to a few
seconds in all (``make test`` runs it that way, with timing disabled, so the suite never rots).
Figures that pytest-benchmark does not measure (peak memory in a fresh process, the cold start)
go into ``benchmark.extra_info``; ``python -m benchmarks`` turns the JSON into the results table.
"""

from __future__ import annotations

import os

import numba
import pytest

from benchmarks import cases

SMOKE = os.environ.get("URBSIM_BENCH_SMOKE") == "1"
STEP_DRAWS = (1, 10) if SMOKE else (1, 10, 100, 1000)
ENSEMBLE_DRAWS = (20,) if SMOKE else (100, 1000, 10000)
GEOGRAPHIES = ("guangxi_prefectures",) if SMOKE else ("guangxi_prefectures", "guangxi_counties", "china_prefectures", "china_counties")


def _rounds(seconds_each: float) -> dict:
    """pedantic() arguments for about 2 s of repeats (1 round in smoke runs)."""
    n = 1 if SMOKE else max(3, min(200, int(2.0 / max(seconds_each, 1e-6))))
    return {"rounds": n, "iterations": 1, "warmup_rounds": 0 if SMOKE else 1}


@pytest.mark.parametrize("draws", STEP_DRAWS)
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_step(benchmark, backend, draws):
    """1. One annual step of the 14 prefectures, kernel and NumPy reference, same inputs."""
    benchmark.group = f"step, 14 prefectures, {draws} draws"
    benchmark.extra_info.update(case="step", backend=backend, draws=draws, regions=14, threads=numba.get_num_threads())
    reset, step = cases.step_case(draws, backend)
    # the state is reset before each round by pytest-benchmark's setup, which is not timed
    benchmark.pedantic(step, setup=reset, **_rounds((5e-5 if backend == "numba" else 7e-4) * draws))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("draws", ENSEMBLE_DRAWS)
def test_ensemble(benchmark, draws, threads):
    """2-3. 2020 -> 2035 ensembles with reduced outputs, on 1 and 2 threads."""
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip(f"{threads} threads: this machine has {numba.config.NUMBA_NUM_THREADS}")
    benchmark.group = f"ensemble 2020-2035, {draws} draws"
    run = cases.ensemble_case(draws)
    prev = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        benchmark.pedantic(run, rounds=1 if SMOKE or draws >= 10000 else 3, iterations=1, warmup_rounds=0)
    finally:
        numba.set_num_threads(prev)
    info = dict(case="ensemble", draws=draws, threads=threads, years=cases.ENSEMBLE_END - 2020)
    if not SMOKE and draws == max(ENSEMBLE_DRAWS):
        info.update(cases.measure("ensemble", str(draws), str(threads)))
    benchmark.extra_info.update(info)


@pytest.mark.parametrize("geography", GEOGRAPHIES)
def test_geography(benchmark, geography):
    """4. One deterministic 2020 -> 2035 run per geography: inputs, model, projection."""
    benchmark.group = "deterministic 2020-2035 by geography"
    run = cases.geography_case(geography)
    res = run()  # derives a geography on first use, compiles the layout it needs
    R = res.population.shape[2]
    rounds = 1 if SMOKE or R > 1000 else 3
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=0)
    info = dict(case="geography", geography=geography, regions=R)
    if not SMOKE:
        info.update(cases.measure("geography", geography))
    benchmark.extra_info.update(info)


@pytest.mark.skipif(SMOKE, reason="a cold start compiles for about 20 s")
def test_cold_and_warm_start(benchmark):
    """5. ``python -m sim`` with an empty numba cache, and with the cache it filled."""
    benchmark.group = "python -m sim end to end"
    res = benchmark.pedantic(cases.cold_and_warm_start, rounds=1, iterations=1)
    benchmark.extra_info.update(case="start", **res)
