"""The self-describing output datasets: a projection (:func:`to_dataset`), an ensemble's
quantiles (:func:`summary_dataset`), and the provenance every output file carries (resolved
config, code version, input checksum). Writing them is :mod:`sim.files`'s."""

from __future__ import annotations

import dataclasses
import functools
import json
import subprocess
from pathlib import Path

import numpy as np
import xarray as xr

from models import get_model
from sim import files
from sim.axes import AGES, CAP_GROUPS, FLOWS, SEXES, STATES, URBAN_LOCAL, URBAN_MIGRANT, net_migration, residents
from sim.axes import registered as births_registered
from sim.engine.model import Model
from sim.engine.runner import Projection
from sim.inputs.load import load_inputs

P = "persons"


@functools.cache
def code_version() -> str:
    """Package version plus the git commit of the source tree (``+dirty`` when modified); read
    once per process (a sweep's worker runs many jobs of the same code)."""
    from sim import __version__

    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5)
        if rev.returncode == 0:
            return f"{__version__}+g{rev.stdout.strip()}{'.dirty' if dirty.stdout.strip() else ''}"
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{__version__}+unknown"


def plain(obj):
    """``dataclasses.asdict`` of a config (dataclasses, lists, tuples and dicts of immutable
    leaves) without its deep copy of every leaf: a sweep converts one config a job."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = _FIELDS.get(type(obj))
        if names is None:
            names = _FIELDS[type(obj)] = tuple(f.name for f in dataclasses.fields(obj))
        return {n: plain(getattr(obj, n)) for n in names}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    return obj


_FIELDS: dict[type, tuple[str, ...]] = {}


def config_json(cfg) -> str:
    """The resolved config as the outputs record it (``config_json``: JSON of
    ``dataclasses.asdict``, keys sorted)."""
    return json.dumps(plain(cfg), default=str, sort_keys=True)


def city_proper_share(model: Model) -> np.ndarray:
    """City-proper (城区) residents per urban resident by region: the 2020 census's; where the
    census has none (county seats), ``geography.city_proper_share``."""
    inp = model.inputs
    return (inp.city_proper / inp.urban).fillna(model.cfg.geography.city_proper_share).values


def regions_not_run(model: Model) -> str:
    """JSON list of ``[region, prefecture, province code]`` of the geography's regions that a run
    of a subset (``geography.regions``) leaves out ("[]" for a whole geography): a target on a
    place not wholly in the run is not computable (:mod:`sim.outputs.targets`)."""
    g = model.cfg.geography
    if not g.regions:
        return "[]"
    full = load_inputs(g.name, model.cfg.start_year, census=g.census_dir, cache=g.cache_dir)
    run = {str(r) for r in model.inputs.region.values}
    codes = full.province_code.values if "province_code" in full.coords else [""] * full.sizes["region"]
    return json.dumps([[str(r), str(p), str(c)] for r, p, c in zip(full.region.values, full.prefecture.values, codes) if str(r) not in run], ensure_ascii=False)


def provenance(model: Model, scenario: str, title: str, source: str, *, with_config: bool = True) -> dict:
    """The attributes every output file carries: what it is, the resolved config, the code
    version and the input file's checksum (``with_config=False``: without ``config_json``, for a
    caller that records each job's config as a coordinate)."""
    inp = model.inputs
    out = {
        "title": title,
        "Conventions": "CF-1.10",
        "institution": "urbanization scenario engine (sim)",
        "source": source,
        "scenario": scenario,
        "geography": model.cfg.geography.name,
        "config_json": config_json(model.cfg) if with_config else "",
        "code_version": code_version(),
        "input_file": inp.attrs.get("input_file", ""),
        "input_sha256": inp.attrs.get("input_sha256", ""),
        "jump_off": inp.attrs.get("jump_off", "census: the census split of the inputs (python -m sim.derive)"),
        "regions_not_run": regions_not_run(model),
    }
    if not with_config:
        del out["config_json"]
    return out


