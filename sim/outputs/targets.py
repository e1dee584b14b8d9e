"""The target report: each plan target against the projection (met or not, first year met, land
needed), regions' urban shares, and the paths of the target variables (:func:`series`)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import xarray as xr

from sim.config.schema import SHARE_TARGET_VARIABLES, TargetsConfig
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


def left_out(ds: xr.Dataset, name: str, groups: dict) -> list[str]:
    """The regions of the place ``name`` (as :func:`region_selection` reads it) that the run
    left out (``regions_not_run``, a run of a subset of its geography): a target on it is not
    computable, never scored on part of it."""
    out = json.loads(ds.attrs.get("regions_not_run", "[]") or "[]")
    if not out:
        return []
    regions, prefectures, codes = (list(x) for x in zip(*out))
    if name == "Guangxi":
        return [r for r, c in zip(regions, codes) if c in ("", GUANGXI_PROVINCE_CODE)]
    return [r for r, m in zip(regions, region_mask(groups.get(name, [name]), regions, prefectures)) if m]


def variable_of(tot: dict, variable: str, first):
    """Target ``variable`` (:data:`sim.config.schema.TARGET_VARIABLES`) from a region's totals
    ``tot`` (``residents``, ``urban_population``, ``urban_local_population``,
    ``all_states_population``, ``city_proper_population``: DataArrays, or arrays with any layout);
    ``first(a)``: ``a`` in the first year. Only the totals the variable needs are read, so a
    caller may give callables for the others (their value is taken by calling them)."""

    def get(k):
        v = tot[k]
        return v() if callable(v) else v

    def share():
        return get("urban_population") / get("residents")

    def hukou():
        return get("urban_local_population") / get("all_states_population")

    if variable == "population":
        return get("residents")
    if variable == "urban_share":
        return share()
    if variable == "hukou_urban_share":
        return hukou()
    if variable == "city_proper_population":
        return get("city_proper_population")
    if variable == "urban_share_change":
        u = share()
        return u - first(u)
    if variable == "hukou_urban_share_change":
        h = hukou()
        return h - first(h)
    if variable == "hukou_gap":
        return share() - hukou()
    raise KeyError(f"unknown target variable {variable!r}")


def series(ds: xr.Dataset, region: str, variable: str, groups: dict | None = None) -> xr.DataArray:
    """The path of ``variable`` (see :data:`sim.config.schema.TARGET_VARIABLES`) for a region or an
    aggregate of regions, over ``year`` (and ``draw`` for an ensemble)."""
    sel = ds.isel(region=np.flatnonzero(region_selection(ds, region, groups or {})))

    def states():
        return sel.population.sum(("sex", "age", "region"))

    full = "population" in sel  # full outputs: the hukou states from the population; reduced: their totals
    tot = {
        "residents": lambda: sel.residents.sum("region"),
        "urban_population": lambda: sel.urban_population.sum("region"),
        "urban_local_population": (lambda: states().sel(state="urban_local")) if full else (lambda: sel.urban_local_population.sum("region")),
        "all_states_population": (lambda: states().sum("state")) if full else (lambda: sel.all_states_population.sum("region")),
        "city_proper_population": lambda: sel.city_proper_population.sum("region", min_count=1),
    }
    return variable_of(tot, variable, lambda a: a.isel(year=0))


TOTALS = ("residents", "urban_population", "urban_local_population", "all_states_population", "city_proper_population", "land_required")


class _Totals:
    """Each target region's totals as arrays ``(dim, year[, draw])``, summed over its regions once
    per region and variable, when first asked for (many targets share a region)."""

    def __init__(self, ds: xr.Dataset, dim: str, groups: dict):
        self.ds, self.groups = ds, groups
        self.order = (dim, "year", "draw") if "draw" in ds.dims else (dim, "year")
        self.full = "population" in ds  # full outputs: the hukou states from the population; reduced: their totals
        self._masks: dict = {}
        self._cache: dict = {}
        self._by_region: np.ndarray | None = None  # the population by (dim, year[, draw], region, state)

    def _mask(self, region: str) -> np.ndarray:
        if region not in self._masks:
            self._masks[region] = np.flatnonzero(region_selection(self.ds, region, self.groups))
        return self._masks[region]

    def get(self, region: str, name: str) -> np.ndarray:
        key = (region, name)
        if key not in self._cache:
            idx = self._mask(region)
            if self.full and name in ("urban_local_population", "all_states_population"):
                states = self._states(region)
                k = list(self.ds.state.values).index("urban_local")
                out = states[..., k] if name == "urban_local_population" else states.sum(axis=-1)
            else:
                a = np.asarray(self.ds[name].transpose(*self.order, "region").values, dtype=float)[..., idx]
                out = np.nansum(a, axis=-1)  # as xarray's sum: a region without the value (a collected job's subset) adds nothing
                if name == "city_proper_population":  # no city-proper figure in any of the regions: none (min_count=1)
                    out = np.where(np.isnan(a).all(axis=-1), np.nan, out)
            self._cache[key] = out
        return self._cache[key]

    def _states(self, region: str) -> np.ndarray:
        """The region's population by state ``(dim, year[, draw], state)``: summed over sex and
        age in plain sums (a region is missing from a collected job as a whole, so its sums are
        NaN), then over the regions skipping those NaN, as xarray's sum would."""
        key = (region, "_states")
        if key not in self._cache:
            if self._by_region is None:  # every region's sums, once: the population is the largest array a sweep has
                pop = self.ds.population.transpose(*self.order, "region", "state", "sex", "age")
                self._by_region = np.asarray(pop.values, dtype=float).sum(axis=(-2, -1))
            self._cache[key] = np.nansum(self._by_region[..., self._mask(region), :], axis=-2)
        return self._cache[key]

    def variable(self, region: str, variable: str) -> np.ndarray:
        return variable_of({n: (lambda n=n: self.get(region, n)) for n in TOTALS}, variable, lambda a: a[:, :1])


