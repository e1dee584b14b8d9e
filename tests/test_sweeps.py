"""Sweeps: jobs with status and resume, the joblib and SLURM launchers, draw slices, collect."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from sim.__main__ import job_threads
from sim.collect import main as collect_main
from sim.config.schema import ConfigError
from sim.outputs.collection import collect, find_jobs, open_collected
from sim.outputs.job import run
from sim.outputs.runs import is_complete, read_status
from tests.test_config import compose_cfg

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["end_year=2026", "figures.enabled=false", "quiet=true"]


def sweep(tmp: Path, *overrides: str, launcher: str | None = None, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "sim", "-m", *QUICK, *overrides, f"hydra.sweep.dir={tmp}"]
    if launcher:
        args.append(f"hydra/launcher={launcher}")
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def assert_same_results(a: xr.Dataset, b: xr.Dataset) -> None:
    assert set(a.data_vars) == set(b.data_vars)
    for k in a.data_vars:
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)


# --------------------------------------------------------------------------------- threads
def test_job_threads_never_oversubscribe_the_cores():
    joblib = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": -1}
    assert job_threads(joblib, env={}, cores=2) == 1  # 2 workers x 1 thread
    assert job_threads({**joblib, "n_jobs": 1}, env={}, cores=2) == 2
    assert job_threads({**joblib, "n_jobs": -2}, env={}, cores=8) == 1  # 7 workers
    assert job_threads({**joblib, "n_jobs": 3}, env={}, cores=8) == 2
    assert job_threads({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, env={}, cores=2) is None
    assert job_threads(joblib, env={"SLURM_CPUS_PER_TASK": "4"}, cores=2) == 4


# --------------------------------------------------------------------------------- status and resume
def test_status_and_resume_in_process(tmp_path):
    cfg = compose_cfg(QUICK)
    ds = run(cfg, tmp_path)
    st = read_status(tmp_path)
    assert st["status"] == "ok" and set(st["files"]) >= {"projection.nc", "targets.csv", "report.txt"}
    assert is_complete(tmp_path)
    stamp = (tmp_path / "projection.nc").stat().st_mtime_ns
    cfg.resume = True
    again = run(cfg, tmp_path)
    assert (tmp_path / "projection.nc").stat().st_mtime_ns == stamp  # skipped, not rewritten
    assert_same_results(ds, again)
    # another config in the same directory is not taken for finished
    other = compose_cfg([*QUICK, "resume=true", "policy/hukou=full_opening"])
    run(other, tmp_path)
    assert (tmp_path / "projection.nc").stat().st_mtime_ns != stamp


def test_failed_job_records_its_error(tmp_path):
    cfg = compose_cfg([*QUICK, "end_year=2019"])
    with pytest.raises(ConfigError):
        run(cfg, tmp_path / "single")
    assert not (tmp_path / "single").exists()  # a single run refused writes nothing
    with pytest.raises(ConfigError):
        run(cfg, tmp_path, record_refusal=True)  # a sweep's job says why it did not run
    st = read_status(tmp_path)
    assert st["status"] == "failed" and st["error"] == "ConfigError" and "end_year = 2019" in st["message"]
    assert "Traceback" in st["traceback"] and not is_complete(tmp_path)


@pytest.mark.slow
def test_resume_after_an_interrupted_sweep_redoes_only_the_unfinished_jobs(tmp_path):
    levers = ["policy/hukou=baseline,easing,full_opening"]
    ref = tmp_path / "uninterrupted"
    sweep(ref, *levers)
    swp = tmp_path / "interrupted"
    shutil.copytree(ref, swp)
    # job 1 died while writing: its status says running and a partial temporary file lies beside
    st1 = read_status(swp / "1")
    (swp / "1" / "status.json").write_text(json.dumps({**st1, "status": "running", "files": None}))
    (swp / "1" / ".projection.nc.abc123.tmp").write_bytes(b"CDF\x01partial")
    (swp / "1" / "projection.nc").unlink()
    # job 2's file was cut short after its status was written (a node failure mid-copy)
    nc2 = swp / "2" / "projection.nc"
    nc2.write_bytes(nc2.read_bytes()[:1000])
    stamp0 = (swp / "0" / "projection.nc").stat().st_mtime_ns
    assert [j.status for j in find_jobs(swp)] == ["ok", "incomplete", "incomplete"]

    r = sweep(swp, *levers, "resume=true")
    assert "complete, skipped" in r.stdout + r.stderr or (swp / "0" / "projection.nc").stat().st_mtime_ns == stamp0
    assert (swp / "0" / "projection.nc").stat().st_mtime_ns == stamp0  # finished job not redone
    for j in ("0", "1", "2"):
        assert is_complete(swp / j)
        assert sorted(p.name for p in (swp / j).glob("*.nc")) == ["projection.nc"]  # exactly once
        assert not list((swp / j).glob(".*.tmp"))
        with xr.open_dataset(swp / j / "projection.nc") as a, xr.open_dataset(ref / j / "projection.nc") as b:
            assert_same_results(a, b)


# --------------------------------------------------------------------------------- joblib, collect

@pytest.mark.slow
def test_joblib_sweep_is_collected_with_lever_coordinates(tmp_path):
    swp = tmp_path / "sweep"
    sweep(swp, "scenario=trend,plan", "policy/hukou=baseline,full_opening", launcher="joblib")
    assert collect_main([str(swp)]) == 0
    ds = open_collected(swp / "collected.nc")
    assert ds.sizes["scenario"] == 4 and "draw" not in ds.dims
    assert sorted(ds["policy.hukou"].values) == ["baseline", "baseline", "full_opening", "full_opening"]
    assert sorted(ds["scenario_name"].values) == ["plan", "plan", "trend", "trend"]
    # selection by lever value, and the lever moves hukou urbanization the documented way
    trend = ds.sel(scenario=ds.scenario_name == "trend")
    base = float(trend.sel({"policy.hukou": "baseline"}).total_hukou_urban_share.sel(year=2026).item())
    full = float(trend.sel({"policy.hukou": "full_opening"}).total_hukou_urban_share.sel(year=2026).item())
    assert full > base
    # each job equals the same config run in-process
    one = run(compose_cfg([*QUICK, "scenario=plan", "policy/hukou=full_opening"]), tmp_path / "single")
    lab = [s for s in ds.scenario.values if "scenario=plan" in s and "full_opening" in s]
    got = ds.sel(scenario=lab[0])
    for k in one.data_vars:
        np.testing.assert_array_equal(got[k].values, one[k].values, err_msg=k)
    # compare and report read each collected run's own config (its targets)
    from sim.outputs.runs import load_runs, targets_of

    runs = load_runs([swp / "collected.nc"])
    assert len(runs) == 4 and all(targets_of(r).targets == targets_of(one).targets for r in runs.values())
    assert len(targets_of(one).targets) > 0
    # the table: every target of every job, with the levers
    table = (swp / "collected_targets.csv").read_text().splitlines()
    assert table[0].startswith("job,status,label,scenario_name,policy.hukou")
    n_targets = len((swp / "0" / "targets.csv").read_text().splitlines()) - 1
    assert n_targets > 0 and len(table) == 1 + 4 * n_targets


@pytest.mark.slow
def test_collect_mixed_successful_and_failed_jobs(tmp_path, capsys):
    swp = tmp_path / "sweep"
    r = sweep(swp, "end_year=2026,2019", check=False)
    assert r.returncode != 0  # Hydra reports the failed job after running the others
    jobs = find_jobs(swp)
    assert [j.status for j in jobs] == ["ok", "failed"]
    assert "end_year = 2019" in jobs[1].message
    ds, _, rows = collect(swp)
    assert ds.sizes["scenario"] == 1 and str(ds.scenario.values[0]) == "end_year=2026"
    assert json.loads(ds.attrs["jobs_not_collected"])[0]["status"] == "failed"
    failed = [row for row in rows if row["status"] == "failed"]
    assert len(failed) == 1 and "end_year = 2019" in failed[0]["message"]
    assert collect_main([str(swp)]) == 0 and collect_main([str(swp), "--strict"]) == 1
    assert "failed" in capsys.readouterr().err


@pytest.mark.slow
def test_draw_slices_reassemble_to_the_single_job_ensemble(tmp_path):
    unc = ["uncertainty.enabled=true"]
    swp = tmp_path / "slices"
    sweep(swp, *unc, "draws.count=2", "draws.start=0,2,4")
    whole = run(compose_cfg([*QUICK, *unc, "draws.count=6"]), tmp_path / "whole")
    ds, _, _ = collect(swp)
    got = ds.isel(scenario=0)
    assert list(got.draw.values) == list(range(6))
    for k in whole.data_vars:
        np.testing.assert_array_equal(got[k].values, whole[k].values, err_msg=k)
    # draws differ from each other (the uncertainty is real) and are reproducible
    share = whole.total_urban_share.sel(year=2026).values
    assert np.unique(share).size == 6
    # Zarr, when asked for, holds the same
    assert collect_main([str(swp), "--format", "zarr", "--out", str(tmp_path / "z")]) == 0
    z = open_collected(tmp_path / "z" / "collected.zarr")
    np.testing.assert_array_equal(z.total_urban_share.values, ds.total_urban_share.values)


def test_overlapping_slices_and_bad_arguments_are_refused(tmp_path, capsys):
    for d, start in (("a", 0), ("b", 1)):
        run(compose_cfg([*QUICK, "uncertainty.enabled=true", "draws.count=2", f"draws.start={start}"]), tmp_path / d, overrides=["draws.count=2", f"draws.start={start}"])
    assert collect_main([str(tmp_path)]) == 2
    assert "draw slices overlap at draw 1" in capsys.readouterr().err
    assert collect_main([str(tmp_path), "--format", "parquet"]) == 2
    assert collect_main([str(tmp_path), "--compression", "10"]) == 2
    err = capsys.readouterr().err
    assert "allowed values are netcdf, zarr" in err and "--compression = 10: allowed values are 0-9" in err
    assert collect_main([str(tmp_path / "nowhere")]) == 2


# --------------------------------------------------------------------------------- SLURM
def _need_slurm():
    if shutil.which("sbatch") and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0:
        return
    msg = "no SLURM here (sbatch/sinfo missing or no controller); .ci/slurm-up starts one"
    if os.environ.get("SIM_REQUIRE_SLURM"):
        pytest.fail(f"SIM_REQUIRE_SLURM is set but {msg}")
    pytest.skip(msg)


@pytest.mark.slow
def test_slurm_sweep_through_submitit(tmp_path):
    _need_slurm()
    swp = tmp_path / "slurm"
    sweep(swp, "scenario=trend,plan", "policy/hukou=baseline,full_opening", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10", launcher="slurm")
    jobs = find_jobs(swp)
    assert [j.status for j in jobs] == ["ok"] * 4
    st = read_status(swp / "0")
    assert st["slurm"]["SLURM_CPUS_PER_TASK"] == "1" and st["slurm"]["SLURM_ARRAY_TASK_ID"] == "0"
    assert collect_main([str(swp)]) == 0
    ds = open_collected(swp / "collected.nc")
    assert ds.sizes["scenario"] == 4
    one = run(compose_cfg([*QUICK, "scenario=trend", "policy/hukou=full_opening"]), tmp_path / "single")
    lab = [s for s in ds.scenario.values if "scenario=trend" in s and "full_opening" in s][0]
    np.testing.assert_array_equal(ds.sel(scenario=lab).population.values, one.population.values)


def test_warmup_fills_the_cache_for_every_layout():
    from sim.warmup import warmup

    info = warmup()
    cache = Path(os.environ.get("NUMBA_CACHE_DIR", ROOT / "sim" / "__pycache__"))
    names = " ".join(p.name for p in cache.rglob("*.nbi"))
    assert all(f in names for f in ("_step_serial", "_step_by_draw", "_step_by_region", "_summary"))
    assert info["seconds"] > 0
