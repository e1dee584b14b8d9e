"""Issue 45: the observation model (sizes recovered from synthetic series, reported figures with
the estimated error), assimilation of reported figures (a synthetic truth), a run from 2010 that
is the fitted history, and the ensemble run's reported bands and conditioning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from models.observation import drift_step, error_sd, expit, logit, random_walk_plus_noise
from sim.outputs.assimilation import Totals, condition, reported

ROOT = Path(__file__).resolve().parents[1]
ERRORS = {("urban_share", "noise"): 0.01, ("urban_share", "drift"): 0.02, ("population", "noise"): 0.002, ("population", "drift"): 0.003,
          ("births", "rounding"): 2886.75, ("deaths", "rounding"): 2886.75, ("births", "survey"): 0.038, ("deaths", "survey"): 0.058}


# ---------------------------------------------------------------------------- the sizes, recovered
def test_random_walk_plus_noise_recovers_the_innovation_and_the_noise():
    rng = np.random.default_rng(7)
    eta, noise = 0.02, 0.01
    panel = [np.cumsum(rng.normal(0.05, eta, 9)) + rng.normal(0.0, noise, 9) for _ in range(4000)]
    est = random_walk_plus_noise(panel)
    assert est["eta"] == pytest.approx(eta, rel=0.05) and est["noise"] == pytest.approx(noise, rel=0.08)
    # a smooth series (a drift and persisting changes only) has no noise
    smooth = random_walk_plus_noise([np.cumsum(rng.normal(0.05, eta, 11)) for _ in range(2000)])
    assert smooth["noise"] < 0.15 * eta and smooth["eta"] == pytest.approx(eta, rel=0.05)
    with pytest.raises(ValueError, match="at least 4"):
        random_walk_plus_noise([np.array([0.1, 0.2, 0.3])])


def test_drift_step_recovers_a_random_walk_from_its_gaps():
    rng = np.random.default_rng(8)
    s, t = 0.02, np.arange(1, 10)
    gaps = np.cumsum(rng.normal(0.0, s, (3000, t.size)), axis=1)
    assert drift_step(gaps.ravel(), np.tile(t, 3000)) == pytest.approx(s, rel=0.03)
    assert drift_step(np.array([0.04]), np.array([4])) == pytest.approx(0.02)


def test_the_shipped_sizes_are_the_derivation_of_the_record(shared_data):
    import csv

    from sim.inputs.derive import observation_errors
    from sim.inputs.load import observation_errors as shipped

    derived = {(r["variable"], r["component"]): r["sd"] for r in observation_errors(shared_data)}
    assert derived == shipped()
    with open(ROOT / "sim/data/observation_errors.csv", encoding="utf-8") as f:
        assert all(r["method"] and r["source"] for r in csv.DictReader(f))
    # Guangxi's first-published urban shares 2015-2019 fell 0.9-2.0 pp below the revised ones:
    # a drift of about 0.5 pp a square-root year at a share near 50 %
    assert 0.015 < derived[("urban_share", "drift")] < 0.03


# ------------------------------------------------------------------- what the bulletin will report
def _flat(D: int, Y: int = 11, share: float = 0.55, residents: float = 5e7, births: float = 5e5) -> Totals:
    one = np.ones((Y, D))
    return Totals(np.arange(2020, 2020 + Y), residents * one, share * residents * one, births * one, 0.8 * births * one)


def test_reported_figures_carry_the_estimated_error():
    D = 6000
    tot = _flat(D)
    rep = reported(tot, ERRORS, census_year=2020, seed=1, draws=np.arange(D))
    for var, f in (("urban_share", logit), ("population", np.log)):
        err = f(rep[var]) - f(tot.value(var))
        assert np.all(err[0] == 0.0)  # the census year is the census
        for t in (1, 5, 10):
            want = float(error_sd(ERRORS[(var, "noise")], ERRORS[(var, "drift")], t))
            assert err[t].std() == pytest.approx(want, rel=0.05), (var, t)
    for var, x in (("births", 5e5), ("deaths", 4e5)):
        err = rep[var] - tot.value(var)
        assert np.all(err[0] == 0.0)
        for t in (1, 5):  # the survey's sampling error, the residents' drift, the rounding
            want = np.sqrt(2886.75**2 + x**2 * (ERRORS[(var, "survey")] ** 2 + 0.003**2 * t))
            assert err[t].std() == pytest.approx(want, rel=0.05), (var, t)
    # a draw's errors do not depend on the slice it is projected in
    part = reported(_flat(10), ERRORS, census_year=2020, seed=1, draws=np.arange(100, 110))
    np.testing.assert_array_equal(part["urban_share"], rep["urban_share"][:, 100:110])


# ---------------------------------------------------------------------------- assimilation
def test_assimilation_on_synthetic_truths_narrows_the_forecast_and_keeps_its_coverage():
    """Draws: logit urban share paths with a slope drawn from a prior. Truths: paths from the same
    prior, observed with the observation model's error in years 1-4. Conditioned on those, the
    forecast of year 10 is closer to the truth and its 90 % band still holds 90 % of truths."""
    rng = np.random.default_rng(11)
    D, Y, n_truths = 2000, 11, 300
    t = np.arange(Y)
    years = 2020 + t
    slopes = rng.normal(0.05, 0.02, D)
    share = expit(logit(0.54) + np.outer(t, slopes))  # (Y, D)
    tot = Totals(years, np.full((Y, D), 5e7), share * 5e7, np.full((Y, D), 5e5), np.full((Y, D), 4e5))
    errs_prior, errs_post, inside, ess = [], [], [], []
    for k in range(n_truths):
        b = rng.normal(0.05, 0.02)
        truth = expit(logit(0.54) + b * t)
        steps = ERRORS[("urban_share", "drift")] * rng.standard_normal(Y)
        steps[0] = 0.0  # the drift starts from the census
        err = np.cumsum(steps) + ERRORS[("urban_share", "noise")] * rng.standard_normal(Y)
        obs = expit(logit(truth) + err)
        rows = [dict(year=int(years[i]), region="Guangxi", variable="urban_share", value=float(obs[i])) for i in range(1, 5)]
        c = condition(tot, rows, ERRORS, census_year=2020, seed=k)
        assert len(c.used) == 4 and 1.0 <= c.ess <= D
        post = share[-1, c.index]
        errs_prior.append(abs(np.median(share[-1]) - truth[-1]))
        errs_post.append(abs(np.median(post) - truth[-1]))
        lo, hi = np.quantile(post, [0.05, 0.95])
        inside.append(lo <= truth[-1] <= hi)
        ess.append(c.ess)
    assert np.mean(errs_post) < 0.8 * np.mean(errs_prior)
    assert 0.85 <= np.mean(inside) <= 0.95
    assert np.median(ess) > 50


def test_figures_outside_the_projection_or_in_the_census_year_are_not_used():
    tot = _flat(50)
    rows = [dict(year=2020, region="Guangxi", variable="urban_share", value=0.5), dict(year=2040, region="Guangxi", variable="urban_share", value=0.5),
            dict(year=2022, region="Nanning", variable="urban_share", value=0.5), dict(year=2022, region="Guangxi", variable="e0", value=78.0)]
    c = condition(tot, rows, ERRORS, census_year=2020, seed=0)
    assert c.used == [] and c.ess == pytest.approx(50.0)


# ---------------------------------------------------------------------------- the run from 2010
def test_a_run_from_2010_is_the_fitted_history_through_2020():
    """The land brake is off through the fitted record (no land data before 2020), as in the fit:
    a user's run from 2010 ends 2020 in the history's state, whatever its scenario."""
    from sim.config.compose import compose_config
    from sim.engine.prepare import history_state, prepare
    from sim.engine.runner import project

    cfg = compose_config(["start_year=2010", "end_year=2020"])
    proj = project(prepare(cfg))
    np.testing.assert_allclose(proj.population[-1, 0], history_state(compose_config([])), rtol=1e-9, atol=1e-6)


# ---------------------------------------------------------------------------- the ensemble run
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "sim", "params=calibrated_ensemble", "draws.count=200", "end_year=2025", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_an_ensemble_run_reports_the_bulletins_band_and_conditions_on_reported_figures(tmp_path):
    r = _cli(f"hydra.run.dir={tmp_path / 'a'}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "as the bulletin will report it" in r.stdout
    ds = xr.open_dataset(tmp_path / "a" / "projection.nc")
    width = (ds.total_urban_share.sel(quantile=0.95) - ds.total_urban_share.sel(quantile=0.05)).sel(year=2023)
    rep = (ds.reported_total_urban_share.sel(quantile=0.95) - ds.reported_total_urban_share.sel(quantile=0.05)).sel(year=2023)
    assert float(rep) > float(width) > 0
    assert float(ds.reported_total_population.sel(year=2020, quantile=0.05)) == float(ds.total_residents.sel(year=2020, quantile=0.05))  # the census year
    # issue 46: targets with P(met) for every target, the report's probabilities, figures with bands
    import csv

    with open(tmp_path / "a" / "targets.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    inside = [r for r in rows if r["met"] != "outside projection"]  # 2035's targets: the run ends 2025
    assert len(rows) == 9 and len(inside) == 7 and all(0.0 <= float(r["probability"]) <= 1.0 for r in inside)
    by = {r["target"]: r for r in rows}
    share_2025 = ds.urban_share_draws if "urban_share_draws" in ds else (ds.urban_population_draws.sum("region") / ds.residents_draws.sum("region"))
    assert float(by["resident urbanization >=57% by 2025"]["probability"]) == pytest.approx(float((share_2025.sel(year=2025) >= 0.57).mean()))
    assert "p=" in (tmp_path / "a" / "report.txt").read_text()
    assert sorted(p.name for p in (tmp_path / "a" / "figures").iterdir()) == ["map.png", "regions.png", "urban_share.png"]
    for cmd in (["sim.report", str(tmp_path / "a")], ["sim.compare", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "cmp")]):
        r = subprocess.run([sys.executable, "-m", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (cmd, r.stderr[-2000:])
    assert "p=" in r.stdout
    obs = tmp_path / "obs.csv"
    median = float(ds.total_urban_share.sel(year=2021, quantile=0.5))
    obs.write_text(f"year,region,variable,value\n2021,Guangxi,urban_share,{median + 0.004}\n")
    r = _cli(f"observed={obs}", f"hydra.run.dir={tmp_path / 'b'}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Conditioned on 1 reported figure(s)" in r.stdout
    cond = xr.open_dataset(tmp_path / "b" / "projection.nc")
    assert 1 < cond.attrs["conditioned_effective_sample_size"] <= 200
    assert float(cond.total_urban_share.sel(year=2021, quantile=0.5)) > median  # pulled towards the figure


def test_observed_figures_are_checked_before_anything_runs(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("year,region,variable,value\n2021,Guangxi,urban_share,54.2\n")
    r = _cli(f"observed={bad}", f"hydra.run.dir={tmp_path / 'c'}")
    assert r.returncode == 2 and "urban_share 54.2 must be a fraction" in r.stderr
    r = subprocess.run([sys.executable, "-m", "sim", f"observed={bad}", f"hydra.run.dir={tmp_path / 'd'}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "observed = " in r.stderr and "params=calibrated_ensemble" in r.stderr
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


# ---------------------------------------------------------------------------- process innovations
def test_the_pull_moves_departures_up_and_returns_down_together_with_mean_one():
    import dataclasses

    from sim.config.compose import compose_config
    from sim.engine.model import process_factors

    cfg = compose_config(["end_year=2023", "draws.count=4000", "draws.start=7"])
    u = dataclasses.replace(cfg.uncertainty, process=True, process_sd={}, process_pull=0.1)
    p = process_factors(dataclasses.replace(cfg, uncertainty=u), 3)
    assert sorted(p) == ["from_away", "to_away"]
    away, back = np.log(p["to_away"]), np.log(p["from_away"])
    np.testing.assert_allclose(away - away.mean(axis=0), -(back - back.mean(axis=0)), atol=1e-12)  # one shock, opposite signs
    np.testing.assert_array_equal(p["to_away"][..., 0], p["to_away"][..., 2])  # shared by every region
    assert p["to_away"][:, 0, 0].mean() == pytest.approx(1.0, abs=0.01) and away[:, 0, 0].std() == pytest.approx(0.1, rel=0.05)
    # random walk (process_rho 1): the s.d. grows as the square root of the years
    assert away[:, 2, 0].std() == pytest.approx(0.1 * np.sqrt(3), rel=0.05)
    part = process_factors(dataclasses.replace(cfg, uncertainty=u, draws=dataclasses.replace(cfg.draws, start=107, count=5)), 3)
    np.testing.assert_array_equal(part["to_away"], p["to_away"][100:105])


def test_the_innovations_sized_from_the_record_reproduce_its_persisting_change(monkeypatch):
    from calibration import noise

    sizes = noise.estimate()
    for s in sizes.values():
        assert s["measured"] > 0 and s["size"] == pytest.approx(noise.PROBE_SD * s["record"] / s["measured"], rel=1e-3)
    # linear at these sizes: the pull at its size gives the residents' change of the record
    monkeypatch.setattr(noise, "PROBE_SD", sizes["pull"]["size"])
    assert noise._one_year_sd("pull") == pytest.approx(sizes["pull"]["record"], rel=0.1)
