"""Global sensitivity (python -m experiments.sensitivity): the per-sample multipliers act as the
config values they stand for, and the indices single out the factors that drive each output."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest

from experiments.sensitivity import OUTPUTS, evaluate, load_spec, main
from sim.config.compose import compose_config
from sim.config.schema import ConfigError, validate
from sim.engine.prepare import prepare
from sim.engine.runner import project, project_summary
from sim.outputs.dataset import to_dataset

BASE = ["scenario=plan", "end_year=2035"]


def deterministic(overrides):
    s = project_summary(prepare(validate(compose_config([*BASE, *overrides]))))
    urban = s.urban[:, 0].sum(axis=-1)
    share = urban / s.residents[:, 0].sum(axis=-1)
    return {"urban_share_2025": share[5], "urban_share_2035": share[15], "land_needed_2035_km2": urban[15] * 70.0 / 1e6, "urban_land_2035_km2": s.land[15, 0].sum()}


def test_multipliers_equal_the_config_values_they_stand_for():
    cfg = validate(compose_config(BASE))
    hk = cfg.policy.hukou.conversion_rate
    rc = cfg.policy.reclassification.rate
    m2 = cfg.policy.land.m2_per_settled
    assert m2 > 0  # the plan links land to settled migrants
    got = evaluate(cfg, {"hukou_conversion": np.array([1.0, 2.0, 1.0]), "reclassification": np.array([1.0, 1.0, 0.5]), "land_link": np.array([1.0, 1.0, 0.0])})
    rows = [
        deterministic([]),
        deterministic(["policy.hukou.conversion_rate={" + ",".join(f"{k}:{2 * v}" for k, v in hk.items()) + "}"]),
        deterministic(["policy.reclassification.rate={" + ",".join(f"{k}:{0.5 * v}" for k, v in rc.items()) + "}", "policy.land.m2_per_settled=0"]),
    ]
    for i, want in enumerate(rows):
        for o in OUTPUTS:
            assert got[o][i] == pytest.approx(want[o], rel=1e-12), (i, o)
    assert rows[0]["urban_share_2035"] > rows[0]["urban_share_2025"] > 0.55


def test_summary_equals_the_full_projections_totals():
    cfg = validate(compose_config([*BASE, "uncertainty.enabled=true", "draws.count=3", "figures.enabled=false"]))
    model = prepare(cfg)
    s = project_summary(model)
    ds = to_dataset(model, project(model))
    np.testing.assert_allclose(s.urban, ds.urban_population.transpose("year", "draw", "region").values, rtol=1e-13)
    np.testing.assert_allclose(s.residents, ds.residents.transpose("year", "draw", "region").values, rtol=1e-13)
    np.testing.assert_array_equal(s.land, ds.urban_land.transpose("year", "draw", "region").values)
    np.testing.assert_allclose(s.urban_share, ds.urban_share.transpose("year", "draw", "region").values, rtol=1e-13)


def test_indices_single_out_the_drivers(tmp_path):
    assert main(["--samples", "32", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "sobol_indices.csv").read_text().splitlines()))
    st = {(r["output"], r["factor"]): float(r["ST"]) for r in rows}
    factors = {r["factor"] for r in rows}
    assert len(rows) == len(OUTPUTS) * len(factors) == 32
    # urban land is set by the quota rules: the land link explains most of its variance, fertility none
    assert max(factors, key=lambda f: st[("urban_land_2035_km2", f)]) == "land_link"
    assert st[("urban_land_2035_km2", "land_link")] > 0.5 and st[("urban_land_2035_km2", "tfr")] < 0.05
    # with the calibrated parameters rural -> urban moves and moves between prefectures drive
    # the urban share (with the guesses: rural -> urban moves and reclassification, whose
    # calibrated rate is a third of the guess); the land link barely does
    top2 = sorted(factors, key=lambda f: -st[("urban_share_2025", f)])[:2]
    assert set(top2) == {"rural_to_urban", "interregional"}
    assert st[("urban_share_2025", "land_link")] < 0.15  # 0.06 at N = 256
    meta = json.loads((tmp_path / "sensitivity.json").read_text())
    assert meta["runs"] == 32 * (len(factors) + 2) and len(meta["input_sha256"]) == 64
    assert (tmp_path / "sobol_indices.png").stat().st_size > 10_000


def test_bad_specs_are_refused(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("samples: 8\nseed: 1\nfactors:\n  migration_magic: [0, 1]\n")
    with pytest.raises(ConfigError, match="factors.migration_magic: unknown factor; allowed: tfr"):
        load_spec(spec)
    spec.write_text("samples: 10\nseed: 1\nfactors:\n  tfr: [0.8, 1.2]\n")
    with pytest.raises(ConfigError, match="samples = 10: must be a power of 2"):
        load_spec(spec)
    spec.write_text("samples: 8\nseed: 1\nfactors:\n  tfr: [1.2, 0.8]\n")
    with pytest.raises(ConfigError, match=r"factors.tfr = \[1.2, 0.8\]"):
        load_spec(spec)
    assert dataclasses.is_dataclass(validate(compose_config(BASE)))
