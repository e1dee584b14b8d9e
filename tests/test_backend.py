"""backend=auto (the reference for small runs, the kernel otherwise) and the figure processes
that warm up while a run projects."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.engine.runner import AUTO_NUMPY_WORK, resolve_backend

ROOT = Path(__file__).resolve().parents[1]


def test_auto_takes_the_reference_for_small_runs_only():
    assert resolve_backend("auto", 14 * 30) == "numpy"  # the default run
    assert resolve_backend("auto", AUTO_NUMPY_WORK) == "numpy"
    assert resolve_backend("auto", AUTO_NUMPY_WORK + 1) == "numba"
    assert resolve_backend("auto", 2985 * 15) == "numba"  # China's counties
    assert resolve_backend("numba", 1) == "numba" and resolve_backend("numpy", 10**9) == "numpy"
    with pytest.raises(ValueError, match="backend = 'cuda': allowed values are auto, numba, numpy"):
        resolve_backend("cuda", 1)


@pytest.mark.parametrize("backend, loaded", [("auto", False), ("numba", True)])
def test_a_small_run_does_not_load_numba(tmp_path, backend, loaded):
    """The default run with backend=auto never imports numba (about 1 s of loading saved);
    asked for, the kernel is loaded."""
    code = (
        "import sys\n"
        "from sim.config.compose import compose_config\n"
        "from sim.outputs.job import run\n"
        f"run(compose_config(['end_year=2025', 'figures.enabled=false', 'quiet=true', 'backend={backend}']), sys.argv[1], echo=False)\n"
        "print('numba' in sys.modules)\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".numba_cache"))
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == str(loaded)
    assert (tmp_path / "projection.nc").exists()


def _gone(pid: int, timeout: float = 10.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not hasattr(os, "fork") or len(os.sched_getaffinity(0)) < 2, reason="the figure process needs fork and two cores")
def test_the_figure_process_is_stopped_when_the_run_ends_without_figures(tmp_path):
    """A run that fails before its dataset exists (a bad input, a busy directory) stops the
    figure process it started; so does one that fails while the figures are drawn."""
    from sim.config.schema import FiguresConfig
    from sim.outputs.figure_workers import FigureJob

    job = FigureJob(tmp_path / "figures", FiguresConfig())
    assert job.proc is not None and job.proc.is_alive()
    pid = job.proc.pid
    job.abort()
    assert job.proc.exitcode is not None and _gone(pid)
    assert not (tmp_path / "figures").exists()


@pytest.mark.skipif(not hasattr(os, "fork") or len(os.sched_getaffinity(0)) < 2, reason="the figure process needs fork and two cores")
def test_a_config_error_stops_the_figure_process(tmp_path, monkeypatch):
    import multiprocessing as mp

    import sim.outputs.job as job
    from sim.config.compose import compose_config
    from sim.config.schema import ConfigError

    def refuse(cfg, **kw):
        raise ConfigError("no model today")

    made = []

    def figure_job(cfg, fig_dir, original=job._figure_job):
        made.append(original(cfg, fig_dir))
        return made[-1]

    monkeypatch.setattr(job, "prepare", refuse)
    monkeypatch.setattr(job, "_figure_job", figure_job)
    with pytest.raises(ConfigError, match="no model today"):
        job.run(compose_config(["end_year=2025"]), tmp_path / "r", echo=False)
    assert len(made) == 1 and made[0].proc is not None  # started before the model was built
    assert made[0].proc.exitcode is not None and _gone(made[0].proc.pid)  # and stopped
    assert made[0].proc not in mp.active_children()
    assert not (tmp_path / "r").exists()  # a config error writes nothing


def test_a_single_run_ends_with_its_output_and_logs_flushed(tmp_path):
    """A single run ends without the interpreter's teardown (sim.__main__.exit_now): what it
    printed to a pipe and what it logged to the run's log file are all there."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".numba_cache"))
    args = [sys.executable, "-m", "sim", "end_year=2022", "figures.enabled=false", "resume=true", f"hydra.run.dir={tmp_path}"]
    first = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "resident urbanization" in first.stdout and f"wrote {tmp_path / 'projection.nc'}" in first.stdout
    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "complete, skipped (resume=true)" in again.stdout
    assert "complete result found, skipped (resume=true)" in (tmp_path / "__main__.log").read_text()
    bad = subprocess.run([*args[:-1], "end_year=1900", f"hydra.run.dir={tmp_path / 'bad'}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "end_year" in bad.stderr  # errors still end the normal way
