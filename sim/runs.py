"""Find and open finished runs: a run directory, a sweep directory, or a netCDF file (a
collected sweep with a ``scenario`` dimension is split into its runs)."""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr

from sim.schema import FiguresConfig, Target, TargetsConfig


def open_run(path: Path) -> xr.Dataset:
    """A finished netCDF file, read into memory and closed."""
    with xr.open_dataset(path) as ds:
        return ds.load()


def find_runs(path: str | Path) -> list[Path]:
    """``projection.nc`` files under ``path`` (itself, when it is a file); sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if (path / "projection.nc").is_file():
        return [path / "projection.nc"]
    found = sorted(p for p in path.rglob("*.nc") if not p.name.startswith("."))
    if not found:
        raise FileNotFoundError(f"{path}: no projection.nc (a run directory, a sweep directory or a .nc file is expected)")
    return found


def load_runs(paths) -> dict[str, xr.Dataset]:
    """``{label: dataset}`` for every run under ``paths``. Labels are the runs' scenarios, made
    unique with the run's directory when two runs share a scenario."""
    items: list[tuple[str, Path, xr.Dataset]] = []
    for p in paths:
        for f in find_runs(p):
            ds = open_run(f)
            if "scenario" in ds.dims:
                for s in ds.scenario.values:
                    run = ds.sel(scenario=s).assign_attrs(scenario=str(s))
                    if "config_json" in run.coords:  # sim.collect keeps each run's config per scenario
                        run = run.assign_attrs(config_json=str(run.config_json.values)).drop_vars("config_json")
                    items.append((str(s), f, run))
            else:
                items.append((str(ds.attrs.get("scenario", f.parent.name)), f, ds))
    labels = [lab for lab, _, _ in items]
    out = {}
    for lab, f, ds in items:
        key = lab if labels.count(lab) == 1 else f"{lab} ({f.parent.name})"
        n, base = 2, key
        while key in out:
            key, n = f"{base} #{n}", n + 1
        out[key] = ds
    return out


def recorded_config(ds: xr.Dataset) -> dict:
    """The resolved config a run recorded (``config_json``)."""
    try:
        return json.loads(ds.attrs["config_json"])
    except (KeyError, ValueError):
        return {}


def targets_of(ds: xr.Dataset) -> TargetsConfig:
    """The run's targets, rebuilt from its recorded config."""
    t = recorded_config(ds).get("targets", {})
    return TargetsConfig(
        name=t.get("name", "none"),
        groups={k: list(v) for k, v in t.get("groups", {}).items()},
        targets=[Target(**x) for x in t.get("targets", [])],
        region_years=list(t.get("region_years", [])),
    )


def figures_of(ds: xr.Dataset) -> FiguresConfig:
    """The run's figure settings (defaults where it recorded none)."""
    f = recorded_config(ds).get("figures", {})
    return FiguresConfig(**{k: v for k, v in f.items() if k in FiguresConfig.__dataclass_fields__})
