"""The batched launcher (hydra/launcher=batched): jobs stacked along the kernel's draw axis equal
their per-job runs; what cannot be batched runs on the per-job path and says so."""

from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from sim.collect import main as collect_main
from sim.config.compose import compose_config
from sim.config.schema import validate
from sim.outputs.batch import plan

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["end_year=2027", "figures.enabled=false", "quiet=true"]
LEVERS = ["policy.hukou.conversion_rate=0.05,0.07,0.13,0.3", "policy.reclassification.rate=0.006,{2020: 0.004, 2030: 0.009}"]


def sweep(out: Path, *args: str, launcher: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "sim", "-m", *QUICK, *args, f"hydra.sweep.dir={out}"] + ([f"hydra/launcher={launcher}"] if launcher else [])
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def batched_and_per_job(tmp_path: Path, *args: str, launcher_keys: tuple = ()) -> tuple[subprocess.CompletedProcess, xr.Dataset, xr.Dataset]:
    """The sweep ``args`` with the batched launcher (plus its ``launcher_keys``) and on the
    per-job path, collected: the batched run, its collected dataset and the per-job one."""
    r = sweep(tmp_path / "batched", *args, *launcher_keys, launcher="batched")
    sweep(tmp_path / "per_job", *args)
    assert collect_main([str(tmp_path / "per_job")]) == 0
    return r, xr.open_dataset(tmp_path / "batched" / "collected.nc"), xr.open_dataset(tmp_path / "per_job" / "collected.nc")


def test_plan_stacks_jobs_that_differ_only_in_per_draw_levers():
    cfgs = [validate(compose_config([*QUICK, *o])) for o in (
        ["policy.hukou.conversion_rate=0.1"], ["policy.hukou.conversion_rate=0.2"], ["policy.land.m2_per_settled=0"],
        ["policy.land.m2_per_settled=40"], ["policy/services=equalization"], ["draws.count=3", "uncertainty.enabled=true"],
        ["draws.count=3", "uncertainty.enabled=true", "policy.hukou.conversion_rate=0.2"], ["params=calibrated_ensemble", "draws.count=2"],
    )]
    batches = plan(cfgs)
    assert [b.jobs for b in batches] == [[0, 1, 2, 3], [4], [5, 6], [7]]
    assert batches[0].base == 3  # the job whose m2 is positive: every other job is a multiple of it
    assert not batches[2].reasons  # ensembles of the same draws batch too
    assert batches[3].reasons[7].startswith("a posterior ensemble")
    assert [b.jobs for b in plan(cfgs, max_draws=4)] == [[0, 1, 2, 3], [4], [5], [6], [7]]  # 3 draws a job: one job a batch
    assert [(b.jobs, b.base) for b in plan(cfgs[:4], max_draws=2)] == [([0, 1], 3), ([2, 3], 3)]  # the base need not be a member


def test_a_stack_of_models_projects_each_as_its_own_run():
    """sim.engine.stack.Stack: models of one jump-off state (policy options apart; one with
    per-draw lever factors from a batch) as the draws of one projection: the ensemble kernel's
    totals and the step kernel's full stock equal each model's own projection exactly; models
    of different jump-off states are refused, naming what differs."""
    from sim.engine.prepare import prepare
    from sim.engine.runner import project, project_summary
    from sim.engine.stack import Stack
    from sim.outputs.batch import batch_model

    cfgs = [validate(compose_config([*QUICK, *o])) for o in (["scenario=plan"], ["policy/hukou=restricted_big_city"],
                                                             ["policy.hukou.conversion_rate=0.1"], ["policy.hukou.conversion_rate=0.2"])]
    lever_batch = plan(cfgs[2:])[0]
    members = [prepare(cfgs[0]), prepare(cfgs[1]), batch_model(cfgs, dataclasses.replace(lever_batch, jobs=[2, 3], base=lever_batch.base + 2))]
    stack = Stack.of(members)
    assert stack.draws == 4 and [d.tolist() for d in stack.draws_of()] == [[0], [1], [2, 3]] and stack.variants().tolist() == [0, 1, 2, 2]
    # the members' draws interleaved (a sweep's jobs in their own order, whatever the batches)
    mixed = Stack.of(members, order=[2, 0, 3, 1])
    assert [d.tolist() for d in mixed.draws_of()] == [[1], [3], [0, 2]] and mixed.variants().tolist() == [2, 0, 2, 1]
    for st in (stack, mixed):
        summ, full = project_summary(st), project(st)
        for m, at in zip(members, st.draws_of()):
            own = project_summary(m)
            for f in ("residents", "urban", "urban_local", "land", "births", "deaths"):
                np.testing.assert_array_equal(getattr(summ, f)[:, at], getattr(own, f), err_msg=f)
            np.testing.assert_array_equal(full.population[:, at], project(m).population)
        u = summ.urban[-1].sum(axis=-1) / summ.residents[-1].sum(axis=-1)
        assert len(set(np.round(u, 6))) == 4  # four different projections
    with pytest.raises(ValueError, match="not a permutation"):
        Stack.of(members, order=[0, 0, 1, 2])
    other = prepare(validate(compose_config([*QUICK, "demography.fertility.tfr_multiplier=0.9"])))  # another 2010-2020 history
    with pytest.raises(ValueError, match="the jump-off state"):
        Stack.of([members[0], other])


