"""Run one projection from a config: validate, load, build, project, write, report.

Pure of Hydra: :mod:`sim.__main__` converts Hydra's config to :class:`sim.config.schema.Config`
and calls :func:`run`, which is also what tests and notebooks call.

Every run is a job with a ``status.json`` in its output directory, written atomically: ``running``
when it starts; ``ok`` with the SHA-256 of every file it wrote once they are all in place; or
``failed`` with the error's type, message and traceback. With ``resume=true`` a run whose
directory holds an ``ok`` status for the same config, with every listed file present and
unchanged, is skipped; anything less (a job killed midway, a file missing or altered, another
config) runs again.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import xarray as xr

from sim import files
from sim.config.schema import Config
from sim.engine.prepare import prepare
from sim.engine.runner import project
from sim.files import write_netcdf, write_text
from sim.outputs.dataset import to_dataset
from sim.outputs.runs import config_digest, file_sha256, is_complete, job_info, write_status
from sim.outputs.targets import format_report, region_rows, target_rows, to_csv

log = logging.getLogger("sim")


def run(cfg: Config, out_dir: str | Path, *, echo: bool = True, overrides: list[str] | tuple = ()) -> xr.Dataset:
    """Project ``cfg`` and write ``projection.nc``, ``targets.csv``, the report, the figures and
    ``status.json`` into ``out_dir``; ``overrides`` (the command line's) are recorded. With
    ``cfg.resume`` and a complete result already there, nothing is computed and the stored
    projection is returned."""
    out_dir = Path(out_dir)
    digest = config_digest(cfg)
    if cfg.resume and is_complete(out_dir, digest):
        log.info("%s: complete result found, skipped (resume=true)", out_dir)
        if echo and not cfg.quiet:
            print(f"{out_dir}: complete, skipped (resume=true)")
        with xr.open_dataset(out_dir / cfg.output) as ds:
            return ds.load()
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".*.tmp"):  # left by a job killed while writing
        stale.unlink(missing_ok=True)
    job = {"overrides": list(overrides), "config_sha256": digest, **job_info()}
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_status(out_dir, status="running", started=started, **job)
    t0 = time.perf_counter()
    try:
        ds, written, report = _run(cfg, out_dir, overrides)
    except BaseException as e:
        write_status(
            out_dir,
            status="failed",
            error=type(e).__name__,
            message=str(e),
            traceback=traceback.format_exc(),
            started=started,
            seconds=round(time.perf_counter() - t0, 3),
            **job,
        )
        raise
    files = {str(p.relative_to(out_dir)): file_sha256(p) for p in written}
    write_status(out_dir, status="ok", started=started, seconds=round(time.perf_counter() - t0, 3), files=files, **job)
    if echo and not cfg.quiet:
        _echo(ds, cfg, out_dir, written, report, time.perf_counter() - t0)
    return ds


def _run_ensemble(cfg: Config, model, out_dir: Path, overrides) -> tuple[xr.Dataset, list[Path], str]:
    """A ``params.ensemble`` run: every draw in one kernel call, reduced to totals, written as
    quantiles (and every draw's urban share with ``params.keep_draws``)."""
    from sim.engine.runner import project_summary
    from sim.outputs.dataset import summary_dataset

    summ = project_summary(model, backend=cfg.backend)
    ds = summary_dataset(model, summ, scenario=cfg.scenario, keep_draws=cfg.params.keep_draws)
    ds.attrs["overrides"] = json.dumps(list(overrides))
    written = [write_netcdf(ds, out_dir / cfg.output)]
    tu = ds.total_urban_share
    lines = [f"Ensemble of {ds.attrs['draws']} draws ({cfg.params.name}), scenario {cfg.scenario}: resident urbanization rate of all regions, quantiles 5 / 25 / 50 / 75 / 95 %"]
    for t in cfg.targets.targets:
        if t.region == "Guangxi" and t.variable == "urban_share" and t.year in ds.year.values:
            v = tu.sel(year=t.year).values * 100
            lines.append(f"  {t.year}: {' / '.join(f'{x:.2f}' for x in v)} %   (target {t.op} {t.value * 100:.1f} %)")
    report = "\n".join(lines)
    written.append(write_text(report + "\n", out_dir / files.REPORT))
    return ds, written, report


def _run(cfg: Config, out_dir: Path, overrides) -> tuple[xr.Dataset, list[Path], str]:
    model = prepare(cfg)
    if cfg.params.ensemble:
        return _run_ensemble(cfg, model, out_dir, overrides)
    proj = project(model, backend=cfg.backend)
    ds = to_dataset(model, proj, scenario=cfg.scenario)
    ds.attrs["overrides"] = json.dumps(list(overrides))
    written = [write_netcdf(ds, out_dir / cfg.output)]
    rows = target_rows(ds, cfg.targets)
    if rows:
        written.append(write_text(to_csv(rows), out_dir / files.TARGETS))
    if cfg.targets.region_years:
        written.append(write_text(to_csv(region_rows(ds, list(cfg.targets.region_years))), out_dir / files.REGIONS))
    report = format_report(ds, cfg.targets)
    written.append(write_text(report + "\n", out_dir / files.REPORT))
    if cfg.figures.enabled:
        from sim.outputs.figures import write_figures  # matplotlib only when figures are asked for

        written += [Path(p) for p in write_figures(ds, out_dir / files.FIGURES, cfg.figures)]
    return ds, written, report


def _echo(ds: xr.Dataset, cfg: Config, out_dir: Path, written: list[Path], report: str, seconds: float) -> None:
    print(report)
    resid = ds.attrs.get("accounting_max_abs_residual_persons")
    note = f"; accounting residual {resid:.2e} persons" if resid is not None else ""
    print(f"\nwrote {out_dir / cfg.output} ({seconds:.2f} s{note})")
    figures = [p for p in written if p.parent.name == files.FIGURES]
    if figures:
        print(f"figures ({len(figures)}): {out_dir / files.FIGURES}")
