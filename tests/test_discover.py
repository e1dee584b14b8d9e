"""python -m experiments.discover: lever packages x posterior draws, probabilities, land, the
Pareto set and PRIM boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from experiments import discover as dv
from sim.config.compose import compose_config
from sim.config.schema import ConfigError


def _spec(tmp_path, **kw):
    d = {
        "base_overrides": ["scenario=plan", "end_year=2030"],
        "samples": 4, "draws": 1, "seed": 3,
        "levers": {"policy.hukou.conversion_rate": {"range": [0.02, 0.3]}},
        "objectives": ["resident urbanization >=57% by 2025"],
        "threshold": 0.8,
    }
    d.update(kw)
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(d, allow_unicode=True), encoding="utf-8")
    return p


# ---- bad specs: the field named, before anything is computed ----------------------------------
@pytest.mark.parametrize(
    "levers, message",
    [
        ({"policy.hukou.speed": {"range": [0, 1]}}, r"levers.policy.hukou.speed: unknown lever; allowed: policy.hukou.conversion_rate"),
        ({"policy.hukou.conversion_rate": {"range": [0.2, 0.2]}}, r"levers.policy.hukou.conversion_rate.range = \[0.2, 0.2\]: empty range"),
        ({"policy.hukou.conversion_rate": {"range": [0.1, 2.0]}}, r"levers.policy.hukou.conversion_rate.range: policy.hukou.conversion_rate = 2.0: must be <= 1.0"),
        ({"policy.hukou.conversion_rate": {"range": [0.1, 0.2]}, "policy/land": {"options": ["off", "tight"]}}, r"levers.policy/land.options: 'tight' not an option of policy/land; allowed: link, link_strict, off"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(tmp_path, levers, message):
    with pytest.raises(ConfigError, match=message):
        dv.load_spec(_spec(tmp_path, levers=levers))


def test_bad_objective_and_cli_exit_2_writing_nothing(tmp_path, capsys):
    spec = dv.load_spec(_spec(tmp_path, objectives=["urban paradise by 2030"]))
    cfg = compose_config(["scenario=plan"])
    with pytest.raises(ConfigError, match=r"objectives: 'urban paradise by 2030' not a target; allowed: 'resident urbanization ~57% by 2023'"):
        dv.targets_of(spec, cfg, ["Nanning"])
    out = tmp_path / "out"
    assert dv.main([f"spec={_spec(tmp_path, samples=0)}", f"out={out}"]) == 2
    assert "samples = 0: must be a positive integer" in capsys.readouterr().err
    assert dv.main([f"spec={_spec(tmp_path, objectives=['nope'])}", f"out={out}"]) == 2
    assert not out.exists()


# ---- the Pareto set --------------------------------------------------------------------------
def test_pareto_front_is_non_dominated_and_complete():
    rng = np.random.default_rng(5)
    prob = np.round(rng.random(60), 1)  # ties on purpose
    land = np.round(rng.random(60) * 10)
    front = dv.pareto_front(prob, land)

    def dominated(i):
        return np.any((prob >= prob[i]) & (land <= land[i]) & ((prob > prob[i]) | (land < land[i])))

    for i in range(60):
        assert front[i] == (not dominated(i)), i
    np.testing.assert_array_equal(dv.pareto_front([0.5, 0.9, 0.9, 0.2], [1.0, 3.0, 2.0, 0.5]), [True, False, True, True])


# ---- a spec whose answer is known by construction ----------------------------------------------
def test_prim_recovers_the_one_lever_that_decides_and_ignores_the_other(tmp_path):
    """Deterministic (draws=1), the land brake off so that the land link changes no one: the
    hukou target for 2030 is met exactly when the conversion rate is above the rate c* that
    meets it on the nose (found here by bisection on direct runs). PRIM's box bounds the
    conversion rate below within one grid step of c* and leaves the land link free."""
    from sim.engine.prepare import prepare
    from sim.engine.runner import project_summary
    from sim.outputs.batch import _set

    year, samples = 2030, 40
    base = compose_config(["scenario=plan", f"end_year={year}", "policy.land.brake_width=0", "figures.enabled=false"])

    def share(c):
        s = project_summary(prepare(_set(base, "policy.hukou.conversion_rate", c), reduced=True))
        return float(s.urban_local[-1].sum() / s.all_states[-1].sum())

    c_star = 0.12
    required = share(c_star)
    spec_path = _spec(
        tmp_path, samples=samples, base_overrides=["scenario=plan", f"end_year={year}", "policy.land.brake_width=0"],
        levers={"policy.hukou.conversion_rate": {"range": [0.02, 0.3]}, "policy.land.m2_per_settled": {"range": [0.0, 200.0]}},
        extra_targets=[{"name": "hukou share", "region": "Guangxi", "variable": "hukou_urban_share", "year": year, "op": ">=", "value": required}],
        objectives=["hukou share"], prefecture_targets=False, box_density=1.0,
    )
    spec = dv.load_spec(spec_path)
    ds, _ = dv.evaluate(spec)
    c = ds["policy.hukou.conversion_rate"].values
    holds = ds.p_objectives.values >= 0.8
    np.testing.assert_array_equal(holds, c >= c_star)  # the construction: one lever decides
    boxes = dv.prim_boxes(ds, spec)
    assert set(boxes["restricted"]) == {"policy.hukou.conversion_rate"}
    lo, hi = boxes["restricted"]["policy.hukou.conversion_rate"]
    step = (0.3 - 0.02) / samples
    assert abs(lo - c_star) <= step and hi == pytest.approx(c.max())
    assert boxes["density"] == 1.0 and boxes["coverage"] >= 0.9


# ---- probabilities against a direct ensemble run ------------------------------------------------
def test_probabilities_are_the_share_of_draws_of_a_direct_ensemble_run(tmp_path):
    """Batched packages x posterior draws: each package's probability of the 2025 target is the
    share of the draws of its own ensemble run (params=calibrated_ensemble, one package alone,
    not batched) that meet it; the land needed is that run's median."""
    from sim.engine.prepare import prepare
    from sim.engine.runner import project_summary
    from sim.outputs.batch import _set

    spec = dv.load_spec(_spec(tmp_path, samples=3, draws=12, base_overrides=["scenario=plan", "end_year=2030", "params=calibrated_ensemble"],
                              levers={"policy.hukou.conversion_rate": {"range": [0.02, 0.3]}, "policy/services": {"options": ["baseline", "equalization"]}},
                              objectives=["resident urbanization >=57% by 2025", "resident urbanization ~57% by 2023"]))
    ds, _ = dv.evaluate(spec)
    assert ds.sizes["package"] == 6 and ds.sizes["target"] > 14
    names = list(ds.target.values)
    k25 = names.index("resident urbanization >=57% by 2025")
    for i in (0, 5):
        c = float(ds["policy.hukou.conversion_rate"].values[i])
        svc = str(ds["policy.services.name"].values[i])
        cfg = compose_config(["scenario=plan", "end_year=2030", "params=calibrated_ensemble", f"policy/services={svc}", "draws.count=12"])
        cfg = _set(cfg, "policy.hukou.conversion_rate", c)
        s = project_summary(prepare(cfg, reduced=True))
        yi = {int(y): j for j, y in enumerate(s.years)}
        share = s.urban.sum(axis=-1) / s.residents.sum(axis=-1)  # (Y, D)
        assert ds.probability.values[i, k25] == pytest.approx(np.mean(share[yi[2025]] >= 0.57), abs=1e-12)
        both = (share[yi[2025]] >= 0.57) & (np.abs(share[yi[2023]] - 0.57) <= 0.01)
        assert ds.p_objectives.values[i] == pytest.approx(both.mean(), abs=1e-12)
        land = s.urban[yi[2030]].sum(axis=-1) * cfg.policy.land.capacity_m2_per_person / 1e6
        assert ds.land_needed_km2.values[i] == pytest.approx(np.median(land), rel=1e-9)
        land25 = s.urban[yi[2025]].sum(axis=-1) * cfg.policy.land.capacity_m2_per_person / 1e6
        assert ds.target_land_needed_km2.values[i, k25] == pytest.approx(np.median(land25), rel=1e-9)
        # a prefecture's own probability of the Guangxi target
        kn = names.index("resident urbanization >=57% by 2025 [Nanning]")
        j = list(prepare(cfg, reduced=True).regions).index("Nanning")
        assert ds.probability.values[i, kn] == pytest.approx(np.mean(s.urban[yi[2025], :, j] / s.residents[yi[2025], :, j] >= 0.57), abs=1e-12)


def test_the_command_writes_every_output(tmp_path):
    spec = _spec(tmp_path, samples=6, draws=5, base_overrides=["scenario=plan", "end_year=2030", "params=calibrated_ensemble"],
                 levers={"policy.hukou.conversion_rate": {"range": [0.02, 0.3]}, "policy.land.m2_per_settled": {"range": [0.0, 200.0]}})
    out = tmp_path / "out"
    assert dv.main([f"spec={spec}", f"out={out}"]) == 0
    for name in ("packages.csv", "pareto.csv", "pareto.png", "boxes.md", "boxes.png", "discover.nc", "discover.json"):
        assert (out / name).stat().st_size > 0, name
    meta = json.loads((out / "discover.json").read_text())
    assert meta["projections"] == 30 and meta["code_version"] and meta["input_sha256"]
    rows = (out / "packages.csv").read_text().splitlines()
    assert len(rows) == 7 and "p_objectives" in rows[0]
    # the HTML report shows the search
    from sim.report import main as report

    assert report([str(out)]) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Policy search" in page and "Non-dominated packages" in page and page.count("data:image/png;base64,") == 2