@pytest.mark.slow
def test_eight_batched_jobs_equal_eight_per_job_runs(tmp_path):
    r, a, b = batched_and_per_job(tmp_path, *LEVERS)
    assert "8 job(s) in one projection" in r.stdout + r.stderr
    assert not any(p.is_dir() for p in (tmp_path / "batched").iterdir())  # no per-job directories unless asked
    assert a.scenario.values.tolist() == b.scenario.values.tolist() and a.sizes["scenario"] == 8  # in job order
    for k in b.data_vars:
        x, y = a[k].values, b[k].values
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-9, err_msg=k)
        else:
            np.testing.assert_array_equal(x, y, err_msg=k)
    for c in ("policy.hukou.conversion_rate", "policy.reclassification.rate", "config_json"):
        np.testing.assert_array_equal(a[c].values, b[c].values, err_msg=c)
    ta = (tmp_path / "batched" / "collected_targets.csv").read_text().splitlines()
    tb = (tmp_path / "per_job" / "collected_targets.csv").read_text().splitlines()
    assert ta[0] == tb[0] and len(ta) == len(tb)


@pytest.mark.slow
def test_batched_jobs_are_bitwise_their_per_job_runs_with_the_same_backend(tmp_path):
    """With one backend for both (``backend=numba``) the batched launcher's results are exactly
    the per-job runs' (a stack of two policy options, each a batch of two land levers, the
    batches interleaved): every float output equal, not just within 1e-12. With ``backend=auto``
    the per-job runs of one small job take the NumPy reference, which agrees with the kernel to
    rounding (net migration, a difference of flows near zero in places, to about 1e-9 of itself)."""
    args = ["policy/land=off,link", "policy/hukou=baseline,easing", "backend=numba"]
    r, a, b = batched_and_per_job(tmp_path, *args)
    assert "4 job(s) in one projection" in r.stdout + r.stderr
    assert a.scenario.values.tolist() == b.scenario.values.tolist()
    floats = [k for k in b.data_vars if b[k].dtype.kind == "f"]
    assert len(floats) > 20
    for k in floats:
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)


@pytest.mark.slow
def test_a_job_that_cannot_be_batched_runs_on_the_per_job_path_and_says_so(tmp_path):
    r = sweep(tmp_path, "policy.hukou.conversion_rate=0.05,0.1", "params=calibrated_ensemble", "draws.count=2", launcher="batched")
    assert (r.stdout + r.stderr).count("runs on the per-job path") == 2
    assert (tmp_path / "0" / "projection.nc").is_file() and (tmp_path / "1" / "projection.nc").is_file()
    ds = xr.open_dataset(tmp_path / "collected.nc")
    assert ds.sizes["scenario"] == 2 and ds.sizes["quantile"] == 5


