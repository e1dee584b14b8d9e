"""Build the engine's input files from the census tables (run by hand; output committed).

    python -m sim.derive --census ../shared/data --out sim/data

For each geography (``guangxi_prefectures``: Guangxi's 14 prefectures; ``guangxi_counties``:
its counties and districts) and each census (2010, 2020) this writes ``{geography}_{year}.nc``
holding the jump-off state ``population[region, state, sex, age]`` and the per-region facts the
component models need. Every number is computed here from the census tables; the methods and
sources are in ``sim/data/PROVENANCE.md``. Only this script (and tests) read the raw tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.inputs.derive import DerivationError, derive_all
from sim.paths import DATA_DIR, DEFAULT_CENSUS_DIR


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--census", type=Path, default=DEFAULT_CENSUS_DIR)
    ap.add_argument("--out", type=Path, default=DATA_DIR)
    args = ap.parse_args(argv)
    try:
        derive_all(args.census, args.out)
    except DerivationError as e:
        print(f"derive error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
