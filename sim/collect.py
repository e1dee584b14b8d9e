"""Combine a sweep's jobs into one dataset and one table: ``python -m sim.collect SWEEP_DIR``.

Every job directory under ``SWEEP_DIR`` (one with a ``status.json``) is read:

- a job whose status is ``ok`` and whose listed files are all present and unchanged goes into the
  dataset; anything else (``failed``, a job still ``running`` or killed midway, a file missing or
  altered) is listed in the table with its status and message, and left out of the dataset;
- jobs are grouped by their overrides less the draw slice (``draws.start``, ``draws.count``) and
  the keys that do not change results (``resume``, ``quiet``, ``figures.*``); the slices of a group
  are joined along ``draw`` in draw order, and must neither overlap nor leave gaps;
- the groups are stacked along a new ``scenario`` dimension, labelled by their overrides
  (``"scenario=plan,policy/hukou=full_opening"``), with one coordinate per swept key (``/``
  written as ``.``: ``policy.hukou``), the scenario's own name (``scenario_name``), its resolved
  config (``config_json``) and its job directories, so results can be selected by lever value:
  ``open_collected(path).sel({"policy.hukou": "full_opening"})``.

Writes ``collected.nc`` (``--format zarr``: ``collected.zarr``) and ``collected_targets.csv`` (every
target of every job, failed jobs included) into ``--out`` (default ``SWEEP_DIR``), atomically.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr

from sim.app import NOT_RESULTS, STATUS, is_complete, read_status
from sim.io import write_netcdf, write_text
from sim.report import to_csv
from sim.runs import open_run

SLICE_KEYS = ("draws.start", "draws.count")
# overrides that do not change a job's results: sim.app.NOT_RESULTS, figures, Hydra's own
IGNORED_PREFIXES = ("figures.", "hydra.", "hydra/")
FORMATS = ("netcdf", "zarr")


class CollectError(ValueError):
    """The sweep cannot be combined (no finished job, overlapping draw slices, ...)."""


@dataclass
class Job:
    path: Path
    status: str
    message: str = ""
    overrides: list[str] = field(default_factory=list)

    @property
    def pairs(self) -> dict[str, str]:
        """The overrides as ``{key: value}``."""
        return dict(o.lstrip("+~").partition("=")[::2] for o in self.overrides)

    @property
    def settings(self) -> dict[str, str]:
        """Overrides that define the scenario (the draw slice and result-neutral keys left out)."""
        return {k: v for k, v in self.pairs.items() if k not in SLICE_KEYS and k not in NOT_RESULTS and not k.startswith(IGNORED_PREFIXES)}

    @property
    def label(self) -> str:
        s = self.settings
        return ",".join(f"{k}={v}" for k, v in s.items()) or "default"


def _job_order(p: Path):
    rel = p.parts
    return tuple((0, int(x), "") if x.isdigit() else (1, 0, x) for x in rel)


def find_jobs(sweep_dir: str | Path) -> list[Job]:
    """Every job under ``sweep_dir`` with its state: ``ok`` (complete), ``failed``, or
    ``incomplete`` (running, killed midway, or a file missing or changed since it finished)."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise CollectError(f"{root}: not a directory (a sweep directory, e.g. multirun/2026-11-21/10-00-00-123456, is expected)")
    jobs = []
    for st_path in sorted(root.rglob(STATUS), key=lambda p: _job_order(p.parent.relative_to(root))):
        if any(part.startswith(".") for part in st_path.relative_to(root).parts):
            continue  # .submitit and other tool folders
        d = st_path.parent
        st = read_status(d)
        state = st.get("status", "unreadable")
        if state == "ok" and not is_complete(d):
            state, msg = "incomplete", "status ok but a listed file is missing or changed"
        elif state == "running":
            state, msg = "incomplete", "did not finish (killed, timed out, or still running)"
        else:
            msg = f"{st.get('error', '')}: {st.get('message', '')}" if state == "failed" else ""
        jobs.append(Job(d, state, msg, list(st.get("overrides", []))))
    if not jobs:
        raise CollectError(f"{root}: no job directories (none has a {STATUS})")
    return jobs


def _join_slices(label: str, parts: list[tuple[Job, xr.Dataset]]) -> xr.Dataset:
    """One scenario's jobs joined along ``draw`` (a single job is returned as it is)."""
    if len(parts) == 1:
        return parts[0][1]
    if any("draw" not in ds.dims for _, ds in parts):
        dirs = [str(j.path) for j, ds in parts if "draw" not in ds.dims]
        raise CollectError(f"{label}: {len(parts)} jobs with the same settings but {dirs} has no draw dimension; runs repeated with the same overrides cannot be combined")
    parts = sorted(parts, key=lambda p: int(p[1].draw.values[0]))
    expected = int(parts[0][1].draw.values[0])
    for job, ds in parts:
        first, last = int(ds.draw.values[0]), int(ds.draw.values[-1])
        if first != expected:
            kind = "overlap" if first < expected else "gap"
            raise CollectError(f"{label}: draw slices {kind} at draw {min(first, expected)} ({job.path} starts at {first}, the previous slice ends at {expected - 1})")
        expected = last + 1
    return xr.concat([ds for _, ds in parts], dim="draw", data_vars="minimal", coords="minimal", compat="override", combine_attrs="drop_conflicts")


