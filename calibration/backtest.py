"""Score a projection against observed values.

    python -m calibration.backtest projection=PATH observed=CSV [out=DIR]

``observed``: a CSV with columns ``year, region, variable, value`` (more columns are kept but
ignored); ``variable`` one of :data:`sim.inputs.observed.VARIABLES`; ``region`` a region or prefecture of the
projection, or ``Guangxi`` (all its regions). ``projection``: a ``projection.nc`` of
``python -m sim``: a deterministic run, an ensemble with every draw's detail, or an ensemble run
with ``params=calibrated_ensemble`` (quantiles). Writes ``backtest.csv`` (per row: projected,
error, relative error, the 50 % and 90 % intervals and whether the value lies inside) and
``backtest_summary.csv`` (per variable: n, mean absolute error, bias, coverage), and prints them.
Errors are projected minus observed; for counts the relative error is that over the observed
value; shares are compared as fractions (0.542, not 54.2).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from sim import files
from sim.config.schema import ConfigError

from sim.inputs.observed import COUNTS, SCORED, read_observed

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def known_regions(ds: xr.Dataset) -> list[str]:
    """What ``region`` may name in an observed file for ``ds``: Guangxi, its regions and prefectures."""
    names = ["Guangxi"] + [str(r) for r in ds.region.values]
    if "prefecture" in ds.coords:
        names += [str(p) for p in dict.fromkeys(ds.prefecture.values.tolist()) if str(p) not in names]
    return names


def region_aliases(ds: xr.Dataset) -> dict[str, str]:
    """Other names ``region`` may use in an observed file: each region's Chinese name."""
    if "name_zh" not in ds.coords:
        return {}
    return {str(z): str(r) for z, r in zip(ds.name_zh.values, ds.region.values) if str(z)}


def _selection(ds: xr.Dataset, region: str) -> np.ndarray:
    from sim.outputs.targets import region_selection

    return np.flatnonzero(region_selection(ds, region, {}))


def _values(ds: xr.Dataset, region: str, variable: str, year: int) -> np.ndarray:
    """The projected value for ``(region, variable, year)``: one value (deterministic), the draws,
    or (``quantile`` files) the quantiles :data:`QUANTILES`."""
    y = ds.sel(year=year)
    if "quantile" in ds.dims:  # an ensemble's quantile file
        if region == "Guangxi":
            v = {"population": "total_residents", "urban_share": "total_urban_share", "births": "total_births", "deaths": "total_deaths"}[variable]
            return y[v].values
        if region not in ds.region.values:
            raise ConfigError(f"region {region!r}: a quantile file has its regions and Guangxi only; known: {', '.join(map(str, ds.region.values))}")
        v = {"population": "residents", "urban_share": "urban_share", "births": "births", "deaths": "deaths"}[variable]
        return y[v].sel(region=region).values
    sel = y.isel(region=_selection(ds, region))
    resident_states = [s for s in ds.state.values if s != "away"]
    if variable == "population":
        out = sel.residents.sum("region")
    elif variable == "urban_share":
        out = sel.urban_population.sum("region") / sel.residents.sum("region")
    elif variable == "births":
        out = sel.births.sel(state=resident_states).sum(("region", "state", "sex"))
    elif variable == "births_registered":
        out = sel.births_registered.sum("region")
    else:
        out = sel.deaths.sel(state=resident_states).sum(("region", "state", "sex", "age"))
    return np.atleast_1d(out.values)


