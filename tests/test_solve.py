"""The inverse problem: the smallest lever value that meets a target, or a reasoned refusal."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sim.config.schema import ConfigError
from sim.engine.prepare import prepare
from sim.engine.runner import project
from sim.outputs.dataset import to_dataset
from sim.outputs.solver import SolveError, check_monotone, set_lever, solve
from sim.outputs.targets import series
from tests.test_config import compose_cfg

HUKOU = "hukou urbanization on its 2013-2020 pace by 2025"


def hukou_2025(cfg):
    """Guangxi's hukou urbanization's change 2020-2025 (the target's variable)."""
    model = prepare(cfg)
    h = series(to_dataset(model, project(model)), "Guangxi", "hukou_urban_share")
    return float(h.sel(year=2025) - h.sel(year=2020))


@pytest.fixture(scope="module")
def base():
    return compose_cfg(["end_year=2030"])


def test_solves_the_smallest_conversion_rate_for_the_hukou_path(base):
    sol, _ = solve(base, HUKOU, "policy.hukou.conversion_rate", (0.0, 0.5))
    assert 0.05 < sol.value < 0.5 and sol.met_at_bound == ""
    assert sol.projected >= sol.required - 1e-9
    assert hukou_2025(set_lever(base, "policy.hukou.conversion_rate", sol.value)) >= 0.105 - 1e-9
    assert hukou_2025(set_lever(base, "policy.hukou.conversion_rate", sol.value - 0.01)) < 0.105
    assert set(sol.path) == set(range(2020, 2031)) and sol.land_km2 > 2378
    assert sol.evaluations < 40


def test_ensemble_solution_with_identical_draws_equals_the_deterministic_one(base):
    det, _ = solve(base, HUKOU, "policy.hukou.conversion_rate", (0.0, 0.5))
    ens_cfg = compose_cfg(["end_year=2030", "draws.count=3"])
    ens, _ = solve(ens_cfg, HUKOU, "policy.hukou.conversion_rate", (0.0, 0.5), probability=0.9)
    assert ens.value == pytest.approx(det.value, abs=2e-6)


def test_met_at_the_lower_bound_returns_the_lower_bound(base):
    sol, _ = solve(base, ">=57% by 2025", "policy.reclassification.rate", (0.0, 0.02))
    assert sol.value == 0.0 and sol.met_at_bound == "lower"


def test_refuses_an_unreachable_target(base):
    with pytest.raises(SolveError, match="cannot be met within bounds"):
        solve(compose_cfg(["end_year=2035"]), "citizenization", "policy.hukou.conversion_rate", (0.0, 0.2))


def test_refuses_a_non_monotone_or_flat_response():
    xs = np.linspace(0, 1, 5)
    assert check_monotone(xs, [0, 1, 2, 3, 4]) == 1 and check_monotone(xs, [4, 3, 2, 2, 1]) == -1
    with pytest.raises(SolveError, match="not monotone"):
        check_monotone(xs, [0, 2, 1, 3, 4])
    with pytest.raises(SolveError, match="does not respond"):
        check_monotone(xs, [1, 1, 1, 1, 1])


def test_a_lever_that_does_not_move_the_target_is_refused(base):
    # the county-seat share of urban residents does not touch hukou urbanization
    with pytest.raises(SolveError, match="does not respond"):
        solve(base, HUKOU, "geography.city_proper_share", (0.2, 0.8))


def test_bad_lever_and_values_name_the_field(base):
    with pytest.raises(ConfigError, match="lever = 'policy.hukou.nonsense'"):
        set_lever(base, "policy.hukou.nonsense", 1.0)
    with pytest.raises(ConfigError, match="policy.hukou.conversion_rate"):
        solve(base, HUKOU, "policy.hukou.conversion_rate", (0.0, 2.0))  # rates above 1 are invalid
    with pytest.raises(ConfigError, match="unknown; targets are"):
        solve(base, "no such target", "policy.hukou.conversion_rate", (0.0, 0.5))


def test_year_keyed_lever_keeps_its_jump_off_value(base):
    c = set_lever(base, "policy.hukou.conversion_rate", 0.2)
    assert c.policy.hukou.conversion_rate == {2020: 0.05, 2021: 0.2}
    c = set_lever(base, "policy.hukou.conversion_rate", 0.2, lever_from=2025)
    assert c.policy.hukou.conversion_rate == {2020: 0.05, 2025: 0.2}


def test_cli(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sim.solve", f"target={HUKOU}", "lever=policy.hukou.conversion_rate", "bounds=[0,0.5]", "end_year=2030", f"out={tmp_path}"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    sol = json.loads((tmp_path / "solve.json").read_text())
    assert 0.05 < sol["value"] < 0.5 and (tmp_path / "projection.nc").exists() and (tmp_path / "solve_path.csv").exists()
    r = subprocess.run([sys.executable, "-m", "sim.solve", "target=citizenization", "lever=policy.hukou.conversion_rate", "bounds=[0,0.2]", f"out={tmp_path}/x"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "solve refused: the target cannot be met" in r.stderr
