"""``hydra/launcher=batched``: a whole sweep of ``python -m sim -m ...`` in one process, the jobs
that differ only in per-draw levers projected together as the draws of one kernel call, and the
batches that differ in policy options only projected together as a stack of their models
(:mod:`sim.outputs.batch`, :mod:`sim.engine.stack`).

Keys (``hydra.launcher.<key>=...``):
- ``outputs`` (full): ``full``, every job's dataset as its per-job run writes it; ``summary``,
  totals per year and region (residents, urban, urban_local, all states, city proper, land,
  births, deaths) from one call of the ensemble kernel, enough for the target table: for large
  sweeps. Jobs on the per-job path keep their full outputs.
- ``per_job_outputs`` (false): run every job on the per-job path, into its own directory
  (``hydra.sweep.dir/<job>``, as the other launchers do), one after the other. By default only
  the jobs that cannot be batched get a directory, and the sweep writes ``collected.nc`` and
  ``collected_targets.csv`` (the format of ``python -m sim.collect``) into ``hydra.sweep.dir``.
- ``chunk`` (null): ``I/N`` runs the ``I``-th of ``N`` chunks of the sweep (a task of a cluster
  array, ``docs/batched-array.sbatch``); the task completing the last piece writes the collected
  files, ``python -m sim.collect`` joins what is there.
- ``chunk_size`` (256): at most this many jobs per piece (the draw slices of one scenario stay
  together), the unit that is written to ``parts/part-<p>.nc``, skipped by ``resume=true`` when
  complete, and held in memory at once. A sweep of one piece, not chunked, writes the collected
  files directly. See :mod:`sim.outputs.chunks`.

A terminal shows a progress bar with the time left; otherwise a log line per batch.

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
    chunk: Optional[str] = None
    chunk_size: int = 256


ConfigStore.instance().store(group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="urbsim")


class _Progress:
    """A progress bar with the time left on a terminal (tqdm), a log line per piece otherwise."""

    def __init__(self, total: int) -> None:
        import sys

        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="job", desc="sweep", file=sys.stderr)
        self.total, self.done, self.t0 = total, 0, time.perf_counter()

    def update(self, n: int, what: str) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        el = time.perf_counter() - self.t0
        left = el / self.done * (self.total - self.done) if self.done else float("nan")
        log.info("%s: %d/%d jobs done, %.1f s, about %.0f s left", what, self.done, self.total, el, left)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class BatchedLauncher(Launcher):
    def __init__(self, per_job_outputs: bool = False, outputs: str = "full", chunk: Optional[str] = None, chunk_size: int = 256, **_: Any) -> None:
        from sim.config.schema import ConfigError
        from sim.outputs.chunks import parse_chunk

        if outputs not in ("full", "summary"):
            raise ConfigError(f"hydra.launcher.outputs = {outputs!r}: allowed values are full, summary")
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
            raise ConfigError(f"hydra.launcher.chunk_size = {chunk_size!r}: allowed values are whole numbers >= 1 (jobs per piece)")
        self.chunk = parse_chunk(chunk)
        self.chunk_size = chunk_size
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
        from sim.config.jobs import JobComposer, is_group

        self.composer = JobComposer(self.hydra_context.config_loader, self.config, is_group)
        return self.composer.compose(job_overrides)

    def _run_piece(self, piece, composed, job_overrides, first: int, sweep_dir: Path, swept, progress) -> tuple:
        """Project the jobs of ``piece``: its part of the collected dataset and its target rows."""
        from sim.config.schema import ConfigError
        from sim.outputs.batch import MAX_BATCH_DRAWS, draw_years, plan, run_batches, stacks
        from sim.outputs.collection import combine
        from sim.outputs.job import run

        idx = [j - first for j in piece.jobs]
        ok = [i for i in idx if not isinstance(composed[i], ConfigError)]
        cfgs = [composed[i] for i in ok]
        results: Dict[int, Any] = {}
        blocks: list = []
        job_dirs: Dict[int, Path] = {}
        batches = plan(cfgs, MAX_BATCH_DRAWS[self.outputs])
        for b in batches:
            for j, why in b.reasons.items():
                log.info("job %d (%s): %s", first + ok[j], " ".join(job_overrides[ok[j]]), why)
        alone = [b for b in batches if b.reasons or self.per_job_outputs]
        together = stacks(cfgs, [b for b in batches if not (b.reasons or self.per_job_outputs)], MAX_BATCH_DRAWS[self.outputs])
        in_all = sum(draw_years(cfgs, b) for st in together for b in st)  # sizes backend=auto
        for b in alone:  # the per-job path: the job's own directory
            for j in b.jobs:
                i = ok[j]
                job_dirs[first + i] = sweep_dir / str(first + i)
                results[i] = run(cfgs[j], job_dirs[first + i], echo=False, overrides=job_overrides[i], record_refusal=True)
            progress.update(len(b.jobs), f"piece {piece.index} (jobs {piece.span()}): {len(b.jobs)} job(s) on the per-job path")
        for st in together:  # each stack of batches in one projection
            ovs = [[job_overrides[ok[j]] for j in b.jobs] for b in st]
            made = run_batches(cfgs, st, ovs, outputs=self.outputs, draw_years_in_all=in_all, block=True)
            for jobs, res in made:
                if not isinstance(res, list):  # the projection's jobs stacked along scenario
                    blocks.append(([first + ok[j] for j in jobs], [job_overrides[ok[j]] for j in jobs], res))
                else:
                    for j, ds in zip(jobs, res):
                        results[ok[j]] = ds
            n = sum(len(b.jobs) for b in st)
            progress.update(n, f"piece {piece.index} (jobs {piece.span()}): {n} job(s) in " + ("one projection" if len(made) == 1 else f"{len(made)} projections"))
        labelled = [(first + i, job_overrides[i], results[i]) for i in sorted(results)]
        failed = [(first + i, job_overrides[i], str(composed[i])) for i in idx if isinstance(composed[i], ConfigError)]
        if failed:
            progress.update(len(failed), f"piece {piece.index}: {len(failed)} job(s) refused")
        return combine(labelled, failed, cfgs_by_job={first + i: composed[i] for i in ok}, sweep_dir=sweep_dir, swept=swept, jobs_total=len(composed), blocks=blocks, job_dirs=job_dirs)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from sim import files
        from sim.config.schema import ConfigError
        from sim.outputs import chunks
        from sim.outputs.collection import swept_keys, write_collected

        t0 = time.perf_counter()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        job_overrides = [list(o) for o in job_overrides]
        composed = self.compose(job_overrides)
        ok = [i for i, c in enumerate(composed) if not isinstance(c, ConfigError)]
        log.info("batched launcher: %d jobs composed and validated in %.2f s (%d refused, %d composed whole by Hydra)", len(composed), time.perf_counter() - t0, len(composed) - len(ok), self.composer.hydra_composed)
        resume = bool(self.config.get("resume", False))
        swept = swept_keys([job_overrides[i] for i in ok])
        i_chunk, n_chunks = self.chunk or (1, 1)
        pieces = chunks.make_pieces(job_overrides, composed, chunk_size=self.chunk_size, n_chunks=n_chunks, first_job=initial_job_idx)
        mine = chunks.chunk_of(pieces, i_chunk, n_chunks)
        whole = len(pieces) == 1 and self.chunk is None  # one piece run whole: the collected files directly
        collected = sweep_dir / files.COLLECTED
        if whole and resume and chunks.stored_digest(collected) == chunks.sweep_digest(pieces):
            log.info("batched launcher: %s holds this sweep's results, nothing to do (resume=true)", collected)
            mine = []
        elif not whole:
            chunks.write_manifest(sweep_dir, pieces, len(composed), swept)
            if self.chunk:
                log.info("batched launcher: chunk %d/%d: %d of %d pieces, %d jobs", i_chunk, n_chunks, len(mine), len(pieces), sum(len(p.jobs) for p in mine))
            if resume:
                todo = set(chunks.missing(sweep_dir, mine))
                if len(todo) < len(mine):
                    log.info("batched launcher: %d piece(s) complete, skipped (resume=true)", len(mine) - len(todo))
                mine = [p for p in mine if p in todo]
        level = max((composed[i].compression for i in ok), default=files.COMPRESSION)  # the collected file's zlib level
        progress = _Progress(sum(len(p.jobs) for p in mine))
        try:
            for piece in mine:
                ds, rows = self._run_piece(piece, composed, job_overrides, initial_job_idx, sweep_dir, swept, progress)
                # release: each large variable deleted from ds once written, its memory free for the
                # file's pages (ds is not read again)
                if whole:
                    if ds is not None:
                        ds.attrs[chunks.DIGEST_ATTR] = chunks.sweep_digest(pieces)
                        write_collected(ds, rows, sweep_dir, compression=level, release=True)
                else:
                    chunks.write_piece(sweep_dir, piece, ds, rows, compression=level, release=True)
        finally:
            progress.close()
        if not whole:
            with chunks.collect_lock(sweep_dir):
                left = chunks.missing(sweep_dir, pieces)
                if left:
                    log.info("batched launcher: %d of %d pieces still to run (jobs %s); the chunk that completes the last writes %s", len(left), len(pieces), ", ".join(p.span() for p in left[:8]), files.COLLECTED)
                elif chunks.stored_digest(collected) != chunks.sweep_digest(pieces):
                    ds, rows = chunks.join_pieces(sweep_dir, pieces, len(composed), swept)
                    write_collected(ds, rows, sweep_dir, compression=level)
        log.info("batched launcher: %d jobs in %.1f s; wrote %s", len(composed), time.perf_counter() - t0, sweep_dir)
        mine_jobs = {j for p in mine for j in p.jobs}
        returns = []
        for i, ovs in enumerate(job_overrides):
            r = JobReturn(overrides=ovs, cfg=self.config, hydra_cfg=self.config, working_dir=str(sweep_dir), task_name="sim")
            if isinstance(composed[i], ConfigError):
                r.status, r._return_value = JobStatus.FAILED, composed[i]
            else:
                r.status, r._return_value = JobStatus.COMPLETED, None
            if initial_job_idx + i in mine_jobs or not self.chunk:
                returns.append(r)
        return returns
