"""The calibration run: targets, fit, identifiability, posterior draws, report, parameter files.

Pure of Hydra (:mod:`calibration.__main__` converts the config and calls :func:`run`). Long
stages show a progress bar with the time left on a terminal; elsewhere (CI, batch jobs) each
stage logs one line instead.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

from calibration.backtest import csv_table as _csv
from calibration.backtest import read_observed
from calibration.core import (
    HELD_IN_DRAWS,
    NOT_SAMPLED,
    REGIONAL,
    burn_iterations,
    Problem,
    Space,
    census_targets,
    fit,
    fit_hierarchical,
    fitted_table,
    identifiability,
    laplace_draws,
    region_centres,
    emcee_draws,
    posterior_draws,
    simulate,
    summary_stats,
)
from sim import files
from sim.axes import residents
from sim.config.schema import Config, ConfigError, validate
from sim.engine.prepare import history_policy
from sim.files import write_text
from sim.inputs.load import history_inputs, load_inputs
from sim.paths import CONFIG_DIR, repo_path

log = logging.getLogger("calibration")
ROOT = CONFIG_DIR.parent


class Progress:
    """A tqdm bar with a time-left estimate when ``enabled`` (default: stderr is a terminal),
    otherwise nothing but the stage's log lines."""

    def __init__(self, total: int, desc: str, enabled: bool | None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.desc = desc
        self.t0 = time.perf_counter()
        log.info("%s: started (%d steps at most)", desc, total)
        self.bar = None
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="step", file=sys.stderr, leave=True)

    def __call__(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self, message: str = "") -> None:
        if self.bar is not None:
            self.bar.close()
        log.info("%s: done in %.1f s%s", self.desc, time.perf_counter() - self.t0, f"; {message}" if message else "")


def _check(cfg: Config) -> None:
    validate(cfg)
    c = cfg.calibration
    if not cfg.start_year < c.fit_until <= cfg.end_year:
        raise ConfigError(f"calibration.fit_until = {c.fit_until}: must be after start_year = {cfg.start_year} and at most end_year = {cfg.end_year}")
    if cfg.end_year != 2020:
        raise ConfigError(f"end_year = {cfg.end_year}: the calibration projects to the 2020 census; allowed: 2020")
    if cfg.start_year != 2010:
        raise ConfigError(f"start_year = {cfg.start_year}: the calibration starts from the 2010 census; allowed: 2010")
    if cfg.params.factors or cfg.params.region_factors or cfg.params.ensemble:
        raise ConfigError(f"params = {cfg.params.name}: the calibration fits multipliers on the guesses; allowed: params=default")
    if dataclasses.replace(cfg.policy, land=dataclasses.replace(cfg.policy.land, brake_width=0.0)) != history_policy():
        raise ConfigError("policy: the calibration fits the history 2011-2020 with the levers as of 2020 (sim.engine.prepare.history_policy); allowed: no policy overrides")
    if cfg.geography.name != "guangxi_prefectures":
        raise ConfigError(f"geography = {cfg.geography.name}: the calibration fits Guangxi's prefectures (their parameters apply to its counties by prefecture); allowed: guangxi_prefectures")
    if cfg.calibration.sampler in ("metropolis", "emcee"):
        kept = cfg.calibration.chains * (cfg.calibration.iterations - burn_iterations(cfg.calibration.iterations, cfg.calibration.burn_in))
        if cfg.calibration.draws > kept:
            raise ConfigError(f"calibration.draws = {cfg.calibration.draws}: must be <= the states kept, chains x (iterations - burn-in) = {kept}")


# what each regional parameter's rate applies to, whose 2010 shares weight the prefectures'
# deviations (calibration.core.Space.relative_logs)
DEVIATION_BASE = {"mortality": "residents", "rural_to_urban": "rural", "reclassification": "rural", "to_away": "residents", "attractiveness": "urban", "student_pull": "urban"}


def deviation_weights(inputs: xr.Dataset) -> dict[str, np.ndarray]:
    """Per regional parameter, the prefectures' shares of its base at the start (2010 census):
    rural residents for in-situ moves and reclassification, residents for mortality and departures, urban
    residents for a destination's attractiveness and its student pull."""
    by_state = inputs.population.sum(("sex", "age"))
    base = {
        "rural": by_state.sel(state="rural").values,
        "residents": residents(by_state.values, axis=-1),
        "urban": by_state.sel(state=["urban_local", "urban_migrant"]).sum("state").values,
    }
    return {p: base[DEVIATION_BASE[p]] for p in REGIONAL}


