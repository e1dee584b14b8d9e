"""Backtests inside the record: fit with the data up to year T only, project to 2020, score.

    python -m calibration.holdout [T=2015] [draws=1000] [out=DIR] [Hydra overrides of the calibration]

The calibration of ``configs/calibration.yaml`` is fitted with ``calibration.fit_until=T`` (the
2010 census and the annual series up to T: no 2020 census). Its posterior (``draws`` parameter
draws, 1,000 by default; adaptive Metropolis, :data:`SAMPLER`: 16 chains x 40,000 iterations, the first
5,000 adapting and discarded; its largest split R-hat and smallest bulk ESS go into the digest; ``calibration.sampler=emcee`` for emcee's, ``laplace`` for the Laplace approximation's) is projected 2010 -> 2020 with
process noise (``uncertainty.process_sd``) from T + 1 on, the years the forecast does not see.
The Laplace approximation is far from this posterior (its draws' log posterior has a median
70 below the mode's typical set: calibration/README): with it the draws' median of Guangxi's
2020 urban share was 1.7 pp above the census, with emcee's 0.5 pp (T = 2015; session 17). Every held-back observation (the annual series
after T and the 2020 census of Guangxi and of each prefecture: residents, urban shares; births
and deaths where the series have them) is scored: error of the median, and whether it falls in
the 50 % and 90 % central intervals of the draws. Writes ``holdout.csv`` (per observation),
``holdout_summary.csv`` (per variable: n, MAE, bias, coverage), ``holdout.png`` (Guangxi's urban
share and residents with their bands and the record; the prefectures' 2020 urban shares against
the census) and ``holdout.json`` (config, code version, inputs; with the prefectures' MAE of a
reference that knows the 2020 province share, :func:`reference_mae`) into ``out`` (default
``outputs/holdout/T``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from calibration.backtest import csv_table, read_observed, score
from calibration.core import simulate
from calibration.run import draw_posterior, fit_with_spreads, setup
from sim import files
from sim.config.cli import own_arguments
from sim.config.compose import compose_config
from sim.config.schema import ConfigError
from sim.engine.model import process_factors
from sim.engine.runner import project
from sim.files import write_text
from sim.outputs.dataset import to_dataset
from sim.paths import repo_path

# 1,000 draws: the median of 200 thinned from the same chains moved by 0.15 pp with the thinning
# (T = 2015, session 23: +1.08 pp against +0.93 pp with 1,000); the projection of 1,000 costs seconds
DEFAULTS = {"T": 2015, "draws": 1000, "out": ""}
SAMPLER = ("calibration.sampler=metropolis", "calibration.chains=16", "calibration.iterations=40000", "calibration.burn_in=0.125")  # before the user's overrides


def holdout(T: int = DEFAULTS["T"], draws: int = DEFAULTS["draws"], overrides=(), seed: int = 20151231) -> tuple[xr.Dataset, list[dict], list[dict], dict]:
    """Fit to the record up to ``T``, project the posterior 2010 -> 2020 with process noise after
    ``T``; return the projection (with ``draw``), the scored rows, the summary and a digest."""
    if not 2010 < T < 2020:
        raise ConfigError(f"T = {T}: the holdout needs years to hold back; allowed: 2011..2019")
    if draws < 1:
        raise ConfigError(f"draws = {draws}: the holdout scores a posterior ensemble; allowed: whole numbers >= 1")
    cfg = compose_config([f"calibration.fit_until={T}", "calibration.write_params=false", f"calibration.draws={draws}", *SAMPLER, *overrides], config_name="calibration")
    problem = setup(cfg)
    f, _, _ = fit_with_spreads(problem, cfg.calibration)
    c = cfg.calibration
    post = draw_posterior(problem, f, c, seed=seed, progress=False)  # metropolis: chains in the typical set, not the Laplace approximation's tails
    model = problem.model(f.theta, problem.space.draw_factors(post.thetas, f.theta))
    # process noise only in the years after T: a draw's rates follow its parameters up to T
    pcfg = dataclasses.replace(model.cfg, uncertainty=dataclasses.replace(model.cfg.uncertainty, process=True))
    proc = process_factors(pcfg, model.pop0.shape[0])
    k = T - cfg.start_year  # index of the first year after T among the projected years
    for p in proc.values():
        base = p[:, k - 1 : k].copy()
        p[:, :k] = 1.0
        p[:, k:] /= base
    model = dataclasses.replace(model, process=proc)
    ds = to_dataset(model, project(model, od=False), scenario=f"holdout_{T}")
    observed = read_observed(repo_path(cfg.calibration.observed))
    rows = [r for r in observed if r["year"] > T]
    per_row, summary = score(ds, rows)
    gx = {r["variable"]: r for r in per_row if r["region"] == "Guangxi" and r["year"] == 2020}
    pref = [r for r in per_row if r["region"] != "Guangxi" and r["variable"] == "urban_share" and r["year"] == 2020]
    # the posterior mode's own path (the fit), beside the draws' median
    mode = simulate(problem.model(f.theta))
    end = mode.years.tolist().index(2020)
    census = {r["region"]: r for r in rows if r["year"] == 2020 and r["variable"] == "urban_share"}
    mode_share = mode.urban[0, end] / mode.residents[0, end]
    regions = problem.space.regions
    digest_mode = {
        "mode_guangxi_urban_share_2020_error_pp": 100 * (mode.urban[0, end].sum() / mode.residents[0, end].sum() - census["Guangxi"]["value"]),
        "mode_prefecture_urban_share_mae_pp": 100 * float(np.mean([abs(mode_share[i] - census[r]["value"]) for i, r in enumerate(regions) if r in census])),
    }
    digest = {**digest_mode, **reference_mae(observed, cfg.start_year, cfg.end_year),
        "T": T, "draws": draws, "fit_cost": f.cost, "fit_evaluations": f.iterations,
        "guangxi_urban_share_2020_error_pp": 100 * gx["urban_share"]["error"], "guangxi_urban_share_2020_in90": gx["urban_share"]["in90"],
        "guangxi_residents_2020_error": gx["population"]["relative_error"],
        "prefecture_urban_share_mae_pp": 100 * float(np.mean([abs(r["error"]) for r in pref])),
        "sampler": c.sampler, "max_rhat": float(np.nanmax(post.rhat)) if np.isfinite(post.rhat).any() else None,
        "min_ess": float(np.nanmin(post.ess)) if post.ess is not None else None,
        "coverage90": float(np.mean([r["in90"] for r in per_row])), "coverage50": float(np.mean([r["in50"] for r in per_row])), "n": len(per_row),
    }
    return ds, per_row, summary, digest


def figure(ds: xr.Dataset, per_row: list[dict], T: int):
    """Guangxi's urban share and residents (median, 50 % and 90 % bands, the held-back record)
    and the prefectures' 2020 urban shares against the census."""
    from sim.outputs.figures import _fresh

    fig, axes = _fresh((1, 3), size=(13.5, 4.2))
    axes = axes[0]
    q = [0.05, 0.25, 0.5, 0.75, 0.95]
    years = ds.year.values
    for ax, var, scale, label in ((axes[0], "total_urban_share", 100, "urban share (%)"), (axes[1], "total_residents", 1e-6, "residents (million)")):
        v = ds[var].quantile(q, "draw").values * scale
        ax.fill_between(years, v[0], v[4], alpha=0.2, color="C0", label="90 %")
        ax.fill_between(years, v[1], v[3], alpha=0.35, color="C0", label="50 %")
        ax.plot(years, v[2], color="C0", label="median")
        obs = [r for r in per_row if r["region"] == "Guangxi" and r["variable"] == ("urban_share" if "urban" in var else "population")]
        ax.plot([r["year"] for r in obs], [r["observed"] * scale for r in obs], "o", color="k", label="held back")
        ax.axvline(T, color="grey", lw=0.8, ls=":")
        ax.set_title(f"Guangxi: {label}, fitted to {T}")
        ax.legend(fontsize=7)
    pref = [r for r in per_row if r["region"] != "Guangxi" and r["variable"] == "urban_share"]
    ax = axes[2]
    x = np.arange(len(pref))
    mid = np.array([r["projected"] for r in pref]) * 100
    ax.errorbar(x, mid, yerr=[mid - np.array([r["lo90"] for r in pref]) * 100, np.array([r["hi90"] for r in pref]) * 100 - mid], fmt="s", color="C0", label="projected, 90 %")
    ax.plot(x, [r["observed"] * 100 for r in pref], "o", color="k", label="2020 census")
    ax.set_xticks(x, [r["region"] for r in pref], rotation=70, fontsize=7)
    ax.set_title("prefectures: urban share 2020 (%)")
    ax.legend(fontsize=7)
    return fig