@pytest.mark.slow
@pytest.mark.parametrize("outputs", ["full", "summary"])
def test_ensembles_batch_as_scenario_by_draw_equal_to_their_per_job_runs(tmp_path, outputs):
    """draws.count=3 uncertainty.enabled=true in a batched sweep: the jobs' draws in one kernel
    call (job-major), each job's draws numbered as in its own run, equal to the per-job runs."""
    args = ["policy.hukou.conversion_rate=0.05,0.1,0.2", "draws.count=3", "draws.start=2", "uncertainty.enabled=true"]
    r, a, b = batched_and_per_job(tmp_path, *args, launcher_keys=(f"hydra.launcher.outputs={outputs}",))
    assert "3 job(s) in one projection" in r.stdout
    b = b.sel(scenario=a.scenario.values)
    assert a.sizes["scenario"] == 3 and a.draw.values.tolist() == [2, 3, 4]
    for k in ("residents", "urban_population", "urban_share", "urban_land", "total_urban_share"):
        assert a[k].dims == b[k].dims, k
        np.testing.assert_allclose(a[k].values, b[k].values, rtol=1e-12, atol=1e-9, err_msg=k)
    assert float(a.total_urban_share.sel(year=2027).std("draw").min()) > 1e-4  # the draws differ
    ta = (tmp_path / "batched" / "collected_targets.csv").read_text().splitlines()
    tb = (tmp_path / "per_job" / "collected_targets.csv").read_text().splitlines()
    assert ta[0] == tb[0] and len(ta) == len(tb) and "probability" in ta[0]


@pytest.mark.slow
def test_summary_outputs_give_the_full_runs_totals_and_target_table(tmp_path):
    import csv
    import io

    sweep(tmp_path / "full", *LEVERS, launcher="batched")
    sweep(tmp_path / "summary", *LEVERS, "hydra.launcher.outputs=summary", launcher="batched")
    a = xr.open_dataset(tmp_path / "summary" / "collected.nc")
    b = xr.open_dataset(tmp_path / "full" / "collected.nc").sel(scenario=a.scenario.values)
    assert "population" not in a and a.attrs.get("levers") == b.attrs.get("levers")
    for k in ("residents", "urban_population", "urban_share", "hukou_urban_share", "urban_land", "total_urban_share"):
        np.testing.assert_allclose(a[k].values, b[k].values, rtol=1e-12, err_msg=k)
    ra = list(csv.DictReader(io.StringIO((tmp_path / "summary" / "collected_targets.csv").read_text())))
    rb = list(csv.DictReader(io.StringIO((tmp_path / "full" / "collected_targets.csv").read_text())))
    assert len(ra) == len(rb) == 8 * 9
    for x, y in zip(ra, rb):
        assert (x["label"], x["target"], x["met"], x["first_year_met"]) == (y["label"], y["target"], y["met"], y["first_year_met"])
        assert float(x["projected"]) == pytest.approx(float(y["projected"]), rel=1e-12, nan_ok=True)  # nan: a target outside the horizon