def _land_needed(tot: _Totals, t, yi: int, projected: np.ndarray, med) -> np.ndarray:
    """Urban land (km2) the target's regions need in the target year at the per-capita land
    standard: for the urban residents the target requires, or the projected ones if more.
    Hukou targets move no one, so they need the land of the projected urban residents. One value
    per index of the leading axis (``med``: the median over draws, if any)."""
    urban = med(tot.get(t.region, "urban_population")[:, yi])
    residents = med(tot.get(t.region, "residents")[:, yi])
    standard = med(tot.get(t.region, "land_required")[:, yi]) / urban  # km2 per urban resident
    need = urban
    if t.variable == "urban_share":
        need = t.value * residents
    elif t.variable == "urban_share_change":
        share0 = med(tot.get(t.region, "urban_population")[:, 0] / tot.get(t.region, "residents")[:, 0])
        need = (share0 + t.value) * residents
    elif t.variable == "city_proper_population":
        need = np.where(projected > 0, t.value * urban / projected, urban)  # at the region's city-proper share of urban
    elif t.variable == "population":
        need = urban * t.value / residents
    return np.maximum(need, urban) * standard


def met_array(v, op: str, required: float, tol: float):
    """Whether the value(s) ``v`` meet ``op required`` (``~``: within ``tol``)."""
    if op == ">=":
        return v >= required
    if op == "<=":
        return v <= required
    return np.abs(v - required) <= tol


def target_tables(ds: xr.Dataset, targets: TargetsConfig, dim: str) -> list[list[dict]]:
    """:func:`target_rows` of every index of ``ds`` along ``dim`` (e.g. the scenarios of a
    collected sweep), computed together: one list of rows per index."""
    n = ds.sizes[dim]
    tables: list[list[dict]] = [[] for _ in range(n)]
    years = ds.year.values
    geography = ds.attrs.get("geography", "")
    draws = "draw" in ds.dims
    tot = _Totals(ds, dim, dict(targets.groups))

    def med(a: np.ndarray) -> np.ndarray:  # (dim,) values, the median over draws
        return np.median(a, axis=-1) if draws else a

    for t in targets.targets:
        if t.geography is not None and t.geography != geography:
            continue  # a target of another geography (e.g. county towns in a prefecture run)
        head = dict(target=t.name, region=t.region, variable=t.variable, year=t.year, op=t.op, required=t.value)
        if t.year not in years:
            for rows in tables:
                rows.append({**head, "projected": np.nan, "gap": np.nan, "met": "outside projection", "first_year_met": ""})
            continue
        missing = left_out(ds, t.region, targets.groups)
        if missing:
            why = f"not computable: {len(missing)} of its regions not in the run ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})"
            for rows in tables:
                rows.append({**head, "projected": np.nan, "gap": np.nan, "met": why, "first_year_met": ""})
            continue
        arr = tot.variable(t.region, t.variable)  # (n, year[, draw])
        yi = int(np.flatnonzero(years == t.year)[0])
        at = arr[:, yi]
        outside = np.isnan(at).reshape(n, -1).all(axis=1)
        if draws:
            prob = met_array(at, t.op, t.value, t.tolerance).mean(axis=1)
            val = np.median(at, axis=1)
            path = np.median(arr, axis=2)
        else:
            val, path = at, arr
        met_path = met_array(path, t.op, t.value, t.tolerance)
        with np.errstate(divide="ignore", invalid="ignore"):  # a region without urban residents: no land standard
            land = _land_needed(tot, t, yi, val, med)
        for k in range(n):
            if outside[k]:
                tables[k].append({**head, "projected": np.nan, "gap": np.nan, "met": "outside projection", "first_year_met": ""})
                continue
            row = dict(head)
            if draws:
                row["probability"] = float(prob[k])
            v = float(val[k])
            first = np.flatnonzero(met_path[k])
            row.update(projected=v, gap=v - t.value, met=bool(met_array(v, t.op, t.value, t.tolerance)), first_year_met=int(years[first[0]]) if first.size else "never")
            row["land_needed_km2"] = float(land[k])
            tables[k].append(row)
    return tables


