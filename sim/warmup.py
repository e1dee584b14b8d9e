"""Fill the numba cache once, before a sweep or a SLURM array is submitted: ``python -m sim.warmup``.

Compiles the kernel for its three layouts (serial, by draw, by region) and the ensemble path with
reduced outputs (:func:`sim.engine.kernel.summary`) into the cache directory
(``NUMBA_CACHE_DIR``, else numba's default beside the sources), so that the jobs of an array load
the compiled code instead of each compiling it (20 s or more a job on 2 cores). Run it on a node
of the same CPU type as the compute nodes, with the same ``NUMBA_CACHE_DIR`` the jobs will see.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np


def warmup() -> dict:
    from sim.config.compose import compose_config
    from sim.engine import kernel
    from sim.engine.contract import new_outputs
    from sim.engine.prepare import prepare

    t0 = time.perf_counter()
    model = prepare(compose_config(["end_year=2021", "figures.enabled=false"]))
    R, K, S, A = model.pop0.shape
    p = model.step_inputs(2021)
    for layout in ("serial", "draw", "region"):
        for od in (True, False):
            pop = model.pop0[None].copy()
            kernel.step(pop, model.land0[None].copy(), np.zeros((1, R)), p, new_outputs(1, R, K, S, A, od=od), layout=layout)
    from sim.engine.runner import project_summary

    project_summary(model)
    return {"seconds": time.perf_counter() - t0, "cache_dir": os.environ.get("NUMBA_CACHE_DIR", "(numba default: __pycache__ beside sim/engine/kernel.py)")}


def main() -> int:
    info = warmup()
    print(f"numba cache filled in {info['seconds']:.1f} s: {info['cache_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
