"""Put runs side by side: ``python -m sim.compare RUN_OR_SWEEP ... [--out DIR] [--year Y]``.

Each argument is a run directory, a sweep directory (every ``projection.nc`` under it) or a
netCDF file (a collected sweep is split by ``scenario``). Writes into ``--out`` (default
``compare``):

- ``urban_share.png``, ``regions.png``, ``land.png``: the run figures with one line (or fan)
  per run;
- ``difference.png``: each region's urban share in ``--year`` under every run minus the
  baseline run (``--baseline``, default the first);
- ``target_gaps.csv``: every target of every run (required, projected, gap, met), and the same
  gaps printed as a table, one column per run.
"""

from __future__ import annotations

import argparse
import sys

from sim.outputs.comparison import compare


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.compare", description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", help="run directories, sweep directories or .nc files")
    ap.add_argument("--out", default="compare", help="output directory (default: compare)")
    ap.add_argument("--year", type=int, default=2035, help="year of the difference by region (default 2035)")
    ap.add_argument("--baseline", default=None, help="run label the differences are taken from (default: the first)")
    args = ap.parse_args(argv)
    try:
        compare(args.paths, args.out, year=args.year, baseline=args.baseline)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
