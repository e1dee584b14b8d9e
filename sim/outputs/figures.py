"""Figures of one or several projections (matplotlib, object-oriented: no pyplot state).

Every function takes output datasets (``projection.nc`` as written by :mod:`sim.outputs.dataset`) and returns
a :class:`matplotlib.figure.Figure`; :func:`write_figures` saves a run's set atomically.
Several runs are passed as ``{label: dataset}`` and drawn one colour per run. Ensembles (a
``draw`` dimension) are drawn as their median with 50 % and 90 % bands (a fan chart).
Axis labels come from the variables' ``long_name`` and ``units``; shares (units ``1``) are
shown in percent.

Place names: English with the Chinese name beside it when a font with CJK glyphs is installed
(``make setup`` installs Noto Sans CJK where it can), English (or the county code) otherwise,
so that no label is ever drawn as empty boxes.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from functools import lru_cache
from typing import Callable
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib import font_manager
from matplotlib.collections import PatchCollection
from matplotlib.colors import LogNorm, Normalize, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Polygon
from matplotlib.ticker import MaxNLocator

from sim import files
from sim.files import publish
from sim.outputs.runs import recorded_config
from sim.paths import DATA_DIR

BANDS = ((0.05, 0.95, 0.18), (0.25, 0.75, 0.35))  # (low, high, alpha): the 90 % and 50 % bands
STATE_COLOURS = {"rural": "#7fa650", "urban_local": "#2c6fb0", "urban_migrant": "#e08b2c", "away": "#bbbbbb"}
STATE_LABELS = {"rural": "rural", "urban_local": "urban, local hukou", "urban_migrant": "urban, hukou elsewhere", "away": "away (hukou here, living outside)"}
MAX_PANELS = 30  # more regions than this are drawn by prefecture


# ----------------------------------------------------------------------------------- labels
@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """Family name of an installed font with CJK glyphs, registered with matplotlib, or None."""
    wanted = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "SimHei", "Microsoft YaHei")
    have = {f.name for f in font_manager.fontManager.ttflist}
    for name in wanted:
        if name in have:
            return name
    # fonts installed after matplotlib built its font cache are not in it: register them
    for pattern in ("/usr/share/fonts/**/NotoSansCJK*.tt[cf]", "/usr/share/fonts/**/wqy*.tt[cf]"):
        for path in sorted(glob.glob(pattern, recursive=True)):
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError):
                continue
    have = {f.name for f in font_manager.fontManager.ttflist}
    return next((n for n in wanted if n in have), None)


def _font_kw() -> dict:
    f = cjk_font()
    return {"fontfamily": [f, "DejaVu Sans"]} if f else {}


def place_names(ds: xr.Dataset) -> list[str]:
    """Display name of each region: 'Nanning 南宁市' with a CJK font, 'Nanning' without (counties:
    '450102 兴宁区' or the code)."""
    zh = ds["name_zh"].values if "name_zh" in ds.coords else [""] * ds.sizes["region"]
    cjk = cjk_font() is not None
    return [f"{r} {z}" if cjk and z else str(r) for r, z in zip(ds.region.values, zh)]


# units as a reader writes them (the files keep the UDUNITS-style strings)
UNIT_LABELS = {"km2": "km²", "m2 person-1": "m² per person"}


def axis_label(da: xr.DataArray, percent: bool | None = None) -> str:
    """'long name (units)' from the variable's attributes; shares in percent."""
    units = da.attrs.get("units", "")
    if percent is None:
        percent = units == "1"
    name = da.attrs.get("long_name", da.name or "")
    return f"{name} ({'%' if percent else UNIT_LABELS.get(units, units)})"


def place_title(ds: xr.Dataset) -> str:
    """The run's place as a reader names it: 'Guangxi, 14 prefectures' (the geography's id
    where it has no name)."""
    from sim.config.schema import GEOGRAPHY_NAMES

    geo = str(ds.attrs.get("geography", ""))
    if geo not in GEOGRAPHY_NAMES:
        return geo
    place, what = GEOGRAPHY_NAMES[geo]
    return f"{place}, {ds.sizes.get('region', 0):,} {what}"