RECORD_END = 2020  # the last year of the record a fit may read (the forecast is scored on later ones)


def setup(cfg: Config, observed_rows: list[dict] | None = None, end_inputs: xr.Dataset | None = None) -> Problem:
    """The calibration problem of ``cfg``: the start year's inputs, the targets up to
    ``calibration.fit_until`` (observed series from ``calibration.observed`` unless given, the
    census year's inputs unless given), the parameter space."""
    _check(cfg)
    # the history's levers, the land brake off (no land data for 2010: it would be a hidden trend)
    cfg = dataclasses.replace(cfg, policy=history_policy())
    c = cfg.calibration
    inputs = history_inputs(cfg.geography.name)
    end = end_inputs if end_inputs is not None else load_inputs(cfg.geography.name, cfg.end_year)
    rows = observed_rows if observed_rows is not None else read_observed(repo_path(c.observed))
    later = [r for r in rows if r["year"] > RECORD_END]
    if later:  # checked before the fit: nothing published for a later year goes into the project
        r = later[0]
        raise ConfigError(f"calibration.observed: row {r.get('row', '?')} is for {r['year']}, after the record; allowed: years up to {RECORD_END} ({len(later)} such row(s))")
    blocks = census_targets(end, rows, start_year=cfg.start_year, fit_until=c.fit_until, census_year=cfg.end_year)
    space = Space([str(r) for r in inputs.region.values], region_sd=c.region_sd, weights=deviation_weights(inputs))
    sampled = int(space.sampled().sum())
    if c.sampler == "emcee" and c.draws > 0 and c.chains < 2 * sampled:
        raise ConfigError(f"calibration.chains = {c.chains}: emcee needs at least twice the {sampled} sampled parameters as walkers; allowed: >= {2 * sampled}")
    backend = "numba" if cfg.backend == "auto" else cfg.backend  # a fit projects thousands of times: "auto" is the kernel
    return Problem(cfg, inputs, blocks, space, backend=backend)


def _yaml_params(name: str, factors: dict, region_factors: dict, source: str, ensemble: str = "", draws: int = 0) -> str:
    lines = ["# @package _global_"] if ensemble else []
    lines += [
        "# Written by python -m calibration (do not edit by hand; re-run the calibration).",
        f"# {source}",
    ]
    if ensemble:
        lines += ["params:"]
        ind = "  "
    else:
        ind = ""
    lines += [f"{ind}name: {name}", f"{ind}source: {json.dumps(source)}", f"{ind}factors:"]
    lines += [f"{ind}  {k}: {v:.6g}" for k, v in factors.items()]
    lines += [f"{ind}region_factors:"]
    for p, per in region_factors.items():
        lines += [f"{ind}  {p}:"] + [f"{ind}    {r}: {v:.6g}" for r, v in per.items()]
    lines += [f"{ind}ensemble: {json.dumps(ensemble)}", f"{ind}keep_draws: false"]
    if ensemble:
        lines += ["draws:", f"  count: {draws}", "  start: 0"]
        # the posterior's parameter uncertainty plus year-to-year innovations in the rates
        lines += ["uncertainty:", "  process: true"]
    return "\n".join(lines) + "\n"


def _ensemble_dataset(problem: Problem, thetas: np.ndarray, attrs: dict) -> xr.Dataset:
    sp = problem.space
    shared = [p for p, r in sp.names if r is None]
    regional = list(dict.fromkeys(p for p, r in sp.names if r is not None))
    F = np.exp(sp.relative_logs(thetas))
    fac = np.stack([F[:, sp.names.index((p, None))] for p in shared], axis=1)
    reg = np.stack([np.stack([F[:, sp.names.index((p, r))] for r in sp.regions], axis=1) for p in regional], axis=1)
    return xr.Dataset(
        {
            "factors": (("draw", "parameter"), fac, {"long_name": "multiplier on the parameter's central value (params.factors)"}),
            "region_factors": (("draw", "regional_parameter", "region"), reg, {"long_name": "further multiplier per prefecture (params.region_factors)"}),
        },
        coords={"draw": np.arange(len(thetas)), "parameter": shared, "regional_parameter": regional, "region": sp.regions},
        attrs=attrs,
    )


