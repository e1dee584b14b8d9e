"""Sweeps at kernel speed: many jobs of one geography and horizon projected as the draws of one
kernel call (the library of the ``batched`` Hydra launcher, ``hydra_plugins/urbsim_launcher``).

Jobs whose configs differ only in the levers of :data:`BATCHABLE` (each a rate the kernel can
vary per draw) and the option labels (:data:`LABELS`) form a batch: the model is built once,
for the batch's base job, and each job's lever values become per-draw multipliers on it (a
year-keyed lever: a multiplier per draw and year, the ratio of the job's path to the base job's;
``policy.land.m2_per_settled``: a multiplier per draw). An ensemble job (``draws.count = D``,
``uncertainty.enabled``) brings its ``D`` draws: the batch's kernel call has ``jobs x D`` draws,
job-major, each job's draws with the base's per-draw factors and process noise (the same draws
as its own run) times its levers. A job that differs in anything else (a config group, a
demographic value, the draws, the seed) starts a batch of its own; a job whose lever cannot be
written as a multiplier of its batch's base (a rate of 0 in the base where the job's is not)
runs alone; a posterior ensemble (``params.ensemble``) runs on the per-job path. A batch holds
at most :data:`MAX_BATCH_DRAWS` draws.

Batches whose jobs differ in their policy options only (config groups such as
``policy/hukou``, ``scenario``: the rates differ, the jump-off state does not) are projected
together as a :class:`sim.engine.stack.Stack` (:func:`stacks`, :func:`run_batches`): one kernel
call for all of them, each batch's model its own. Every job's result equals its per-job run to
rounding (1e-12 relative).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from sim.config.schema import Config
from sim.config.values import year_map

log = logging.getLogger("sim")

# config field -> the parameter (sim.config.parameters) whose per-draw factor carries it, and
# whether it is year-keyed (a factor per draw and year) or a number (a factor per draw). Each
# multiplies its rate where the config's value does (sim.engine.model.Model.step_inputs). The
# demographic ones also drive the 2010-2020 history behind a continued jump-off: jobs batch
# together only when their values up to the jump-off are equal (:data:`SHAPE_HISTORY`).
BATCHABLE = {
    "policy.hukou.conversion_rate": ("hukou_conversion", True),
    "policy.reclassification.rate": ("reclassification", True),
    "policy.land.m2_per_settled": ("land_link", False),
    "demography.fertility.tfr_multiplier": ("tfr", True),
    "demography.migration.rural_to_urban": ("rural_to_urban", True),
    "demography.migration.from_away": ("from_away", True),
}
SHAPE_HISTORY = ("demography.",)  # levers whose values up to the jump-off year shape the jump-off state


def _get(cfg, path: str):
    obj = cfg
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


# the names of the policy groups' options: labels only (no model reads them), kept in each job's
# own config but not a reason to project two jobs apart
LABELS = tuple(f"policy.{g}.name" for g in ("hukou", "services", "land", "reclassification", "nanning_primacy", "beibu_integration", "east_links"))


def _set(obj, path: str, value):
    """``obj`` (a dataclass tree) with the field at dotted ``path`` replaced."""
    head, _, rest = path.partition(".")
    return dataclasses.replace(obj, **{head: _set(getattr(obj, head), rest, value) if rest else value})


def _without_levers(cfg: Config) -> str:
    """The config with the batchable levers and the option labels blanked (a lever that shapes
    the history: its values up to the jump-off kept), as text: jobs with equal keys share a
    batch. ``repr`` of the dataclass tree: deterministic, and far cheaper than JSON of asdict."""
    from sim.inputs.load import HISTORY_START

    history = np.arange(HISTORY_START, cfg.start_year + 1)
    out = cfg
    for path in BATCHABLE:
        out = _set(out, path, tuple(year_map(_get(cfg, path), history).tolist()) if path.startswith(SHAPE_HISTORY) else None)
    for path in LABELS:
        out = _set(out, path, "")
    return repr(out)


MAX_BATCH_DRAWS = {"full": 256, "summary": 4096}  # draws (jobs x each job's draws) in one kernel call


def batchable(cfg: Config) -> str:
    """Why ``cfg`` cannot join a batch ("" when it can)."""
    if cfg.params.ensemble:
        return "a posterior ensemble (params.ensemble: its draws' parameters from a file, reduced to quantiles) runs on the per-job path"
    return ""


@dataclass
class Batch:
    jobs: list[int]  # indices into the sweep's jobs
    base: int  # the job the model is built for (every job's levers are multiples of its)
    reasons: dict[int, str] = field(default_factory=dict)


def _ratio(job, base, years) -> np.ndarray | None:
    a = year_map(job, years)
    b = year_map(base, years)
    if np.any((b == 0) & (a != 0)):
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, 1.0, a / b)


def plan(cfgs: list[Config], max_draws: int = MAX_BATCH_DRAWS["full"]) -> list[Batch]:
    """Batches of the jobs ``cfgs`` (see the module), in the order of their first job; a batch
    holds at most ``max_draws`` draws (jobs x their ``draws.count``), and at least one job."""
    out = []
    for b in _plan(cfgs):
        per = max(1, max_draws // max(1, cfgs[b.base].draws.count))
        if b.reasons or len(b.jobs) <= per:
            out.append(b)
            continue
        for k in range(0, len(b.jobs), per):  # the base need not be one of the jobs: each is a multiple of it
            out.append(Batch(b.jobs[k:k + per], b.base))
    return sorted(out, key=lambda b: min(b.jobs))


def _plan(cfgs: list[Config]) -> list[Batch]:
    groups: dict[str, list[int]] = {}
    alone = []
    for i, c in enumerate(cfgs):
        if batchable(c):
            alone.append(i)
        else:
            groups.setdefault(_without_levers(c), []).append(i)
    out = [Batch([i], i, {i: batchable(cfgs[i])}) for i in alone]
    for members in groups.values():
        # the base: a job whose levers are positive wherever another's are (a multiplier of it)
        years = np.arange(cfgs[members[0]].start_year + 1, cfgs[members[0]].end_year + 1)

        def fits(b, members=members, years=years):
            return all(_ratio(_get(cfgs[j], p), _get(cfgs[b], p), years) is not None for j in members for p in BATCHABLE)

        base = next((b for b in members if fits(b)), None)
        if base is None:  # split off the jobs that are not multiples of the first
            base = members[0]
            keep = [j for j in members if all(_ratio(_get(cfgs[j], p), _get(cfgs[base], p), years) is not None for p in BATCHABLE)]
            out.append(Batch(keep, base))
            for j in members:
                if j not in keep:
                    out.append(Batch([j], j, {j: "a lever of 0 in its batch's base job: runs on its own"}))
        else:
            out.append(Batch(members, base))
    return sorted(out, key=lambda b: min(b.jobs))


def batch_model(cfgs: list[Config], batch: Batch, *, reduced: bool = False, own=None):
    """The model of ``batch``: built for its base job, its draws (the base's ``draws.count``,
    ``D``: its per-draw factors and process noise) repeated for every job, job-major, each
    job's levers as per-draw (and per-year) multipliers on its ``D`` draws. ``own``: the base
    job's model when already built (``prepare`` of it), for callers that project many batches
    of one base."""
    from sim.engine.memory import check_memory
    from sim.engine.prepare import prepare

    base = cfgs[batch.base]
    n, D = len(batch.jobs), base.draws.count
    own = prepare(base, reduced=reduced) if own is None else own  # the draws of one job
    cfg = dataclasses.replace(base, draws=dataclasses.replace(base.draws, count=n * D))
    R = own.pop0.shape[0]
    check_memory(cfg, R, reduced=reduced)
    years = np.arange(cfg.start_year + 1, cfg.end_year + 1)
    factors = {k: np.tile(np.asarray(v, dtype=float), (n,) + (1,) * (np.ndim(v) - 1)) for k, v in (own.factors or {}).items()}
    process = {k: np.tile(v, (n, 1, 1)) for k, v in (own.process or {}).items()}
    for path, (name, keyed) in BATCHABLE.items():
        ratios = [_ratio(_get(cfgs[j], path), _get(base, path), years) for j in batch.jobs]
        if all(np.all(r == 1.0) for r in ratios):
            continue
        r = np.repeat(np.stack(ratios), D, axis=0)  # (n D, Y): job-major, as the draws
        if keyed:
            process[name] = process[name] * r[:, :, None] if name in process else np.repeat(r[:, :, None], R, axis=2)  # (n D, Y, R)
        else:
            f = r[:, 0]
            factors[name] = (factors[name] * (f if factors[name].ndim == 1 else f[:, None])) if name in factors else f
    return dataclasses.replace(own, cfg=cfg, process=process or None, factors=factors or None)


def job_draws(cfg: Config) -> bool:
    """Whether the per-job run of ``cfg`` has a draw axis (an ensemble or a slice of one)."""
    return cfg.draws.count > 1 or cfg.draws.start > 0 or cfg.uncertainty.enabled


def configs_json(cfgs: list[Config], batch: Batch) -> list[str]:
    """:func:`sim.outputs.dataset.config_json` of every job of ``batch``: the base job's config as
    a dict once, each job's lever values and labels (the fields in which a batch's jobs may
    differ) set into a copy of it (checked equal to the full conversion on the first and last)."""
    from sim.outputs.dataset import config_json, plain

    if len(batch.jobs) <= 3:  # the check below would convert as many
        return [config_json(cfgs[j]) for j in batch.jobs]
    base = plain(cfgs[batch.base])
    out = []
    for j in batch.jobs:
        d = dict(base)
        for path in (*BATCHABLE, *LABELS):
            *parents, leaf = path.split(".")
            node = d
            for p in parents:
                node[p] = dict(node[p])  # copy on the way down: the base's dict is shared
                node = node[p]
            v = _get(cfgs[j], path)
            node[leaf] = dict(v) if isinstance(v, dict) else v
        out.append(json.dumps(d, default=str, sort_keys=True))
    for k in {0, len(out) - 1}:
        if out[k] != config_json(cfgs[batch.jobs[k]]):  # a field outside BATCHABLE differs: convert each
            return [config_json(cfgs[j]) for j in batch.jobs]
    return out


def reduced_block(model, summ, cfgs: list[Config], jobs: list[int], jsons: list[str]) -> xr.Dataset:
    """The ``jobs`` (indices into ``cfgs``; ``jsons``: their :func:`configs_json`) from their
    reduced projection ``summ`` (:class:`sim.engine.runner.Summary`, the draws of each job in
    turn) as one dataset along ``scenario`` (a job each, in that order): totals per year and
    region, what the target table needs, and Guangxi's totals; each job's scenario name and
    resolved config as coordinates."""
    from sim.outputs.dataset import provenance

    inp = model.inputs
    cp_share = (inp.city_proper / inp.urban).fillna(model.cfg.geography.city_proper_share).values
    standard = model.cfg.policy.land.capacity_m2_per_person
    P = "persons"

    base = cfgs[jobs[0]]
    n = len(jobs)
    D, start = base.draws.count, base.draws.start
    draws = job_draws(base)

    def jyr(a):  # (Y, n D, R) -> (n, Y, D, R), or (n, Y, R) without draws: a job per scenario
        a = np.moveaxis(a.reshape(a.shape[0], n, D, a.shape[-1]), 1, 0)
        return np.ascontiguousarray(a if draws else a[:, :, 0])

    res, urb, loc, every = jyr(summ.residents), jyr(summ.urban), jyr(summ.urban_local), jyr(summ.all_states)
    v = {
        "residents": (res, P, "resident population (all states but away)"),
        "urban_population": (urb, P, "urban residents (urban_local + urban_migrant)"),
        "urban_local_population": (loc, P, "urban residents with local urban hukou"),
        "all_states_population": (every, P, "all four states (residents and away)"),
        "urban_share": (urb / res, "1", "resident urbanization rate"),
        "hukou_urban_share": (loc / every, "1", "hukou urbanization rate (urban_local / all four states)"),
        "city_proper_population": (urb * cp_share, P, "city-proper residents: urban residents x census 2020 city-proper share"),
        "land_required": (urb * standard / 1e6, "km2", "urban land needed for the urban residents at the per-capita land standard"),
        "urban_land": (jyr(summ.land), "km2", "urban construction land at the year end"),
        "births": (jyr(summ.births), P, "live births in the year to mothers of the resident states (0 in the jump-off year)"),
        "deaths": (jyr(summ.deaths), P, "deaths in the year in the resident states (0 in the jump-off year)"),
        "capped_cells": (jyr(summ.capped), "1", "(sex, age) cells whose rates the year's step bounded (sim.axes.CAP_GROUPS)"),
    }
    dims = ("scenario", "year", "draw", "region") if draws else ("scenario", "year", "region")
    data = {name: xr.Variable(dims, a, {"units": u, "long_name": ln}) for name, (a, u, ln) in v.items()}
    data["total_residents"] = xr.Variable(dims[:-1], res.sum(axis=-1), {"units": P, "long_name": "resident population, all regions"})
    data["total_urban_share"] = xr.Variable(dims[:-1], urb.sum(axis=-1) / res.sum(axis=-1), {"units": "1", "long_name": "resident urbanization rate, all regions"})
    data["total_hukou_urban_share"] = xr.Variable(dims[:-1], loc.sum(axis=-1) / every.sum(axis=-1), {"units": "1", "long_name": "hukou urbanization rate, all regions"})
    coords = {"year": ("year", summ.years), "region": ("region", inp.region.values), "name_zh": ("region", inp.name_zh.values), "prefecture": ("region", inp.prefecture.values)}
    for c in ("province_code", "province_zh"):
        if c in inp.coords:
            coords[c] = ("region", inp[c].values)
    if draws:
        coords["draw"] = ("draw", start + np.arange(D), {"long_name": "ensemble member (its index in the whole ensemble)"})
    coords["scenario_name"] = ("scenario", [cfgs[j].scenario for j in jobs])
    coords["config_json"] = ("scenario", list(jsons))
    attrs = provenance(model, base.scenario, f"Urbanization scenario projection, reduced outputs: {model.cfg.geography.name}, {summ.years[0]}-{summ.years[-1]}",
                       "multistate cohort-component projection (batched launcher, outputs=summary)", with_config=False)
    attrs.pop("scenario")  # per job: a coordinate, as its config
    attrs["outputs"] = "summary"
    return xr.Dataset(data, coords=coords, attrs=attrs)


def full_block(ds: xr.Dataset, jobs: list[Config], jsons: list[str]) -> xr.Dataset:
    """The full outputs ``ds`` of one projection of deterministic jobs (the configs ``jobs`` as
    its draws, in order; ``jsons``: their :func:`configs_json`,
    :func:`sim.outputs.dataset.to_dataset`) as one dataset along ``scenario``, a job each:
    what :func:`sim.outputs.collection.combine` makes of the jobs' own datasets (every variable
    led by ``scenario``; each job's scenario name and resolved config as coordinates), without
    splitting them and joining them again."""
    names = [c.scenario for c in jobs]
    out = ds.drop_vars(["draw", "scenario"]).rename_dims(draw="scenario").transpose("scenario", ...)
    # C order, as a file writes fastest: the projection's draw-major arrays already are; the
    # others (derived from them, small) are copied
    out = out.copy(data={k: np.ascontiguousarray(v.values) for k, v in out.data_vars.items()})
    attrs = {k: v for k, v in ds.attrs.items() if k not in ("config_json", "overrides", "capped_cells_total", "scenario")}
    return out.assign_coords(scenario_name=names[0] if len(set(names)) == 1 else ("scenario", names),
                             config_json=("scenario", list(jsons))).assign_attrs(attrs)


def _stack_key(cfg: Config) -> str:
    """Batches whose base configs have equal keys may share a projection (:func:`stacks`): the
    config without its policy and scenario name, but with the two policy values the outputs
    read (the land standard and the brake width: ``land_required``, ``land_brake``)."""
    land = cfg.policy.land
    return repr((dataclasses.replace(cfg, policy=None, scenario=""), land.capacity_m2_per_person, land.brake_width))


def stacks(cfgs: list[Config], batches: list[Batch], max_draws: int = MAX_BATCH_DRAWS["full"]) -> list[list[Batch]]:
    """The ``batches`` (none with a reason to run alone) grouped into stacks: batches whose base
    configs differ in the policy only, at most ``max_draws`` draws (and at least one batch) a
    stack, in the order of their first job. Whether the models of a stack can share a
    projection is checked when they are built (:func:`run_batches`)."""
    groups: dict[str, list[Batch]] = {}
    for b in batches:
        groups.setdefault(_stack_key(cfgs[b.base]), []).append(b)
    out = []
    for members in groups.values():
        cur, n = [], 0
        for b in members:
            d = len(b.jobs) * cfgs[b.base].draws.count
            if cur and n + d > max_draws:
                out.append(cur)
                cur, n = [], 0
            cur.append(b)
            n += d
        out.append(cur)
    return sorted(out, key=lambda st: min(min(b.jobs) for b in st))


def draw_years(cfgs: list[Config], batch: Batch) -> int:
    """Draws x years of ``batch``'s projection (its size but for the regions)."""
    base = cfgs[batch.base]
    return len(batch.jobs) * base.draws.count * max(0, base.end_year - base.start_year)


