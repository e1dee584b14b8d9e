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

A sweep of the batched launcher cut into pieces (``hydra.launcher.chunk=I/N``, or more jobs than
``hydra.launcher.chunk_size``) has ``parts/manifest.json``: its complete pieces are joined
instead, and the jobs of the pieces not yet run are listed as ``missing``.

Writes ``collected.nc`` (``--format zarr``: ``collected.zarr``) and ``collected_targets.csv`` (every
target of every job, failed jobs included) into ``--out`` (default ``SWEEP_DIR``), atomically.
"""

from __future__ import annotations

import argparse
import sys

from sim import files
from sim.outputs import chunks
from sim.outputs.collection import FORMATS, CollectError, collect, open_collected, write_collected

__all__ = ["main", "open_collected"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.collect", description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep_dir", help="a sweep directory (hydra.sweep.dir)")
    ap.add_argument("--out", help="output directory (default: the sweep directory)")
    ap.add_argument("--format", default="netcdf", help=f"dataset format: {', '.join(FORMATS)} (default netcdf)")
    ap.add_argument("--compression", type=int, default=files.COMPRESSION, help=f"zlib level of the collected netCDF file, 0-9 (default {files.COMPRESSION}: none)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a job failed or is incomplete")
    ap.add_argument("--outer", action="store_true", help="join runs of other regions or years too (NaN where a run has no value); by default they are refused")
    a = ap.parse_args(argv)
    if a.format not in FORMATS:
        print(f"--format = {a.format!r}: allowed values are {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    if not 0 <= a.compression <= 9:
        print(f"--compression = {a.compression}: allowed values are 0-9 (0: not compressed)", file=sys.stderr)
        return 2
    try:
        manifest = chunks.read_manifest(a.sweep_dir)
        if manifest is None:
            ds, jobs, rows = collect(a.sweep_dir, outer=a.outer)
            states = [(j.status, str(j.path), j.message) for j in jobs]
        else:
            pieces, total, swept = manifest
            ds, rows = chunks.join_pieces(a.sweep_dir, pieces, total, swept, allow_missing=True)
            first = {}
            for r in rows:
                first.setdefault(r["job"], r)
            states = [(r["status"], f"job {j}", r.get("message", "")) for j, r in first.items()]
            left = chunks.missing(a.sweep_dir, pieces)
            if left:
                print(f"{len(left)} of {len(pieces)} pieces missing: jobs " + ", ".join(p.span() for p in left), file=sys.stderr)
    except CollectError as e:
        print(f"collect: {e}", file=sys.stderr)
        return 2
    path, table = write_collected(ds, rows, a.out or a.sweep_dir, a.format, a.compression)
    bad = [s for s in states if s[0] != "ok"]
    n_draw = ds.sizes.get("draw", 1)
    print(f"collected {len(states) - len(bad)} of {len(states)} jobs: {ds.sizes['scenario']} scenario(s) x {n_draw} draw(s) -> {path}")
    print(f"targets of every job -> {table}")
    for status, where, message in bad[:50]:
        print(f"  {status}: {where} {message}".rstrip(), file=sys.stderr)
    return 1 if bad and a.strict else 0


if __name__ == "__main__":
    sys.exit(main())