def _write_netcdf(ds: xr.Dataset, path: Path) -> Path:
    from sim.files import write_netcdf

    return write_netcdf(ds, path)


def run(cfg: Config, out_dir: str | Path, *, overrides=()) -> dict:
    """Calibrate ``cfg``; write the report and the posterior into ``out_dir`` and, with
    ``calibration.write_params``, the parameter files. Returns the run's summary."""
    from sim.outputs.dataset import code_version
    from sim.outputs.runs import config_digest

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    c = cfg.calibration
    problem = setup(cfg)
    n = len(problem.space)
    log.info("calibration: %d parameters, %d fitted targets, fit until %d", n, sum(len(b.observed) for b in problem.blocks if b.weight > 0), c.fit_until)

    bar = Progress(c.max_evaluations, "fit (Jacobians)", c.progress)
    f, spreads, rounds = fit_with_spreads(problem, c, progress=bar)
    bar.close(f"{f.iterations} evaluations, cost {f.cost:.2f}: {f.message}")

    sim = simulate(problem.model(f.theta), backend=problem.backend)
    table = fitted_table(problem, sim)
    stats = summary_stats(table)
    ident = identifiability(problem.space, f, sum(len(b.observed) for b in problem.blocks))

    post = None
    if c.draws > 0:
        post = draw_posterior(problem, f, c, seed=c.seed, progress=c.progress)
        sd_post = post.thetas.std(axis=0)
        ess = post.ess if post.ess is not None else np.full(len(post.rhat), np.nan)
        for r, s, rh, e in zip(ident, sd_post, post.rhat, ess):
            r["posterior_sd_mcmc"] = float(s)
            r["rhat"] = float(rh)
            r["ess_bulk"] = float(e)

    factors, region_factors = problem.space.to_params(f.theta)
    digest = config_digest(cfg)
    inputs_sha = problem.inputs.attrs.get("input_sha256", "")
    meta = dict(
        code_version=code_version(), config_sha256=digest, overrides=list(overrides), inputs_sha256=inputs_sha,
        observed=str(c.observed), fit_until=c.fit_until, start_year=cfg.start_year, seconds=0.0,
        evaluations=problem.evaluations, fit_seconds=f.seconds, cost=f.cost, fit_evaluations=f.iterations,
        sampler=c.sampler, acceptance=post.acceptance if post else None, max_rhat=float(np.nanmax(post.rhat)) if post and c.sampler != "laplace" else None,
        min_ess=float(np.nanmin(post.ess)) if post and post.ess is not None else None, chains=c.chains, iterations=c.iterations,
        burn_in=burn_iterations(c.iterations, c.burn_in) if c.sampler != "laplace" else None, max_tau=post.tau if post else None,
        posterior_evaluations=post.evaluations if post else 0, posterior_seconds=post.seconds if post else 0.0,
        statistics=stats, factors=factors, region_factors=region_factors, region_sd=spreads, region_sd_rounds=rounds,
    )
    written = [write_text(_csv(table), out_dir / files.FITTED), write_text(_csv(ident), out_dir / files.PARAMETERS)]
    source = f"python -m calibration, fit until {c.fit_until}, code {meta['code_version']}, config {digest[:12]}"
    if post is not None:
        ens = _ensemble_dataset(problem, post.thetas, {"source": source, "sampler": c.sampler, "code_version": meta["code_version"], "config_sha256": digest, "inputs_sha256": inputs_sha})
        written.append(_write_netcdf(ens, out_dir / files.POSTERIOR))
    meta["seconds"] = time.perf_counter() - t0
    from sim.outputs.figures import save

    written.append(save(fit_figure(problem, sim), out_dir / files.FIT_FIGURE))
    report = format_report(problem, f, stats, ident, meta)
    written.append(write_text(report, out_dir / files.FIT_REPORT))
    written.append(write_text(json.dumps({**meta, "config": dataclasses.asdict(cfg)}, indent=1, default=str) + "\n", out_dir / files.CALIBRATION))
    if c.write_params:
        pdir = repo_path(c.params_dir)
        pdir.mkdir(parents=True, exist_ok=True)
        written.append(write_text(_yaml_params("calibrated", factors, region_factors, source), pdir / "calibrated.yaml"))
        if post is not None:
            epath = repo_path(c.ensemble_file)
            written.append(_write_netcdf(ens, epath))
            rel = str(epath.relative_to(ROOT)) if epath.is_relative_to(ROOT) else str(epath)
            written.append(write_text(_yaml_params("calibrated_ensemble", factors, region_factors, source, ensemble=rel, draws=len(post.thetas)), pdir / "calibrated_ensemble.yaml"))
    log.info("calibration: %.1f s in all; wrote %s", meta["seconds"], ", ".join(str(p) for p in written))
    return {**meta, "fit": f, "posterior": post, "table": table, "parameters": ident, "written": written, "problem": problem}


