"""Run one projection from a config: validate, load, build, project, write, report.

Pure of Hydra: :mod:`sim.__main__` converts Hydra's config to :class:`sim.config.schema.Config`
and calls :func:`run`, which is also what tests and notebooks call.

Every run is a job with a ``status.json`` in its output directory, written atomically: ``running``
when it starts; ``ok`` with the SHA-256 of every file it wrote once they are all in place; or
``failed`` with the error's type, message and traceback. With ``resume=true`` a run whose
directory holds an ``ok`` status for the same config, code and input files
(:func:`sim.outputs.runs.run_identity`), with every listed file present and unchanged, is
skipped; anything less (a job killed midway, a file missing or altered, another config, a
changed line of code or input file) runs again, and says why.

A directory holds one run's files, as one set:
- the config is validated and the model built (:func:`sim.engine.prepare.prepare`) before the
  directory is touched;
- the run holds an exclusive lock on the directory (``flock`` on ``.lock``, released by the
  system if the process dies): a second run into it is refused with :class:`RunDirBusy`;
- its files are written into ``.staging/`` and moved into place together when all are written;
  the files of the run before it that the new set does not have (figures of other formats, an
  old ``report.html``) are removed;
- a failure never disowns a complete result already there: its status stays ``ok`` and the
  error goes to ``last_failure.json``; elsewhere the status says ``failed``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import xarray as xr

from sim import files
from sim.config.schema import GUANGXI_GEOGRAPHIES, Config, ConfigError
from sim.engine.prepare import prepare
from sim.engine.runner import project, resolve_backend, work
from sim.files import write_netcdf, write_text
from sim.outputs.dataset import to_dataset
from sim.outputs.runs import file_sha256, is_complete, job_info, not_reusable, read_status, run_identity, write_status
from sim.outputs.targets import format_report, region_rows, target_rows, to_csv

log = logging.getLogger("sim")


def run(cfg: Config, out_dir: str | Path, *, echo: bool = True, overrides: list[str] | tuple = (), record_refusal: bool = False) -> xr.Dataset:
    """Project ``cfg`` and write ``projection.nc``, ``targets.csv``, the report, the figures and
    ``status.json`` into ``out_dir``; ``overrides`` (the command line's) are recorded. With
    ``cfg.resume`` and a complete result already there, nothing is computed and the stored
    projection is returned. A config error writes nothing, unless ``record_refusal`` (a sweep's
    job, whose directory then says why it did not run: ``status.json`` failed)."""
    out_dir = Path(out_dir)
    identity = run_identity(cfg)
    if cfg.resume:
        why = not_reusable(out_dir, identity)
        if why is None:
            log.info("%s: complete result found, skipped (resume=true)", out_dir)
            if echo and not cfg.quiet:
                print(f"{out_dir}: complete, skipped (resume=true)")
            with xr.open_dataset(out_dir / cfg.output) as ds:
                return ds.load()
        if read_status(out_dir):  # something was there: say why it is not reused
            log.info("%s: run again (resume=true): %s", out_dir, why)
            if echo and not cfg.quiet:
                print(f"{out_dir}: run again (resume=true): {why}")
    had_result = is_complete(out_dir)
    job = {"overrides": list(overrides), **identity, **job_info()}
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()

    def failed(e: BaseException) -> None:
        info = dict(status="failed", error=type(e).__name__, message=str(e), traceback=traceback.format_exc(),
                    started=started, seconds=round(time.perf_counter() - t0, 3), **job)
        if had_result:  # the complete result stays the directory's; the error is kept beside it
            write_text(json.dumps(info, indent=1, default=str) + "\n", out_dir / files.FAILURE)
        else:
            write_status(out_dir, **info)

    figures = _figure_job(cfg, out_dir / files.STAGING / files.FIGURES)  # warms up while the model is built
    try:
        try:
            model = prepare(cfg)  # validates the config against the schema and the inputs
        except ConfigError as e:
            if record_refusal and not had_result:  # a sweep's job directory records why it did not run
                out_dir.mkdir(parents=True, exist_ok=True)
                failed(e)
            raise
        out_dir.mkdir(parents=True, exist_ok=True)
        with run_lock(out_dir):
            for stale in out_dir.glob(".*.tmp"):  # left by a job killed while writing
                stale.unlink(missing_ok=True)
            stage = out_dir / files.STAGING
            shutil.rmtree(stage, ignore_errors=True)  # left by a job killed before publishing
            if not had_result:
                write_status(out_dir, status="running", started=started, **job)
            try:
                ds, staged, report = _run(cfg, model, stage, overrides, figures)
                written = _publish(stage, out_dir, staged)
            except BaseException as e:
                shutil.rmtree(stage, ignore_errors=True)
                failed(e)
                raise
            listed = {str(p.relative_to(out_dir)): file_sha256(p) for p in written}
            write_status(out_dir, status="ok", started=started, seconds=round(time.perf_counter() - t0, 3), files=listed, **job)
            (out_dir / files.FAILURE).unlink(missing_ok=True)
        if echo and not cfg.quiet:
            _echo(ds, cfg, out_dir, written, report, time.perf_counter() - t0)
        return ds
    finally:
        if figures is not None:
            figures.abort()  # nothing left to stop once the figures are drawn


def _figure_job(cfg: Config, fig_dir: Path):
    """The run's figure job (:mod:`sim.outputs.figure_workers`), or None without figures."""
    if not cfg.figures.enabled or cfg.params.ensemble:
        return None
    from sim.outputs.figure_workers import FigureJob

    return FigureJob(fig_dir, cfg.figures)


class RunDirBusy(RuntimeError):
    """Another run is writing into the directory."""


@contextlib.contextmanager
def run_lock(out_dir: Path):
    """Hold an exclusive lock on ``out_dir`` (``flock`` on its ``.lock``) for the block, or
    raise :class:`RunDirBusy` naming the run that holds it."""
    path = out_dir / files.LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            raise RunDirBusy(f"{out_dir}: another run is writing into this directory ({holder}); wait for it to end or choose another output directory (hydra.run.dir=...)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _publish(stage: Path, out_dir: Path, staged: list[Path]) -> list[Path]:
    """Move the staged files into ``out_dir`` (same relative paths) and remove the files of the
    run before that the new set does not have; returns the published paths."""
    rel = [p.relative_to(stage) for p in staged]
    new = {str(r) for r in rel}
    old = set((read_status(out_dir).get("files") or {}))
    fig_dir = out_dir / files.FIGURES
    if fig_dir.is_dir():
        old |= {str(p.relative_to(out_dir)) for p in fig_dir.rglob("*") if p.is_file()}
    old.add(files.REPORT_HTML)  # written later by python -m sim.report, from the run before
    out = []
    for r in rel:
        dst = out_dir / r
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / r, dst)
        out.append(dst)
    for name in sorted(old - new):
        if name != files.STATUS:
            (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(stage, ignore_errors=True)
    return out


def _run_ensemble(cfg: Config, model, out_dir: Path, overrides) -> tuple[xr.Dataset, list[Path], str]:
    """A ``params.ensemble`` run: every draw in one kernel call, reduced to totals, written as
    quantiles (and every draw's urban share with ``params.keep_draws``)."""
    from sim.engine.runner import project_summary
    from sim.inputs.load import observation_errors
    from sim.inputs.observed import read_observed
    from sim.outputs import assimilation
    from sim.outputs.dataset import summary_dataset
    from sim.paths import repo_path

    backend = resolve_backend(cfg.backend, work(model))
    log.info("projecting %d draws x %d years (%s)%s", cfg.draws.count, cfg.end_year - cfg.start_year, backend,
             "; a first run compiles the ensemble kernel, up to a minute (python -m sim.warmup does it ahead)" if backend == "numba" else "")
    summ = project_summary(model, backend=backend)
    reported = conditioned = None
    if cfg.geography.name in GUANGXI_GEOGRAPHIES and not cfg.geography.regions:  # the observation model is of Guangxi's totals
        errors = observation_errors()
        if cfg.observed:
            rows = read_observed(repo_path(cfg.observed))
            conditioned = assimilation.condition(assimilation.totals_of(summ), rows, errors, census_year=cfg.start_year, seed=cfg.uncertainty.seed)
            summ = summ.take(conditioned.index)
        draws = cfg.draws.start + np.arange(summ.residents.shape[1])
        reported = assimilation.reported(assimilation.totals_of(summ), errors, census_year=cfg.start_year, seed=cfg.uncertainty.seed, draws=draws)
    ds = summary_dataset(model, summ, scenario=cfg.scenario, keep_draws=cfg.params.keep_draws, reported=reported, conditioned=conditioned)
    ds.attrs["overrides"] = json.dumps(list(overrides))
    written = [write_netcdf(ds, out_dir / cfg.output, cfg.compression)]
    tu = ds.total_urban_share
    lines = [f"Ensemble of {ds.attrs['draws']} draws ({cfg.params.name}), scenario {cfg.scenario}: resident urbanization rate of all regions, quantiles 5 / 25 / 50 / 75 / 95 %"]
    if conditioned is not None:
        lines.insert(0, f"Conditioned on {len(conditioned.used)} reported figure(s) of {cfg.observed} (importance weights, resampled): effective sample size {conditioned.ess:.1f} of {len(conditioned.weights)} draws, {int(np.unique(conditioned.index).size)} distinct")
    for t in cfg.targets.targets:
        if t.region == "Guangxi" and t.variable == "urban_share" and t.year in ds.year.values:
            v = tu.sel(year=t.year).values * 100
            lines.append(f"  {t.year}: {' / '.join(f'{x:.2f}' for x in v)} %   (target {t.op} {t.value * 100:.1f} %)")
            if "reported_total_urban_share" in ds:
                r = ds.reported_total_urban_share.sel(year=t.year).values * 100
                lines.append(f"        as the bulletin will report it: {' / '.join(f'{x:.2f}' for x in r)} %")
    rows = target_rows(ds, cfg.targets)  # probabilities: shares of the draws (of the quantity, not the bulletin's figure)
    if rows:
        written.append(write_text(to_csv(rows), out_dir / files.TARGETS))
    if cfg.targets.region_years:
        written.append(write_text(to_csv(region_rows(ds, list(cfg.targets.region_years))), out_dir / files.REGIONS))
    if cfg.figures.enabled:  # bands from the quantiles (no pyramid or land: a reduced ensemble keeps no ages or land needed)
        from sim.outputs.figures import write_figures

        written += write_figures(ds, out_dir / files.FIGURES, cfg.figures)
    lines += ["", "p: the share of the draws whose projected quantity meets the target (not the bulletin's figure, which adds its observation error: reported_total_* in the file)",
              format_report(ds, cfg.targets)]
    report = "\n".join(lines)
    written.append(write_text(report + "\n", out_dir / files.REPORT))
    written.append(_write_config(cfg, overrides, out_dir))
    return ds, written, report


def _run(cfg: Config, model, out_dir: Path, overrides, figures=None) -> tuple[xr.Dataset, list[Path], str]:
    """Project ``model`` and write its files into ``out_dir`` (the staging folder); ``figures``:
    the run's :class:`sim.outputs.figure_workers.FigureJob` (drawing into ``out_dir``), if any."""
    if cfg.params.ensemble:
        return _run_ensemble(cfg, model, out_dir, overrides)
    proj = project(model, backend=resolve_backend(cfg.backend, work(model)))
    ds = to_dataset(model, proj, scenario=cfg.scenario)
    ds.attrs["overrides"] = json.dumps(list(overrides))
    if figures is not None:  # drawn by the figure processes while the rest is written
        figures.draw(ds)
    try:
        written = [write_netcdf(ds, out_dir / cfg.output, cfg.compression)]
        rows = target_rows(ds, cfg.targets)
        if rows:
            written.append(write_text(to_csv(rows), out_dir / files.TARGETS))
        if cfg.targets.region_years:
            written.append(write_text(to_csv(region_rows(ds, list(cfg.targets.region_years))), out_dir / files.REGIONS))
        report = format_report(ds, cfg.targets)
        written.append(write_text(report + "\n", out_dir / files.REPORT))
        written.append(_write_config(cfg, overrides, out_dir))
        if figures is not None:
            written += figures.finish()
    finally:  # the figure processes stopped before a failed run removes their folder (no-op once drawn)
        if figures is not None:
            figures.abort()
    return ds, written, report


def _write_config(cfg: Config, overrides, out_dir: Path) -> Path:
    """``config.yaml``: the overrides that reproduce the run and its resolved config."""
    import dataclasses

    import yaml

    text = yaml.safe_dump({"overrides": list(overrides), "config": json.loads(json.dumps(dataclasses.asdict(cfg), default=str))}, sort_keys=False, allow_unicode=True)
    return write_text(text, out_dir / files.RUN_CONFIG)


def _echo(ds: xr.Dataset, cfg: Config, out_dir: Path, written: list[Path], report: str, seconds: float) -> None:
    print(report)
    resid = ds.attrs.get("accounting_max_abs_residual_persons")
    note = f"; accounting residual {resid:.2e} persons" if resid is not None else ""
    print(f"\nwrote {out_dir / cfg.output} ({seconds:.2f} s{note})")
    figures = [p for p in written if p.parent.name == files.FIGURES]
    if figures:
        print(f"figures ({len(figures)}): {out_dir / files.FIGURES}")