def run_batch(cfgs: list[Config], batch: Batch, overrides: list[list[str]], outputs: str = "full", draw_years_in_all: int | None = None) -> list[xr.Dataset] | xr.Dataset:
    """Project ``batch`` in one kernel call; one dataset per job of ``batch.jobs`` (whose
    command-line ``overrides`` are given in that order), each as its per-job run would write it
    (its own config and overrides in the attributes); ``outputs="summary"``: the jobs' reduced
    outputs as one dataset along ``scenario`` (:func:`reduced_block`), from one call of the
    ensemble kernel. ``draw_years_in_all``: the :func:`draw_years` of all the batches the
    process projects (default: this one's), which size the base config's ``backend = auto``
    (:func:`sim.engine.runner.resolve_backend`)."""
    return run_batches(cfgs, [batch], [overrides], outputs, draw_years_in_all)[0][1]


def run_batches(cfgs: list[Config], batches: list[Batch], overrides: list[list[list[str]]], outputs: str = "full", draw_years_in_all: int | None = None,
                block: bool = False) -> list[tuple[list[int], object]]:
    """:func:`run_batch` of ``batches`` (a stack: :func:`stacks`; ``overrides``: each batch's
    jobs' overrides), projected together (a :class:`sim.engine.stack.Stack` of their models)
    where their models allow it and one by one otherwise: a ``(jobs, result)`` pair per
    projection made, the result that of :func:`run_batch` for ``jobs`` (indices into ``cfgs``,
    in increasing order: a stack projects its batches' jobs in their own order, however the
    batches interleave them): their datasets, or with ``outputs="summary"`` one block
    (``block``: full outputs of deterministic jobs as one block too, :func:`full_block`)."""
    from sim.engine.stack import Stack, stack_fits

    reduced = outputs == "summary"
    models = [batch_model(cfgs, b, reduced=reduced) for b in batches]
    years = cfgs[batches[0].base].end_year - cfgs[batches[0].base].start_year
    if len(models) > 1 and stack_fits(models, years):
        jobs = [j for b in batches for j in b.jobs]
        perm = np.argsort(jobs, kind="stable")  # the stack's draws in job order
        D = cfgs[batches[0].base].draws.count  # the same in every batch of a stack (_stack_key)
        try:
            stack = Stack.of(models, order=(perm[:, None] * D + np.arange(D)).ravel())
        except ValueError as e:  # not one jump-off state after all: a projection each
            log.info("batches projected one by one: %s", e)
        else:
            from sim.engine.memory import check_memory

            check_memory(stack.cfg, stack.pop0.shape[0], reduced=reduced)  # all the stack's draws at once
            return [([jobs[k] for k in perm], _project(stack, cfgs, batches, overrides, outputs, draw_years_in_all, block, perm))]
    return [(list(b.jobs), _project(m, cfgs, [b], [ovs], outputs, draw_years_in_all, block)) for m, b, ovs in zip(models, batches, overrides)]