def _fresh(n_axes: tuple[int, int] = (1, 1), size=(7.5, 4.5), margins: dict | None = None, **kw) -> tuple[Figure, np.ndarray]:
    """A figure and its axes. With ``margins`` (for ``subplots_adjust``) the layout is fixed;
    without, matplotlib's constrained layout places everything (it costs a second draw: about
    0.25 s a figure, so the simple figures use fixed margins)."""
    fig = Figure(figsize=size, layout=None if margins else "constrained")
    axes = fig.subplots(*n_axes, squeeze=False, **kw)
    if margins:
        fig.subplots_adjust(**margins)
    return fig, axes


def median_of(da: xr.DataArray) -> xr.DataArray:
    """The median of an ensemble's draws (``draw``) or its stored quantiles (``quantile``, a
    reduced ensemble's file); ``da`` itself otherwise."""
    if "draw" in da.dims:
        return da.median("draw")
    if "quantile" in da.dims:
        return da.sel(quantile=0.5)
    return da


def _line_or_fan(ax, x, da: xr.DataArray, colour, label, scale=1.0, **kw):
    """Median line plus 50/90 % bands for an ensemble (its draws, or the quantiles of a reduced
    ensemble's file); a plain line otherwise."""
    if "quantile" in da.dims:
        qs = [float(q) for q in da["quantile"].values]
        for lo, hi, alpha in BANDS:
            if lo in qs and hi in qs:
                ax.fill_between(x, da.sel(quantile=lo).values * scale, da.sel(quantile=hi).values * scale, color=colour, alpha=alpha, linewidth=0,
                                label=f"{label}: {100 * (hi - lo):.0f} % of draws" if label else None)
        da = da.sel(quantile=0.5)
    elif "draw" in da.dims and da.sizes["draw"] > 1:
        for lo, hi, alpha in BANDS:
            q = da.quantile([lo, hi], dim="draw").values * scale
            ax.fill_between(x, q[0], q[1], color=colour, alpha=alpha, linewidth=0, label=f"{label}: {100 * (hi - lo):.0f} % of draws" if label else None)
        da = da.median("draw")
    elif "draw" in da.dims:
        da = da.isel(draw=0)
    return ax.plot(x, da.values * scale, color=colour, label=label, **kw)[0]


def clip_year(ds: xr.Dataset, year: int, first: int = 0) -> int:
    """``year`` moved into the run's years (from its ``first``-th year on)."""
    return int(np.clip(year, ds.year.values[first], ds.year.values[-1]))


def colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _targets(ds: xr.Dataset) -> dict:
    """The run's targets from its recorded config (``config_json``)."""
    return recorded_config(ds).get("targets", {})


def _runs(runs) -> dict[str, xr.Dataset]:
    if isinstance(runs, xr.Dataset):
        return {str(runs.attrs.get("scenario", "run")): runs}
    return dict(runs)


# ---------------------------------------------------------------------------------- figures
@lru_cache(maxsize=1)
def observed_rows() -> tuple[dict, ...]:
    """Every row of the shipped observed series (``sim/data/guangxi_observed.csv``)."""
    import csv

    path = DATA_DIR / files.OBSERVED
    if not path.is_file():
        return ()
    with open(path, encoding="utf-8") as f:
        return tuple(dict(r, year=int(r["year"]), value=float(r["value"])) for r in csv.DictReader(f))


def observed_record() -> tuple[dict, ...]:
    """Guangxi's rows of the shipped observed series."""
    return tuple(r for r in observed_rows() if r["region"] == "Guangxi")


# how the record is drawn: the censuses filled, the annual series open, the pre-census basis grey
_RECORD_STYLE = {"A": dict(marker="o", ms=5), "B": dict(marker="s", ms=4, mfc="none"), "C": dict(marker="^", ms=4, mfc="none")}


def _plot_record(ax, ds: xr.Dataset, variable: str, scale: float) -> None:
    """Guangxi's observed points of ``variable`` (and, for the urban share, the original
    pre-census basis) over the years the axis shows, marked by grade. Only for runs of Guangxi's
    own geographies (the record is Guangxi's)."""
    if not str(ds.attrs.get("geography", "")).startswith("guangxi"):
        return
    # births: the census's children aged 0 (births to residents); the bulletin's counts are births to
    # the registered population (grey: another basis, like the pre-census urban share)
    names = {"urban_share": ("urban_share", "urban_share_original"), "population": ("population",), "births": ("births", "births_registered")}[variable]
    other_basis = ("urban_share_original", "births_registered")
    for name in names:
        for grade, style in _RECORD_STYLE.items():
            pts = [r for r in observed_record() if r["variable"] == name and r.get("grade", "A") == grade]
            if not pts:
                continue
            colour = "0.55" if name in other_basis else "black"
            what = {"urban_share_original": "pre-census basis", "births_registered": "births to the registered population"}.get(name, "census" if grade == "A" else "annual")
            ax.plot([r["year"] for r in pts], [r["value"] * scale for r in pts], ls="none", color=colour, label=f"record, {what} (grade {grade})", **style)