def collect(sweep_dir: str | Path) -> tuple[xr.Dataset, list[Job], list[dict]]:
    """Combine the finished jobs under ``sweep_dir``: ``(dataset, jobs, target rows)``."""
    jobs = find_jobs(sweep_dir)
    groups: dict[str, list[tuple[Job, xr.Dataset]]] = {}
    for j in jobs:
        if j.status == "ok":
            groups.setdefault(j.label, []).append((j, open_run(j.path / "projection.nc")))
    if not groups:
        raise CollectError(f"{sweep_dir}: no finished job to combine; " + "; ".join(f"{j.path.name}: {j.status} {j.message}".strip() for j in jobs))

    # keys swept (taking more than one value across the scenarios) become coordinates
    settings = {lab: parts[0][0].settings for lab, parts in groups.items()}
    keys = list(dict.fromkeys(k for s in settings.values() for k in s))
    swept = [k for k in keys if len({s.get(k, "") for s in settings.values()}) > 1]

    per = []
    with_draws = any("draw" in ds.dims for parts in groups.values() for _, ds in parts)
    residual = 0.0
    for lab, parts in groups.items():
        ds = _join_slices(lab, parts)
        residual = max([residual] + [float(d.attrs.get("accounting_max_abs_residual_persons", 0.0)) for _, d in parts])
        if with_draws and "draw" not in ds.dims:
            ds = ds.expand_dims(draw=[0])
        ds = ds.rename({"scenario": "scenario_name"}) if "scenario" in ds.coords else ds
        first = parts[0][1]
        ds = ds.assign_coords(
            config_json=first.attrs.get("config_json", ""),
            job_dirs=",".join(str(j.path.relative_to(sweep_dir)) for j, _ in parts),
            **{_coord(k): settings[lab].get(k, "") for k in swept},
        )
        per.append(ds)
    out = xr.concat(per, dim="scenario", data_vars="all", coords="different", compat="equals", join="outer", combine_attrs="drop_conflicts")
    out = out.assign_coords(scenario=("scenario", list(groups)))
    for k in ("config_json", "overrides", "accounting_max_abs_residual_persons", "capped_cells_total", "scenario"):
        out.attrs.pop(k, None)
    out.attrs.update(
        {
            "title": f"Collected sweep: {len(groups)} scenario(s) from {sweep_dir}",
            "sweep_dir": str(sweep_dir),
            "levers": json.dumps([_coord(k) for k in swept]),
            "accounting_max_abs_residual_persons": residual,
            "jobs_total": len(jobs),
            "jobs_collected": sum(len(p) for p in groups.values()),
            "jobs_not_collected": json.dumps([{"dir": str(j.path.relative_to(sweep_dir)), "status": j.status, "message": j.message} for j in jobs if j.status != "ok"]),
        }
    )
    for name in out.data_vars:  # per-job attributes were identical, keep units and long_name
        out[name].attrs = per[0][name].attrs
    return out, jobs, _target_rows(sweep_dir, jobs, swept)


def _coord(key: str) -> str:
    return "scenario_name" if key == "scenario" else key.replace("/", ".")


def _target_rows(sweep_dir, jobs: list[Job], swept: list[str]) -> list[dict]:
    rows = []
    for j in jobs:
        head = {"job": str(j.path.relative_to(sweep_dir)), "status": j.status, "label": j.label, **{_coord(k): j.settings.get(k, "") for k in swept}}
        head.update({"draws_start": j.pairs.get("draws.start", ""), "draws_count": j.pairs.get("draws.count", "")})
        f = j.path / "targets.csv"
        if j.status == "ok" and f.is_file():
            with open(f, newline="", encoding="utf-8") as fh:
                rows += [{**head, "message": "", **r} for r in csv.DictReader(fh)]
        else:
            rows.append({**head, "message": j.message})
    return rows


def write_zarr(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a Zarr store atomically: a temporary directory beside it, then renamed into place."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        ds.to_zarr(tmp / "store", mode="w", zarr_format=2)  # format 2: stable for the string coordinates, read by every Zarr library
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp / "store", path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp / "store", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def open_collected(path: str | os.PathLike) -> xr.Dataset:
    """Open a collected sweep with each lever coordinate indexed, so that
    ``ds.sel({"policy.hukou": "full_opening"})`` selects by lever value."""
    path = Path(path)
    ds = xr.open_zarr(path).load() if path.is_dir() else open_run(path)
    for name in json.loads(ds.attrs.get("levers", "[]")):
        ds = ds.set_xindex(name)
    return ds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.collect", description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep_dir", help="a sweep directory (hydra.sweep.dir)")
    ap.add_argument("--out", help="output directory (default: the sweep directory)")
    ap.add_argument("--format", default="netcdf", help=f"dataset format: {', '.join(FORMATS)} (default netcdf)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a job failed or is incomplete")
    a = ap.parse_args(argv)
    if a.format not in FORMATS:
        print(f"--format = {a.format!r}: allowed values are {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    try:
        ds, jobs, rows = collect(a.sweep_dir)
    except CollectError as e:
        print(f"collect: {e}", file=sys.stderr)
        return 2
    out = Path(a.out or a.sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    if a.format == "zarr":
        path = write_zarr(ds, out / "collected.zarr")
    else:
        path = write_netcdf(ds, out / "collected.nc")
    table = write_text(to_csv(rows), out / "collected_targets.csv")
    bad = [j for j in jobs if j.status != "ok"]
    n_draw = ds.sizes.get("draw", 1)
    print(f"collected {len(jobs) - len(bad)} of {len(jobs)} jobs: {ds.sizes['scenario']} scenario(s) x {n_draw} draw(s) -> {path}")
    print(f"targets of every job -> {table}")
    for j in bad:
        print(f"  {j.status}: {j.path} {j.message}".rstrip(), file=sys.stderr)
    return 1 if bad and a.strict else 0


if __name__ == "__main__":
    sys.exit(main())
