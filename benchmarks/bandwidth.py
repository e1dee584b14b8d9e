"""``python -m benchmarks.bandwidth``: this machine's memory bandwidth by working-set size, and the
memory traffic of one annual step with full outputs: the floor under the kernel's step time.

Reads are a compiled sum over an array (8-byte loads, vectorised); copies are ``np.copyto``
(read + write). The step's traffic per draw counts the state read and written, deaths and
flows written (a write to a line not in cache reads it first, so writes count twice) and
nothing for the rates, which all draws share.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from sim.axes import N_AGES, N_FLOWS, N_SEXES, N_STATES


@njit(fastmath=True, cache=True)
def _read(a, n):
    s = 0.0
    for _ in range(n):
        for i in range(a.size):
            s += a[i]
    return s


def read_gbs(kib: int) -> float:
    a = np.ones(kib * 1024 // 8)
    n = max(1, 200_000 // kib)
    _read(a, 1)
    best = min(_timed(lambda: _read(a, n)) for _ in range(3))
    return a.nbytes * n / best / 1e9


def copy_gbs(kib: int) -> float:
    a = np.ones(kib * 1024 // 8)
    b = np.empty_like(a)
    n = max(1, 100_000 // kib)
    best = min(_timed(lambda: [np.copyto(b, a) for _ in range(n)]) for _ in range(3))
    return 2 * a.nbytes * n / best / 1e9


def _timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def step_bytes_per_draw(regions: int = 14) -> int:
    """Memory traffic of one draw's step with full outputs, rates excluded."""
    cells = regions * N_STATES * N_SEXES * N_AGES
    state = 2 * cells  # read and written
    deaths = 2 * cells  # written (read for ownership first)
    flows = 2 * regions * N_FLOWS * N_SEXES * N_AGES
    return 8 * (state + deaths + flows)


def main() -> None:
    print("working set | read GB/s | copy GB/s (read + write)")
    for kib in (32, 256, 1024, 4096, 16384, 65536):
        print(f"{kib:>8} KiB | {read_gbs(kib):8.1f} | {copy_gbs(kib):8.1f}")
    b = step_bytes_per_draw()
    print(f"one step, 14 prefectures, full outputs: {b / 1e6:.3f} MB of traffic a draw; 1,000 draws: {b * 1e3 / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
