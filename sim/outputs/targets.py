"""The target report: each plan target against the projection (met or not, first year met, land
needed), regions' urban shares, and the paths of the target variables (:func:`series`)."""

from __future__ import annotations

import csv
import io

import numpy as np
import xarray as xr

from sim.config.schema import TargetsConfig
from sim.config.values import region_mask

GUANGXI_PROVINCE_CODE = "45"


def region_selection(ds: xr.Dataset, name: str, groups: dict) -> np.ndarray:
    """Boolean mask over ``ds.region`` for Guangxi (all regions, or those of province 45 in the
    geographies covering all of China), a group, a prefecture or a region."""
    regions = [str(r) for r in ds.region.values]
    prefectures = [str(p) for p in ds.prefecture.values]
    if name == "Guangxi":
        if "province_code" in ds.coords:
            return ds.province_code.values.astype(str) == GUANGXI_PROVINCE_CODE
        return np.ones(len(regions), dtype=bool)
    return region_mask(groups.get(name, [name]), regions, prefectures)


def _met(value, op, required, tol):
    if op == ">=":
        return value >= required
    if op == "<=":
        return value <= required
    return abs(value - required) <= tol


def series(ds: xr.Dataset, region: str, variable: str, groups: dict | None = None) -> xr.DataArray:
    """The path of ``variable`` (see :data:`sim.config.schema.TARGET_VARIABLES`) for a region or an
    aggregate of regions, over ``year`` (and ``draw`` for an ensemble)."""
    sel = ds.isel(region=np.flatnonzero(region_selection(ds, region, groups or {})))
    residents = sel.residents.sum("region")
    urban_share = sel.urban_population.sum("region") / residents

    def hukou():
        if "population" not in sel:  # reduced outputs (the batched launcher's outputs=summary)
            return sel.urban_local_population.sum("region") / sel.all_states_population.sum("region")
        states = sel.population.sum(("sex", "age", "region"))
        return states.sel(state="urban_local") / states.sum("state")

    out = {
        "population": lambda: residents,
        "urban_share": lambda: urban_share,
        "hukou_urban_share": hukou,
        "city_proper_population": lambda: sel.city_proper_population.sum("region", min_count=1),
        "urban_share_change": lambda: urban_share - urban_share.isel(year=0),
        "hukou_gap": lambda: urban_share - hukou(),
    }
    return out[variable]()


def land_needed(ds: xr.Dataset, t, groups: dict, projected: float) -> float:
    """Urban land (km2) the target's regions need in the target year at the per-capita land
    standard: for the urban residents the target requires, or the projected ones if more.
    Hukou targets move no one, so they need the land of the projected urban residents."""
    sel = ds.isel(region=np.flatnonzero(region_selection(ds, t.region, groups))).sel(year=t.year)
    med = (lambda a: a.median("draw")) if "draw" in ds.dims else (lambda a: a)
    urban = float(med(sel.urban_population.sum("region")))
    residents = float(med(sel.residents.sum("region")))
    standard = float(med(sel.land_required.sum("region"))) / urban  # km2 per urban resident
    need = urban
    if t.variable == "urban_share":
        need = t.value * residents
    elif t.variable == "urban_share_change":
        first = ds.isel(region=np.flatnonzero(region_selection(ds, t.region, groups))).isel(year=0)
        share0 = float(med(first.urban_population.sum("region") / first.residents.sum("region")))
        need = (share0 + t.value) * residents
    elif t.variable == "city_proper_population" and projected > 0:
        need = t.value * urban / projected  # at the region's city-proper share of urban
    elif t.variable == "population":
        need = urban * t.value / residents
    return max(need, urban) * standard


def target_rows(ds: xr.Dataset, targets: TargetsConfig) -> list[dict]:
    """One row per target: required, projected, gap, first year met (deterministic runs;
    for an ensemble the projected value is the median and ``probability`` the share of draws
    that meet the target)."""
    rows = []
    years = ds.year.values
    geography = ds.attrs.get("geography", "")
    for t in targets.targets:
        row = dict(target=t.name, region=t.region, variable=t.variable, year=t.year, op=t.op, required=t.value)
        if t.geography is not None and t.geography != geography:
            continue  # a target of another geography (e.g. county towns in a prefecture run)
        ser = series(ds, t.region, t.variable, dict(targets.groups))
        if t.year not in years or bool(np.isnan(ser.sel(year=t.year)).all()):
            row.update(projected=np.nan, gap=np.nan, met="outside projection", first_year_met="")
            rows.append(row)
            continue
        at = ser.sel(year=t.year)
        if "draw" in ser.dims:
            prob = float(np.mean([_met(v, t.op, t.value, t.tolerance) for v in at.values]))
            val = float(at.median())
            row["probability"] = prob
        else:
            val = float(at)
        path = ser.median("draw") if "draw" in ser.dims else ser
        met_years = [int(y) for y, v in zip(years, path.values) if _met(v, t.op, t.value, t.tolerance)]
        row.update(projected=val, gap=val - t.value, met=bool(_met(val, t.op, t.value, t.tolerance)), first_year_met=met_years[0] if met_years else "never")
        row["land_needed_km2"] = land_needed(ds, t, dict(targets.groups), val)
        rows.append(row)
    return rows