# why a fitted multiplier lies outside x1/3..x3 (a parameter a demographer would question)
PLAUSIBLE = (1 / 3, 3.0)
EXPLAIN = {
    "child_return": "returns from other provinces at ages 0-15 relative to the standard schedule's small child component (a1 = 0.02): the 2020 census counts about 0.87 M a year aged 5-9 against 0.64-0.68 M births a year in the annual birth rates of 2011-2015; migrants' children born or raised in other provinces come back for school under hukou-based enrolment, and the schedule's child part is a small share of its total, so a large multiplier puts children's returns near the adults' rate",
    "older_return": "returns from other provinces at ages 40-69 (a bump, its multiplier reached at 55) relative to the standard schedule, which at 55 is about a fifth of its peak: the 2020 census counts 3-5 % more women and men aged 50-64 than the history without it gives; Guangxi's migrant workers in Guangdong go home in middle age (factory work's age limits, their children's children and the land at home), so a middle-aged return rate near the young adults' is what the record asks",
    "mortality_adult": "the age-independent (Makeham) term of the Siler hazard relative to the standard shape's (5.9e-4 a year before the level factor, about 0.5 per 1000 after it, the order of China's young-adult death rates): with the standard shape the census's old-age counts, which ask for low old-age mortality, put e0 near 78.9; a larger constant term moves deaths from old age to adult ages, so that the published e0 and the old-age counts are met together",
    "reclassification": "not identified: rural -> urban moves and reclassification are alternatives for the same urban share and the census cannot tell them apart; the prior decides (see the verdict)",
    "rural_to_urban": "a prefecture's in-situ urbanization relative to the shared rate, identified by its census urban share and growth",
    "to_away": "a prefecture's departures to other provinces relative to the shared rate: the large cities send few, the eastern and south-eastern prefectures next to Guangdong many; identified by each prefecture's growth 2010-2020",
    "attractiveness": "a destination's weight in the choice among prefectures beyond its size and distance (the capital and the ports draw more)",
    "graduate_moves": "graduates' moves among prefectures at ages 22-24 relative to the guess (0.3 of a cohort): the census's ages 25-29 by prefecture ask for few, most graduates stay in their college's region or leave Guangxi (departures to other provinces, a flow of their own)",
    "student_pull": "a destination's weight for the movers at the students' ages relative to its weight for the others, identified by the census's ages 15-24 in each prefecture: the college towns (Nanning, Guilin) draw them, most others send them",
}


def _outside_lines(ident: list[dict]) -> list[str]:
    lo, hi = PLAUSIBLE
    out = [r for r in ident if not lo <= r["multiplier"] <= hi]
    if not out:
        return [f"Every fitted multiplier lies within x{lo:.2f}..x{hi:.0f}.", ""]
    L = ["## Multipliers outside x1/3..x3", ""]
    for name in dict.fromkeys(r["parameter"] for r in out):
        rows = [r for r in out if r["parameter"] == name]
        which = ", ".join(f"{r['region'] or 'shared'} x{r['multiplier']:.2f}" for r in rows)
        L.append(f"- **{name}** ({which}): {EXPLAIN.get(name, 'see its verdict and its strongest correlation below')}.")
    return L + [""]


FIT_SERIES = (
    ("urban_share", "urban share (%)", 100.0),
    ("urban_share_original", "urban share, pre-census basis (%)", 100.0),
    ("population", "residents (million)", 1e-6),
    ("births_registered", "births to the registered population (thousand)", 1e-3),
    ("birth_rate", "crude birth rate (per 1000)", 1e3),
    ("deaths", "deaths (thousand)", 1e-3),
    ("death_rate", "crude death rate (per 1000)", 1e3),
    ("e0", "life expectancy at birth (years)", 1.0),
)