def urban_share_figure(runs) -> Figure:
    """All regions' resident urbanization rate over time, one line (fan) per run, with the
    plan's urban-share targets for all regions marked (``~`` targets with their tolerance)."""
    runs = _runs(runs)
    fig, ax = _fresh(margins=dict(left=0.1, right=0.97, bottom=0.12, top=0.92))
    ax = ax[0, 0]
    first = next(iter(runs.values()))
    for (label, ds), c in zip(runs.items(), colours(len(runs))):
        da = ds.total_urban_share
        _line_or_fan(ax, ds.year.values, da, c, label, scale=100)
    marked = False
    for t in _targets(first).get("targets", []):
        if t["region"] != "Guangxi" or t["variable"] != "urban_share":
            continue
        y = 100 * t["value"]
        if t["op"] == "~":
            ax.errorbar(t["year"], y, yerr=100 * t["tolerance"], fmt="D", color="black", capsize=4, ms=5, label=None if marked else "plan target")
        else:
            ax.plot(t["year"], y, "^" if t["op"] == ">=" else "v", color="black", ms=7, label=None if marked else "plan target")
        below = t["op"] == "~"  # '~' labels below the marker, '>=' / '<=' above: neighbours do not overlap
        left = t["year"] > first.year.values[-1] - 4  # near the right edge: label to the left
        ax.annotate(f"{t['op'].replace('>=', '≥').replace('<=', '≤')}{y:.0f}% ({t['year']})", (t["year"], y), textcoords="offset points", xytext=(-6 if left else 6, -14 if below else 8), ha="right" if left else "left", fontsize=8)
        marked = True
    _plot_record(ax, first, "urban_share", 100)
    ax.set_xlabel("year")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(axis_label(first.total_urban_share))
    ax.set_title(f"Resident urbanization rate, {place_title(first)}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def _by_prefecture(ds: xr.Dataset) -> xr.Dataset:
    """Counties summed to prefectures (persons and km2; shares recomputed)."""
    g = ds[["residents", "urban_population", "population", "urban_land"]].groupby("prefecture").sum()
    g = g.rename(prefecture="region")
    out = xr.Dataset(
        {
            "urban_share": g.urban_population / g.residents,
            "hukou_urban_share": g.population.sel(state="urban_local").sum(("sex", "age")) / g.population.sum(("state", "sex", "age")),
            "residents": g.residents,
        }
    )
    for v in ("urban_share", "hukou_urban_share", "residents"):
        out[v].attrs = ds[v].attrs
    return out.assign_coords(name_zh=("region", [""] * out.sizes["region"]))


def regions_figure(runs) -> Figure:
    """Small multiples, one panel per region (per prefecture for more than 30 regions): urban
    share (solid) and hukou urbanization (dashed) over time, one colour per run."""
    runs = _runs(runs)
    by_pref = next(iter(runs.values())).sizes["region"] > MAX_PANELS
    prepared = {k: (_by_prefecture(ds) if by_pref else ds) for k, ds in runs.items()}
    first = next(iter(prepared.values()))
    names = place_names(first)
    n = len(names)
    ncol = min(5, n)
    nrow = int(np.ceil(n / ncol))
    h = 2.0 * nrow + 1.0
    margins = dict(left=0.7 / (2.6 * ncol + 0.8), right=0.99, bottom=0.75 / h, top=1 - 0.7 / h, wspace=0.08, hspace=0.32)
    fig, axes = _fresh((nrow, ncol), size=(2.6 * ncol + 0.8, h), margins=margins, sharex=True, sharey=True)
    font = _font_kw()
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_visible(False)
            continue
        for (label, ds), c in zip(prepared.items(), colours(len(prepared))):
            reg = ds.isel(region=i)
            _line_or_fan(ax, ds.year.values, reg.urban_share, c, f"{label}: urban share", scale=100)
            _line_or_fan(ax, ds.year.values, reg.hukou_urban_share, c, f"{label}: hukou urbanization", scale=100, linestyle="--")
        ax.set_title(names[i], fontsize=9, **font)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        ax.grid(alpha=0.3)
    fig.supxlabel("year", y=0.25 / h + 0.01, fontsize=9)
    fig.supylabel(f"{axis_label(first.urban_share)}; dashed: hukou urbanization (%)", fontsize=9)
    fig.suptitle("Urban share and hukou urbanization by " + ("prefecture (counties summed)" if by_pref else "region"))
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    return fig


@lru_cache(maxsize=1)
def prefecture_outlines() -> list[dict]:
    """The shipped prefecture outlines (GeoJSON features, see :mod:`sim.derive`)."""
    with open(DATA_DIR / files.BOUNDARIES, encoding="utf-8") as f:
        return json.load(f)["features"]


def _rings(geometry: dict):
    polys = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
    for poly in polys:
        yield np.asarray(poly[0])  # exterior ring (prefectures here have no holes worth drawing)


def map_values(ds: xr.Dataset, year: int, variable: str = "urban_share") -> tuple[dict, str, str]:
    """Per-prefecture values for the map, its colour-bar label and a note. ``target_gap``: the
    urban share minus the all-regions urban-share target of that year (percentage points)."""
    year = clip_year(ds, year)
    is_prefectures = all(str(r) == str(p) for r, p in zip(ds.region.values, ds.prefecture.values))
    agg = ds if is_prefectures else _by_prefecture(ds)
    share = median_of(agg.urban_share.sel(year=year))
    vals = {str(r): 100 * float(v) for r, v in zip(agg.region.values, share.values)}
    note = "" if agg is ds else "counties summed to prefectures (no county outlines are shipped)"
    if variable == "target_gap":
        t = [t for t in _targets(ds).get("targets", []) if t["region"] == "Guangxi" and t["variable"] == "urban_share" and t["year"] == year]
        if not t:
            raise ValueError(f"figures.map_variable = target_gap: no urban_share target for Guangxi in {year}")
        vals = {k: v - 100 * t[0]["value"] for k, v in vals.items()}
        return vals, f"urban share minus the {100 * t[0]['value']:.0f}% target of {year} (percentage points)", note
    return vals, f"{axis_label(ds.urban_share)}, {year}", note


def map_figure(ds: xr.Dataset, year: int, variable: str = "urban_share") -> Figure:
    """Guangxi's prefectures coloured by urban share (or its gap to the target) in ``year``."""
    vals, label, note = map_values(ds, year, variable)
    fig, ax = _fresh(size=(7.0, 5.6), margins=dict(left=0.1, right=0.98, bottom=0.09, top=0.9))
    ax = ax[0, 0]
    patches, colours, centres = [], [], []
    font = _font_kw()
    cjk = cjk_font() is not None
    for feat in prefecture_outlines():
        name = feat["properties"]["name"]
        v = vals.get(name, np.nan)
        for ring in _rings(feat["geometry"]):
            patches.append(Polygon(ring, closed=True))
            colours.append(v)
        ring = max(_rings(feat["geometry"]), key=len)
        centres.append((ring[:, 0].mean(), ring[:, 1].mean(), name + (f"\n{feat['properties']['name_zh']}" if cjk else ""), v))
    arr = np.asarray(colours)
    if variable == "target_gap":
        lim = max(1e-9, float(np.nanmax(np.abs(arr))))
        norm, cmap = TwoSlopeNorm(0.0, -lim, lim), "RdBu"
    else:
        norm, cmap = Normalize(float(np.nanmin(arr)), float(np.nanmax(arr))), "viridis"
    pc = PatchCollection(patches, cmap=cmap, norm=norm, edgecolor="white", linewidth=0.6)
    pc.set_array(np.ma.masked_invalid(arr))
    ax.add_collection(pc)
    for x, y, text, v in centres:
        ax.text(x, y, f"{text}\n{v:+.1f}" if variable == "target_gap" else f"{text}\n{v:.1f}%", ha="center", va="center", fontsize=7, **font)
    ax.autoscale_view()
    ax.set_aspect(1.0 / np.cos(np.radians(23.8)))  # equirectangular at Guangxi's latitude
    ax.set_xlabel("longitude (degrees east)")
    ax.set_ylabel("latitude (degrees north)")
    fig.colorbar(pc, ax=ax, label=label, shrink=0.8)
    ax.set_title(f"{'Gap to the urban-share target' if variable == 'target_gap' else 'Urban share'} by prefecture, {clip_year(ds, year)}" + (f"\n({note})" if note else ""), fontsize=10)
    return fig


def default_region(ds: xr.Dataset) -> str:
    """The most populous region at the jump-off."""
    res = ds.residents.isel(year=0)
    if "draw" in res.dims:
        res = res.isel(draw=0)
    return str(ds.region.values[int(np.argmax(res.values))])


def pyramid_figure(ds: xr.Dataset, region: str | None = None, year: int | None = None) -> Figure:
    """Population pyramid of ``region`` in ``year`` by state (men left, women right), with the
    jump-off year's outline for comparison."""
    region = region or default_region(ds)
    if region not in [str(r) for r in ds.region.values]:
        raise ValueError(f"figures.pyramid_region = {region!r}: unknown; allowed: {', '.join(map(str, ds.region.values))}")
    year = clip_year(ds, year if year is not None else int(ds.year.values[-1]))
    pop = ds.population.sel(region=region)
    if "draw" in pop.dims:
        pop = pop.median("draw")
    now, start = pop.sel(year=year) / 1e3, pop.isel(year=0) / 1e3
    fig, ax = _fresh(size=(7.0, 6.0), margins=dict(left=0.1, right=0.97, bottom=0.09, top=0.94))
    ax = ax[0, 0]
    ages = ds.age.values
    edges = np.append(ages, ages[-1] + 1) - 0.5  # each single year of age a band [a-0.5, a+0.5)
    for sex, sign in (("male", -1.0), ("female", 1.0)):
        left = np.zeros(len(ages))
        for state in [str(s) for s in ds.state.values]:
            right = left + now.sel(sex=sex, state=state).values
            # stacked bands as filled steps (one polygon per state, not 101 bars)
            ax.fill_betweenx(edges, sign * np.append(left, left[-1]), sign * np.append(right, right[-1]), step="post", color=STATE_COLOURS.get(state), label=STATE_LABELS.get(state, state) if sex == "male" else None, linewidth=0)
            left = right
        ax.step(sign * start.sel(sex=sex).sum("state").values, ages, where="mid", color="black", linewidth=0.7, label=f"all states, {int(ds.year.values[0])}" if sex == "male" else None)
    lim = float(np.abs(ax.get_xlim()).max())
    ax.set_xlim(-lim, lim)
    ax.set_xticks(ax.get_xticks())
    ax.set_xticklabels([f"{abs(t):g}" for t in ax.get_xticks()])
    ax.set_xlabel(f"{pop.attrs.get('long_name', 'population')} (thousand persons); men left, women right")
    ax.set_ylabel(axis_label(ds.age))
    name = place_names(ds.sel(region=[region]))[0]
    ax.set_title(f"Population by state, {name}, {year}", **_font_kw())
    ax.legend(fontsize=8, loc="upper right")
    return fig


def flows_figure(ds: xr.Dataset, year: int) -> Figure:
    """Region-to-region moves in ``year`` as a matrix heat map (origin rows, destination
    columns; log colour scale). Counties are summed to prefectures when there are more than
    30 regions, within-prefecture moves then on the diagonal."""
    if "migration_od" not in ds:
        raise ValueError("the run has no migration_od (od_flows=false): no flow matrix to draw")
    year = clip_year(ds, year, first=1)  # the jump-off year has no flows
    od = ds.migration_od.sel(year=year)
    if "draw" in od.dims:
        od = od.median("draw")
    names = place_names(ds)
    if ds.sizes["region"] > MAX_PANELS:
        pref = ds.prefecture.values
        od = od.assign_coords(o=("region", pref), t=("region_to", pref)).groupby("o").sum().groupby("t").sum()
        mat = od.transpose("o", "t").values
        names = [str(p) for p in od.o.values]
    else:
        mat = od.values
    fig, ax = _fresh(size=(7.6, 6.6), margins=dict(left=0.2, right=0.98, bottom=0.2, top=0.95))
    ax = ax[0, 0]
    pos = mat[mat > 0]
    norm = LogNorm(float(pos.min()), float(pos.max())) if pos.size else Normalize(0, 1)
    im = ax.imshow(np.where(mat > 0, mat, np.nan), cmap="magma_r", norm=norm)
    font = _font_kw()
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7, **font)
    ax.set_yticks(range(len(names)), names, fontsize=7, **font)
    ax.set_xlabel("destination region")
    ax.set_ylabel("origin region")
    fig.colorbar(im, ax=ax, label=f"{ds.migration_od.attrs['long_name']} ({ds.migration_od.attrs['units']})", shrink=0.8)
    ax.set_title(f"Moves between regions, {year}")
    return fig


