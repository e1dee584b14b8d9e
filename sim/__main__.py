"""Hydra entry point: ``python -m sim [overrides]`` (``--help``, ``--cfg job``, ``-m`` as usual).

In a sweep (``-m``) each job runs in its own output directory (``hydra.sweep.dir/<job number>``)
and records its status there; a failing job's error is recorded and raised, so Hydra reports it
after the other jobs of the sweep have finished. Numba threads per job are set so that workers x
threads never exceed the cores: ``SLURM_CPUS_PER_TASK`` on a cluster, ``cores // n_jobs`` with the
joblib launcher.
"""

from __future__ import annotations

import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from sim.config.cli import run_app
from sim.config.compose import register_configs
from sim.config.schema import ConfigError

register_configs()


def job_threads(launcher: DictConfig | None, env=os.environ, cores: int | None = None) -> int | None:
    """Numba threads for one job: ``SLURM_CPUS_PER_TASK`` when set; with the joblib launcher the
    cores divided among its workers (``n_jobs``, negative counting back from all cores as joblib
    does); otherwise None (numba's default, all cores)."""
    cores = cores or len(os.sched_getaffinity(0))
    if env.get("SLURM_CPUS_PER_TASK"):
        return max(1, int(env["SLURM_CPUS_PER_TASK"]))
    target = str((launcher or {}).get("_target_", ""))
    if "joblib" in target:
        n = int(launcher.get("n_jobs") or -1)
        workers = n if n > 0 else max(1, cores + 1 + n)
        return max(1, cores // workers)
    return None


_DONE = {"run": False}  # set by main() when a single run (not a sweep) has written its files


def exit_now(code: int = 0) -> None:
    """End the process without the interpreter's teardown, which frees every object of every
    module one by one (about 0.25 s after a run, a tenth of it). Only after a single run: its
    files are written and closed (atomically), its figure processes joined and no thread is
    left; the logs and the standard streams are flushed here. A sweep ends normally (its
    launcher's worker pools clean up at exit)."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _set_threads(n: int | None) -> None:
    if n is None:
        return
    import numba

    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


def _remove_if_empty(path: str) -> None:
    """Remove the run directory Hydra made for a run refused before it wrote anything (its log
    file is made on the first line logged): a refused run writes nothing."""
    try:
        os.rmdir(path)
    except OSError:
        pass  # not empty (an earlier run's files, a log line), or not there


@hydra.main(version_base="1.3", config_path="../configs", config_name="config")
def main(cfg: DictConfig) -> None:
    from sim.outputs.job import RunDirBusy, run

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    _set_threads(job_threads(hc.launcher))
    try:
        obj = OmegaConf.to_object(cfg)
        run(obj, hc.runtime.output_dir, overrides=list(hc.overrides.task), record_refusal=multirun)
        _DONE["run"] = not multirun
    except ConfigError as e:
        if multirun:  # recorded in the job's status.json; Hydra reports it after the sweep
            raise
        _remove_if_empty(hc.runtime.output_dir)
        print(f"config error: {e}", file=sys.stderr)
        sys.exit(2)
    except RunDirBusy as e:
        if multirun:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run_app(main)
    if _DONE["run"]:
        exit_now()