def reference_mae(observed: list[dict], start_year: int, end_year: int) -> dict:
    """The skill a prefecture urban-share forecast is measured against: the textbook allocation
    of the province's change to its parts, rural -> urban at one rate on each prefecture's rural
    share (u_r + (1 - u_r) x (U' - U) / (1 - U)), from the start census's shares, **given the
    census's own province share U'** (an oracle no forecast has). Its MAE against the end census
    is the error left by the prefectures' own dynamics, which no record between the censuses shows
    by prefecture. Empty without both censuses' shares."""
    share = {(r["region"], r["year"]): r["value"] for r in observed if r["variable"] == "urban_share"}
    regions = sorted({reg for reg, y in share if y == start_year and reg != "Guangxi" and (reg, end_year) in share})
    if ("Guangxi", start_year) not in share or ("Guangxi", end_year) not in share or not regions:
        return {}
    U, U1 = share["Guangxi", start_year], share["Guangxi", end_year]
    err = [share[r, start_year] + (1 - share[r, start_year]) * (U1 - U) / (1 - U) - share[r, end_year] for r in regions]
    return {"reference_prefecture_urban_share_mae_pp": 100 * float(np.mean(np.abs(err)))}


def main(argv=None) -> int:
    from sim.outputs.dataset import code_version
    from sim.outputs.figures import save

    argv = list(sys.argv[1:] if argv is None else argv)
    own, rest = own_arguments(argv, DEFAULTS)
    try:
        T, draws = int(own["T"]), int(own["draws"])
    except ValueError:
        print(f"holdout: T and draws must be integers (T={own['T']!r}, draws={own['draws']!r})", file=sys.stderr)
        return 2
    try:
        ds, per_row, summary, digest = holdout(T, draws, rest)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    out = Path(own["out"] or f"outputs/holdout/{T}")
    write_text(csv_table(per_row), out / files.HOLDOUT)
    write_text(csv_table(summary), out / files.HOLDOUT_SUMMARY)
    save(figure(ds, per_row, T), out / files.HOLDOUT_FIGURE)
    write_text(json.dumps({**digest, "overrides": rest, "code_version": code_version(), "input_sha256": ds.attrs.get("input_sha256", ""), "config_json": json.loads(ds.attrs["config_json"])}, indent=1, default=str) + "\n", out / files.HOLDOUT_JSON)
    for s in summary:
        cov = f"  inside 50 %: {s['coverage50']:.0%}  90 %: {s['coverage90']:.0%}" if "coverage50" in s else ""
        print(f"{s['variable']:12s} n={s['n']:3d}  MAE {s['mae']:.5g}  bias {s['bias']:+.5g}{cov}")
    print(json.dumps(digest, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
