"""Every config composes; bad values fail before computing, naming the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sim.config.compose import compose_config, register_configs
from sim.config.schema import Config, ConfigError, validate
from sim.config.values import year_map
from sim.engine.prepare import prepare

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
register_configs()


def all_options() -> list[str]:
    """``group=option`` for every YAML file of every config group (nested groups included)."""
    out = []
    for f in sorted(CONFIGS.rglob("*.yaml")):
        group = f.parent.relative_to(CONFIGS).as_posix()
        if group != "." and not group.startswith("hydra/"):  # launchers: tests/test_sweeps.py
            out.append(f"{group}={f.stem}")
    return out


def compose_cfg(overrides=()) -> Config:
    return compose_config(overrides)


@pytest.mark.parametrize("override", all_options())
def test_every_config_option_composes_and_validates(override):
    cfg = compose_cfg([override])
    assert isinstance(cfg, Config)
    prepare(cfg)  # validation against schema and inputs, model built


def test_scenario_plan_selects_its_levers():
    cfg = compose_cfg(["scenario=plan"])
    assert cfg.scenario == "plan" and cfg.policy.hukou.name == "full_opening" and cfg.policy.land.name == "link"
    assert cfg.policy.land.release_m2_per_leaver == 8.0 and cfg.policy.east_links.name == "on"
    assert len(all_options()) >= 35


@pytest.mark.parametrize(
    "overrides, field",
    [
        (["policy.hukou.conversion_rate={2020: -0.1}"], "policy.hukou.conversion_rate[2020]"),
        (["policy.reclassification.to_local_share=1.5"], "policy.reclassification.to_local_share"),
        (["demography.migration.timing=middle"], "demography.migration.timing"),
        (["end_year=2015"], "end_year"),
        (["policy.land.exempt_regions=[Atlantis]"], "policy.land.exempt_regions"),
        (["geography.regions=[Nanning,Springfield]"], "geography.regions"),
        (["+demography.migration.interregional.martians=0.1"], "demography.migration.interregional"),
        (["backend=cuda"], "backend"),
        (["demography.migration.student_ages=[19,15]"], "demography.migration.student_ages"),
        (["demography.migration.graduate_ages=[22]"], "demography.migration.graduate_ages"),
    ],
)
def test_bad_values_fail_with_the_field_name(overrides, field):
    cfg = compose_cfg(overrides)
    with pytest.raises(ConfigError) as e:
        prepare(cfg)
    assert str(e.value).startswith(field)
    assert "allowed" in str(e.value) or "must be" in str(e.value)


def test_type_errors_are_caught_by_the_schema():
    with pytest.raises(Exception, match="end_year"):
        compose_cfg(["end_year=soon"])


def test_year_map_interpolates_and_holds_flat():
    m = {2020: 0.02, 2030: 0.04}
    assert list(year_map(m, [2010, 2020, 2025, 2030, 2040])) == pytest.approx([0.02, 0.02, 0.03, 0.04, 0.04])


def test_validate_defaults():
    validate(Config())


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sim", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_cli_help_and_cfg_job():
    r = run_cli("--help")
    assert r.returncode == 0 and "policy/hukou" in r.stdout and "geography" in r.stdout
    r = run_cli("--cfg", "job", "end_year=2040", "policy/hukou=easing")
    assert r.returncode == 0
    job = OmegaConf.create(r.stdout)
    assert job.end_year == 2040 and job.policy.hukou.name == "easing"


def test_cli_bad_value_exits_with_message(tmp_path):
    r = run_cli("policy.reclassification.rate={2020: 2.0}", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 2
    assert "policy.reclassification.rate[2020] = 2.0: must be <= 1.0" in r.stderr
    assert not (tmp_path / "projection.nc").exists()


def test_schema_defaults_equal_the_default_yaml():
    # Config() (used by the Python API and tests) and `python -m sim` with no overrides agree
    # (the targets are data, kept only in configs/targets/; so are the calibrated parameters,
    # configs/params/calibrated.yaml, written by python -m calibration: Config() has the guesses)
    composed = compose_cfg()
    assert composed.targets.name == "guangxi_2021_2035" and len(composed.targets.targets) == 22
    assert composed.params.name == "calibrated" and Config().params.name == "default"
    composed.targets = Config().targets
    composed.params = Config().params
    assert composed == Config()


def test_region_subsets_by_name_or_prefecture():
    m = prepare(compose_cfg(["geography.regions=[Nanning,Liuzhou]"]))
    assert m.regions == ["Nanning", "Liuzhou"] and m.inputs.distance_km.shape == (2, 2)
    assert len(m.inputs.attrs["input_sha256"]) == 64
    m = prepare(compose_cfg(["geography=guangxi_counties", "geography.regions=[Beihai]"]))
    assert m.regions == ["450502", "450503", "450512", "450521"]  # Beihai's four counties and districts


def test_no_config_sets_hydra_mode():
    """sim.config.cli.skip_mode_composition relies on it: the mode comes from the flags."""
    from hydra import compose, initialize_config_dir

    from sim.config.compose import register_configs
    from sim.paths import CONFIG_DIR

    register_configs()
    scenarios = sorted(p.stem for p in (CONFIG_DIR / "scenario").glob("*.yaml"))
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for s in scenarios:
            cfg = compose(config_name="config", overrides=[f"scenario={s}"], return_hydra_config=True)
            assert cfg.hydra.mode is None, s
