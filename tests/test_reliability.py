"""Issue 18's reproducers: bounded rates and their report, year-keyed values, run directories,
memory, corrupt files, the derivation's and the observed files' checks, figure years, one error
style, the target report's bands."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.axes import CAP_GROUPS
from sim.config.cli import rewrite_overrides, year_keyed_fields
from sim.config.compose import compose_config
from sim.config.schema import ConfigError, validate
from sim.config.values import year_map
from sim.engine.invariants import NegativeValueError, check_projection
from sim.engine.memory import estimate_bytes
from sim.engine.prepare import prepare
from sim.engine.runner import project
from sim.outputs.dataset import to_dataset
from sim.outputs.job import RunDirBusy, run, run_lock
from sim.outputs.runs import RunFileError, is_complete, open_run, read_status
from sim.outputs.targets import format_report

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["end_year=2023", "figures.enabled=false", "quiet=true"]


def cli(*args: str, module: str = "sim", timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- 1. bounded rates
def test_a_conversion_rate_above_one_after_the_multiplier_is_bounded_counted_and_reported():
    cfg = compose_config(["end_year=2022", "policy.hukou.conversion_rate={2020: 0.5}"])
    model = prepare(cfg)
    proj = project(model)
    assert proj.population.min() >= 0 and proj.settled.min() >= 0
    capped = proj.capped.sum(axis=(0, 1))  # (region, group)
    c = CAP_GROUPS.index("hukou_conversion")
    assert capped[:, c].sum() > 0  # the calibrated multiplier (x2.1) takes 0.5 past 1
    assert capped[:, [i for i in range(len(CAP_GROUPS)) if i != c]].sum() == 0
    # a bounded rate empties the cell of the ages where it applies, and no more: settled equals
    # the urban migrants there before conversion
    ds = to_dataset(model, proj)
    assert ds.capped_cells.dims == ("year", "region", "cap")
    report = format_report(ds, cfg.targets)
    assert "Rates bounded at 1" in report and "hukou_conversion:" in report
    # the numpy reference bounds and counts the same
    ref = project(model, backend="numpy")
    np.testing.assert_allclose(ref.population, proj.population, rtol=1e-10, atol=1e-6)
    np.testing.assert_array_equal(ref.capped, proj.capped)


def test_reclassification_above_one_is_bounded():
    cfg = compose_config(["end_year=2022", "policy.reclassification.rate=1.0", "params=default", "+params.factors.reclassification=3.0"])
    proj = project(prepare(cfg))
    assert proj.population.min() >= 0
    assert proj.capped[..., CAP_GROUPS.index("reclassification")].sum() > 0
    hit = proj.capped[..., CAP_GROUPS.index("reclassification")] > 0  # (year, draw, region)
    rural = proj.population[:, :, :, 0].sum(axis=(-2, -1))
    assert hit.any() and np.abs(rural[hit]).max() < 1e-6  # every rural resident reclassified there, none below zero


def test_the_invariant_check_names_the_first_negative_cell():
    cfg = compose_config(["end_year=2022"])
    model = prepare(cfg)
    proj = project(model)
    proj.population[2, 0, 3, 1, 0, 40] = -5.0
    with pytest.raises(NegativeValueError, match=r"population = -5 persons at year 2022, draw 0, region Wuzhou, state urban_local, sex female, age 40"):
        check_projection(proj, model.inputs.region.values)


# ----------------------------------------------------------------------------- 2. year-keyed values
def test_year_keyed_values_any_years_any_order_or_a_number():
    cfg = compose_config(["policy.reclassification.rate={2030: 0.008, 2020: 0.004}"])
    validate(cfg)
    assert cfg.policy.reclassification.rate == {2020: 0.004, 2030: 0.008}
    assert year_map(cfg.policy.reclassification.rate, [2025])[0] == pytest.approx(0.006)
    cfg = validate(compose_config(["policy.hukou.conversion_rate=0.07"]))
    assert year_map(cfg.policy.hukou.conversion_rate, [2021, 2049]).tolist() == [0.07, 0.07]
    for bad, msg in (
        ("policy.hukou.conversion_rate=-0.1", r"policy.hukou.conversion_rate = -0.1: must be >= 0.0 \(allowed range 0.0..1.0\)"),
        ("policy.hukou.conversion_rate={2020: 1.5}", r"policy.hukou.conversion_rate\[2020\] = 1.5: must be <= 1.0"),
        ("policy.hukou.conversion_rate={20: 0.1}", r"key 20 is not a year"),
        ("policy.hukou.conversion_rate=abc", r"must be a number .* or a map"),
    ):
        with pytest.raises(ConfigError, match=msg):
            validate(compose_config([bad]))
    assert "policy.land.base_quota" in year_keyed_fields()
    assert rewrite_overrides(["+policy.land.base_quota={2020: 0.01}", "end_year=2030", "policy.land.base_quota={2020: 0.1},{2020: 0.2}"]) == [
        "policy.land.base_quota='{2020: 0.01}'", "end_year=2030", "policy.land.base_quota='{2020: 0.1}','{2020: 0.2}'"]


@pytest.mark.slow
def test_the_readme_example_and_every_bad_value_read_the_same_way(tmp_path):
    r = cli(*QUICK, "policy.reclassification.rate={2020: 0.004, 2030: 0.008}", f"hydra.run.dir={tmp_path / 'ok'}")
    assert r.returncode == 0, r.stderr
    for args, msg in (
        (["policy.hukou.conversion_rate=-0.1"], "config error: policy.hukou.conversion_rate = -0.1: must be >= 0.0"),
        (["end_year=abc"], "config error: end_year = 'abc'"),
        (["policy.hukou.bogus=1"], "config error: policy.hukou.bogus: no such field; allowed keys of policy.hukou: name, conversion_rate"),
        (["figures.enabled=true", "figures.map_year=2099"], "config error: figures.map_year = 2099: not a year of the projection; allowed: 2020..2023"),
    ):
        r = cli(*QUICK, *args, f"hydra.run.dir={tmp_path / 'bad'}")
        assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith(msg), r.stderr
        assert "HYDRA_FULL_ERROR" not in r.stderr and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- 3. run directories
def test_a_failed_config_leaves_a_complete_run_its_own(tmp_path):
    cfg = compose_config(QUICK)
    run(cfg, tmp_path)
    before = (tmp_path / "status.json").read_bytes()
    with pytest.raises(ConfigError):
        run(compose_config([*QUICK, "end_year=2019"]), tmp_path)
    with pytest.raises(ConfigError):
        run(compose_config([*QUICK, "geography.regions=[Atlantis]"]), tmp_path)
    assert (tmp_path / "status.json").read_bytes() == before and is_complete(tmp_path)


def test_a_rerun_publishes_one_set_and_removes_the_old_ones_files(tmp_path):
    run(compose_config([*QUICK, "figures.enabled=true", "figures.formats=[png,svg]"]), tmp_path)
    (tmp_path / "report.html").write_text("<html>old</html>")
    run(compose_config([*QUICK, "figures.enabled=true", "figures.formats=[png]"]), tmp_path)
    figs = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert figs and all(f.endswith(".png") for f in figs)
    assert not (tmp_path / "report.html").exists() and not (tmp_path / ".staging").exists()
    st = read_status(tmp_path)
    assert set(st["files"]) == {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() and not p.name.startswith(".") and p.name != "status.json"}
    assert "config.yaml" in st["files"]


def test_a_second_writer_is_refused(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    with run_lock(tmp_path):
        with pytest.raises(RunDirBusy, match="another run is writing into this directory"):
            run(compose_config(QUICK), tmp_path)
    assert not (tmp_path / "projection.nc").exists()
    run(compose_config(QUICK), tmp_path)  # the lock is released with its holder
    assert is_complete(tmp_path)


# ----------------------------------------------------------------------------- 4. memory
def test_a_run_that_cannot_fit_is_refused_before_allocating(monkeypatch):
    with pytest.raises(ConfigError, match=r"draws.count = 100,000: this run needs about [\d.]+ GiB .* available; try fewer draws per job"):
        prepare(compose_config(["draws.count=100000", "uncertainty.enabled=true"]))
    monkeypatch.setenv("URBSIM_MEMORY_LIMIT", "100M")
    with pytest.raises(ConfigError, match="needs about"):
        prepare(compose_config(["draws.count=50", "uncertainty.enabled=true"]))
    # the estimate grows with what the run keeps
    small = estimate_bytes(years=15, draws=10, regions=14, full=True, od=True, per_draw=True)
    assert estimate_bytes(years=15, draws=20, regions=14, full=True, od=True, per_draw=True) == pytest.approx(2 * small, rel=0.01)
    assert estimate_bytes(years=15, draws=10, regions=14, full=False, od=True, per_draw=True) < small / 50


# ----------------------------------------------------------------------------- 5. corrupt files
@pytest.mark.slow
def test_a_truncated_projection_gives_one_line_and_exit_2(tmp_path):
    run(compose_config(QUICK), tmp_path / "run")
    nc = tmp_path / "run" / "projection.nc"
    nc.write_bytes(nc.read_bytes()[:2000])
    with pytest.raises(RunFileError, match="SHA-256 differs"):
        open_run(nc)
    loose = tmp_path / "loose.nc"
    shutil.copy(nc, loose)
    with pytest.raises(RunFileError, match="not a readable netCDF file"):
        open_run(loose)
    for module, args in (("sim.compare", [str(tmp_path / "run"), str(tmp_path / "run")]), ("sim.report", [str(tmp_path / "run")]),
                         ("calibration.backtest", [f"projection={loose}", "observed=sim/data/guangxi_observed.csv"])):
        r = cli(*args, module=module)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and str(tmp_path) in r.stderr, (module, r.stderr)


# ----------------------------------------------------------------------------- 6. sim.derive
def _copy_tables(shared_data, dst):
    shutil.copytree(shared_data, dst)
    return dst


def _edit_cell(path: Path, code: str, column: str, value: str) -> int:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    i = rows[0].index(column)
    n = next(k for k, r in enumerate(rows) if r and r[0] == code)
    rows[n][i] = value
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return n + 1  # the file's line


@pytest.mark.slow
def test_derive_checks_every_table_first_and_writes_all_or_nothing(shared_data, tmp_path):
    from sim.inputs.derive import DerivationError, derive_all

    census = _copy_tables(shared_data, tmp_path / "census")
    out = tmp_path / "out"
    out.mkdir()
    table = census / "census_county_2020.csv"
    line = _edit_cell(table, "450102", "城镇人口", "12a")
    with pytest.raises(DerivationError, match=rf"census_county_2020.csv line {line}, column '城镇人口': '12a' is not a number"):
        derive_all(census, out, echo=lambda *_: None)
    _edit_cell(table, "450102", "城镇人口", "-3")
    with pytest.raises(DerivationError, match=rf"line {line}, column '城镇人口': '-3': counts must be finite and non-negative"):
        derive_all(census, out, echo=lambda *_: None)
    text = table.read_text(encoding="utf-8").replace("城镇人口", "城镇人", 1)
    table.write_text(text, encoding="utf-8")
    with pytest.raises(DerivationError, match="missing column.*'城镇人口'"):
        derive_all(census, out, echo=lambda *_: None)
    assert list(out.iterdir()) == []  # nothing written, not even a temporary file
    r = cli("--census", str(shared_data), "--out", str(tmp_path / "missing"), module="sim.derive")
    assert r.returncode == 2 and "derive error: --out" in r.stderr and "no such folder" in r.stderr


# ----------------------------------------------------------------------------- 7. observed files
def test_observed_files_bom_duplicates_negatives_and_chinese_names(tmp_path):
    from calibration.backtest import read_observed

    p = tmp_path / "obs.csv"
    p.write_bytes("\ufeffyear,region,variable,value\n2020,南宁市,population,8741584\n2020,广西,urban_share,0.542\n".encode("utf-8"))
    rows = read_observed(p, regions=["Guangxi", "Nanning"], aliases={"南宁市": "Nanning"})
    assert [(r["region"], r["variable"]) for r in rows] == [("Nanning", "population"), ("Guangxi", "urban_share")]
    p.write_text("year,region,variable,value\n2020,Nanning,population,1\n2021,Nanning,population,2\n2020,Nanning,population,3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"row 3 \(line 4\): population of Nanning in 2020 is already given in row 1"):
        read_observed(p)
    p.write_text("year,region,variable,value\n2020,Nanning,population,-1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"row 1 \(line 2\), column value: population -1.0 must not be negative"):
        read_observed(p)


# ----------------------------------------------------------------------------- 8. figure years
def test_figure_years_out_of_the_projection_are_refused_and_null_means_the_default():
    for key, value, allowed in (("map_year", 2099, "2020..2030"), ("pyramid_year", 1990, "2020..2030"), ("flows_year", 2020, "2021..2030")):
        with pytest.raises(ConfigError, match=rf"figures.{key} = {value}: not a year of the projection.*allowed: {allowed}"):
            validate(compose_config(["end_year=2030", f"figures.{key}={value}"]))
    validate(compose_config(["end_year=2030"]))  # defaults (null) fit any horizon
    validate(compose_config(["end_year=2030", "figures.enabled=false", "figures.map_year=2099"]))  # no figures: not checked


# ----------------------------------------------------------------------------- 10. the target report
def test_a_band_target_says_which_side_it_misses_and_prints_its_band():
    cfg = compose_config(["end_year=2036"])
    ds = to_dataset(prepare(cfg), project(prepare(cfg)))
    text = format_report(ds, cfg.targets)
    line = next(ln for ln in text.splitlines() if ln.startswith("resident urbanization ~57% by 2023"))
    assert "~57.00% ±1.00pt" in line
    share = float(ds.total_urban_share.sel(year=2023))
    side = "yes" if abs(share - 0.57) <= 0.01 else ("above the band" if share > 0.57 else "below the band")
    assert side in line
