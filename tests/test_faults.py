"""Issue 43's reproducers: nothing silently wrong or stale, nothing outside its folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sim.config.cli import check_group_choices
from sim.config.schema import ConfigError

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["end_year=2022", "figures.enabled=false", "quiet=true"]


def cli(*args: str, module: str = "sim", timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------ 8. a group option is a name of configs/
@pytest.fixture
def secret(tmp_path):
    f = tmp_path / "secret.yaml"
    f.write_text("password: hunter2\n")
    return f


def _relative(target: Path) -> str:
    """``target`` (without .yaml) as a path relative to configs/policy/hukou."""
    return "../" * (len((ROOT / "configs" / "policy" / "hukou").parts) - 1) + str(target.with_suffix("")).lstrip("/")


@pytest.mark.parametrize(
    "arg",
    [
        "policy/hukou={rel}",
        "policy/hukou=baseline,{rel}",
        "policy/hukou=choice(baseline,{rel})",
        "policy/hukou=/etc/passwd",
        "policy/../../../tmp=secret",
        "hydra/launcher=../../{rel}",
        "params='{rel}'",
    ],
)
def test_a_group_choice_that_is_a_path_is_refused_before_reading(arg, secret):
    arg = arg.format(rel=_relative(secret))
    with pytest.raises(ConfigError) as e:
        check_group_choices([arg])
    assert "hunter2" not in str(e.value) and "password" not in str(e.value)


def test_group_choices_that_are_options_pass():
    check_group_choices(["policy/hukou=baseline,easing", "policy/hukou=choice(easing,full_opening)", "policy/hukou=glob(*)", "params=null"])


def test_a_path_as_group_choice_on_the_command_line_exits_2_and_echoes_nothing(secret, tmp_path):
    r = cli(f"policy/hukou={_relative(secret)}", f"hydra.run.dir={tmp_path / 'run'}", *QUICK)
    assert r.returncode == 2, r.stderr
    assert "no such option; allowed values are baseline" in r.stderr
    assert "hunter2" not in r.stderr + r.stdout and "password" not in r.stderr + r.stdout
    assert not (tmp_path / "run").exists()
