"""Run one projection from a config: validate, load, build, project, write, report.

Pure of Hydra: :mod:`sim.__main__` converts Hydra's config to :class:`sim.schema.Config` and
calls :func:`run`, which is also what tests and notebooks call.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

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
    inputs = load_inputs(cfg.geography.name, cfg.start_year)
    check_regions(cfg, [str(r) for r in inputs.region.values], [str(r) for r in inputs.prefecture.values])
    if cfg.geography.regions:
        keep = region_mask(cfg.geography.regions, inputs.region.values, inputs.prefecture.values)
        names = [str(r) for r in inputs.region.values[keep]]
        inputs = inputs.sel(region=names, region_to=names)  # attributes (checksum) are kept
    return build_model(cfg, inputs)


def run(cfg: Config, out_dir: str | Path, *, echo: bool = True):
    """Project ``cfg`` and write ``projection.nc`` and ``targets.csv`` into ``out_dir``."""
    t0 = time.perf_counter()
    model = prepare(cfg)
    proj = project(model, draws=cfg.draws, backend=cfg.backend)
    ds = to_dataset(model, proj, scenario=cfg.scenario)
    out_dir = Path(out_dir)
    nc = write_netcdf(ds, out_dir / cfg.output)
    rows = target_rows(ds, cfg.targets)
    if rows:
        write_text(to_csv(rows), out_dir / "targets.csv")
    if cfg.targets.region_years:
        write_text(to_csv(region_rows(ds, list(cfg.targets.region_years))), out_dir / "regions.csv")
    report = format_report(ds, cfg.targets)
    write_text(report + "\n", out_dir / "report.txt")
    figures = []
    if cfg.figures.enabled:
        from sim.figures import write_figures  # matplotlib only when figures are asked for

        figures = write_figures(ds, out_dir / "figures", cfg.figures)
    if echo and not cfg.quiet:
        print(report)
        print(f"\nwrote {nc} ({time.perf_counter() - t0:.2f} s; accounting residual {ds.attrs['accounting_max_abs_residual_persons']:.2e} persons)")
        if figures:
            print(f"figures ({len(figures)}): {out_dir / 'figures'}")
    return ds