def draws_view(ds: xr.Dataset) -> xr.Dataset:
    """A reduced ensemble's file (quantiles, with every draw's totals by region: ``*_draws``) as
    the totals the target table reads, per year, draw and region; a dataset without quantiles
    as it is. A quantile file without the draws' totals cannot give probabilities: ValueError."""
    if "quantile" not in ds.dims:
        return ds
    names = ("residents", "urban_population", "urban_local_population", "all_states_population")
    if not all(f"{n}_draws" in ds for n in names):
        raise ValueError("an ensemble's quantile file without every draw's totals (written before they were kept): no target table; run it again")
    out = xr.Dataset({n: ds[f"{n}_draws"] for n in names}, attrs=ds.attrs)
    out["city_proper_population"] = out.urban_population * ds.city_proper_share
    out["land_required"] = out.urban_population * float(ds.attrs["land_m2_per_person"]) / 1e6
    return out.assign_coords({c: ds[c] for c in ("prefecture", *(["province_code"] if "province_code" in ds.coords else []))})


def target_rows(ds: xr.Dataset, targets: TargetsConfig) -> list[dict]:
    """One row per target: required, projected, gap, first year met (deterministic runs;
    for an ensemble, its draws or a reduced ensemble's file (:func:`draws_view`), the projected
    value is the median and ``probability`` the share of draws that meet the target)."""
    return target_tables(draws_view(ds).expand_dims("_one"), targets, "_one")[0]


def region_rows(ds: xr.Dataset, years: list[int]) -> list[dict]:
    share = ds.urban_share.median("draw") if "draw" in ds.urban_share.dims else ds.urban_share.sel(quantile=0.5) if "quantile" in ds.urban_share.dims else ds.urban_share
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


# GB 50137-2011 (城市用地分类与规划建设用地标准), table 4.2.1: planned urban construction land per
# resident, 65.0-115.0 m2 (the Guangxi plan holds it to about 100 m2, POLICY.md)
LAND_STANDARD_M2 = (65.0, 115.0)


def land_standard_lines(ds: xr.Dataset) -> list[str]:
    """Regions whose urban land per urban resident (median over draws) leaves the national
    standard's range :data:`LAND_STANDARD_M2` in some projected year: the first such year and the
    value in the last year."""
    if "land_per_urban_resident" not in ds:
        return []
    x = ds.land_per_urban_resident
    if "draw" in x.dims:
        x = x.median("draw")
    lo, hi = LAND_STANDARD_M2
    out = []
    for region in x.region.values:
        v = x.sel(region=region).isel(year=slice(1, None))  # the projected years
        bad = v.where((v < lo) | (v > hi), drop=True)
        if bad.size:
            out.append(f"  {region}: from {int(bad.year.values[0])} ({float(bad.values[0]):.1f} m2), {float(v.values[-1]):.1f} m2 in {int(v.year.values[-1])}")
    head = f"Urban land per urban resident outside the national standard's {lo:.0f}-{hi:.0f} m2 (GB 50137-2011)"
    if not out:
        return ["", f"{head}: none."]
    return ["", f"{head} in {len(out)} region(s):"] + out


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
        pct = r["variable"] in SHARE_TARGET_VARIABLES
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
    lines += land_standard_lines(ds)
    lines += cap_lines(ds)
    if targets.region_years:
        rows = region_rows(ds, list(targets.region_years))
        cols = [k for k in rows[0] if k != "region"]
        lines += ["", "Urban share by region", f"{'region':<16}" + "".join(f"{c[-4:]:>9}" for c in cols)]
        for r in rows:
            lines.append(f"{r['region']:<16}" + "".join(f"{100 * r[c]:>8.1f}%" for c in cols))
    return "\n".join(lines)