def _project(model, cfgs: list[Config], batches: list[Batch], overrides: list[list[list[str]]], outputs: str, draw_years_in_all: int | None, block: bool = False,
             perm=None):
    """Project ``model`` (of ``batches``: one batch's model, or their stack) once: the datasets
    of the batches' jobs, or with ``outputs="summary"`` their block; ``block``: full outputs of
    deterministic jobs as one block too (:func:`full_block`). ``perm``: the jobs' order on the
    model's draw axis, as indices into the batches' jobs taken in turn (default: in turn)."""
    from sim.engine.runner import project, project_summary, resolve_backend
    from sim.outputs.dataset import config_json, to_dataset

    base = cfgs[batches[0].base]
    jobs = [j for b in batches for j in b.jobs]
    ovs = [o for job_ovs in overrides for o in job_ovs]
    order = range(len(jobs)) if perm is None else perm
    jobs, ovs = [jobs[k] for k in order], [ovs[k] for k in order]

    def jsons():
        every = [c for b in batches for c in configs_json(cfgs, b)]
        return [every[k] for k in order]

    backend = resolve_backend(base.backend, model.pop0.shape[0] * (draw_years_in_all or sum(draw_years(cfgs, b) for b in batches)))
    if outputs == "summary":
        return reduced_block(model, project_summary(model, backend=backend), cfgs, jobs, jsons())
    block = block and not any(job_draws(cfgs[j]) for j in jobs)
    proj = project(model, backend=backend, draw_major=block)  # a block: each job's outputs in one piece of memory
    ds = to_dataset(model, proj, scenario=base.scenario, contiguous=not block)
    del proj
    D, start = base.draws.count, base.draws.start
    if block and "draw" in ds.dims:
        return full_block(ds, [cfgs[j] for j in jobs], jsons())
    out = []
    for k, (j, o) in enumerate(zip(jobs, ovs)):
        if "draw" not in ds.dims:  # a batch of one deterministic job
            one = ds
        elif job_draws(cfgs[j]):  # the job's draws, numbered as in its own run
            one = ds.isel(draw=slice(k * D, (k + 1) * D)).assign_coords(draw=("draw", start + np.arange(D), ds.draw.attrs))
        else:
            one = ds.isel(draw=k).drop_vars("draw")
        attrs = dict(ds.attrs)
        attrs["config_json"] = config_json(cfgs[j])
        attrs["overrides"] = json.dumps(list(o))
        attrs["capped_cells_total"] = float(one.capped_cells.sum())
        out.append(one.assign_attrs(attrs).assign_coords(scenario=cfgs[j].scenario))
    return out