def fit_figure(problem: Problem, sim):
    """Guangxi's fitted path 2011-2020 of every annual series against its observed points (the
    targets' observed values, marked by their block; the 2020 census as the last urban share)."""
    from calibration.core import _guangxi_getter
    from sim.outputs.figures import _fresh

    fig, axes = _fresh((2, 4), size=(15, 6.5))
    axes = axes.ravel()
    years = sim.years[1:]
    for ax, (variable, label, scale) in zip(axes, FIT_SERIES):
        ax.plot(years, _guangxi_getter(variable, years)(sim)[0] * scale, color="C0", label="fitted")
        for b in problem.blocks:
            if b.name == f"guangxi_{variable}" or (variable == "population" and b.name == "guangxi_residents"):
                ys = [int(lab.split(":")[1]) for lab in b.labels]
                ax.errorbar(ys, b.observed * scale, yerr=(b.sd * (b.observed if b.scale == "log" else 1.0)) * scale, fmt="o", color="black", ms=4, capsize=3, label="observed (1 s.d. of the target)")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    census = [b for b in problem.blocks if b.name == "urban_share"]
    if census:
        res = problem.blocks[[b.name for b in problem.blocks].index("residents")].observed
        share = float((census[0].observed * res).sum() / res.sum())
        axes[0].plot([2020], [share * 100], "D", color="black", label="2020 census")
    axes[0].legend(fontsize=7)
    for ax in axes[len(FIT_SERIES):]:
        ax.set_visible(False)
    return fig


def draw_posterior(problem: Problem, f, c, *, seed: int, progress: bool | None = None):
    """``c.draws`` posterior draws around the fit ``f`` by ``c.sampler`` (``calibration.*``
    keys), with a progress bar (``progress``: None shows it on a terminal only)."""
    if c.sampler == "laplace":
        post = laplace_draws(problem, f, draws=c.draws, seed=seed)
        log.info("posterior: %d draws from the Laplace approximation", c.draws)
        return post
    if c.sampler == "metropolis":
        bar = Progress(c.iterations, f"posterior ({c.chains} Metropolis chains)", progress)
        post = posterior_draws(problem, f, draws=c.draws, chains=c.chains, iterations=c.iterations, seed=seed, progress=bar, burn_in=c.burn_in)
    else:
        bar = Progress(c.iterations, f"posterior (emcee, {c.chains} walkers)", progress)
        post = emcee_draws(problem, f, draws=c.draws, walkers=c.chains, iterations=c.iterations, seed=seed, progress=bar, burn_in=c.burn_in)
    bar.close(f"acceptance {post.acceptance:.2f}, largest split R-hat {np.nanmax(post.rhat):.3f}, smallest bulk ESS {np.nanmin(post.ess):.0f}")
    return post


def fit_with_spreads(problem: Problem, c, progress=None):
    """The MAP fit; with ``calibration.region_sd_rounds`` > 0 the spreads of the prefecture
    deviations are estimated (:func:`calibration.core.fit_hierarchical`). Returns the fit, the
    spreads (per regional parameter) and the rounds' record."""
    if c.region_sd_rounds > 0:
        return fit_hierarchical(problem, rounds=c.region_sd_rounds, max_iterations=c.max_evaluations, progress=progress, centre=c.region_sd)
    f = fit(problem, max_iterations=c.max_evaluations, progress=progress)
    return f, region_centres(c.region_sd), []


def _spread_lines(meta: dict) -> list[str]:
    rounds = meta.get("region_sd_rounds") or []
    if not rounds:
        return [f"Prefecture deviations: prior s.d. fixed at {', '.join(f'{p} {v:.2f}' for p, v in meta['region_sd'].items())} (calibration.region_sd_rounds = 0).", ""]
    L = ["## Spread of the prefecture deviations (estimated)", "",
         "Each regional parameter's prefecture deviations are normal with a spread estimated by empirical Bayes (EM: the M step from the prefectures' squared deviations plus their posterior variances, with a log-normal prior around calibration.region_sd, or the parameter's own centre (mortality: 0.15), s.d. of the log 0.5; then a refit); the deviations are relative (a prefecture's multiplier over the weighted mean of all, so that the shared value alone sets the province's total).", "",
         "| round | cost | " + " | ".join(REGIONAL) + " |", "|---:|---:|" + "---:|" * len(REGIONAL)]
    for r in rounds:
        L.append(f"| {r['round']} | {r['cost']:.2f} | " + " | ".join(f"{r[p]:.3f}" for p in REGIONAL) + " |")
    return L + [""]


