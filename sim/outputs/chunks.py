"""A batched sweep cut into pieces: what each piece holds, which pieces a chunk (``I/N``, a task
of a cluster array) runs, the piece files, and joining them into the collected dataset (the
library of the ``batched`` Hydra launcher and of ``python -m sim.collect``).

- The jobs are grouped by scenario (their overrides less the draw slice, :class:`Job.label`), so
  the draw slices of one scenario stay together; the groups, in the order of their first job,
  are cut into pieces of at least one group and at most ``chunk_size`` jobs (a larger group is a
  piece of its own). The pieces depend on the jobs and ``chunk_size`` only (and on ``N`` when a
  chunk of ``N`` would otherwise get none): a sweep resumed with another ``N`` finds its pieces.
- Chunk ``I/N`` runs the ``I``-th of ``N`` contiguous runs of pieces, balanced by job count;
  every piece belongs to exactly one chunk.
- A piece's result is written, atomically, to ``parts/part-<p>.nc`` (its part of the collected
  dataset, with its target rows, its jobs and a digest of their overrides and configs in the
  attributes); ``parts/manifest.json`` lists the pieces. A piece whose file is there with the
  same digest is complete: a resumed sweep skips it. When every piece is complete the task that
  completes the last writes ``collected.nc`` and ``collected_targets.csv`` (under a lock, so that
  two tasks finishing together write them once); ``python -m sim.collect`` does the same and
  lists the pieces still missing.
- A sweep of one piece run whole writes the collected files directly (no ``parts/``); its
  digest is in ``collected.nc`` for resuming.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import xarray as xr

from sim import files
from sim.files import write_netcdf, write_text
from sim.outputs.collection import CollectError, Job, sweep_attrs
from sim.outputs.runs import NOT_RESULTS, inputs_digest
from sim.paths import source_digest

DIGEST_ATTR = "sweep_piece_sha256"  # the digest of a piece's jobs (overrides and configs)
ROWS_ATTR = "target_rows_json"  # a piece's target rows, JSON
JOBS_ATTR = "piece_jobs"  # a piece's job numbers, JSON


@dataclass(frozen=True)
class Piece:
    index: int
    jobs: tuple[int, ...]  # job numbers (initial_job_idx + position in the sweep)
    digest: str

    @property
    def file(self) -> str:
        return f"part-{self.index:05d}.nc"

    def span(self) -> str:
        return f"{self.jobs[0]}-{self.jobs[-1]}" if len(self.jobs) > 1 else str(self.jobs[0])


def parse_chunk(chunk: str | None) -> tuple[int, int] | None:
    """``"I/N"`` as ``(I, N)`` with ``1 <= I <= N``; None for None or ""."""
    if chunk in (None, ""):
        return None
    from sim.config.schema import ConfigError

    i, _, n = str(chunk).partition("/")
    try:
        i_, n_ = int(i), int(n)
    except ValueError:
        i_, n_ = 0, 0
    if not (n_ >= 1 and 1 <= i_ <= n_):
        raise ConfigError(f"hydra.launcher.chunk = {chunk!r}: allowed values are I/N with 1 <= I <= N (the I-th of N chunks, e.g. 1/4), or null for the whole sweep")
    return i_, n_


def job_digest(overrides: list[str], composed) -> str:
    """What a job's result depends on: its overrides less the result-neutral ones, its config's
    digest (or its refusal), the code and the input files (:func:`sim.outputs.runs.run_identity`:
    a piece made by other code or from other inputs is run again)."""
    j = Job(Path("."), "ok", "", list(overrides))
    if hasattr(composed, "draws"):  # repr of the config tree (deterministic, cheap), result-neutral keys reset
        what = repr(dataclasses.replace(composed, **{k: type(getattr(composed, k))() for k in NOT_RESULTS}))
        what += f" code {source_digest()} inputs {inputs_digest(composed)}"
    else:
        what = f"refused: {composed}"
    return json.dumps([sorted(j.settings.items()), what])


def make_pieces(job_overrides: list[list[str]], composed: list, *, chunk_size: int, n_chunks: int, first_job: int = 0) -> list[Piece]:
    """The pieces of a sweep (see the module): ``job_overrides`` and ``composed`` (each job's
    config or its ConfigError) in job order."""
    groups: dict[str, list[int]] = {}
    for k, ovs in enumerate(job_overrides):
        groups.setdefault(Job(Path("."), "ok", "", list(ovs)).label, []).append(k)
    size = max(1, min(chunk_size, -(-len(job_overrides) // max(n_chunks, 1))))
    cut: list[list[int]] = []
    for members in groups.values():
        if cut and len(cut[-1]) + len(members) <= size:
            cut[-1] += members
        else:
            cut.append(list(members))
    out = []
    for p, members in enumerate(cut):
        members = sorted(members)
        h = hashlib.sha256("\n".join(job_digest(job_overrides[k], composed[k]) for k in members).encode()).hexdigest()
        out.append(Piece(p, tuple(first_job + k for k in members), h))
    return out


def chunk_of(pieces: list[Piece], i: int, n: int) -> list[Piece]:
    """The pieces of chunk ``i`` of ``n``: contiguous, balanced by job count (cut where the
    running count of jobs passes ``k/n`` of the total)."""
    total = sum(len(p.jobs) for p in pieces)
    out, before = [], 0
    for p in pieces:
        mid = before + len(p.jobs) / 2  # a piece goes to the chunk holding its middle job
        if (i - 1) * total / n <= mid < i * total / n:
            out.append(p)
        before += len(p.jobs)
    return out


def parts_dir(sweep_dir) -> Path:
    return Path(sweep_dir) / files.PARTS


def write_manifest(sweep_dir, pieces: list[Piece], jobs_total: int, swept: list[str]) -> None:
    """``parts/manifest.json``: the pieces of the sweep (every task writes the same)."""
    d = parts_dir(sweep_dir)
    d.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"jobs_total": jobs_total, "swept": swept, "pieces": [{"file": p.file, "jobs": list(p.jobs), "digest": p.digest} for p in pieces]}, indent=1)
    path = d / files.MANIFEST
    if not path.is_file() or path.read_text(encoding="utf-8") != text + "\n":
        write_text(text + "\n", path)


def read_manifest(sweep_dir) -> tuple[list[Piece], int, list[str]] | None:
    path = parts_dir(sweep_dir) / files.MANIFEST
    if not path.is_file():
        return None
    m = json.loads(path.read_text(encoding="utf-8"))
    pieces = [Piece(k, tuple(p["jobs"]), p["digest"]) for k, p in enumerate(m["pieces"])]
    return pieces, int(m["jobs_total"]), list(m["swept"])


def stored_digest(path: Path) -> str | None:
    """The digest recorded in a piece file (or a collected file), None if there is none."""
    if not path.is_file():
        return None
    try:
        with xr.open_dataset(path) as ds:
            return ds.attrs.get(DIGEST_ATTR)
    except (OSError, ValueError):
        return None  # unreadable: a file left half-written is never published, but be safe


def sweep_digest(pieces: list[Piece]) -> str:
    return hashlib.sha256("\n".join(p.digest for p in pieces).encode()).hexdigest()


def write_piece(sweep_dir, piece: Piece, ds: xr.Dataset | None, rows: list[dict], compression: int = files.COMPRESSION, *, release: bool = False) -> Path:
    """Write ``piece``'s part of the sweep (``release``: :func:`sim.files.write_netcdf`'s, which
    empties ``ds`` of its data variables as they are written)."""
    ds = xr.Dataset() if ds is None else ds
    attrs = {DIGEST_ATTR: piece.digest, ROWS_ATTR: json.dumps(rows, default=_json_value), JOBS_ATTR: json.dumps(list(piece.jobs))}
    if release:
        ds.attrs.update(attrs)  # the caller's dataset, whose variables the write deletes
    else:
        ds = ds.assign_attrs(attrs)
    return write_netcdf(ds, parts_dir(sweep_dir) / piece.file, compression, release=release)


def _json_value(v):
    if hasattr(v, "item"):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON serializable")


def missing(sweep_dir, pieces: list[Piece]) -> list[Piece]:
    d = parts_dir(sweep_dir)
    return [p for p in pieces if stored_digest(d / p.file) != p.digest]


@contextlib.contextmanager
def collect_lock(sweep_dir):
    """Wait for, then hold, the sweep's collect lock (``flock`` on ``parts/.lock``)."""
    d = parts_dir(sweep_dir)
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / files.LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def join_pieces(sweep_dir, pieces: list[Piece], jobs_total: int, swept: list[str], *, allow_missing: bool = False) -> tuple[xr.Dataset, list[dict]]:
    """The collected dataset and target rows of a sweep whose pieces are all complete (with
    ``allow_missing``: of the complete ones, the jobs of the others listed as ``missing``)."""
    d = parts_dir(sweep_dir)
    datasets, rows = [], []
    absent = set(missing(sweep_dir, pieces)) if allow_missing else set()
    for p in pieces:
        if p in absent:
            rows += [{"job": str(j), "status": "missing", "message": f"piece {p.index} ({d / p.file}) not run or not complete: run its chunk (with resume=true)"} for j in p.jobs]
            continue
        with xr.open_dataset(d / p.file) as ds:
            if ds.attrs.get(DIGEST_ATTR) != p.digest:
                raise CollectError(f"{d / p.file}: not the result of piece {p.index} (jobs {p.span()}) of this sweep; run the chunk again")
            rows += json.loads(ds.attrs[ROWS_ATTR])
            if ds.data_vars:
                datasets.append(ds.load())
    if not datasets:
        raise CollectError(f"{sweep_dir}: no job finished (every job refused); see {files.COLLECTED_TARGETS}")
    if any("draw" in ds.dims for ds in datasets):
        datasets = [ds if "draw" in ds.dims else ds.expand_dims(draw=[0]) for ds in datasets]
    out = xr.concat(datasets, dim="scenario", data_vars="minimal", coords="minimal", compat="override", join="outer", combine_attrs="drop_conflicts")
    for name in out.data_vars:
        out[name].attrs = datasets[0][name].attrs
    rows.sort(key=lambda r: int(r["job"]))  # stable: a job's rows keep their order
    residual = max(float(ds.attrs.get("accounting_max_abs_residual_persons", 0.0)) for ds in datasets)
    not_collected = [{"dir": r["job"], "status": r["status"], "message": r["message"]} for r in rows if r["status"] != "ok"]
    out.attrs.update(sweep_attrs(out, sweep_dir, swept, residual, jobs_total, len({r["job"] for r in rows if r["status"] == "ok"}), not_collected))
    # a collected file of some pieces only is not the sweep's: it carries the digest of what it
    # holds, so that the launcher, resuming, writes the whole file once every piece is there
    held = [p for p in pieces if p not in absent]
    out.attrs[DIGEST_ATTR] = sweep_digest(pieces) if not absent else "partial " + sweep_digest(held)
    out.attrs["is_partial_output"] = int(bool(absent))
    out.attrs["jobs_missing"] = ",".join(p.span() for p in pieces if p in absent)
    for k in (ROWS_ATTR, JOBS_ATTR):
        out.attrs.pop(k, None)
    return out, rows

