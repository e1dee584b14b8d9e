"""The explorer's computation, pure of the web page: a control state in, the panels' numbers out.

Each state is turned into its command-line overrides (:func:`sim.explore.controls.overrides`)
and composed by :func:`sim.config.compose.job_composer` (Hydra's composition once per set of
config-group choices, the values applied to a copy, then the schema's validation: the config
``python -m sim`` would build, with its errors). Models are built once per config that differs
only in the per-draw levers (:data:`sim.outputs.batch.BATCHABLE`); a change of such a lever
projects the cached model with the lever as a per-draw multiplier (:func:`sim.outputs.batch.batch_model`,
equal to its own run to 1e-12), anything else builds the model (:func:`sim.engine.prepare.prepare`).
Projections are the reduced outputs (totals per year, draw and region) and the target table is
:func:`sim.outputs.targets.target_tables` of them, as the batched sweeps compute it.

:meth:`Explorer.export` runs the state through :func:`sim.outputs.job.run`, the command line's
own code, into a new run directory under the explorer's output folder, with the command that
reproduces it.
"""

from __future__ import annotations

import collections
import itertools
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import xarray as xr

from sim import files
from sim.config.schema import SHARE_TARGET_VARIABLES, Config, ConfigError
from sim.explore import controls
from sim.paths import REPO

EXPORT_FILES = (files.PROJECTION, files.TARGETS, files.OVERRIDES)  # what the page offers for download
BAND = (0.05, 0.95)  # an ensemble's band: these quantiles of the draws
MAX_MODELS = 16  # built models kept (one per config apart from the per-draw levers)
DEFAULT_OUT = REPO / "outputs" / "explore"  # the explorer's output folder: a run directory per export
DEFAULT_ENSEMBLE_DRAWS = 200  # a posterior ensemble's draws in the explorer unless draws= says otherwise


@dataclass
class Result:
    state: controls.State
    overrides: list[str]
    cfg: Config
    ds: xr.Dataset  # reduced outputs of the one projection: (year[, draw], region)
    rows: list[dict]  # the target table (sim.outputs.targets.target_tables)
    seconds: float  # compose + project + target table
    built: bool  # a model was built for it (not a cached one re-used)

    @property
    def draws(self) -> bool:
        return "draw" in self.ds.dims


class Explorer:
    """Projections of control states for one geography and parameter set (``base``: the
    overrides fixed when the explorer starts, e.g. ``geography=...``, ``params=...``)."""

    def __init__(self, base: list[str] | tuple = (), out_dir: str | Path | None = None, draws: int | None = None):
        from sim.config.compose import job_composer
        from sim.config.jobs import is_group

        self.composer = job_composer()
        self.base = list(base)
        self.globals = [o for o in self.base if is_group(o.partition("=")[0])]
        probe = self.compose([*self.base])
        if probe.params.ensemble and draws is None:
            draws = DEFAULT_ENSEMBLE_DRAWS
        if draws is not None:
            self.base.append(f"draws.count={int(draws)}")
        self.out_dir = Path(out_dir) if out_dir else DEFAULT_OUT
        self.groups = controls.groups()
        self.scenarios = controls.scenarios()
        self.default_scenario = probe.scenario
        self.exports: dict[str, Path] = {}  # token -> run directory (what the download route serves)
        self._models: collections.OrderedDict = collections.OrderedDict()
        self._count = itertools.count(1)

    # -- configs -----------------------------------------------------------------------------
    def compose(self, ovs: list[str]) -> Config:
        """The validated config of ``ovs`` or the :class:`ConfigError` the command line gives."""
        from sim.config.cli import check_group_choices, rewrite_overrides

        check_group_choices(list(ovs))
        cfg = self.composer.compose([rewrite_overrides(list(ovs))])[0]
        if isinstance(cfg, ConfigError):
            raise cfg
        return cfg

    def choices(self, scenario: str) -> dict[str, str]:
        """The option of every control group under ``scenario``."""
        ch = self.composer.choices([*self.globals, f"scenario={scenario}"])
        return {g.key: str(ch.get(g.key)) for g in self.groups}

    # -- projections -------------------------------------------------------------------------
    def run(self, state: controls.State) -> Result:
        """Project ``state``; a bad value raises :class:`ConfigError` before anything runs."""
        from sim.outputs.targets import target_tables

        t0 = time.perf_counter()
        ovs = controls.overrides(state, self.base)
        cfg = self.compose(ovs)
        block, built = self._project(cfg)
        rows = target_tables(block, cfg.targets, "scenario")[0]
        return Result(state.copy(), ovs, cfg, block.isel(scenario=0), rows, time.perf_counter() - t0, built)

    def _project(self, cfg: Config) -> tuple[xr.Dataset, bool]:
        from sim.engine.prepare import prepare
        from sim.engine.runner import project_summary
        from sim.outputs.batch import BATCHABLE, Batch, _get, _ratio, _without_levers, batch_model, configs_json, reduced_block

        key = _without_levers(cfg)
        hit = self._models.get(key)
        years = np.arange(cfg.start_year + 1, cfg.end_year + 1)
        built = hit is None or any(_ratio(_get(cfg, p), _get(hit[0], p), years) is None for p in BATCHABLE)
        if built:  # a new model (or the cached one has a 0 where this config's lever is not)
            hit = (cfg, prepare(cfg, reduced=True))
            self._models[key] = hit
            while len(self._models) > MAX_MODELS:
                self._models.popitem(last=False)
        self._models.move_to_end(key)
        cfgs = [cfg, hit[0]]
        batch = Batch([0], 1)
        model = batch_model(cfgs, batch, reduced=True, own=hit[1])
        return reduced_block(model, project_summary(model), cfgs, batch.jobs, configs_json(cfgs, batch)), built

    # -- export ------------------------------------------------------------------------------
    def export(self, state: controls.State, result: Result | None = None) -> tuple[str, Path]:
        """Run ``state`` as ``python -m sim`` does into a new directory under the output folder:
        ``projection.nc``, ``targets.csv``, ``overrides.txt`` (the command line) and the rest of
        a run's files. Returns the download token and the directory. An ensemble run writes
        quantiles and no target table; its ``targets.csv`` is the page's (probabilities, medians)."""
        from sim.outputs.job import run
        from sim.outputs.targets import to_csv

        ovs = [*controls.overrides(state, self.base), "figures.enabled=false"]
        cfg = self.compose(ovs)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = self.out_dir / f"{stamp}-{next(self._count):03d}"
        run(cfg, out, echo=False, overrides=ovs)
        if not (out / files.TARGETS).is_file():
            rows = (result or self.run(state)).rows
            (out / files.TARGETS).write_text(to_csv(rows), encoding="utf-8")
        (out / files.OVERRIDES).write_text(controls.command_line(ovs) + "\n", encoding="utf-8")
        token = secrets.token_hex(8)
        self.exports[token] = out
        return token, out