def test_job_composer_equals_hydra_composition_job_by_job():
    """The shared composition of sim.config.jobs gives, job by job, the config Hydra composes
    from scratch: simple groups replaced, a group the scenario writes into (plan sets
    policy.land) composed with the scenario, leaf and map values, a dict merged per base."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from sim.config.compose import register_configs
    from sim.paths import CONFIG_DIR

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):  # restores the global Hydra on exit
        _check_job_composer(GlobalHydra.instance().hydra)


def _check_job_composer(h):
    from omegaconf import OmegaConf, open_dict, read_write

    from sim.config.jobs import JobComposer
    from hydra.types import RunMode

    master = h.compose_config("config", overrides=["hydra/launcher=batched"], run_mode=RunMode.MULTIRUN, with_log_configuration=False)
    jobs = [
        ["scenario=plan", "policy/land=off", "policy.hukou.conversion_rate=0.1", "params.factors.tfr=1.1"],
        ["scenario=plan", "policy/land=link", "policy.hukou.conversion_rate='{2020: 0.05, 2030: 0.2}'", "params.factors.tfr=1.1"],
        ["scenario=trend", "policy/hukou=restricted_big_city", "policy.hukou.conversion_rate=0.1", "demography/fertility=low"],
        ["scenario=stress", "policy/hukou=full_opening", "end_year=2035", "policy.land.m2_per_settled=40"],
        # numbers for year-keyed levers on the first job's base again: set on its scratch copy
        # and put back (the year map), then a year map merged into the base's
        ["scenario=plan", "policy/land=off", "policy.hukou.conversion_rate=0.2", "policy.reclassification.rate=0.01", "params.factors.tfr=1.1"],
        ["scenario=plan", "policy/land=off", "policy.hukou.conversion_rate='{2030: 0.3}'", "params.factors.tfr=1.1"],
        ["scenario=trend", "policy/hukou=easing", "policy.hukou.conversion_rate=-1"],
    ]
    composer = JobComposer(h.config_loader, master)
    got = composer.compose(jobs)
    assert composer.hydra_composed == 0
    for scratch in composer._scratch.values():  # every scratch copy put back as it was
        assert isinstance(OmegaConf.to_container(scratch)["policy"]["hukou"]["conversion_rate"], dict)
    assert "policy.hukou.conversion_rate" in str(got[-1])  # refused, naming the field
    for ovs, cfg in zip(jobs[:-1], got[:-1]):
        ref = h.config_loader.load_sweep_config(master, ovs)
        with read_write(ref), open_dict(ref):
            del ref["hydra"]
        assert dataclasses.asdict(validate(OmegaConf.to_object(ref))) == dataclasses.asdict(cfg), ovs
    assert got[0].policy.land.release_m2_per_leaver == 8.0 and got[0].policy.land.m2_per_settled == 0.0  # plan's value kept, land=off's choice


def test_defaults_entries_read_off_the_choices_equal_hydras_defaults_list():
    """The composer reads a composition's defaults-list entries (config path, package) off its
    group choices instead of unfolding the defaults list a second time: for every scenario and
    group options with and without a package header they are Hydra's own."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from sim.config.compose import register_configs
    from sim.config.jobs import JobComposer
    from sim.paths import CONFIG_DIR

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        h = GlobalHydra.instance().hydra
        master = h.compose_config("config", overrides=["hydra/launcher=batched"], run_mode=RunMode.MULTIRUN, with_log_configuration=False)
        composer = JobComposer(h.config_loader, master)
        hydra_overrides = list(master.hydra.overrides.hydra)
        cases = [[f"scenario={p.stem}"] for p in sorted((CONFIG_DIR / "scenario").glob("*.yaml"))]
        cases += [["scenario=plan", "policy/hukou=restricted_big_city", "demography/fertility=low"], ["params=default", "policy/land=link"]]
        for ovs in cases:
            cfg = h.config_loader.load_sweep_config(master, ovs)
            derived = composer._entries(dict(cfg.hydra.runtime.choices))
            dl = h.config_loader.compute_defaults_list("config", hydra_overrides + ovs, RunMode.RUN)
            ref = {(d.config_path, d.package or "") for d in dl.defaults if not d.config_path.startswith("hydra/")}
            assert derived is not None and {(e.config_path, e.package) for e in derived} == ref, ovs


