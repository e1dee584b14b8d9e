"""The target report: each plan target against the projection, and regions' urban shares."""

from __future__ import annotations

import csv
import io

import numpy as np
import xarray as xr

from sim.schema import TargetsConfig


def _series(ds: xr.Dataset, region: str, variable: str) -> xr.DataArray:
    if region == "Guangxi":
        return ds[{"urban_share": "total_urban_share", "hukou_urban_share": "total_hukou_urban_share", "population": "total_residents"}[variable]]
    return ds[{"population": "residents"}.get(variable, variable)].sel(region=region)


def _met(value, op, required, tol):
    if op == ">=":
        return value >= required
    if op == "<=":
        return value <= required
    return abs(value - required) <= tol


def target_rows(ds: xr.Dataset, targets: TargetsConfig) -> list[dict]:
    """One row per target: required, projected, gap, first year met (deterministic runs;
    for an ensemble the projected value is the median and ``probability`` the share of draws
    that meet the target)."""
    rows = []
    years = ds.year.values
    for t in targets.targets:
        ser = _series(ds, t.region, t.variable)
        row = dict(target=t.name, region=t.region, variable=t.variable, year=t.year, op=t.op, required=t.value)
        if t.year not in years:
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


def format_report(ds: xr.Dataset, targets: TargetsConfig) -> str:
    lines = [f"Target report: {ds.attrs.get('title', '')} (scenario {ds.attrs.get('scenario', '')})", ""]
    lines.append(f"{'target':<44}{'year':>6}{'required':>10}{'projected':>11}{'gap':>9}  met   first year met")
    for r in target_rows(ds, targets):
        pct = r["variable"] != "population"
        f = (lambda v: f"{100 * v:.2f}%") if pct else (lambda v: f"{v:,.0f}")
        req = f"{r['op'] if r['op'] != '>=' else '≥'}{f(r['required'])}"
        proj = f(r["projected"]) if np.isfinite(r["projected"]) else "-"
        gap = (f"{100 * r['gap']:+.2f}pt" if pct else f"{r['gap']:+,.0f}") if np.isfinite(r["gap"]) else "-"
        met = {True: "yes", False: "no"}.get(r["met"], r["met"])
        if "probability" in r:
            met = f"p={r['probability']:.2f}"
        lines.append(f"{r['target'][:43]:<44}{r['year']:>6}{req:>10}{proj:>11}{gap:>9}  {met:<5} {r['first_year_met']}")
    if targets.region_years:
        rows = region_rows(ds, list(targets.region_years))
        cols = [k for k in rows[0] if k != "region"]
        lines += ["", "Urban share by region", f"{'region':<16}" + "".join(f"{c[-4:]:>9}" for c in cols)]
        for r in rows:
            lines.append(f"{r['region']:<16}" + "".join(f"{100 * r[c]:>8.1f}%" for c in cols))
    return "\n".join(lines)