# -- what the panels draw -----------------------------------------------------------------------
def _centre_band(a: xr.DataArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if "draw" in a.dims:
        q = a.quantile([0.5, *BAND], dim="draw")
        return q.isel(quantile=0).values, q.isel(quantile=1).values, q.isel(quantile=2).values
    v = a.values
    return v, v, v


def guangxi_paths(r: Result) -> dict[str, np.ndarray]:
    """All regions' urban share (median and band, in %), urban land and the land needed (km2)."""
    mid, lo, hi = _centre_band(r.ds.total_urban_share)
    land = _centre_band(r.ds.urban_land.sum("region"))[0]
    need = _centre_band(r.ds.land_required.sum("region"))[0]
    return {"year": r.ds.year.values, "mid": 100 * mid, "lo": 100 * lo, "hi": 100 * hi, "land": land, "need": need}


def region_paths(r: Result) -> dict[str, dict[str, np.ndarray]]:
    """Each region's urban share, median and band (%), by region name."""
    out = {}
    mid, lo, hi = _centre_band(r.ds.urban_share.transpose(*[d for d in ("draw", "year", "region") if d in r.ds.urban_share.dims]))
    for k, name in enumerate(r.ds.region.values):
        out[str(name)] = {"mid": 100 * mid[..., k], "lo": 100 * lo[..., k], "hi": 100 * hi[..., k]}
    return out


def share_targets(cfg: Config) -> list[tuple[int, float, str]]:
    """Guangxi's urban-share targets: (year, value in %, op)."""
    return [(t.year, 100 * t.value, t.op) for t in cfg.targets.targets if t.region == "Guangxi" and t.variable == "urban_share"]


def map_values(r: Result, year: int, variable: str) -> tuple[dict[str, float], str]:
    """Each region's urban share in ``year`` (median, %) or its gap to Guangxi's urban-share
    target of that year (percentage points), and a label."""
    year = int(min(max(year, r.ds.year.values[0]), r.ds.year.values[-1]))
    share = r.ds.urban_share.sel(year=year)
    if "draw" in share.dims:
        share = share.median("draw")
    vals = {str(k): 100 * float(v) for k, v in zip(r.ds.region.values, share.values)}
    if variable == "target_gap":
        t = [v for y, v, _ in share_targets(r.cfg) if y == year]
        if t:
            return {k: v - t[0] for k, v in vals.items()}, f"urban share {year} minus the {t[0]:.0f} % target (pp)"
    return vals, f"urban share {year} (%)"


def observed(region: str, variable: str = "urban_share") -> tuple[list[int], list[float], list[str]]:
    """Years, values (%) and grades of a region's observed ``variable``."""
    from sim.outputs.figures import observed_rows

    rows = [r for r in observed_rows() if r["region"] == region and r["variable"] == variable]
    return [r["year"] for r in rows], [100 * r["value"] for r in rows], [r.get("grade", "") for r in rows]


def table_rows(r: Result) -> list[dict]:
    """The target table as the page shows it: one dict per target, numbers formatted, the
    exact projected value kept (``value``)."""
    out = []
    for row in r.rows:
        share = row["variable"] in SHARE_TARGET_VARIABLES
        fmt = (lambda x: f"{100 * x:.2f} %") if share else (lambda x: f"{x:,.0f}")
        proj = row.get("projected", np.nan)
        ok = np.isfinite(proj)
        out.append({
            "target": row["target"], "year": row["year"], "required": f"{row['op']} {fmt(row['required'])}",
            "projected": fmt(proj) if ok else "", "value": float(proj) if ok else None,
            "met": row["met"] if isinstance(row["met"], str) else ("met" if row["met"] else "not met"),
            "first_year_met": str(row.get("first_year_met", "")),
            "probability": f"{row['probability']:.2f}" if "probability" in row else "",
            "land": f"{row['land_needed_km2']:,.0f}" if np.isfinite(row.get("land_needed_km2", np.nan)) else "",
        })
    return out


def result_json(r: Result) -> str:
    """What a test or a benchmark reads off the page: the run's overrides and target values."""
    return json.dumps({"overrides": r.overrides, "targets": {row["target"]: row["value"] for row in table_rows(r)}})