def land_figure(runs) -> Figure:
    """Urban land and land per urban resident over time (all regions), against the
    per-capita land standard, one colour per run."""
    runs = _runs(runs)
    fig, axes = _fresh((1, 2), size=(10.0, 4.2), margins=dict(left=0.07, right=0.98, bottom=0.12, top=0.91, wspace=0.22))
    first = next(iter(runs.values()))
    for (label, ds), c in zip(runs.items(), colours(len(runs))):
        land = ds.urban_land.sum("region")
        need = ds.land_required.sum("region")
        per = land * 1e6 / ds.urban_population.sum("region")
        _line_or_fan(axes[0, 0], ds.year.values, land, c, f"{label}: urban land")
        _line_or_fan(axes[0, 0], ds.year.values, need, c, f"{label}: needed at the standard", linestyle=":")
        _line_or_fan(axes[0, 1], ds.year.values, per, c, label)
    std = recorded_config(first).get("policy", {}).get("land", {}).get("capacity_m2_per_person")
    if std:
        axes[0, 1].axhline(std, color="black", linestyle="--", linewidth=1, label=f"standard {std:g} m² per person")
    axes[0, 0].set_ylabel(axis_label(first.urban_land))
    axes[0, 1].set_ylabel(axis_label(first.land_per_urban_resident))
    axes[0, 0].set_title("Urban construction land, all regions")
    axes[0, 1].set_title("Urban land per urban resident")
    for ax in axes.flat:
        ax.set_xlabel("year")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