@pytest.mark.slow
def test_chunked_sweep_collected_equals_the_unchunked_one_and_resume_recomputes_nothing(tmp_path):
    import csv
    import io

    """Two chunks (pieces of 3 jobs, so the 8 jobs make 3 pieces) give, once both ran, the
    collected files of the sweep run whole; a resumed chunk finds its pieces and runs nothing;
    sim.collect lists the jobs of a piece not yet run."""
    args = [*LEVERS, "hydra.launcher.outputs=summary"]
    sweep(tmp_path / "whole", *args, launcher="batched")
    cut = tmp_path / "cut"
    r1 = sweep(cut, *args, "hydra.launcher.chunk=1/2", "hydra.launcher.chunk_size=3", launcher="batched")
    assert "chunk 1/2: 1 of 3 pieces, 3 jobs" in r1.stdout and not (cut / "collected.nc").exists()
    assert collect_main([str(cut), "--out", str(tmp_path / "partial")]) == 0  # the pieces there, the rest listed
    partial = (tmp_path / "partial" / "collected_targets.csv").read_text()
    assert partial.count(",missing,") == 5 and xr.open_dataset(tmp_path / "partial" / "collected.nc").sizes["scenario"] == 3
    # collected mid-sweep into the sweep itself (docs/cluster.md): a partial file, which the
    # chunk that completes the sweep replaces by the whole one
    assert collect_main([str(cut)]) == 0
    with xr.open_dataset(cut / "collected.nc") as early:
        assert early.attrs["is_partial_output"] == 1 and early.attrs["jobs_missing"] and early.sizes["scenario"] == 3
    sweep(cut, *args, "hydra.launcher.chunk=2/2", "hydra.launcher.chunk_size=3", launcher="batched")
    a = xr.open_dataset(cut / "collected.nc")
    assert a.attrs["is_partial_output"] == 0 and a.attrs["jobs_missing"] == "" and a.sizes["scenario"] == 8
    assert ",missing," not in (cut / "collected_targets.csv").read_text()
    b = xr.open_dataset(tmp_path / "whole" / "collected.nc")
    assert a.attrs["sweep_piece_sha256"] != b.attrs["sweep_piece_sha256"]  # another cut of the same sweep
    # the pieces' batches have other base jobs, so the multipliers round differently (1e-16)
    xr.testing.assert_allclose(a.drop_attrs(), b.drop_attrs(), rtol=1e-12, atol=0)
    xr.testing.assert_identical(a.coords.to_dataset().drop_attrs(), b.coords.to_dataset().drop_attrs())
    for k in set(a.attrs) | set(b.attrs):
        if k not in ("sweep_piece_sha256", "sweep_dir", "title"):
            assert a.attrs[k] == b.attrs[k], k
    ra, rb = (list(csv.DictReader(io.StringIO((d / "collected_targets.csv").read_text()))) for d in (cut, tmp_path / "whole"))
    assert len(ra) == len(rb) == 8 * 9
    for x, y in zip(ra, rb):
        assert x.keys() == y.keys()
        for k in x:
            if k in ("projected", "gap", "land_needed_km2", "required") and x[k] != "":
                assert float(x[k]) == pytest.approx(float(y[k]), rel=1e-12, nan_ok=True), k
            else:
                assert x[k] == y[k], k
    stamps = {p: p.stat().st_mtime_ns for p in (cut / "parts").glob("part-*.nc")}
    r = sweep(cut, *args, "hydra.launcher.chunk=1/2", "hydra.launcher.chunk_size=3", "resume=true", launcher="batched")
    assert "1 piece(s) complete, skipped (resume=true)" in r.stdout
    assert {p: p.stat().st_mtime_ns for p in (cut / "parts").glob("part-*.nc")} == stamps
    r = sweep(tmp_path / "whole", *args, "resume=true", launcher="batched")
    assert "nothing to do (resume=true)" in r.stdout


@pytest.mark.slow
def test_two_chunk_slurm_array_collects_the_sweep(tmp_path):
    """docs/batched-array.sbatch on the real SLURM (.ci/slurm-up): a 2-task array, one chunk a
    task, leaves the collected files of the sweep run whole in one process."""
    import os
    import shutil

    from test_sweeps import _need_slurm

    _need_slurm()
    args = [*QUICK, *LEVERS, "hydra.launcher.outputs=summary", "hydra.launcher.chunk_size=3"]
    sweep(tmp_path / "whole", *LEVERS, "hydra.launcher.outputs=summary", "resume=true", launcher="batched")  # the script resumes
    env = {**os.environ, "SWEEP_DIR": str(tmp_path / "array"), "PYTHON": sys.executable}
    r = subprocess.run([shutil.which("sbatch"), "--wait", "--array=1-2", "--cpus-per-task=1", "--mem=2G", f"--output={tmp_path}/task-%a.out", "docs/batched-array.sbatch", *args],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("task-*.out")))
    assert r.returncode == 0, r.stderr + logs[-3000:]
    assert "chunk 1/2: 1 of 3 pieces, 3 jobs" in logs and "chunk 2/2: 2 of 3 pieces, 5 jobs" in logs
    a = xr.open_dataset(tmp_path / "array" / "collected.nc")
    b = xr.open_dataset(tmp_path / "whole" / "collected.nc")
    xr.testing.assert_allclose(a.drop_attrs(), b.drop_attrs(), rtol=1e-12, atol=0)
    assert a.attrs["jobs_collected"] == 8 and sorted((tmp_path / "array" / "parts").glob("part-*.nc")) != []


