"""Invariants under every valid config, refusals for every bad value, and sweeps that survive a
kill (hypothesis; ``HYPOTHESIS_PROFILE=full`` via ``make test-props`` for a larger run).

- Random valid configs: every option of every config group, numbers across their whole
  ranges (year-keyed ones as a number or a map), with and without uncertainty, both Guangxi
  geographies, short horizons: no stock or flow below zero (the run checks it and fails
  loudly), the accounting identity, moves out of regions equal moves into them, every bounded
  rate reported.
- Random bad values per field: the error names the field, exit code 2, no result written.
- A sweep killed at a random moment and resumed: every result exactly once, equal to the
  uninterrupted sweep.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config.compose import compose_config
from sim.config.schema import Config, ConfigError, validate
from sim.engine.prepare import prepare
from sim.engine.runner import project
from sim.outputs.dataset import to_dataset
from sim.outputs.job import run
from sim.outputs.runs import is_complete
from sim.outputs.targets import format_report
from sim.paths import CONFIG_DIR
from tests.properties.conftest import scaled

ROOT = Path(__file__).resolve().parents[2]
GROUPS = {
    g: sorted(p.stem for p in (CONFIG_DIR / g).glob("*.yaml"))
    for g in ("scenario", "demography/fertility", "demography/migration", "demography/mortality", *(f"policy/{p.name}" for p in sorted((CONFIG_DIR / "policy").iterdir()) if p.is_dir()))
}


def numeric_fields(obj=Config, path: str = "") -> list[tuple[str, float, float, bool, bool]]:
    """(dotted path, lo, hi, year-keyed, integer) of every bounded number of the policy and
    demography sections."""
    out = []
    for f in dataclasses.fields(obj):
        p = f"{path}.{f.name}" if path else f.name
        if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(sub := f.default_factory()):
            if path or f.name in ("policy", "demography"):
                out += numeric_fields(type(sub), p)
            continue
        lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
        if lo is None or hi is None or not path:
            continue
        if f.metadata.get("years") or f.type in ("float", "int", "Optional[float]"):
            out.append((p, float(lo), float(hi), bool(f.metadata.get("years")), f.type == "int"))
    return out


NUMERIC = numeric_fields()


def test_the_strategies_cover_every_lever_group_and_bounded_number():
    assert len(GROUPS) >= 10 and all(GROUPS.values())
    paths = {p for p, *_ in NUMERIC}
    assert {"policy.hukou.conversion_rate", "policy.land.m2_per_settled", "demography.migration.rural_to_urban", "demography.mortality.e0_female"} <= paths


def _number(draw, lo, hi, integer):
    if integer:
        return draw(st.integers(int(lo), int(hi)))
    return draw(st.one_of(st.sampled_from([lo, hi]), st.floats(lo, hi, allow_nan=False, allow_infinity=False)))


@st.composite
def valid_overrides(draw) -> list[str]:
    out = []
    for g, options in GROUPS.items():
        if draw(st.booleans()):
            out.append(f"{g}={draw(st.sampled_from(options))}")
    for path, lo, hi, years, integer in draw(st.lists(st.sampled_from(NUMERIC), max_size=6, unique=True)):
        if years and draw(st.booleans()):
            ys = draw(st.lists(st.integers(2015, 2060), min_size=1, max_size=3, unique=True))
            out.append(f"{path}={{{', '.join(f'{y}: {_number(draw, lo, hi, False)!r}' for y in ys)}}}")
        else:
            out.append(f"{path}={_number(draw, lo, hi, integer)!r}")
    if draw(st.booleans()):
        out += ["uncertainty.enabled=true", f"draws.count={draw(st.integers(1, 3))}"]
    out.append(f"end_year={draw(st.integers(2021, 2024))}")
    return out


def check_invariants(model, proj) -> None:
    ds = to_dataset(model, proj)
    pop = float(ds.residents.isel(year=0).sum())
    assert ds.attrs["accounting_max_abs_residual_persons"] <= 1e-9 * pop
    moves = ds.migration.sum(("region", "sex", "age"))
    np.testing.assert_allclose(moves.sel(flow="interregional_out").values, moves.sel(flow="interregional_in").values, rtol=1e-9, atol=1e-6)
    assert float(ds.capped_cells.sum()) == float(proj.capped.sum())
    report = format_report(ds, model.cfg.targets)
    for g in ds.cap.values:
        if float(ds.capped_cells.sel(cap=g).sum()) > 0:
            assert f"  {g}: " in report, g


@settings(max_examples=scaled(12))
@given(valid_overrides())
def test_random_valid_configs_keep_every_invariant_prefectures(overrides):
    cfg = validate(compose_config(overrides))
    model = prepare(cfg)
    check_invariants(model, project(model))  # project itself fails on a negative stock or flow


@settings(max_examples=scaled(3))
@given(valid_overrides())
def test_random_valid_configs_keep_every_invariant_counties(overrides):
    cfg = validate(compose_config(["geography=guangxi_counties", "od_flows=false", *overrides]))
    model = prepare(cfg)
    check_invariants(model, project(model))


# ----------------------------------------------------------------------------- bad values
@st.composite
def bad_override(draw) -> tuple[str, str]:
    path, lo, hi, years, integer = draw(st.sampled_from(NUMERIC))
    span = max(hi - lo, 1.0)
    kind = draw(st.sampled_from(["below", "above", "text"] + (["not_a_year"] if years else [])))
    if kind == "below":
        v = lo - draw(st.floats(1e-3, 10.0)) * span
        value = repr(int(np.floor(v)) if integer else v)
    elif kind == "above":
        v = hi + draw(st.floats(1e-3, 10.0)) * span
        value = repr(int(np.ceil(v)) if integer else v)
    elif kind == "text":
        value = "abc"
    else:
        value = f"{{{draw(st.integers(0, 1000))}: {lo!r}}}"
    return path, f"{path}={value}"


@settings(max_examples=scaled(20))
@given(bad_override())
def test_a_bad_value_names_its_field_before_anything_is_written(bad):
    path, override = bad
    with tempfile.TemporaryDirectory() as d:
        with pytest.raises(ConfigError) as err:
            run(compose_config([override, "end_year=2022", "quiet=true"]), d)
        assert path in str(err.value)
        assert list(Path(d).iterdir()) == []


@settings(max_examples=scaled(2))
@given(bad_override())
def test_a_bad_value_on_the_command_line_exits_2_with_one_line(bad):
    path, override = bad
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([sys.executable, "-m", "sim", override, "end_year=2022", f"hydra.run.dir={d}/run"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 2, r.stderr
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("config error: ") and path in last and "Traceback" not in r.stderr
        assert not any(p.suffix in (".nc", ".csv", ".txt", ".json") for p in Path(d).rglob("*"))


# ----------------------------------------------------------------------------- kill and resume
SWEEP = ["-m", "end_year=2024", "figures.enabled=false", "quiet=true", "policy/hukou=baseline,easing,full_opening"]


def _sweep(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sim", *SWEEP, *extra, f"hydra.sweep.dir={out}"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


@pytest.fixture(scope="module")
def reference_sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    assert _sweep(out).wait(timeout=600) == 0
    return out


@settings(max_examples=scaled(2))
@given(delay=st.floats(0.5, 12.0))
def test_a_sweep_killed_anywhere_resumes_to_the_same_results(reference_sweep, delay):
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "sweep"
        p = _sweep(out)
        time.sleep(delay)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=60)
        assert _sweep(out, "resume=true").wait(timeout=600) == 0
        for j in ("0", "1", "2"):
            assert is_complete(out / j)
            assert sorted(x.name for x in (out / j).rglob("*.nc")) == ["projection.nc"]  # exactly once
            assert not list((out / j).glob(".*.tmp")) and not (out / j / ".staging").exists()
            with xr.open_dataset(out / j / "projection.nc") as a, xr.open_dataset(reference_sweep / j / "projection.nc") as b:
                for k in b.data_vars:
                    np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)
