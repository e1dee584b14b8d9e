"""``hydra/launcher=batched``: a whole sweep of ``python -m sim -m ...`` in one process, the jobs
that differ only in per-draw levers projected together as the draws of one kernel call
(:mod:`sim.outputs.batch`).

Keys (``hydra.launcher.<key>=...``):
- ``outputs`` (full): ``full``, every job's dataset as its per-job run writes it; ``summary``,
  totals per year and region (residents, urban, urban_local, all states, city proper, land,
  births, deaths) from one call of the ensemble kernel, enough for the target table: for large
  sweeps. Jobs on the per-job path keep their full outputs.
- ``per_job_outputs`` (false): run every job on the per-job path, into its own directory
  (``hydra.sweep.dir/<job>``, as the other launchers do), one after the other. By default only
  the jobs that cannot be batched get a directory, and the sweep writes ``collected.nc`` and
  ``collected_targets.csv`` (the format of ``python -m sim.collect``) into ``hydra.sweep.dir``.

Each job's config is composed once per distinct set of config-group choices (``policy/hukou=...``,
``scenario=...``) and the value overrides are applied to a copy, then validated, all before
anything is projected. A job whose config cannot be batched runs on its own, and the log says
why.
"""

# no `from __future__ import annotations`: Hydra's plugin scan executes this module before it is
# in sys.modules, where dataclasses cannot resolve string annotations
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig

log = logging.getLogger("sim")


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.urbsim_launcher.batched_launcher.BatchedLauncher"
    per_job_outputs: bool = False
    outputs: str = "full"


ConfigStore.instance().store(group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="urbsim")


def _is_group(key: str) -> bool:
    from sim.paths import CONFIG_DIR

    k = key.lstrip("+~")
    return k.startswith("hydra/") or (CONFIG_DIR / k).is_dir()


class BatchedLauncher(Launcher):
    def __init__(self, per_job_outputs: bool = False, outputs: str = "full", **_: Any) -> None:
        if outputs not in ("full", "summary"):
            from sim.config.schema import ConfigError

            raise ConfigError(f"hydra.launcher.outputs = {outputs!r}: allowed values are full, summary")
        self.per_job_outputs = per_job_outputs
        self.outputs = outputs
        self.config: Optional[DictConfig] = None
        self.hydra_context = None
        self.task_function = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def compose(self, job_overrides: Sequence[Sequence[str]]) -> list:
        """Every job's :class:`sim.config.schema.Config`, validated, or its ConfigError
        (:class:`sim.config.jobs.JobComposer`: composed once per distinct set of group choices)."""
        from sim.config.jobs import JobComposer

        self.composer = JobComposer(self.hydra_context.config_loader, self.config, _is_group)
        return self.composer.compose(job_overrides)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from sim.config.schema import ConfigError
        from sim.outputs.batch import plan, run_batch
        from sim.outputs.collection import combine, write_collected
        from sim.outputs.job import run

        t0 = time.perf_counter()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        job_overrides = [list(o) for o in job_overrides]
        composed = self.compose(job_overrides)
        ok = [i for i, c in enumerate(composed) if not isinstance(c, ConfigError)]
        cfgs = [composed[i] for i in ok]
        log.info("batched launcher: %d jobs composed and validated in %.2f s (%d refused, %d composed whole by Hydra)", len(composed), time.perf_counter() - t0, len(composed) - len(ok), self.composer.hydra_composed)
        results: Dict[int, Any] = {}
        batches = plan(cfgs)
        for b in batches:
            for j, why in b.reasons.items():
                log.info("job %d (%s): %s", initial_job_idx + ok[j], " ".join(job_overrides[ok[j]]), why)
        done = 0
        for n, b in enumerate(batches, start=1):
            if b.reasons or self.per_job_outputs:  # the per-job path: the job's own directory
                for j in b.jobs:
                    i = ok[j]
                    results[i] = run(cfgs[j], sweep_dir / str(initial_job_idx + i), echo=False, overrides=job_overrides[i], record_refusal=True)
            else:
                dss = run_batch(cfgs, b, [job_overrides[ok[j]] for j in b.jobs], outputs=self.outputs)
                for j, ds in zip(b.jobs, dss):
                    results[ok[j]] = ds
            done += len(b.jobs)
            log.info("batch %d/%d: %d job(s) in one projection; %d/%d done, %.1f s", n, len(batches), len(b.jobs), done, len(cfgs), time.perf_counter() - t0)
        labelled = [(i, job_overrides[i], results[i]) for i in sorted(results)]
        failed = [(i, job_overrides[i], str(composed[i])) for i, c in enumerate(composed) if isinstance(c, ConfigError)]
        if labelled:
            ds, rows = combine(labelled, failed, cfgs_by_job={i: composed[i] for i in results}, sweep_dir=sweep_dir)
            write_collected(ds, rows, sweep_dir)
        log.info("batched launcher: %d jobs in %.1f s; wrote %s", len(composed), time.perf_counter() - t0, sweep_dir)
        returns = []
        for i, ovs in enumerate(job_overrides):
            r = JobReturn(overrides=ovs, cfg=self.config, hydra_cfg=self.config, working_dir=str(sweep_dir), task_name="sim")
            if isinstance(composed[i], ConfigError):
                r.status, r._return_value = JobStatus.FAILED, composed[i]
            else:
                r.status, r._return_value = JobStatus.COMPLETED, None
            returns.append(r)
        return returns
