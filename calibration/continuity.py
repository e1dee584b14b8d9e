"""The jump-off check: does the projection from the 2020 census continue the fitted history?

    python -m calibration.continuity [Hydra overrides of the projection, e.g. params=default]

Two runs of the same parameters: the history continued one year (2010 -> 2021, the history's
levers: :func:`sim.engine.prepare.history_policy`) and the projection from the 2020 jump-off
(2020 -> 2021, as ``python -m sim`` would run it). For Guangxi and every region it compares the
2021 step of the two: the change of the urban share (percentage points), births, deaths and net
migration. Net migration is compared relative to the history's own net migration (as the
forecast issue asks) and, because a net flow can be near zero, also relative to the history's
gross moves across the region's boundary (in + out). Births and deaths are also split into two
exact factors (:func:`_standardised`): the jump-off's 2020 stock against the history's, at the
history's own 2021 rates, and the rest (the year's rates and moves). Writes ``continuity.csv`` into ``--out``
(default: print only).
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import xarray as xr

from sim.axes import FLOW_TABLE
from sim.config.compose import compose_config
from sim.engine.prepare import history_policy, prepare
from sim.engine.runner import project
from sim.outputs.dataset import to_dataset

FIRST_YEAR = 2021
# the limits the forecast issue sets for the first projected year
LIMITS = {"urban_share_change_pp": 0.25, "births": 0.03, "deaths": 0.03, "net_migration": 0.25}
_BOUNDARY_FLOWS = [f.name for f in FLOW_TABLE if f.net]


def _runs(overrides=()) -> tuple[xr.Dataset, xr.Dataset, np.ndarray]:
    """The history's and the jump-off's datasets to 2021, and the history's fertility of the
    2021 step by region, state and age of mother."""
    base = ["figures.enabled=false", f"end_year={FIRST_YEAR}", *overrides]
    cfg_hist = compose_config([*base, "start_year=2010"])
    cfg_hist = dataclasses.replace(cfg_hist, policy=history_policy())
    cfg_proj = compose_config([*base, "start_year=2020"])
    m_hist, m_proj = prepare(cfg_hist), prepare(cfg_proj)
    hist, proj = (to_dataset(m, project(m)) for m in (m_hist, m_proj))
    return hist, proj, m_hist.step_inputs(FIRST_YEAR).asfr[0]


def _step(ds: xr.Dataset) -> dict[str, xr.DataArray]:
    """Per region (and ``Guangxi``, the sum) the quantities of the 2021 step."""
    y0, y1 = FIRST_YEAR - 1, FIRST_YEAR
    res, urb = ds.residents, ds.urban_population
    share = urb / res
    tot_share = urb.sum("region") / res.sum("region")
    out = {
        "urban_share_change_pp": (share.sel(year=y1) - share.sel(year=y0)) * 100,
        "births": ds.births.sel(year=y1).sum(("state", "sex")),
        "deaths": ds.deaths.sel(year=y1).sum(("state", "sex", "age")),
        "net_migration": ds.net_migration.sel(year=y1).sum(("sex", "age")),
        "boundary_moves": ds.migration.sel(year=y1, flow=_BOUNDARY_FLOWS).sum(("flow", "sex", "age")),
    }
    gx = {k: v.sum("region") for k, v in out.items()}
    gx["urban_share_change_pp"] = (tot_share.sel(year=y1) - tot_share.sel(year=y0)) * 100
    # moves between regions cancel in Guangxi's sum: its boundary is the province's
    gx["boundary_moves"] = ds.migration.sel(year=y1, flow=["external_in", "external_out"]).sum()
    keep = ("region", "year", "flow", "scenario")

    def bare(da):
        return da.drop_vars([c for c in da.coords if c not in keep]).reset_coords(drop=True)

    return {k: xr.concat([bare(gx[k]).expand_dims(region=["Guangxi"]), bare(out[k])], "region") for k in out}


def _standardised(hist: xr.Dataset, proj: xr.Dataset, asfr: np.ndarray) -> dict[str, np.ndarray]:
    """Per region (``Guangxi`` first, the regions' sum) the factor by which the jump-off's 2020
    stock, at the history's own 2021 rates, changes the history's 2021 births and deaths: births
    at the year's fertility by state and age of mother (``asfr``, the history's) over the women
    at the start of the year, deaths at the history's deaths per person of each state, sex and
    age (direct standardisation). ``jump-off / history`` is then exactly ``stock x rates``: the
    part of the difference that is the two 2020 stocks' (the census against the history's 2020
    state), and the rest (the year's rates and moves)."""
    y0, y1 = FIRST_YEAR - 1, FIRST_YEAR
    order = ("region", "state", "sex", "age")

    def arr(da):
        return da.squeeze(drop=True).transpose(*[d for d in order if d in da.dims]).values

    w_h, w_j = (arr(ds.population.sel(year=y0, sex="female")) for ds in (hist, proj))
    p_h, p_j = (arr(ds.population.sel(year=y0)) for ds in (hist, proj))
    d_h = arr(hist.deaths.sel(year=y1))
    with np.errstate(divide="ignore", invalid="ignore"):
        m_h = np.where(p_h > 0, d_h / p_h, 0.0)
    births = np.stack([(asfr * w).sum(axis=(1, 2)) for w in (w_h, w_j)])
    deaths = np.stack([(m_h * p).sum(axis=(1, 2, 3)) for p in (p_h, p_j)])
    return {k: np.concatenate([v[1:].sum(axis=1) / v[:1].sum(axis=1), v[1] / v[0]]) for k, v in (("births", births), ("deaths", deaths))}


def continuity(overrides=()) -> list[dict]:
    """One row per region (Guangxi first): the history's and the jump-off's 2021 values and their
    differences, each against :data:`LIMITS`."""
    hist, proj, asfr = _runs(overrides)
    a, b = _step(hist), _step(proj)
    stock = _standardised(hist, proj, asfr)
    rows = []
    for i, region in enumerate(a["births"].region.values):
        row = {"region": str(region)}
        for k in ("urban_share_change_pp", "births", "deaths", "net_migration"):
            x, y = float(a[k].values[i]), float(b[k].values[i])
            row[f"{k}_history"], row[f"{k}_jump_off"] = x, y
            if k == "urban_share_change_pp":
                row[f"{k}_difference"] = y - x
            else:
                row[f"{k}_relative"] = (y - x) / abs(x) if x else float("inf")
        for k in ("births", "deaths"):  # the difference split: (1 + stock) x (1 + rates) = 1 + relative
            row[f"{k}_stock_effect"] = stock[k][i] - 1.0
            row[f"{k}_rate_effect"] = (1.0 + row[f"{k}_relative"]) / stock[k][i] - 1.0
        row["net_migration_relative_to_boundary_moves"] = (row["net_migration_jump_off"] - row["net_migration_history"]) / float(a["boundary_moves"].values[i])
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    head = (f"{'region':14s} {'urban pp (hist / jump / diff)':>32s} {'births rel':>11s} {'(stock, rates)':>15s} {'deaths rel':>11s} {'(stock, rates)':>15s}"
            f" {'net mig rel':>12s} {'net/boundary':>13s}")
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['region']:14s} {r['urban_share_change_pp_history']:9.3f} {r['urban_share_change_pp_jump_off']:9.3f} {r['urban_share_change_pp_difference']:+10.3f}"
            f" {r['births_relative']:+11.3f} {r['births_stock_effect']:+7.3f} {r['births_rate_effect']:+7.3f}"
            f" {r['deaths_relative']:+11.3f} {r['deaths_stock_effect']:+7.3f} {r['deaths_rate_effect']:+7.3f}"
            f" {r['net_migration_relative']:+12.3f} {r['net_migration_relative_to_boundary_moves']:+13.3f}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    from sim import files
    from sim.config.schema import ConfigError
    from sim.files import write_text
    from sim.outputs.targets import to_csv

    argv = list(sys.argv[1:] if argv is None else argv)
    out = None
    rest = []
    for a in argv:
        if a.startswith("--out="):
            out = a.split("=", 1)[1]
        else:
            rest.append(a)
    try:
        rows = continuity(rest)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    print(format_table(rows))
    if out:
        from pathlib import Path

        path = write_text(to_csv(rows), Path(out) / files.CONTINUITY)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

