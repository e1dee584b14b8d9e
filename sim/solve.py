"""Solve for the lever value that meets a target (the inverse question: "what would it take?").

    python -m sim.solve target="resident urbanization >=57% by 2025" \
        lever=policy.reclassification.rate bounds=[0,0.05] [probability=0.9] [lever_from=2021] \
        [out=DIR] [any Hydra override, e.g. scenario=plan policy/land=link]

``target`` is the name (or a unique part of the name) of a target in the config's targets group;
``lever`` a dotted path to a number in the config. A year-keyed lever becomes constant at the
value from ``lever_from`` on (default: the first projected year), keeping its jump-off value
before that. The response of the target to the lever is first evaluated on a grid over the
bounds. If it is not monotone, or the target is met at neither bound, the solver refuses and
explains why. Otherwise it brackets the crossing and refines it with scipy's ``brentq``. For an
ensemble it solves for the value at which a share ``probability`` of the draws meet the target
(a quantile of the draws). It prints and writes (``solve.json``, ``solve_path.csv``, and
``projection.nc`` at the solution) the value, the target's path and the land implied.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sim import files
from sim.config.schema import ConfigError
from sim.outputs.solver import SolveError, format_solution, solve, write_solution

USAGE = __doc__


def main(argv=None) -> int:
    from sim.config.compose import compose_config

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    own = {"target": None, "lever": None, "bounds": "[0,1]", "probability": "0.5", "lever_from": None, "out": None, "grid": "7"}
    overrides = []
    for a in argv:
        k, _, v = a.partition("=")
        if k in own:
            own[k] = v
        else:
            overrides.append(a)
    if not own["target"] or not own["lever"]:
        print("usage: python -m sim.solve target=NAME lever=DOTTED.PATH [bounds=[lo,hi]] [probability=P] [overrides]", file=sys.stderr)
        return 2
    try:
        cfg = compose_config(overrides)
        bounds = [float(x) for x in own["bounds"].strip("[]() ").split(",")]
        sol, ds = solve(cfg, own["target"], own["lever"], bounds, probability=float(own["probability"]),
                        grid=int(own["grid"]), lever_from=int(own["lever_from"]) if own["lever_from"] else None)
    except (ConfigError, SolveError) as e:
        print(f"solve refused: {e}", file=sys.stderr)
        return 2
    out = Path(own["out"] or f"outputs/solve/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    write_solution(sol, ds, out)
    print(format_solution(sol))
    print(f"\nwrote {out}/{files.SOLVE}, {files.SOLVE_PATH}, {files.PROJECTION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
