"""Runs side by side: the run figures with a line (or fan) per run, each region's urban share
under every run minus a baseline run, and every target's gap under every run (the library of
``python -m sim.compare``, whose docstring lists the files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from sim import files
from sim.config.schema import SHARE_TARGET_VARIABLES
from sim.files import write_text
from sim.outputs import figures as F
from sim.outputs.runs import load_runs, targets_of
from sim.outputs.targets import target_rows, to_csv


def difference_figure(runs: dict[str, xr.Dataset], year: int, baseline: str | None = None) -> Figure:
    """Urban share in ``year`` of every run minus the baseline's, by region (percentage points)."""
    baseline = baseline or next(iter(runs))
    if baseline not in runs:
        raise ValueError(f"--baseline {baseline!r}: unknown; allowed: {', '.join(runs)}")
    base = runs[baseline]
    others = {k: v for k, v in runs.items() if k != baseline}
    if not others:
        raise ValueError("a difference needs at least two runs")

    def share(ds):
        return F.median_of(ds.urban_share.sel(year=year))

    names = F.place_names(base)
    n = len(names)
    fig = Figure(figsize=(8.0, 0.28 * n + 1.8))
    ax = fig.subplots()
    fig.subplots_adjust(left=0.28, right=0.97, bottom=0.9 / (0.28 * n + 1.8), top=1 - 0.55 / (0.28 * n + 1.8))
    h = 0.8 / len(others)
    y = np.arange(n)
    for k, ((label, ds), c) in enumerate(zip(others.items(), F.colours(len(runs))[1:])):
        d = 100 * (share(ds) - share(base)).values
        ax.barh(y - 0.4 + h * (k + 0.5), d, height=h, color=c, label=label)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, names, fontsize=8, **F._font_kw())
    ax.invert_yaxis()
    ax.set_xlabel(f"urban share minus {baseline}'s (percentage points)")
    ax.set_title(f"Urban share in {year}, each run minus {baseline}")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def comparison_figures(runs: dict[str, xr.Dataset], year: int = 2035, baseline: str | None = None) -> dict[str, Figure]:
    """The panels of a comparison, by file stem (the difference only for two runs or more)."""
    figs = {"urban_share": F.urban_share_figure(runs), "regions": F.regions_figure(runs)}
    if all("land_required" in ds for ds in runs.values()):  # full outputs (reduced ones have no land needed)
        figs["land"] = F.land_figure(runs)
    if len(runs) > 1:
        figs["difference"] = difference_figure(runs, F.clip_year(next(iter(runs.values())), year), baseline)
    return figs


def gap_rows(runs: dict[str, xr.Dataset]) -> list[dict]:
    """Every target of every run, with the run's label first."""
    rows = []
    for label, ds in runs.items():
        for r in target_rows(ds, targets_of(ds)):
            rows.append({"run": label, **r})
    return rows


def gap_table(rows: list[dict]) -> str:
    """Gap of every target (rows) under every run (columns); shares in points."""
    runs = list(dict.fromkeys(r["run"] for r in rows))
    targets = list(dict.fromkeys(r["target"] for r in rows))
    cell = {(r["run"], r["target"]): r for r in rows}

    def fmt(r):
        if r is None or not np.isfinite(r["gap"]):
            return "-"
        pct = r["variable"] in SHARE_TARGET_VARIABLES
        g = f"{100 * r['gap']:+.2f}pt" if pct else f"{r['gap']:+,.0f}"
        if "probability" in r:  # an ensemble: the median's gap and the share of draws meeting it
            return f"{g} p={r['probability']:.2f}"
        return g + ("" if r["met"] is True else " ✗")

    w0 = max([len("target")] + [len(t) for t in targets])
    ws = [max(len(run), 12) for run in runs]
    lines = ["Gap to each target (projected - required, an ensemble's median; ✗ = not met; p = share of an ensemble's draws that meet it)", "  ".join(["target".ljust(w0)] + [run.rjust(w) for run, w in zip(runs, ws)])]
    for t in targets:
        lines.append("  ".join([t.ljust(w0)] + [fmt(cell.get((run, t))).rjust(w) for run, w in zip(runs, ws)]))
    return "\n".join(lines)


def compare(paths, out: str | Path = "compare", *, year: int = 2035, baseline: str | None = None, quiet: bool = False) -> dict:
    runs = load_runs(paths)
    if not runs:
        raise ValueError("no runs found")
    out = Path(out)
    figs = comparison_figures(runs, year, baseline)
    paths_out = [F.save(fig, out / f"{stem}.png") for stem, fig in figs.items()]
    rows = gap_rows(runs)
    table = gap_table(rows) if rows else "no targets recorded in these runs"
    if rows:
        paths_out.append(write_text(to_csv(rows), out / files.TARGET_GAPS))
    if not quiet:
        print(f"{len(runs)} run(s): {', '.join(runs)}\n")
        print(table)
        print(f"\nwrote {len(paths_out)} files in {out}")
    return {"runs": list(runs), "files": paths_out, "table": table}
