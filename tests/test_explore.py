"""The lever explorer's computation (sim.explore.controls, sim.explore.session), without a
browser: controls derived from the schema and configs, a page state's projection equal to the
command line's run of its overrides, refused values with the command line's message, exports."""

from __future__ import annotations

import csv
import dataclasses
import shlex

import numpy as np
import pytest

from sim.config.compose import compose_config
from sim.config.schema import ConfigError, validate
from sim.explore import controls
from sim.explore.controls import State
from sim.paths import CONFIG_DIR


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    from sim.explore.session import Explorer

    return Explorer(out_dir=tmp_path_factory.mktemp("explore"))


def test_controls_are_the_config_groups_with_the_schemas_ranges():
    gs = {g.key: g for g in controls.groups()}
    want = {f"{root}/{d.name}" for root in controls.GROUP_ROOTS for d in (CONFIG_DIR / root).iterdir() if d.is_dir()}
    assert set(gs) == want
    assert list(gs)[:2] == ["policy/hukou", "policy/land"]  # the defaults list's order
    assert gs["policy/land"].options == ("link", "link_strict", "off")
    lev = {v.path: v for v in gs["policy/hukou"].levers}
    conv = lev["policy.hukou.conversion_rate"]
    assert (conv.lo, conv.hi, conv.years) == (0.0, 1.0, True)
    assert lev["policy.hukou.big_city_factor"].hi == 5.0 and not lev["policy.hukou.big_city_factor"].years
    assert "policy.hukou.openness" not in lev and "policy.hukou.name" not in lev  # a map, a label: carried by the options
    assert "demography.fertility.srb" not in {v.path for v in gs["demography/fertility"].levers}  # null means the census ratio
    assert controls.nice_step(0.0, 1.0) == 0.005 and controls.nice_step(0.0, 50.0) == 0.5 and controls.nice_step(1.0, 1000.0) == 5.0


def test_slider_values_and_lever_values_round_trip():
    cfg = validate(compose_config(["scenario=plan"]))
    lev = next(v for g in controls.groups() for v in g.levers if v.path == "policy.hukou.conversion_rate")
    # full_opening: {2020: 0.05, 2023: 0.20, 2035: 0.30}, linear between: 2030 = 0.2 + 7/12 x 0.1
    assert controls.slider_values(cfg, lev) == pytest.approx((0.05, 0.2 + 7 / 12 * 0.1), rel=1e-12)
    assert controls.lever_value(lev, (0.05, 0.3), 2020) == {2020: 0.05, 2030: 0.3}
    assert controls.lever_value(lev, (0.1, 0.1), 2020) == 0.1  # equal: a constant path
    assert controls.lever_value(lev, (0.1 + 0.2, 0.4), 2020) == {2020: 0.3, 2030: 0.4}  # the float noise cleaned
    st = State("plan", {"policy/land": "off"}, {"policy.hukou.conversion_rate": {2020: 0.05, 2030: 0.3}, "policy.services.retention": 0.25})
    ovs = controls.overrides(st, ["geography=guangxi_prefectures"])
    assert ovs == ["geography=guangxi_prefectures", "scenario=plan", "policy/land=off", "policy.hukou.conversion_rate={2020:0.05,2030:0.3}", "policy.services.retention=0.25"]
    line = controls.command_line(ovs)
    assert shlex.split(line)[3:] == ovs and line.startswith("python -m sim ")
    got = validate(compose_config(shlex.split(line)[3:]))
    assert got.policy.hukou.conversion_rate == {2020: 0.05, 2030: 0.3} and got.policy.land.name == "off" and got.policy.services.retention == 0.25


def test_a_state_projects_what_the_command_line_run_of_its_overrides_gives(explorer, tmp_path):
    """Page states (a moved lever, a menu, a lever whose cached model has 0 there) against
    sim.outputs.job.run of their overrides: every target's projected value to 1e-9."""
    from sim.outputs.job import run
    from sim.outputs.targets import target_rows

    states = [
        State("trend"),
        State("trend", values={"policy.hukou.conversion_rate": {2020: 0.05, 2030: 0.3}}),
        State("trend", {"policy/land": "link"}, {"policy.land.base_quota": 0.0}),
        State("trend", values={"policy.land.m2_per_settled": 150.0}),  # the trend's model has 0 there: built afresh
        State("plan", values={"demography.fertility.tfr_multiplier": 0.9}),
    ]
    built = []
    for k, st in enumerate(states):
        res = explorer.run(st)
        built.append(res.built)
        cfg = validate(compose_config([*res.overrides, "figures.enabled=false"]))
        assert dataclasses.asdict(dataclasses.replace(cfg, figures=res.cfg.figures)) == dataclasses.asdict(res.cfg)
        ds = run(cfg, tmp_path / str(k), echo=False)
        want = {r["target"]: r["projected"] for r in target_rows(ds, cfg.targets)}
        got = {r["target"]: r["projected"] for r in res.rows}
        assert want.keys() == got.keys()
        for name in want:
            assert got[name] == pytest.approx(want[name], rel=1e-9, nan_ok=True), (st, name)
        np.testing.assert_allclose(res.ds.total_urban_share.values, ds.total_urban_share.values, rtol=1e-9)
    assert built[1] is False and built[3] is True  # a lever on the cached model; a 0 in the cached one: a new model


