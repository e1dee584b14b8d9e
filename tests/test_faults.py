"""Issue 43's reproducers: nothing silently wrong or stale, nothing outside its folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

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


# ------------------------------------------------ 2. resume reuses a result of the same code and inputs only
def test_resume_reruns_when_the_code_or_the_inputs_changed_and_says_why(tmp_path, monkeypatch, capsys):
    from sim.outputs import runs
    from sim.outputs.job import run
    from sim.outputs.runs import read_status, run_identity
    from tests.test_config import compose_cfg

    cfg = compose_cfg(["end_year=2021", "figures.enabled=false", "resume=true"])
    run(cfg, tmp_path, echo=False)
    st = read_status(tmp_path)
    assert {k: st[k] for k in ("config_sha256", "code_sha256", "inputs_sha256")} == run_identity(cfg)

    def stamp():
        return (tmp_path / "projection.nc").stat().st_mtime_ns

    before = stamp()
    run(cfg, tmp_path)
    assert stamp() == before and "complete, skipped (resume=true)" in capsys.readouterr().out
    for name, says in (("source_digest", "the code (sim, models, configs) changed"), ("inputs_digest", "the input files changed")):
        monkeypatch.setattr(runs, name, lambda *a: "0" * 64)
        run(cfg, tmp_path)
        assert stamp() != before and f"run again (resume=true): {says} since the stored result" in capsys.readouterr().out
        before = stamp()
        assert read_status(tmp_path)[{"source_digest": "code_sha256", "inputs_digest": "inputs_sha256"}[name]] == "0" * 64
        run(cfg, tmp_path)  # the new result is reused
        assert stamp() == before
        monkeypatch.undo()
        run(cfg, tmp_path, echo=False)
        before = stamp()


# ---------------------------------------------------------- 3. output= names a file of the run directory
@pytest.mark.parametrize("name", ["../x.nc", "/tmp/abs.nc", "sub/x.nc", ".hidden.nc", "x.zarr", "x" * 300 + ".nc", ""])
def test_an_output_outside_the_run_directory_is_refused(name):
    from sim.config.compose import compose_config
    from sim.config.schema import validate

    with pytest.raises(ConfigError, match=r"output = .*allowed values are file names ending in \.nc"):
        validate(compose_config([f"output='{name}'"]))


def test_an_output_name_in_the_run_directory_is_used(tmp_path):
    from sim.config.compose import compose_config
    from sim.outputs.job import run

    run(compose_config(["output=other.nc", "end_year=2021", "figures.enabled=false"]), tmp_path, echo=False)
    assert (tmp_path / "other.nc").is_file() and not (tmp_path / "projection.nc").exists()


# ----------------------------------------------------------------- 12. a refused run writes nothing
def test_a_refused_run_leaves_no_directory_and_an_earlier_run_its_files(tmp_path):
    r = cli("output=../x.nc", f"hydra.run.dir={tmp_path / 'new'}", *QUICK)
    assert r.returncode == 2 and r.stderr.startswith("config error: output = '../x.nc'")
    assert not (tmp_path / "new").exists() and not (tmp_path / "x.nc").exists()
    assert cli(f"hydra.run.dir={tmp_path / 'old'}", *QUICK).returncode == 0
    before = sorted(p.name for p in (tmp_path / "old").iterdir())
    r = cli("end_year=1999", f"hydra.run.dir={tmp_path / 'old'}", *QUICK[1:])
    assert r.returncode == 2 and sorted(p.name for p in (tmp_path / "old").iterdir()) == before


# ------------------------------------------------------------ 5. targets scored on the whole place only
def test_a_target_on_a_place_not_wholly_in_the_run_is_not_computable():
    from sim.config.compose import compose_config
    from sim.engine.prepare import prepare
    from sim.engine.runner import project
    from sim.outputs.dataset import to_dataset
    from sim.outputs.targets import target_rows

    def rows(*overrides):
        cfg = compose_config(["end_year=2025", *overrides])
        model = prepare(cfg)
        return {r["target"]: r for r in target_rows(to_dataset(model, project(model)), cfg.targets)}

    part = rows("geography.regions=[Nanning,Liuzhou]")
    whole = rows()
    for name in ("resident urbanization >=57% by 2025", "hukou urbanization on its 2013-2020 pace by 2025"):
        assert part[name]["met"].startswith("not computable: 12 of its regions not in the run (Guilin")
        assert np.isnan(part[name]["projected"]) and whole[name]["met"] in (True, False)
    assert part["Beibu Gulf six +5 points 2020-2025"]["met"].startswith("not computable: 5 of its regions")
    assert part["Guilin city proper > 1.5 M by 2025"]["met"] == "not computable: 1 of its regions not in the run (Guilin)"
    nanning = "Nanning city proper > 5 M by 2025"  # wholly in the run: scored (on the subset's own
    # dynamics: no moves from the regions left out)
    assert np.isfinite(part[nanning]["projected"]) and part[nanning]["met"] in (True, False)
    assert not any(str(r["met"]).startswith("not computable") for r in whole.values())


# ------------------------------------------------- 7. an unreachable target is called unreachable
def test_an_unreachable_target_is_out_of_reach_with_the_best_value_not_not_monotone():
    from sim.config.compose import compose_config
    from sim.outputs.solver import SolveError, solve

    with pytest.raises(SolveError) as e:  # Liuzhou's 3 M: far out of reach of hukou easing
        solve(compose_config(["end_year=2025"]), "Liuzhou city proper", "policy.hukou.conversion_rate", (0.0, 0.5), grid=4)
    msg = str(e.value)
    assert msg.startswith("the target cannot be met within bounds [0, 0.5]") and "not monotone" not in msg
    assert "the best," in msg and "at policy.hukou.conversion_rate = " in msg and "required >= 3e+06" in msg


# ---------------------------------------- 6. the hukou pace is scored on its change, whatever the basis
def test_the_hukou_pace_target_scores_the_change_from_the_jump_off_on_either_jump_off():
    from sim.config.compose import compose_config
    from sim.engine.prepare import prepare
    from sim.engine.runner import project
    from sim.outputs.dataset import to_dataset
    from sim.outputs.targets import series, target_rows

    name = "hukou urbanization on its 2013-2020 pace by 2025"
    for jump_off, level_2020 in (("census", 0.3328), ("auto", None)):
        cfg = compose_config(["end_year=2025", f"jump_off={jump_off}"])
        model = prepare(cfg)
        ds = to_dataset(model, project(model))
        h = series(ds, "Guangxi", "hukou_urban_share")
        if level_2020 is not None:  # the census split hits the official rate
            assert float(h.sel(year=2020)) == pytest.approx(level_2020, abs=1e-6)
        row = next(r for r in target_rows(ds, cfg.targets) if r["target"] == name)
        assert row["variable"] == "hukou_urban_share_change" and row["required"] == pytest.approx(0.105)
        assert row["projected"] == pytest.approx(float(h.sel(year=2025) - h.sel(year=2020)), abs=1e-12)


# ------------------------------------------------ 4. sim.collect refuses runs of other places or years
def test_collect_refuses_runs_of_other_regions_or_years_unless_outer(tmp_path, capsys):
    from sim.collect import main as collect_main
    from sim.config.compose import compose_config
    from sim.outputs.job import run

    quick = ["figures.enabled=false"]
    def job(d, *ovs):
        run(compose_config([*quick, *ovs]), d, echo=False, overrides=list(ovs))

    job(tmp_path / "years" / "0", "end_year=2022")
    job(tmp_path / "years" / "1", "end_year=2024")
    assert collect_main([str(tmp_path / "years")]) == 2
    err = capsys.readouterr().err
    assert "do not share their years" in err and "3 years, 2020..2022" in err and "5 years, 2020..2024" in err and "--outer" in err
    assert not (tmp_path / "years" / "collected.nc").exists()
    assert collect_main([str(tmp_path / "years"), "--outer"]) == 0
    job(tmp_path / "places" / "0", "end_year=2022", "geography.regions=[Nanning]")
    job(tmp_path / "places" / "1", "end_year=2022", "geography.regions=[]")
    assert collect_main([str(tmp_path / "places")]) == 2
    assert "do not share their regions" in capsys.readouterr().err


# ------------------------------------------------------- 10. a corrupt cache is built again, and logged
def _in_subprocess(cache: Path, *args) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "URBSIM_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "sim", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def test_corrupt_history_and_mortality_caches_are_rebuilt_and_named(tmp_path):
    cache = tmp_path / "cache"
    args = ["end_year=2021", "figures.enabled=false"]
    first = _in_subprocess(cache, *args, f"hydra.run.dir={tmp_path / 'a'}")
    assert first.returncode == 0, first.stderr[-2000:]
    history = sorted((cache / "history").glob("*.npz"))
    levels = sorted((cache / "mortality").glob("*.json"))
    assert history and levels
    history[0].write_bytes(history[0].read_bytes()[:100])  # truncated: BadZipFile
    levels[0].write_text('{"77.0|0.0002": NaN}')  # NaN where a level must be
    again = _in_subprocess(cache, *args, f"hydra.run.dir={tmp_path / 'b'}")
    assert again.returncode == 0, again.stderr[-2000:]
    log = (tmp_path / "b" / "__main__.log").read_text()
    assert f"{history[0]}: cache unreadable (BadZipFile" in log and f"{levels[0]}: cache unreadable (ValueError" in log
    a, b = (xr.open_dataset(tmp_path / d / "projection.nc") for d in ("a", "b"))
    np.testing.assert_array_equal(a.population.values, b.population.values)
    assert history[0].stat().st_size > 100  # written again


def test_a_truncated_derived_geography_is_derived_again(tmp_path, monkeypatch, caplog, shared_data):
    import logging

    from sim.inputs import load

    monkeypatch.setattr(load, "_LOADED", {})
    path = load.derived_path("china_prefectures", 2020, cache=str(tmp_path))
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 3])
    with caplog.at_level(logging.WARNING, logger="sim"):
        ds = load.load_inputs("china_prefectures", 2020, cache=str(tmp_path))
    assert f"{path}: cache unreadable" in caplog.text and ds.sizes["region"] > 300
    assert path.read_bytes() == good


# -------------------------------------------- 9. SIGTERM: an honest status, no process left behind
def _run_and_stop(run_dir: Path, *args) -> tuple[int, float]:
    """Start ``python -m sim`` in a session of its own, send SIGTERM to the whole group (as SLURM
    does at a time limit) once the run is under way, and wait: (exit code, seconds to stop)."""
    import json
    import os
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "sim", *args, f"hydra.run.dir={run_dir}"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:  # the run has started: it holds the lock (its pid written there)
        lock = run_dir / ".lock"
        if lock.is_file() and str(proc.pid) in lock.read_text():
            break
        time.sleep(0.05)
    time.sleep(0.3)  # inside the projection
    t0 = time.time()
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 143 or err.decode().strip().endswith("error: stopped by signal SIGTERM"), err.decode()[-2000:]
    took = time.time() - t0
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # nothing of the group left (the figure processes)
        os.killpg(proc.pid, 0)
    assert json  # used by the callers
    return proc.returncode, took


def test_sigterm_leaves_an_honest_status_and_no_process(tmp_path):
    import json

    from sim import files

    code, _ = _run_and_stop(tmp_path / "new", "end_year=2050")
    st = json.loads((tmp_path / "new" / files.STATUS).read_text())
    assert code == 128 + 15 and st["status"] == "failed" and st["error"] == "Terminated" and "SIGTERM" in st["message"]
    # a complete earlier result stays the directory's, the stop recorded beside it
    old = tmp_path / "old"
    assert cli(f"hydra.run.dir={old}", "end_year=2022", "figures.enabled=false").returncode == 0
    before = json.loads((old / files.STATUS).read_text())
    code, _ = _run_and_stop(old, "end_year=2050", "policy/hukou=easing")
    assert code == 143 and json.loads((old / files.STATUS).read_text()) == before
    assert "SIGTERM" in json.loads((old / files.FAILURE).read_text())["message"]


# ------------------------------------------- 11. the environment: one line naming the variable, exit 2
@pytest.mark.parametrize(
    "var, value, says",
    [
        ("URBSIM_MEMORY_LIMIT", "abc", "URBSIM_MEMORY_LIMIT = 'abc': allowed values are a size"),
        ("URBSIM_MEMORY_LIMIT", "nan", "URBSIM_MEMORY_LIMIT = 'nan': allowed values are a size"),
        ("URBSIM_MEMORY_LIMIT", "-5G", "URBSIM_MEMORY_LIMIT = '-5G': allowed values are a size"),
        ("URBSIM_MEMORY_LIMIT", "1K", "URBSIM_MEMORY_LIMIT = '1K': allowed values are a size of at least 1M"),
        ("URBSIM_MEMORY_LIMIT", "2M", "URBSIM_MEMORY_LIMIT = '2M' (2 MiB): one draw of this run needs about"),
        ("NUMBA_NUM_THREADS", "0", "NUMBA_NUM_THREADS = '0': allowed values are whole numbers >= 1"),
        ("NUMBA_NUM_THREADS", "two", "NUMBA_NUM_THREADS = 'two': allowed values are whole numbers >= 1"),
    ],
)
def test_bad_environment_variables_are_named_with_exit_2(tmp_path, var, value, says):
    import os

    env = {**os.environ, var: value}
    r = subprocess.run([sys.executable, "-m", "sim", *QUICK, f"hydra.run.dir={tmp_path / 'r'}"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [f"config error: {r.stderr.split('config error: ')[1].strip()}"] and says in r.stderr
    assert "draws.count" not in r.stderr and not (tmp_path / "r").exists()


# ------------------------------------------------------------------ 13. a region map given whole
def test_a_region_map_given_whole_on_the_command_line_replaces_the_field(tmp_path):
    from sim.config.cli import rewrite_overrides
    from sim.config.compose import compose_config
    from sim.config.schema import validate

    cfg = validate(compose_config(rewrite_overrides(["policy.hukou.openness={Nanning: 1.0}"])))
    assert cfg.policy.hukou.openness == {"Nanning": 1.0}
    cfg = validate(compose_config(rewrite_overrides(["policy/hukou=restricted_big_city", "policy.hukou.openness={Guilin: 0.5}"])))
    assert cfg.policy.hukou.openness == {"Guilin": 0.5}  # replaced whole, as a year-keyed map is
    with pytest.raises(ConfigError, match=r"policy.hukou.openness\[Nanning\] = 99: must be <= 10.0"):
        validate(compose_config(rewrite_overrides(["policy.hukou.openness={Nanning: 99}"])))
    with pytest.raises(ConfigError, match=r"policy.hukou.openness = 'abc': must be a map"):
        validate(compose_config(["policy.hukou.openness=abc"]))
    r = cli("policy.hukou.openness={Nanning: 1.0}", f"hydra.run.dir={tmp_path}", *QUICK)
    assert r.returncode == 0, r.stderr[-2000:]


def test_the_fit_and_the_holdout_refuse_their_inputs_before_fitting(tmp_path):
    future = tmp_path / "future.csv"
    future.write_text("year,region,variable,value\n2022,Guangxi,urban_share,0.56\n")
    r = cli(f"calibration.observed={future}", "calibration.write_params=false", f"hydra.run.dir={tmp_path / 'c'}", module="calibration", timeout=120)
    assert r.returncode == 2 and "calibration.observed: row 1 is for 2022, after the record; allowed: years up to 2020" in r.stderr
    r = cli("draws=0", module="calibration.holdout", timeout=120)
    assert r.returncode == 2 and "draws = 0: the holdout scores a posterior ensemble" in r.stderr


# ------------------------------- issue 46: land per urban resident against the national standard
def test_regions_beyond_the_national_land_standard_are_listed_in_report_and_html(tmp_path):
    from sim.config.compose import compose_config
    from sim.outputs.html import write_report
    from sim.outputs.job import run
    from sim.outputs.targets import LAND_STANDARD_M2, land_standard_lines

    ds = run(compose_config(["scenario=plan", "end_year=2050", "figures.enabled=false"]), tmp_path, echo=False)
    lines = land_standard_lines(ds)
    per = ds.land_per_urban_resident.isel(year=slice(1, None))
    beyond = [str(r) for r in per.region.values if float(per.sel(region=r).max()) > LAND_STANDARD_M2[1] or float(per.sel(region=r).min()) < LAND_STANDARD_M2[0]]
    assert beyond and lines[1].endswith(f"in {len(beyond)} region(s):") and [ln.split(":")[0].strip() for ln in lines[2:]] == beyond
    assert "(GB 50137-2011)" in (tmp_path / "report.txt").read_text()
    assert "GB 50137-2011" in write_report([str(tmp_path)], tmp_path / "r.html").read_text()


# ------------------------------------------------ 11. the file system: one line naming the path, exit 2
@pytest.mark.parametrize("where", ["file", "file/sub"])
def test_a_run_directory_that_cannot_be_made_is_named_in_one_line(tmp_path, where):
    (tmp_path / "file").write_text("not a directory")
    r = cli(f"hydra.run.dir={tmp_path / where}", *QUICK)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith(f"error: {tmp_path / where}: ") and "Traceback" not in r.stderr
    assert (tmp_path / "file").read_text() == "not a directory"