def _held_text() -> str:
    why = {
        "reclassification": "not identified apart from rural -> urban moves: sampled, it makes curved ridges along which no sampler mixed",
        "student_pull": "sampled, its chains did not converge in the 15-minute budget",
    }
    held = "; ".join(f"{p} ({why.get(p, 'held')})" for p in NOT_SAMPLED)
    return f"{', '.join(HELD_IN_DRAWS)} (the kernel cannot vary them per draw), {held}; see calibration/README.md, \"Uncertainty\""


def format_report(problem: Problem, f, stats: dict, ident: list[dict], meta: dict) -> str:
    L = [
        "# Calibration report",
        "",
        f"Start {meta['start_year']}, fitted observations up to {meta['fit_until']}; code {meta['code_version']}; config SHA-256 {meta['config_sha256'][:16]}; inputs SHA-256 {str(meta['inputs_sha256'])[:16]}.",
        f"Fit: {meta['fit_evaluations']} evaluations, cost {f.cost:.2f} ({f.message}); {meta['evaluations']} projections in all; {meta['seconds']:.1f} s.",
    ]
    if meta.get("sampler") == "laplace":
        L.append(f"Posterior draws: the Laplace approximation (Gaussian around the optimum, covariance (J'J)^-1); held at the optimum: {_held_text()}.")
    elif meta.get("sampler") == "emcee":
        kept = meta["iterations"] - meta.get("burn_in", meta["iterations"] // 2)
        L.append(f"Posterior: emcee, {meta['chains']} walkers x {meta['iterations']} iterations ({meta['posterior_evaluations']} projections, {meta['posterior_seconds']:.1f} s), acceptance {meta['acceptance']:.2f}, "
                 f"largest split R-hat {meta['max_rhat']:.3f}, smallest bulk ESS {meta['min_ess']:.0f} (arviz; walkers as chains)"
                 + (f", largest integrated autocorrelation time {meta['max_tau']:.0f} iterations ({kept} kept after a burn-in of {meta['iterations'] - kept}: {kept / meta['max_tau']:.1f} times it; emcee asks for about 50)" if meta.get("max_tau") else "")
                 + f"; held at the optimum: {_held_text()}.")
    elif meta.get("max_rhat") is not None:
        L.append(f"Posterior: adaptive Metropolis, {meta['chains']} chains x {meta['iterations']} iterations, the first {meta['burn_in']} adapting the proposal and discarded ({meta['posterior_evaluations']} projections, {meta['posterior_seconds']:.1f} s), acceptance {meta['acceptance']:.2f}, "
                 f"largest split R-hat {meta['max_rhat']:.3f}, smallest bulk ESS {meta['min_ess']:.0f} (arviz, rank-normalised); held at the optimum: {_held_text()}.")
    L += ["", "## Errors by target (fitted - observed; counts in %, shares in percentage points)", "", "| target | n | RMSE | max abs | unit |", "|---|---:|---:|---:|---|"]
    for k, s in stats.items():
        L.append(f"| {k} | {s['n']} | {s['rmse']:.3f} | {s['max_abs']:.3f} | {s['unit']} |")
    L += ["", "Per target: `fitted.csv`; Guangxi's fitted series against the record: `fit.png`. city_proper is reported, not fitted: the engine carries city-proper residents as the census share of urban residents.", ""]
    L += _outside_lines(ident)
    L += _spread_lines(meta)
    L += ["## Parameters (multiplier on the guess; posterior s.d. of its log, Laplace; the sampler's s.d., split R-hat and bulk ESS where it samples the parameter)", "",
          "| parameter | region | multiplier | posterior s.d. | prior s.d. | ratio | verdict | most correlated (r) | sampled s.d. | R-hat | ESS |", "|---|---|---:|---:|---:|---:|---|---|---:|---:|---:|"]

    def sampled(r):
        rh = r.get("rhat", float("nan"))
        if not np.isfinite(rh):
            return "| held | |" if meta.get("max_rhat") is not None else "| | |"
        return f"{r['posterior_sd_mcmc']:.3f} | {rh:.3f} | {r['ess_bulk']:.0f} |"

    for r in ident:
        L.append(f"| {r['parameter']} | {r['region']} | {r['multiplier']:.3f} | {r['posterior_sd']:.3f} | {r['prior_sd']:.2f} | {r['sd_ratio']:.2f} | {r['verdict']} | {r['most_correlated']} ({r['correlation']:+.2f}) | {sampled(r)}")
    return "\n".join(L) + "\n"
