"""The time loop: jump-off state, one kernel call per year for all draws, collected results."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sim.axes import N_CAPS, N_FLOWS, RESIDENT_STATES, URBAN_LOCAL, URBAN_MIGRANT, residents
from sim.engine.contract import StepOutputs, new_outputs
from sim.engine.invariants import check_projection, check_summary
from sim.engine.model import Model


@dataclass
class Projection:
    """Arrays with axes (year, draw, ...); the first year is the jump-off (no flows)."""

    years: np.ndarray
    population: np.ndarray  # (Y,D,R,K,S,A)
    births: np.ndarray  # (Y,D,R,K,S)
    deaths: np.ndarray  # (Y,D,R,K,S,A)
    flows: np.ndarray  # (Y,D,R,F,S,A)
    settled: np.ndarray  # (Y,D,R)
    reclassified: np.ndarray  # (Y,D,R)
    capped: np.ndarray  # (Y,D,R,C) cells whose rates were bounded, per sim.axes.CAP_GROUPS
    land: np.ndarray  # (Y,D,R)
    od: np.ndarray | None = None  # (Y,D,R,R) moves from region to region_to, when asked for


BACKENDS = ("auto", "numba", "numpy")  # the config's choices; the functions below take numba or numpy
# "auto": the NumPy reference when a process projects at most this many region-draw-years in all,
# else the kernel. Loading the compiled kernel costs about 1 s a process (import numba 0.3-0.5 s,
# its typing registries and the cached machine code 0.5-0.9 s); a region-draw-year costs the
# reference about 50 us and the kernel about 3.5 us (benchmarks/results/latest.md, one step of
# 14 regions: 0.68 ms and 0.046 ms), so the reference is faster up to about 20,000-30,000 of them.
AUTO_NUMPY_WORK = 20_000


def resolve_backend(backend: str, work: int) -> str:
    """``backend``, with "auto" resolved for a process that will project ``work``
    region-draw-years in all (:data:`AUTO_NUMPY_WORK`). The two agree to rounding (the tests
    hold the kernel to the reference); "auto" only saves the kernel's loading time where the
    projection is small (the default run: 14 regions x 30 years)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend = {backend!r}: allowed values are {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    return "numpy" if work <= AUTO_NUMPY_WORK else "numba"


def work(model: Model, draws: int | None = None) -> int:
    """Region-draw-years of one projection of ``model`` (for :func:`resolve_backend`)."""
    cfg = model.cfg
    return (model.draws if draws is None else draws) * model.pop0.shape[0] * max(0, cfg.end_year - cfg.start_year)


def get_step(backend: str):
    if backend == "numba":
        from sim.engine.kernel import step
    elif backend == "numpy":
        from sim.engine.reference import step
    else:
        raise ValueError(f"backend = {backend!r}: allowed values are numba, numpy")
    return step


def steps(model: Model, draws: int, backend: str, od: bool, outputs=None):
    """The time loop: yields ``(i, pop, land, out)`` for the jump-off (``i = 0``, ``out`` None)
    and after each year's step (arrays reused from year to year: copy what must be kept).
    ``outputs(i)``: the StepOutputs the step of year ``i`` writes into (C-contiguous arrays, e.g.
    views of a projection's result), instead of one set reused every year."""
    step = get_step(backend)
    cfg = model.cfg
    R, K, S, A = model.pop0.shape
    pop = np.broadcast_to(model.pop0, (draws, R, K, S, A)).copy()
    land = np.broadcast_to(model.land0, (draws, R)).copy()
    settled_prev = np.zeros((draws, R))
    yield 0, pop, land, None
    out = new_outputs(draws, R, K, S, A, od=od) if outputs is None else None
    for i, year in enumerate(range(cfg.start_year + 1, cfg.end_year + 1), start=1):
        o = out if outputs is None else outputs(i)
        step(pop, land, settled_prev, model.step_inputs(year), o)
        yield i, pop, land, o


def project(model: Model, *, draws: int | None = None, backend: str = "numba", od: bool | None = None, draw_major: bool = False) -> Projection:
    """Project ``draws`` (default: the config's ``draws.count``) copies of the jump-off state from
    ``start_year`` to ``end_year``. ``od`` (default: the config's ``od_flows``) keeps the
    region-to-region moves. ``draw_major``: the arrays (year, draw, ...) are views of memory laid
    out draw by draw (their ``swapaxes(0, 1)`` is C-contiguous), for a caller that stacks the
    draws as the scenarios of a sweep without copying them."""
    cfg = model.cfg
    draws = model.draws if draws is None else draws
    if (model.factors is not None or model.process is not None) and draws != model.draws:
        raise ValueError(f"draws = {draws}: the model's per-draw parameters are for draws.count = {model.draws}")
    od = cfg.od_flows if od is None else od
    get_step(backend)  # an unknown backend fails before anything is allocated
    years = np.arange(cfg.start_year, cfg.end_year + 1)
    Y = len(years)
    R, K, S, A = model.pop0.shape
    D = draws
    def z(*shape):  # (Y, D, ...)
        return np.zeros((shape[1], shape[0]) + shape[2:]).swapaxes(0, 1) if draw_major else np.zeros(shape)

    res = Projection(
        years,
        z(Y, D, R, K, S, A),
        z(Y, D, R, K, S),
        z(Y, D, R, K, S, A),
        z(Y, D, R, N_FLOWS, S, A),
        z(Y, D, R),
        z(Y, D, R),
        z(Y, D, R, N_CAPS),
        z(Y, D, R),
        z(Y, D, R, R) if od else None,
    )
    no_od = np.zeros((D, 0, 0))

    def into(i):  # the year's flows written where they are kept (each a C-contiguous block of res)
        return StepOutputs(res.births[i], res.deaths[i], res.flows[i], res.settled[i], res.reclassified[i], res.capped[i], res.od[i] if od else no_od)

    direct = not draw_major  # draw-major blocks are strided: the step writes a buffer, copied below
    for i, pop, land, out in steps(model, D, backend, od, into if direct else None):
        res.population[i] = pop
        res.land[i] = land
        if out is None or direct:
            continue
        res.births[i], res.deaths[i], res.flows[i] = out.births, out.deaths, out.flows
        res.settled[i], res.reclassified[i], res.capped[i] = out.settled, out.reclassified, out.capped
        if od:
            res.od[i] = out.od
    check_projection(res, model.inputs.region.values)
    return res


@dataclass
class Summary:
    """Reduced outputs, (Y,D,R): what ensembles and sensitivity studies need, without the
    (state, sex, age) detail; the first year is the jump-off."""

    years: np.ndarray
    residents: np.ndarray  # all states but away
    urban: np.ndarray  # urban_local + urban_migrant
    urban_local: np.ndarray
    all_states: np.ndarray
    land: np.ndarray  # km2
    births: np.ndarray  # in the year, to mothers of the resident states (0 in the jump-off year)
    deaths: np.ndarray  # in the year, of the resident states
    capped: np.ndarray  # cells whose rates the year's step bounded (all of sim.axes.CAP_GROUPS)

    @property
    def urban_share(self) -> np.ndarray:
        return self.urban / self.residents

    def take(self, idx: np.ndarray) -> "Summary":
        """The draws ``idx`` (positions, repeats allowed: a resampled ensemble)."""
        return dataclasses.replace(self, **{f.name: getattr(self, f.name)[:, idx] for f in dataclasses.fields(self) if f.name != "years"})


def project_summary(model: Model, *, backend: str = "numba") -> Summary:
    """The projection of :func:`project` reduced to totals per year, draw and region: memory
    grows with years x draws x regions only, so ensembles of many thousands of draws fit.
    With numba, the whole ensemble is one kernel call that runs every year of a draw in a
    thread's own scratch state (:func:`sim.engine.kernel.summary`); the NumPy reference reduces the
    full projection year by year."""
    cfg = model.cfg
    years = np.arange(cfg.start_year, cfg.end_year + 1)
    D, R = model.draws, model.pop0.shape[0]
    n = len(dataclasses.fields(Summary)) - 1  # the columns of sim.engine.kernel.N_SUMMARY
    if backend == "numba":
        from sim.engine.kernel import summary

        tot = np.zeros((len(years), D, R, n))
        summary(model.pop0, model.land0, model.stacked_inputs(years[1:]), model.factor_table(years[1:]), tot, variant=model.variants())
        res = Summary(years, *(np.ascontiguousarray(tot[..., i]) for i in range(n)))
        check_summary(res, model.inputs.region.values)
        return res
    res = Summary(years, *(np.zeros((len(years), D, R)) for _ in range(n)))
    for i, pop, land, out in steps(model, D, backend, False):
        tot = pop.sum(axis=(3, 4))  # (D,R,K)
        res.urban_local[i] = tot[..., URBAN_LOCAL]
        res.urban[i] = tot[..., URBAN_LOCAL] + tot[..., URBAN_MIGRANT]
        res.all_states[i] = tot.sum(axis=-1)
        res.residents[i] = residents(tot)
        res.land[i] = land
        if out is not None:
            res.births[i] = out.births[:, :, RESIDENT_STATES].sum(axis=(2, 3))
            res.deaths[i] = out.deaths[:, :, RESIDENT_STATES].sum(axis=(2, 3, 4))
            res.capped[i] = out.capped.sum(axis=-1)
    check_summary(res, model.inputs.region.values)
    return res


@dataclass
class Totals:
    """What a calibration's targets read, (Y,D,...) with the jump-off first: the stock summed over
    ages by state and sex, the year's births by the mother's state and deaths by the state of the
    dead (0 in the jump-off year), and the last year's full stock."""

    years: np.ndarray
    population: np.ndarray  # (Y,D,R,K,S)
    births: np.ndarray  # (Y,D,R,K)
    deaths: np.ndarray  # (Y,D,R,K)
    last: np.ndarray  # (D,R,K,S,A)


def project_totals(model: Model, *, backend: str = "numba") -> Totals:
    """The projection of :func:`project` reduced to :class:`Totals`. With numba, one call of the
    ensemble kernel (:func:`sim.engine.kernel.summary` with its detail), the per-draw factors
    applied inside it; the NumPy reference reduces the full projection year by year."""
    cfg = model.cfg
    years = np.arange(cfg.start_year, cfg.end_year + 1)
    D = model.draws
    R, K, S, A = model.pop0.shape
    res = Totals(years, np.zeros((len(years), D, R, K, S)), np.zeros((len(years), D, R, K)), np.zeros((len(years), D, R, K)), np.zeros((D, R, K, S, A)))
    if backend == "numba":
        from sim.engine.kernel import N_SUMMARY, summary

        tot = np.zeros((len(years), D, R, N_SUMMARY))
        summary(model.pop0, model.land0, model.stacked_inputs(years[1:]), model.factor_table(years[1:]), tot, (res.population, res.births, res.deaths, res.last))
        return res
    pop = model.pop0
    for i, pop, _, out in steps(model, D, backend, False):
        res.population[i] = pop.sum(axis=-1)
        if out is not None:
            res.births[i] = out.births.sum(axis=-1)
            res.deaths[i] = out.deaths.sum(axis=(-2, -1))
    res.last[...] = pop  # the stock steps() left after the last year
    return res