# ------------------------------------------------------------------------------------ write
def save(fig: Figure, path: Path, dpi: int = 110) -> Path:
    """Save atomically (a temporary file in the same directory, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def figure_builders(ds: xr.Dataset, fcfg) -> dict[str, "Callable[[], Figure]"]:
    """The standard set for one run, by file stem, each a function that draws it (``fcfg``:
    :class:`sim.config.schema.FiguresConfig`)."""
    from sim.config.schema import figure_year

    first, last = int(ds.year.values[0]), int(ds.year.values[-1])
    out = {
        "urban_share": lambda: urban_share_figure(ds),
        "regions": lambda: regions_figure(ds),
        "map": lambda: map_figure(ds, figure_year(fcfg, "map_year", first, last), fcfg.map_variable),
    }
    if "population" in ds:  # full outputs (a reduced ensemble's file has no ages)
        out["pyramid"] = lambda: pyramid_figure(ds, fcfg.pyramid_region or None, figure_year(fcfg, "pyramid_year", first, last))
    if "land_required" in ds:
        out["land"] = lambda: land_figure(ds)
    if "migration_od" in ds and ds.sizes["region"] > 1:
        out["flows"] = lambda: flows_figure(ds, figure_year(fcfg, "flows_year", first + 1, last))
    return out


def run_figures(ds: xr.Dataset, fcfg) -> dict[str, Figure]:
    """The standard set for one run, by file stem, drawn."""
    return {stem: draw() for stem, draw in figure_builders(ds, fcfg).items()}


def write_figures(ds: xr.Dataset, out_dir: str | os.PathLike, fcfg, stems=None, exclude=()) -> list[Path]:
    """Write the standard set (or those of its ``stems``, but not those of ``exclude``) into
    ``out_dir`` in every configured format; returns the paths."""
    out_dir = Path(out_dir)
    paths = []
    for stem, draw in figure_builders(ds, fcfg).items():
        if (stems is not None and stem not in stems) or stem in exclude:
            continue
        fig = draw()
        for fmt in fcfg.formats:
            paths.append(save(fig, out_dir / f"{stem}.{fmt}", fcfg.dpi))
    return paths