@pytest.mark.slow
def test_demographic_levers_batch_when_their_history_is_shared(tmp_path):
    """Fertility and rural-to-urban paths are per-draw levers; a path that differs up to the
    jump-off (a constant 0.9: the 2010-2020 history behind the continued jump-off changes) gets
    a batch of its own. Every job equals its per-job run."""
    levers = ["demography.fertility.tfr_multiplier={2020: 1.0, 2030: 0.8},{2020: 1.0, 2030: 0.7},0.9", "demography.migration.rural_to_urban={2020: 1.6},{2020: 1.6, 2025: 2.0}"]
    r, a, b = batched_and_per_job(tmp_path, *levers)
    assert "4 job(s) in one projection" in r.stdout and "2 job(s) in one projection" in r.stdout
    b = b.sel(scenario=a.scenario.values)
    for k in ("population", "births", "urban_share", "urban_land"):
        np.testing.assert_allclose(a[k].values, b[k].values, rtol=1e-12, atol=1e-9, err_msg=k)
    assert float(np.abs(a.births.sel(year=2027).sum("region").values - a.births.sel(year=2027).sum("region").values[0]).max()) > 1000  # the levers matter


@pytest.mark.parametrize("key, value, says", [
    ("chunk", "3/2", "hydra.launcher.chunk = '3/2': allowed values are I/N with 1 <= I <= N"),
    ("chunk", "half", "hydra.launcher.chunk = 'half': allowed values are I/N"),
    ("chunk_size", "0", "hydra.launcher.chunk_size = 0: allowed values are whole numbers >= 1"),
    ("outputs", "some", "hydra.launcher.outputs = 'some': allowed values are full, summary"),
])
def test_bad_launcher_keys_are_refused_before_anything_is_written(tmp_path, key, value, says):
    out = tmp_path / "sweep"
    r = subprocess.run([sys.executable, "-m", "sim", "-m", *QUICK, "hydra/launcher=batched", f"hydra.launcher.{key}={value}", f"hydra.sweep.dir={out}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not out.exists()


@pytest.mark.slow
def test_policy_groups_stacked_in_one_projection_equal_per_job_runs(tmp_path):
    """Jobs that differ in policy options (scenario=plan selects six groups; hukou options change
    age and regional shapes the per-draw factors cannot carry) are batches of their own, projected
    together as one stack (sim.engine.stack): every output of every job equals its own run. The
    conversion rate is swept before the hukou group, so each batch (one lever, two values) holds
    jobs 0 and 2, 1 and 3, ...: the stack's draws are put in job order, and the collected file
    lists the jobs in order, as the per-job path does."""
    args = ["scenario=trend,plan", "policy.hukou.conversion_rate=0.05,0.1", "policy/hukou=baseline,restricted_big_city"]
    r, a, b = batched_and_per_job(tmp_path, *args)
    assert "8 job(s) in one projection" in r.stdout + r.stderr
    assert a.sizes["scenario"] == 8 and a.scenario.values.tolist() == b.scenario.values.tolist()
    assert a["policy.hukou.conversion_rate"].values.tolist() == b["policy.hukou.conversion_rate"].values.tolist()
    ta, tb = (list(csv.DictReader((tmp_path / d / "collected_targets.csv").read_text().splitlines())) for d in ("batched", "per_job"))
    assert [(r["label"], r["target"]) for r in ta] == [(r["label"], r["target"]) for r in tb]
    np.testing.assert_allclose([float(r["projected"]) for r in ta], [float(r["projected"]) for r in tb], rtol=1e-12)
    compared = 0
    for k in b.data_vars:
        x, y = a[k].values, b[k].values
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-9, err_msg=k)
            compared += 1
    assert compared > 20
    u = a.total_urban_share.sel(year=2027).values
    assert float(u.max() - u.min()) > 0.003  # the options matter


@pytest.mark.slow
def test_config_group_sweep_in_summary_equals_per_job_runs(tmp_path):
    args = ["policy/hukou=baseline,restricted_big_city", "policy/land=off,link_strict", "policy/services=baseline,equalization"]
    r, a, b = batched_and_per_job(tmp_path, *args, launcher_keys=("hydra.launcher.outputs=summary",))
    # policy groups: a batch each, projected together as a stack, but for link_strict's land
    # standard and brake, which the outputs read: two stacks of four
    assert (r.stdout + r.stderr).count("4 job(s) in one projection") == 2
    b = b.sel(scenario=a.scenario.values)
    assert a.sizes["scenario"] == 8
    for k in ("residents", "urban_population", "urban_share", "hukou_urban_share", "urban_land", "land_required", "total_urban_share"):
        np.testing.assert_allclose(a[k].values, b[k].values, rtol=1e-12, atol=1e-9, err_msg=k)
    assert float(a.total_urban_share.sel(year=2027).max() - a.total_urban_share.sel(year=2027).min()) > 1e-4