def test_the_levers_move_the_targets_in_the_documented_direction(explorer):
    def share35(st):
        return next(r["projected"] for r in explorer.run(st).rows if r["variable"] == "urban_share" and r["year"] == 2035)

    base = share35(State("trend"))
    assert share35(State("trend", values={"policy.hukou.conversion_rate": {2020: 0.05, 2030: 0.3}})) > base + 0.005
    assert share35(State("trend", {"policy/land": "link"})) > base  # more land: a weaker brake
    assert share35(State("trend", values={"policy.land.base_quota": 0.0})) < base - 0.005  # no new land: the brake binds


def test_a_bad_value_is_refused_with_the_command_lines_message(explorer):
    st = State("trend", values={"policy.hukou.conversion_rate": {2020: 0.05, 2030: 5.0}})
    with pytest.raises(ConfigError) as e:
        explorer.run(st)
    with pytest.raises(ConfigError) as ref:
        validate(compose_config(controls.overrides(st)))
    assert str(e.value) == str(ref.value)
    assert "policy.hukou.conversion_rate[2030] = 5.0" in str(e.value) and "0.0..1.0" in str(e.value)
    with pytest.raises(ConfigError, match="policy.land.brake_width"):
        explorer.run(State("trend", values={"policy.land.brake_width": -1.0}))


def test_choices_follow_the_scenario(explorer):
    ch = explorer.choices("plan")
    assert ch["policy/hukou"] == "full_opening" and ch["policy/land"] == "link" and ch["demography/fertility"] == "medium"
    assert explorer.choices("trend")["policy/hukou"] == "baseline"


def test_export_writes_the_run_and_its_command(explorer):
    from sim.explore.session import EXPORT_FILES

    st = State("trend", values={"policy.hukou.conversion_rate": {2020: 0.05, 2030: 0.2}})
    token, out = explorer.export(st)
    assert explorer.exports[token] == out and out.parent == explorer.out_dir
    for name in EXPORT_FILES:
        assert (out / name).is_file()
    line = (out / "overrides.txt").read_text().strip()
    assert line == controls.command_line([*controls.overrides(st), "figures.enabled=false"])
    with open(out / "targets.csv") as f:
        got = {r["target"]: float(r["projected"]) for r in csv.DictReader(f) if r["projected"] not in ("", "nan")}
    page = {r["target"]: r["projected"] for r in explorer.run(st).rows}
    for name, v in got.items():
        assert v == pytest.approx(page[name], rel=1e-9)


def test_an_ensemble_gives_bands_and_probabilities(tmp_path):
    from sim.explore.session import Explorer, guangxi_paths

    ex = Explorer(["params=calibrated_ensemble"], out_dir=tmp_path, draws=20)
    assert "draws.count=20" in ex.base
    res = ex.run(State("trend"))
    assert res.ds.sizes["draw"] == 20
    gx = guangxi_paths(res)
    assert np.all(gx["lo"] <= gx["mid"] + 1e-12) and np.all(gx["mid"] <= gx["hi"] + 1e-12) and np.any(gx["hi"] - gx["lo"] > 0.1)
    r25 = next(r for r in res.rows if r["op"] == ">=" and r["variable"] == "urban_share" and r["year"] == 2025)
    assert r25["probability"] == pytest.approx(np.mean(res.ds.total_urban_share.sel(year=2025).values >= r25["required"]))
    assert r25["projected"] == pytest.approx(np.median(res.ds.total_urban_share.sel(year=2025).values))


def test_map_values_gap_to_the_target(explorer):
    from sim.explore.session import map_values

    res = explorer.run(State("trend"))
    share, _ = map_values(res, 2035, "urban_share")
    gap, label = map_values(res, 2035, "target_gap")
    assert set(share) == set(map(str, res.ds.region.values))
    for k in share:
        assert gap[k] == pytest.approx(share[k] - 68.0)
    assert "68" in label


@pytest.mark.parametrize("args, field", [(["port=abc"], "port"), (["port=0"], "port"), (["draws=0"], "draws"), (["colour=red"], "unknown argument"), (["params=nope"], "params")])
def test_bad_command_line_exits_2_naming_the_field(args, field, capsys):
    from sim.explore.__main__ import main

    assert main(args) == 2
    assert field in capsys.readouterr().err
