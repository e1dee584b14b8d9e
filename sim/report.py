"""``python -m sim.report RUN_OR_SWEEP ... [--out FILE]``: one self-contained HTML page of runs
(figures, targets, config, provenance; see :mod:`sim.outputs.html`)."""

from __future__ import annotations

import argparse
import sys

from sim import files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.report", description="Write a self-contained HTML report of runs.")
    ap.add_argument("paths", nargs="+", help="run directories, sweep directories or .nc files")
    ap.add_argument("--out", default=None, help=f"HTML file (default: {files.REPORT_HTML} in the first path)")
    args = ap.parse_args(argv)
    from sim.outputs.html import write_report

    try:
        path = write_report(args.paths, args.out)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