def score(ds: xr.Dataset, rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Per-row errors and per-variable summaries (n, MAE, bias, relative MAE for counts, and for
    ensembles the share of observations inside the 50 % and 90 % central intervals)."""
    quant = "quantile" in ds.dims
    ensemble = quant or "draw" in ds.dims
    if quant:
        qs = [float(q) for q in ds["quantile"].values]
        missing = [q for q in QUANTILES if not any(abs(q - x) < 1e-9 for x in qs)]
        if missing:
            raise ConfigError(f"projection: quantile file lacks quantile(s) {missing}; need {QUANTILES}")
    per_row = []
    years = set(int(y) for y in ds.year.values)
    for r in rows:
        if r["year"] not in years or r["variable"] not in SCORED:  # outside the projection, or not a projected variable: not scored
            continue
        if r["variable"] not in ds and r["variable"] == "births_registered":  # summary and quantile files have births to residents only
            continue
        v = _values(ds, r["region"], r["variable"], r["year"])
        if quant:
            q = dict(zip([round(x, 6) for x in ds["quantile"].values], v))
            mid, lo50, hi50, lo90, hi90 = q[0.5], q[0.25], q[0.75], q[0.05], q[0.95]
        elif ensemble:
            lo90, lo50, mid, hi50, hi90 = np.quantile(v, QUANTILES)
        else:
            mid = float(v[0])
        obs = r["value"]
        err = float(mid - obs)
        row = dict(row=r["row"], year=r["year"], region=r["region"], variable=r["variable"], observed=obs, projected=float(mid), error=err,
                   relative_error=err / obs if r["variable"] in COUNTS and obs else float("nan"))
        if ensemble:
            row.update(lo50=float(lo50), hi50=float(hi50), lo90=float(lo90), hi90=float(hi90), in50=bool(lo50 <= obs <= hi50), in90=bool(lo90 <= obs <= hi90))
        per_row.append(row)
    summary = []
    for var in dict.fromkeys(r["variable"] for r in per_row):
        sel = [r for r in per_row if r["variable"] == var]
        e = np.array([r["error"] for r in sel])
        s = dict(variable=var, n=len(sel), mae=float(np.abs(e).mean()), bias=float(e.mean()))
        if var in COUNTS:
            rel = np.array([r["relative_error"] for r in sel])
            s.update(mae_relative=float(np.abs(rel).mean()), bias_relative=float(rel.mean()))
        else:
            s.update(mae_relative=float("nan"), bias_relative=float("nan"))
        if ensemble:
            s.update(coverage50=float(np.mean([r["in50"] for r in sel])), coverage90=float(np.mean([r["in90"] for r in sel])))
        summary.append(s)
    return per_row, summary


def csv_table(rows: list[dict]) -> str:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def backtest(projection: str | Path, observed: str | Path, out: str | Path | None = None) -> tuple[list[dict], list[dict]]:
    """Read, check, score; write ``backtest.csv`` and ``backtest_summary.csv`` into ``out``
    (default: beside the projection)."""
    from sim.files import write_text

    from sim.outputs.runs import RunFileError, open_run

    projection = Path(projection)
    if not projection.is_file():
        raise ConfigError(f"projection = {str(projection)!r}: no such file")
    try:
        ds = open_run(projection)
    except RunFileError as e:
        raise ConfigError(f"projection = {e}") from None
    rows = read_observed(observed, regions=known_regions(ds), aliases=region_aliases(ds))
    per_row, summary = score(ds, rows)
    if not per_row:
        raise ConfigError(f"{Path(observed).name}: no row falls in the projection's years {int(ds.year.values[0])}-{int(ds.year.values[-1])}")
    skipped = len(rows) - len(per_row)
    if skipped:
        print(f"note: {skipped} observed row(s) not scored: outside the projection's years {int(ds.year.values[0])}-{int(ds.year.values[-1])}, a calibration-only variable, or births_registered of a projection without full outputs", file=sys.stderr)
    out = Path(out) if out is not None else projection.parent
    out.mkdir(parents=True, exist_ok=True)
    write_text(csv_table(per_row), out / files.BACKTEST)
    write_text(csv_table(summary), out / files.BACKTEST_SUMMARY)
    return per_row, summary


def _args(argv: list[str]) -> dict:
    allowed = ("projection", "observed", "out")
    args = {}
    for a in argv:
        k, sep, v = a.partition("=")
        if not sep or k not in allowed:
            raise ConfigError(f"argument {a!r}: expected key=value with key one of {', '.join(allowed)}")
        args[k] = v
    for k in ("projection", "observed"):
        if k not in args:
            raise ConfigError(f"missing {k}=...; usage: python -m calibration.backtest projection=PATH observed=CSV [out=DIR]")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    try:
        a = _args(argv)
        per_row, summary = backtest(a["projection"], a["observed"], a.get("out"))
    except ConfigError as e:
        print(f"backtest error: {e}", file=sys.stderr)
        return 2
    for r in per_row:
        extra = f"  90%: {r['lo90']:.4g}..{r['hi90']:.4g}" if "lo90" in r else ""
        print(f"{r['year']} {r['region']:14s} {r['variable']:12s} observed {r['observed']:.6g}  projected {r['projected']:.6g}  error {r['error']:+.4g}{extra}")
    for s in summary:
        cov = f"  inside 50%: {s['coverage50']:.0%}  90%: {s['coverage90']:.0%}" if "coverage50" in s else ""
        rel = f" ({s['mae_relative']:.2%})" if s["variable"] in COUNTS else ""
        print(f"{s['variable']:12s} n={s['n']:3d}  MAE {s['mae']:.5g}{rel}  bias {s['bias']:+.5g}{cov}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
