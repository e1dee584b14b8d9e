"""Run one projection from a config: validate, load, build, project, write, report.

Pure of Hydra: :mod:`sim.__main__` converts Hydra's config to :class:`sim.schema.Config` and
calls :func:`run`, which is also what tests and notebooks call.

Every run is a job with a ``status.json`` in its output directory, written atomically: ``running``
when it starts; ``ok`` with the SHA-256 of every file it wrote once they are all in place; or
``failed`` with the error's type, message and traceback. With ``resume=true`` a run whose
directory holds an ``ok`` status for the same config, with every listed file present and
unchanged, is skipped; anything less (a job killed midway, a file missing or altered, another
config) runs again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import xarray as xr

from sim.inputs import load_inputs
from sim.io import to_dataset, write_netcdf, write_text
from sim.model import build_model
from sim.report import format_report, region_rows, target_rows, to_csv
from sim.runner import project
from sim.schema import Config, check_regions, region_mask, validate

log = logging.getLogger("sim")


def prepare(cfg: Config):
    """Validate the config against the schema and the inputs; build the model (no projecting)."""
    validate(cfg)
    inputs = load_inputs(cfg.geography.name, cfg.start_year, census=cfg.geography.census_dir, cache=cfg.geography.cache_dir)
    check_regions(cfg, [str(r) for r in inputs.region.values], [str(r) for r in inputs.prefecture.values])
    if cfg.geography.regions:
        keep = region_mask(cfg.geography.regions, inputs.region.values, inputs.prefecture.values)
        names = [str(r) for r in inputs.region.values[keep]]
        inputs = inputs.sel(region=names, region_to=names)  # attributes (checksum) are kept
    return build_model(cfg, inputs)


STATUS = "status.json"
# fields that do not change a run's results, left out of its config digest
NOT_RESULTS = ("resume", "quiet")


def config_digest(cfg: Config) -> str:
    """SHA-256 of the resolved config, less the fields that do not change the results."""
    d = dataclasses.asdict(cfg)
    for k in NOT_RESULTS:
        d.pop(k, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_status(out_dir: str | Path) -> dict:
    """The run's ``status.json`` (empty when there is none or it cannot be read)."""
    try:
        return json.loads((Path(out_dir) / STATUS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def is_complete(out_dir: str | Path, digest: str | None = None) -> bool:
    """True when ``out_dir`` holds a finished run (of the config with ``digest``, when given):
    status ``ok`` and every file it lists present with its recorded SHA-256."""
    st = read_status(out_dir)
    if st.get("status") != "ok" or (digest is not None and st.get("config_sha256") != digest):
        return False
    files = st.get("files") or {}
    return bool(files) and all((Path(out_dir) / n).is_file() and file_sha256(Path(out_dir) / n) == sha for n, sha in files.items())


def _write_status(out_dir: Path, **fields) -> None:
    write_text(json.dumps(fields, indent=1, default=str) + "\n", out_dir / STATUS)


def _job_info() -> dict:
    env = {k: os.environ[k] for k in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_CPUS_PER_TASK") if k in os.environ}
    return {"host": socket.gethostname(), "pid": os.getpid(), **({"slurm": env} if env else {})}


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
    job = {"overrides": list(overrides), "config_sha256": digest, **_job_info()}
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write_status(out_dir, status="running", started=started, **job)
    t0 = time.perf_counter()
    try:
        ds, written, report = _run(cfg, out_dir, overrides)
    except BaseException as e:
        _write_status(
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
    _write_status(out_dir, status="ok", started=started, seconds=round(time.perf_counter() - t0, 3), files=files, **job)
    if echo and not cfg.quiet:
        _echo(ds, cfg, out_dir, written, report, time.perf_counter() - t0)
    return ds


def _run_ensemble(cfg: Config, model, out_dir: Path, overrides) -> tuple[xr.Dataset, list[Path], str]:
    """A ``params.ensemble`` run: every draw in one kernel call, reduced to totals, written as
    quantiles (and every draw's urban share with ``params.keep_draws``)."""
    from sim.io import summary_dataset
    from sim.runner import project_summary

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
    written.append(write_text(report + "\n", out_dir / "report.txt"))
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
        written.append(write_text(to_csv(rows), out_dir / "targets.csv"))
    if cfg.targets.region_years:
        written.append(write_text(to_csv(region_rows(ds, list(cfg.targets.region_years))), out_dir / "regions.csv"))
    report = format_report(ds, cfg.targets)
    written.append(write_text(report + "\n", out_dir / "report.txt"))
    if cfg.figures.enabled:
        from sim.figures import write_figures  # matplotlib only when figures are asked for

        written += [Path(p) for p in write_figures(ds, out_dir / "figures", cfg.figures)]
    return ds, written, report


def _echo(ds: xr.Dataset, cfg: Config, out_dir: Path, written: list[Path], report: str, seconds: float) -> None:
    print(report)
    resid = ds.attrs.get("accounting_max_abs_residual_persons")
    note = f"; accounting residual {resid:.2e} persons" if resid is not None else ""
    print(f"\nwrote {out_dir / cfg.output} ({seconds:.2f} s{note})")
    figures = [p for p in written if p.parent.name == "figures"]
    if figures:
        print(f"figures ({len(figures)}): {out_dir / 'figures'}")