def to_dataset(model: Model, proj: Projection, *, scenario: str = "default", contiguous: bool = True) -> xr.Dataset:
    """The full outputs of ``proj`` (``model``'s projection) as a dataset with its provenance and
    accounting check; ``contiguous=False``: the variables keep the projection's memory layout
    (:func:`sim.engine.runner.project`'s ``draw_major``) instead of a C-ordered copy."""
    inp = model.inputs
    D = proj.population.shape[1]
    pop = proj.population
    years = proj.years
    net = net_migration(proj.flows, axis=3)  # (Y,D,R,S,A)
    registered = births_registered(proj.births.sum(axis=-1), model.static["other_province_share"])  # (Y,D,R)

    tot = pop.sum(axis=(4, 5))  # (Y,D,R,K)
    urban = tot[..., URBAN_LOCAL] + tot[..., URBAN_MIGRANT]
    resident = residents(tot)
    all_states = tot.sum(axis=-1)
    cp_share = city_proper_share(model)
    standard = model.cfg.policy.land.capacity_m2_per_person

    # a deterministic run has no draw axis; an ensemble, or a slice of one, has
    start = model.cfg.draws.start
    with_draws = D > 1 or start > 0 or model.factors is not None

    def s(a):
        return a if with_draws else a[:, 0]

    dd = ("draw",) if with_draws else ()
    Y = ("year",)
    rg = ("region",)
    v = {
        "population": (Y + dd + rg + ("state", "sex", "age"), s(pop), P, "population at the end of the year (31 Dec)"),
        "births": (Y + dd + rg + ("state", "sex"), s(proj.births), P, "live births in the year, by mother's state and child's sex"),
        "births_registered": (Y + dd + rg, s(registered), P, "live births in the year to the region's registered (hukou) population: to residents, less those to migrants registered in another province (census share of urban_migrant), plus those in the away state (the statistical bulletin's basis)"),
        "deaths": (Y + dd + rg + ("state", "sex", "age"), s(proj.deaths), P, "deaths in the year, by state and the age the cohort reaches at the year end"),
        "migration": (Y + dd + rg + ("flow", "sex", "age"), s(proj.flows), P, "moves in the year by flow type (age reached at the year end)"),
        "net_migration": (Y + dd + rg + ("sex", "age"), s(net), P, "persons entering the region's four states from outside them minus persons leaving"),
        "settled": (Y + dd + rg, s(proj.settled), P, "urban migrants granted local urban hukou in the year (市民化)"),
        "reclassified": (Y + dd + rg, s(proj.reclassified), P, "rural residents reclassified urban in place in the year"),
        "capped_cells": (Y + dd + rg + ("cap",), s(proj.capped), "1", "(sex, age) cells whose rates were bounded in the year: a state's out-moves summing above 1 (scaled to 1), a hukou conversion or reclassification rate above 1 (set to 1)"),
        "urban_land": (Y + dd + rg, s(proj.land), "km2", "urban construction land at the year end"),
        "land_per_urban_resident": (Y + dd + rg, s(proj.land * 1e6 / urban), "m2 person-1", "urban land per urban resident"),
        "residents": (Y + dd + rg, s(resident), P, "resident population (all states but away)"),
        "urban_population": (Y + dd + rg, s(urban), P, "urban residents (urban_local + urban_migrant)"),
        "city_proper_population": (Y + dd + rg, s(urban * cp_share), P, "city-proper (城区) residents: urban residents x census 2020 city-proper share (counties: geography.city_proper_share)"),
        "land_required": (Y + dd + rg, s(urban * standard / 1e6), "km2", "urban land needed for the urban residents at the per-capita land standard"),
        "urban_share": (Y + dd + rg, s(urban / resident), "1", "resident urbanization rate (urban residents / residents)"),
        "hukou_urban_share": (Y + dd + rg, s(tot[..., URBAN_LOCAL] / all_states), "1", "hukou urbanization rate (urban_local / all four states; see docs/usage.md, Indicators)"),
        "total_residents": (Y + dd, s(resident.sum(axis=-1)), P, "resident population, all regions"),
        "total_urban_share": (Y + dd, s(urban.sum(axis=-1) / resident.sum(axis=-1)), "1", "resident urbanization rate, all regions"),
        "total_hukou_urban_share": (Y + dd, s(tot[..., URBAN_LOCAL].sum(axis=-1) / all_states.sum(axis=-1)), "1", "hukou urbanization rate, all regions"),
        "total_settled": (Y + dd, s(proj.settled.sum(axis=-1)), P, "urban migrants granted local urban hukou, all regions"),
    }
    # the land-capacity brake on urban inflows during each year, from the start-of-year urban
    # residents and land (1: no damping; the jump-off year has none)
    brake = np.full_like(proj.land, np.nan)
    width = model.cfg.policy.land.brake_width
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = urban[:-1] * standard / (proj.land[:-1] * 1e6)
    brake[1:] = np.asarray(get_model("capacity_brake", "logistic")(np.ascontiguousarray(ratio), width))
    v["capacity_brake"] = (Y + dd + rg, s(brake), "1", "land-capacity brake on urban inflows in the year (1: none; 1/2 at capacity; policy.land.brake_width)")
    if proj.od is not None:
        v["migration_od"] = (Y + dd + rg + ("region_to",), s(proj.od), P, "moves from region to region_to in the year")
    data_vars = {k: xr.Variable(dims, np.ascontiguousarray(arr) if contiguous else arr, {"units": u, "long_name": ln}) for k, (dims, arr, u, ln) in v.items()}
    coords = {
        "year": ("year", years, {"long_name": "year (values at 31 Dec; flows during the year)"}),
        "region": ("region", inp.region.values),
        "name_zh": ("region", inp.name_zh.values),
        "prefecture": ("region", inp.prefecture.values),
        "state": ("state", list(STATES)),
        "sex": ("sex", list(SEXES)),
        "age": ("age", AGES, {"units": "years", "long_name": "age in completed years (100 = 100+)"}),
        "flow": ("flow", list(FLOWS)),
        "cap": ("cap", list(CAP_GROUPS), {"long_name": "the rates a step bounds (sim.axes.CAP_GROUPS)"}),
    }
    for c in ("province_code", "province_zh"):  # geographies covering all of China
        if c in inp.coords:
            coords[c] = ("region", inp[c].values)
    if proj.od is not None:
        coords["region_to"] = ("region_to", inp.region.values, {"long_name": "destination region"})
    if with_draws:
        coords["draw"] = ("draw", start + np.arange(D), {"long_name": "ensemble member (its index in the whole ensemble)"})
    ds = xr.Dataset(data_vars, coords=coords)
    ds = ds.assign_coords(scenario=scenario)  # scalar coordinate: runs combine along it

    # the accounting identity, checked and recorded
    # on the arrays (year, draw, region, ...): no value is missing, so plain sums
    change = np.diff(tot.sum(axis=-1), axis=0)
    comp = (proj.births.sum(axis=(3, 4)) - proj.deaths.sum(axis=(3, 4, 5)) + net.sum(axis=(3, 4)))[1:]
    resid = float(np.abs(change - comp).max()) if len(years) > 1 else 0.0
    ds.attrs.update(
        {
            **provenance(model, scenario, f"Urbanization scenario projection: {model.cfg.geography.name}, {years[0]}-{years[-1]}",
                          "multistate cohort-component projection from the 2020 census (see docs/method.md)"),
            "accounting_identity": "population[t] - population[t-1] == births[t] - deaths[t] + net_migration[t], summed over state, sex and age, for every region and year t > first year",
            "accounting_max_abs_residual_persons": resid,
            "capped_cells_total": float(proj.capped.sum()),
        }
    )
    return ds


QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def summary_dataset(model: Model, summ, *, scenario: str = "default", keep_draws: bool = False, reported: dict | None = None, conditioned=None) -> xr.Dataset:
    """An ensemble's reduced projection (:class:`sim.engine.runner.Summary`) as quantiles over draws
    (:data:`QUANTILES`) per year and region, and of the totals of all regions; with
    ``keep_draws`` also every draw's urban share per year and region; ``reported``: the totals
    as the bulletin would report them (:func:`sim.outputs.assimilation.reported`), as quantiles
    too; ``conditioned``: the :class:`sim.outputs.assimilation.Conditioned` the draws of
    ``summ`` were resampled by (its effective sample size and the figures used, as attributes)."""
    inp = model.inputs
    P = "persons"
    q = np.array(QUANTILES)

    def qd(a):  # (Y, D, ...) -> (quantile, Y, ...)
        return np.quantile(a, q, axis=1)

    res, urb = summ.residents, summ.urban
    tot_res, tot_urb = res.sum(axis=-1), urb.sum(axis=-1)
    v = {
        "residents": (("quantile", "year", "region"), qd(res), P, "resident population (all states but away)"),
        "urban_population": (("quantile", "year", "region"), qd(urb), P, "urban residents"),
        "urban_share": (("quantile", "year", "region"), qd(urb / res), "1", "resident urbanization rate"),
        "hukou_urban_share": (("quantile", "year", "region"), qd(summ.urban_local / summ.all_states), "1", "hukou urbanization rate (urban_local / all four states)"),
        "births": (("quantile", "year", "region"), qd(summ.births), P, "live births in the year to mothers of the resident states (0 in the jump-off year)"),
        "deaths": (("quantile", "year", "region"), qd(summ.deaths), P, "deaths in the year in the resident states (0 in the jump-off year)"),
        "urban_land": (("quantile", "year", "region"), qd(summ.land), "km2", "urban construction land at the year end"),
        "total_residents": (("quantile", "year"), qd(tot_res), P, "resident population, all regions"),
        "total_urban_share": (("quantile", "year"), qd(tot_urb / tot_res), "1", "resident urbanization rate, all regions"),
        "total_births": (("quantile", "year"), qd(summ.births.sum(axis=-1)), P, "live births, all regions"),
        "total_deaths": (("quantile", "year"), qd(summ.deaths.sum(axis=-1)), P, "deaths, all regions"),
        "capped_cells": (("year", "region"), summ.capped.sum(axis=1), "1", "(sex, age) cells whose rates the year's step bounded (sim.axes.CAP_GROUPS), summed over the draws"),
    }
    for name, what, unit in (("urban_share", "resident urbanization rate", "1"), ("population", "residents", P), ("births", "live births", P), ("deaths", "deaths", P)):
        if reported is not None:
            v[f"reported_total_{name}"] = (("quantile", "year"), qd(reported[name]), unit,
                                           f"{what}, all regions, as the statistical bulletin will report it (the quantity plus the observation error of sim/data/{files.OBSERVATION_ERRORS})")
    start = model.cfg.draws.start
    D = res.shape[1]
    # every draw's totals by region: what the target table's probabilities need (a region's or a
    # group's share of draws meeting a target; quantiles of sums are not sums of quantiles)
    for name, a in (("residents", res), ("urban_population", urb), ("urban_local_population", summ.urban_local), ("all_states_population", summ.all_states)):
        v[f"{name}_draws"] = (("year", "draw", "region"), a, P, f"every draw's {name.replace('_', ' ')} (for the target table: sim.outputs.targets.draws_view)")
    if keep_draws:
        v["urban_share_draws"] = (("draw", "year", "region"), np.moveaxis(urb / res, 1, 0), "1", "every draw's resident urbanization rate")
        v["total_urban_share_draws"] = (("draw", "year"), (tot_urb / tot_res).T, "1", "every draw's urbanization rate, all regions")
    data_vars = {k: xr.Variable(d, np.ascontiguousarray(a), {"units": u, "long_name": ln}) for k, (d, a, u, ln) in v.items()}
    coords = {
        "quantile": ("quantile", q, {"long_name": "quantile over the ensemble's draws"}),
        "year": ("year", summ.years, {"long_name": "year (values at 31 Dec; births and deaths during the year)"}),
        "region": ("region", inp.region.values),
        "name_zh": ("region", inp.name_zh.values),
        "prefecture": ("region", inp.prefecture.values),
        "city_proper_share": ("region", city_proper_share(model), {"long_name": "city-proper residents per urban resident (census 2020; counties: geography.city_proper_share)", "units": "1"}),
        "draw": ("draw", start + np.arange(D), {"long_name": "ensemble member (its index in the whole ensemble)"}),
    }
    ds = xr.Dataset(data_vars, coords=coords).assign_coords(scenario=scenario)
    ds.attrs.update(
        {
            **provenance(model, scenario, f"Urbanization scenario projection, ensemble quantiles: {model.cfg.geography.name}, {summ.years[0]}-{summ.years[-1]}",
                          f"multistate cohort-component projection, {D} draws of {model.cfg.params.name} ({model.cfg.params.ensemble})"),
            "draws": D,
            "first_draw": start,
            "land_m2_per_person": float(model.cfg.policy.land.capacity_m2_per_person),
            "capped_cells_total": float(summ.capped.sum()),
        }
    )
    if conditioned is not None:
        ds.attrs.update({
            "conditioned_on": json.dumps([{k: r[k] for k in ("year", "region", "variable", "value")} for r in conditioned.used]),
            "conditioned_effective_sample_size": conditioned.ess,
            "conditioned_distinct_draws": int(np.unique(conditioned.index).size),
        })
    return ds
