"""Combining a sweep's jobs into one dataset and one table (the library of
``python -m sim.collect``, whose docstring says what goes in and what is written)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from sim import files
from sim.files import write_netcdf, write_text
from sim.outputs.runs import NOT_RESULTS, is_complete, open_run, read_status
from sim.outputs.targets import to_csv

SLICE_KEYS = ("draws.start", "draws.count")
# overrides that do not change a job's results: sim.outputs.runs.NOT_RESULTS, figures, Hydra's own
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
    for st_path in sorted(root.rglob(files.STATUS), key=lambda p: _job_order(p.parent.relative_to(root))):
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
        raise CollectError(f"{root}: no job directories (none has a {files.STATUS})")
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


def check_alike(joined: dict[str, xr.Dataset]) -> None:
    """Runs joined along ``scenario`` must share their regions and years: a join of prefectures
    with counties or of horizons to 2050 and 2200 is mostly NaN and no comparison. Raises
    :class:`CollectError` naming the first run that differs and how."""
    labels = list(joined)
    first = joined[labels[0]]
    for lab in labels[1:]:
        ds = joined[lab]
        for dim, what in (("region", "regions"), ("year", "years")):
            a, b = first[dim].values, ds[dim].values
            if a.shape != b.shape or not (a == b).all():
                def span(v, d=dim):
                    return f"{len(v)} {d}s, {v[0]}..{v[-1]}" if len(v) else "none"
                raise CollectError(
                    f"runs {labels[0]!r} ({first.attrs.get('geography', '?')}: {span(a)}) and {lab!r} ({ds.attrs.get('geography', '?')}: {span(b)}) "
                    f"do not share their {what}; collect runs of one geography and one horizon, or pass --outer to join them anyway (NaN where a run has no value)"
                )


def collect(sweep_dir: str | Path, *, outer: bool = False) -> tuple[xr.Dataset, list[Job], list[dict]]:
    """Combine the finished jobs under ``sweep_dir``: ``(dataset, jobs, target rows)``; the runs
    must share regions and years (:func:`check_alike`) unless ``outer``."""
    jobs = find_jobs(sweep_dir)
    groups: dict[str, list[tuple[Job, xr.Dataset]]] = {}
    for j in jobs:
        if j.status == "ok":
            groups.setdefault(j.label, []).append((j, open_run(j.path / files.PROJECTION)))
    if not groups:
        raise CollectError(f"{sweep_dir}: no finished job to combine; " + "; ".join(f"{j.path.name}: {j.status} {j.message}".strip() for j in jobs))

    # keys swept (taking more than one value across the scenarios) become coordinates
    settings = {lab: parts[0][0].settings for lab, parts in groups.items()}
    swept = swept_keys([parts[0][0].overrides for parts in groups.values()])

    joined = {lab: _join_slices(lab, parts) for lab, parts in groups.items()}
    if not outer:
        check_alike(joined)
    residual = max(float(d.attrs.get("accounting_max_abs_residual_persons", 0.0)) for parts in groups.values() for _, d in parts)
    dirs = {lab: ",".join(str(j.path.relative_to(sweep_dir)) for j, _ in parts) for lab, parts in groups.items()}
    out = _stack(joined, settings, swept, dirs)
    not_collected = [{"dir": str(j.path.relative_to(sweep_dir)), "status": j.status, "message": j.message} for j in jobs if j.status != "ok"]
    out.attrs.update(sweep_attrs(out, sweep_dir, swept, residual, len(jobs), sum(len(p) for p in groups.values()), not_collected, batched=False))
    return out, jobs, _target_rows(sweep_dir, jobs, swept)


def sweep_attrs(ds: xr.Dataset, sweep_dir, swept: list[str], residual: float, total: int, collected: int, not_collected: list[dict], *, batched: bool = True) -> dict:
    """The attributes of a collected sweep ``ds`` (:func:`collect`, :func:`combine` and the
    batched launcher's pieces joined, :func:`sim.outputs.chunks.join_pieces`)."""
    return {
        "title": f"Collected sweep: {ds.sizes['scenario']} scenario(s) from {sweep_dir}" + (" (batched launcher)" if batched else ""),
        "sweep_dir": str(sweep_dir),
        "levers": json.dumps([_coord(k) for k in swept]),
        "accounting_max_abs_residual_persons": residual,
        "jobs_total": total,
        "jobs_collected": collected,
        "jobs_not_collected": json.dumps(not_collected),
        # OGGM's flag: whether the file lacks jobs of the sweep not yet run (a batched sweep's pieces
        # still to come, :func:`sim.outputs.chunks.join_pieces`), and which
        "is_partial_output": 0,
        "jobs_missing": "",
    }


def _stack(joined: dict[str, xr.Dataset], settings: dict[str, dict], swept: list[str], dirs: dict[str, str]) -> xr.Dataset:
    """The scenarios ``joined`` (label -> dataset) along a ``scenario`` dimension, each with its
    config, its job directories and the swept keys as coordinates."""
    per = []
    with_draws = any("draw" in ds.dims for ds in joined.values())
    for lab, ds in joined.items():
        if with_draws and "draw" not in ds.dims:
            ds = ds.expand_dims(draw=[0])
        config_json = ds.attrs.get("config_json", "")
        ds = ds.rename({"scenario": "scenario_name"}) if "scenario" in ds.coords else ds
        ds = ds.assign_coords(config_json=config_json, job_dirs=dirs[lab], **{_coord(k): settings[lab].get(k, "") for k in swept})
        per.append(ds)
    out = xr.concat(per, dim="scenario", data_vars="all", coords="different", compat="equals", join="outer", combine_attrs="drop_conflicts")
    out = out.assign_coords(scenario=("scenario", list(joined)))
    for k in ("config_json", "overrides", "accounting_max_abs_residual_persons", "capped_cells_total", "scenario"):
        out.attrs.pop(k, None)
    for name in out.data_vars:  # per-job attributes were identical, keep units and long_name
        out[name].attrs = per[0][name].attrs
    return out


def swept_keys(job_overrides: list[list[str]]) -> list[str]:
    """The keys that take more than one value across the scenarios of a sweep's jobs (given by
    their overrides): the coordinates of the collected dataset."""
    settings = {}
    for ovs in job_overrides:
        j = Job(Path("."), "ok", "", list(ovs))
        settings.setdefault(j.label, j.settings)
    keys = list(dict.fromkeys(k for s in settings.values() for k in s))
    return [k for k in keys if len({s.get(k, "") for s in settings.values()}) > 1]


def combine(labelled: list[tuple[int, list[str], xr.Dataset]], failed: list[tuple[int, list[str], str]], *, cfgs_by_job: dict, sweep_dir,
            swept: list[str] | None = None, jobs_total: int | None = None, blocks: list[tuple[list[int], list[list[str]], xr.Dataset]] = (),
            job_dirs: dict[int, Path] | None = None) -> tuple[xr.Dataset | None, list[dict]]:
    """What :func:`collect` gives for a sweep run in one process (the batched launcher): the
    jobs' datasets ``(job number, overrides, dataset)`` in memory, ``blocks`` of jobs already
    stacked along ``scenario`` ``(job numbers, their overrides, dataset)``, the refused jobs
    ``(job number, overrides, message)``. Returns the dataset (None without a job) and the target
    rows, both in job order. ``swept``: the coordinates (default: the keys swept among these
    jobs; a chunk of a sweep passes the whole sweep's, :func:`swept_keys`). ``job_dirs``: the
    jobs run on the per-job path, whose target rows are read from their directory's
    ``targets.csv`` as :func:`collect` reads them (a posterior ensemble writes none)."""
    from sim.outputs.targets import target_rows, target_tables

    jobs = {i: Job(Path(sweep_dir) / str(i), "ok", "", list(ovs)) for i, ovs, _ in labelled}
    for numbers, ovs_list, _ in blocks:
        jobs.update({i: Job(Path(sweep_dir) / str(i), "ok", "", list(ovs)) for i, ovs in zip(numbers, ovs_list)})
    if swept is None:
        swept = swept_keys([j.overrides for j in jobs.values()])
    groups: dict[str, list[tuple[Job, xr.Dataset]]] = {}
    for i, _, ds in labelled:
        groups.setdefault(jobs[i].label, []).append((jobs[i], ds))
    per, first_job, order_jobs = [], [], []  # stacked datasets; per scenario its first job, its jobs
    if groups:
        settings = {lab: parts[0][0].settings for lab, parts in groups.items()}
        joined = {lab: _join_slices(lab, parts) for lab, parts in groups.items()}  # draw slices of one scenario, as collect joins them
        per.append(_stack(joined, settings, swept, {lab: ",".join(j.path.name for j, _ in parts) for lab, parts in groups.items()}))
        for parts in groups.values():
            numbers = [int(j.path.name) for j, _ in parts]
            first_job.append(min(numbers))
            order_jobs.append(numbers)
    for numbers, _, blk in blocks:
        js = [jobs[i] for i in numbers]
        per.append(blk.assign_coords(job_dirs=("scenario", [str(i) for i in numbers]), **{_coord(k): ("scenario", [j.settings.get(k, "") for j in js]) for k in swept})
                   .assign_coords(scenario=("scenario", [j.label for j in js])))
        first_job += list(numbers)
        order_jobs += [[i] for i in numbers]
    out = None
    if per:
        out = per[0] if len(per) == 1 else xr.concat(per, dim="scenario", data_vars="all", coords="different", compat="equals", join="outer", combine_attrs="drop_conflicts")
        labels = out.scenario.values.tolist()
        if len(set(labels)) < len(labels):
            dup = sorted({x for x in labels if labels.count(x) > 1})[:3]
            raise CollectError(f"jobs with the same settings {dup}: runs repeated with the same overrides cannot be combined")
        order = np.argsort(first_job, kind="stable")
        if np.any(order != np.arange(len(order))):  # a block's jobs in its projection's order
            out = out.isel(scenario=order)
        order_jobs = [order_jobs[k] for k in order]
        for name in out.data_vars:
            out[name].attrs = per[0][name].attrs
        for k in ("config_json", "overrides", "accounting_max_abs_residual_persons", "capped_cells_total", "scenario"):
            out.attrs.pop(k, None)
        residual = max(float(d.attrs.get("accounting_max_abs_residual_persons", 0.0)) for d in [d for _, _, d in labelled] + [b for _, _, b in blocks])
        not_collected = [{"dir": str(i), "status": "failed", "message": m} for i, _, m in sorted(failed)]
        out.attrs.update(sweep_attrs(out, sweep_dir, swept, residual, jobs_total if jobs_total is not None else len(jobs) + len(failed), len(jobs), not_collected))
    rows = []
    if out is not None:
        targets = [cfgs_by_job[n[0]].targets for n in order_jobs]
        single = all(len(n) == 1 for n in order_jobs)
        # the years alone (a job's ``year`` carries its scalar coordinates, its scenario among them)
        same_years = all(np.array_equal(ds.year.values, out.year.values) for ds in [d for _, _, d in labelled] + [b for _, _, b in blocks])
        direct = job_dirs or {}  # jobs run on the per-job path: their own targets.csv
        if single:
            tables = [_read_targets(direct[n[0]]) if n[0] in direct else None for n in order_jobs]
            todo = [k for k, t in enumerate(tables) if t is None]
            if todo and same_years and all(targets[k] == targets[todo[0]] for k in todo):  # all together
                every = out if len(todo) == out.sizes["scenario"] else out.isel(scenario=todo)  # all of them: no copy
                for k, t in zip(todo, target_tables(every, targets[todo[0]], "scenario")):
                    tables[k] = t
            else:
                for k in todo:
                    tables[k] = target_rows(out.isel(scenario=k).dropna("year", how="all"), targets[k])
        else:
            by_job = {i: ds for i, _, ds in labelled}
            tables = [_read_targets(direct[i]) if i in direct else target_rows(by_job[i], cfgs_by_job[i].targets) for n in order_jobs for i in n]
            order_jobs = [[i] for n in order_jobs for i in n]
        for n, table in zip(order_jobs, tables):
            j = jobs[n[0]]
            head = {"job": str(n[0]), "status": "ok", "label": j.label, **{_coord(k): j.settings.get(k, "") for k in swept}, "draws_start": "", "draws_count": ""}
            rows.append((n[0], [{**head, "message": "", **r} for r in table]))
    for i, ovs, m in failed:
        j = Job(Path(sweep_dir) / str(i), "failed", m, list(ovs))
        rows.append((i, [{"job": str(i), "status": "failed", "label": j.label, **{_coord(k): j.settings.get(k, "") for k in swept}, "draws_start": "", "draws_count": "", "message": m}]))
    return out, [r for _, rs in sorted(rows, key=lambda x: x[0]) for r in rs]


def _read_targets(job_dir: Path) -> list[dict]:
    """A job directory's target rows (none: one row without a target)."""
    f = Path(job_dir) / files.TARGETS
    if not f.is_file():
        return [{}]
    with open(f, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _coord(key: str) -> str:
    return "scenario_name" if key == "scenario" else key.replace("/", ".")


def _target_rows(sweep_dir, jobs: list[Job], swept: list[str]) -> list[dict]:
    rows = []
    for j in jobs:
        head = {"job": str(j.path.relative_to(sweep_dir)), "status": j.status, "label": j.label, **{_coord(k): j.settings.get(k, "") for k in swept}}
        head.update({"draws_start": j.pairs.get("draws.start", ""), "draws_count": j.pairs.get("draws.count", "")})
        if j.status == "ok" and (j.path / files.TARGETS).is_file():
            rows += [{**head, "message": "", **r} for r in _read_targets(j.path)]
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


def write_collected(ds: xr.Dataset, rows: list[dict], out: str | os.PathLike, fmt: str = "netcdf", compression: int = files.COMPRESSION, *,
                    release: bool = False) -> tuple[Path, Path]:
    """Write the collected dataset (``fmt``: netcdf or zarr; a netCDF file zlib-compressed at
    level ``compression``, 0 none) and the target table into ``out``; ``release``: a netCDF
    file written as :func:`sim.files.write_netcdf` does with it (``ds`` emptied of its data
    variables as they are written)."""
    if fmt not in FORMATS:
        raise CollectError(f"format = {fmt!r}: allowed values are {', '.join(FORMATS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = write_zarr(ds, out / files.COLLECTED_ZARR) if fmt == "zarr" else write_netcdf(ds, out / files.COLLECTED, compression, release=release)
    return path, write_text(to_csv(rows), out / files.COLLECTED_TARGETS)