def region_rows(ds: xr.Dataset, years: list[int]) -> list[dict]:
    share = ds.urban_share.median("draw") if "draw" in ds.urban_share.dims else ds.urban_share
    first = int(ds.year.values[0])
    out = []
    for r in ds.region.values:
        row = {"region": str(r), f"urban_share_{first}": float(share.sel(region=r, year=first))}
        for y in years:
            if y in ds.year.values:
                row[f"urban_share_{y}"] = float(share.sel(region=r, year=y))
        out.append(row)
    return out


def to_csv(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


BRAKE_REPORTED = 0.98  # the report names the regions whose urban inflows the land brake cuts by more than 2 %


def brake_lines(ds: xr.Dataset) -> list[str]:
    """Where the land-capacity brake binds: each region whose brake falls below
    :data:`BRAKE_REPORTED`, with the first such year and its lowest value (median over draws)."""
    if "capacity_brake" not in ds:
        return []
    b = ds.capacity_brake
    if "draw" in b.dims:
        b = b.median("draw")
    out = []
    for region in b.region.values:
        x = b.sel(region=region)
        low = x.where(x < BRAKE_REPORTED, drop=True)
        if low.size:
            out.append(f"  {region}: from {int(low.year.values[0])}, lowest {float(x.min()):.2f} in {int(x.idxmin('year'))}")
    if not out:
        return ["", f"Land capacity brake: does not bind (urban inflows cut by less than {100 * (1 - BRAKE_REPORTED):.0f} % in every region and year)."]
    return ["", f"Land capacity brake binds (urban inflows cut by more than {100 * (1 - BRAKE_REPORTED):.0f} %) in {len(out)} region(s):"] + out


CAP_REGIONS_LISTED = 8  # the report names at most this many regions per group of bounded rates


def cap_lines(ds: xr.Dataset) -> list[str]:
    """Where the step bounded a rate at 1 (``capped_cells``): per group of rates and region, the
    years and the number of (sex, age) cells (summed over draws)."""
    if "capped_cells" not in ds or float(ds.capped_cells.sum()) == 0:
        return ["", "Rates bounded: none (every rate applied as set)."]
    c = ds.capped_cells
    if "draw" in c.dims:
        c = c.sum("draw")
    groups = [str(g) for g in c.cap.values] if "cap" in c.dims else ["all rates"]
    out = []
    for g in groups:
        cg = c.sel(cap=g) if "cap" in c.dims else c
        by_region = cg.sum("year")
        hit = [str(r) for r, v in zip(cg.region.values, by_region.values) if v > 0]
        if not hit:
            continue
        yrs = cg.year.values[cg.sum("region").values > 0]
        names = ", ".join(hit[:CAP_REGIONS_LISTED]) + (f" and {len(hit) - CAP_REGIONS_LISTED} more" if len(hit) > CAP_REGIONS_LISTED else "")
        out.append(f"  {g}: {float(cg.sum()):,.0f} cells in {len(hit)} region(s), years {int(yrs[0])}-{int(yrs[-1])}: {names}")
    return ["", "Rates bounded at 1 (a state's out-moves scaled to sum 1, or a conversion or reclassification rate set to 1; capped_cells):"] + out


def _met_word(r: dict) -> str:
    """yes / no, or for a target band (``~``) which side of it the projection falls."""
    if r["met"] is True or r["op"] != "~" or r["met"] is not False:
        return {True: "yes", False: "no"}.get(r["met"], r["met"])
    return "above the band" if r["gap"] > 0 else "below the band"


def format_report(ds: xr.Dataset, targets: TargetsConfig) -> str:
    lines = [f"Target report: {ds.attrs.get('title', '')} (scenario {ds.attrs.get('scenario', '')})", ""]
    table = [("target", "year", "required", "projected", "gap", "met", "first year met")]
    tolerance = {t.name: t.tolerance for t in targets.targets}
    for r in target_rows(ds, targets):
        pct = r["variable"] not in ("population", "city_proper_population")
        f = (lambda v: f"{100 * v:.2f}%") if pct else (lambda v: f"{v:,.0f}")
        req = {">=": "≥", "<=": "≤", "~": "~"}[r["op"]] + f(r["required"])
        if r["op"] == "~":
            tol = tolerance[r["target"]]
            req += f" ±{100 * tol:.2f}pt" if pct else f" ±{tol:,.0f}"
        proj = f(r["projected"]) if np.isfinite(r["projected"]) else "-"
        gap = (f"{100 * r['gap']:+.2f}pt" if pct else f"{r['gap']:+,.0f}") if np.isfinite(r["gap"]) else "-"
        met = _met_word(r)
        if "probability" in r:
            met = f"p={r['probability']:.2f}"
        table.append((r["target"], str(r["year"]), req, proj, gap, met, str(r["first_year_met"])))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:5], widths[1:5])] + [row[5].ljust(widths[5]), row[6]]
        lines.append("  ".join(cells))
    lines += brake_lines(ds)
    lines += cap_lines(ds)
    if targets.region_years:
        rows = region_rows(ds, list(targets.region_years))
        cols = [k for k in rows[0] if k != "region"]
        lines += ["", "Urban share by region", f"{'region':<16}" + "".join(f"{c[-4:]:>9}" for c in cols)]
        for r in rows:
            lines.append(f"{r['region']:<16}" + "".join(f"{100 * r[c]:>8.1f}%" for c in cols))
    return "\n".join(lines)
