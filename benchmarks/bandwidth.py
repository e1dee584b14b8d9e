"""``python -m benchmarks.bandwidth``: this machine's memory bandwidth by working-set size, the
memory traffic of one annual step with full outputs, and, for one draw of the 14 prefectures,
the time of a step that does that traffic and no arithmetic: the floor under the kernel's step.

Reads are a compiled sum over an array (8-byte loads, vectorised); copies are ``np.copyto``
(read + write). The step's traffic per draw counts the state read and written, deaths and
flows written (a write to a line not in cache reads it first, so writes count twice) and
nothing for the rates, which all draws share.

The traffic-only step (:func:`_traffic_step`) is called like the kernel's serial step, with the
same arrays, and is timed like it (the state reset before each call, untimed): it reads every
rate the kernel reads once, reads and writes the state, writes births, deaths, every flow and
the departures and arrivals by cell, with one multiply or add per value. The destination
choice (one R x R by R x 202 product) is timed on its own, its data in L1: it cannot start
before every region's departures are known, so it adds to the floor rather than hiding under
the traffic.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from sim.axes import N_AGES, N_CAPS, N_FLOWS, N_SEXES, N_STATES, URBAN_MIGRANT
from sim.engine import kernel
from sim.engine.contract import StepInputs


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


@njit(cache=True, nogil=True, _nrt=False)
def _traffic_step(pop, land, settled_prev, pt, births, deaths, flows, settled, reclassified, capped, od, cells):
    """The memory traffic of one draw's step and no arithmetic to speak of (see the module)."""
    p = StepInputs(*pt)
    D, R, K, S, A = pop.shape
    for r in range(R):
        for k in range(K):
            for s in range(S):
                x, sx, dd = pop[0, r, k, s], p.sx[0, r, k, s], deaths[0, r, k, s]
                for a in range(A):
                    v = x[a] * sx[a]
                    dd[a] = v
                    x[a] = v
            b = 0.0
            for a in range(A):
                b += p.asfr[0, r, k, a]
            births[0, r, k, 0] = b * p.nb[0, r, k, 0]
            births[0, r, k, 1] = b * p.srb[0, r]
        for s in range(S):
            r1, r2, r3, r4, r5 = p.m_ru[0, r, s], p.m_ur[0, r, s], p.m_return[0, r, s], p.ext_in[0, r, s], p.m_ext_out[0, r, s]
            a0, a1, a2 = p.m_away[0, r, 0, s], p.m_away[0, r, 1, s], p.m_away[0, r, 2, s]
            i0, i1, i2 = p.m_inter[0, r, 0, s], p.m_inter[0, r, 1, s], p.m_inter[0, r, 2, s]
            h, xm, out, arr = p.h_conv[0, r, s], pop[0, r, URBAN_MIGRANT, s], cells[0, r, s], cells[1, r, s]
            for f in range(flows.shape[2]):
                fl = flows[0, r, f, s]
                for a in range(A):
                    fl[a] = xm[a]
            for a in range(A):
                v = r1[a] + r2[a] + r3[a] + r4[a] + r5[a] + a0[a] + a1[a] + a2[a] + i0[a] + i1[a] + i2[a] + h[a]
                out[a] = v
                arr[a] = v
        settled[0, r] = p.dest_weight[0, r, 0] + p.reclass[0, r]
        reclassified[0, r] = land[0, r] + settled_prev[0, r]


@njit(cache=True, nogil=True)
def _moves_in_l1(n, x0, m_ru, m_away, m_inter, m_ur, m_ext_out, m_return, ext_in, ru_share, flows, o_int, moves):
    """``n`` times: one region's stock reset from ``x0``, then (``moves``) the kernel's moves of
    that region at full rates; the region's data stays in L1."""
    x = x0.copy()
    scratch = np.empty((0, x0.shape[1], x0.shape[2]))
    capped = np.zeros(N_CAPS)
    left = 0.0
    for _ in range(n):
        x[...] = x0
        if moves:
            left += kernel._local_moves(x, m_ru, m_away, m_inter, m_ur, m_ext_out, m_return, ext_in, ru_share, 1.0, 1.0, flows, o_int, False, False, scratch, capped)
    return left


def _best_step_us(reset, step, n: int) -> float:
    best = 1e9
    for _ in range(n):
        reset()
        t = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t)
    return best * 1e6


def step_floor(n: int = 3000) -> dict:
    """One draw of the 14 prefectures, one step: the kernel, the NumPy reference, the
    traffic-only step and the destination choice alone (µs, minimum over ``n`` calls), and the
    moves of every region with its data in L1 (R x one region's, mean of a compiled loop)."""
    from benchmarks import cases
    from sim.engine.contract import new_outputs

    m = cases.model("guangxi_prefectures", 2021)
    reset_k, step_k = cases.step_case(1, "numba", m=m)
    reset_n, step_n = cases.step_case(1, "numpy", m=m)
    p = m.step_inputs(2021)
    R, K, S, A = m.pop0.shape
    pop0, land0 = m.pop0[None].copy(), m.land0[None].copy()
    pop, land, sp = pop0.copy(), land0.copy(), np.zeros((1, R))
    out = new_outputs(1, R, K, S, A, od=True)
    cells = np.empty((2, R, S, A))

    def reset():
        pop[...] = pop0
        land[...] = land0
        sp[...] = 0.0

    def traffic():
        _traffic_step(pop, land, sp, tuple(p), out.births, out.deaths, out.flows, out.settled, out.reclassified, out.capped, out.od, cells)

    rng = np.random.default_rng(0)
    urban, g, o_int = rng.random(R) * 1e6, np.ones(R), rng.random((R, S, A))
    in_int, W, od = np.empty((R, S, A)), rng.random((R, R)), np.zeros((R, R))
    pull, inv, tot = np.empty(R), np.empty(R), np.empty(R)
    # the model's students' choice (a second product where the student pull is not 1)
    spull, band = np.ascontiguousarray(p.student_pull[0]), np.ascontiguousarray(p.student_ages[0])
    o_s, pull_s, inv_s, tot_s = np.empty((R, S, A)), np.empty(R), np.empty(R), np.empty(R)

    def arrivals():
        kernel._arrivals(urban, g, o_int, in_int, 0.8, W, od, pull, inv, tot, spull, band, o_s, pull_s, inv_s, tot_s)

    def moves_us(r: int = 0, n_calls: int = 20_000) -> float:
        """The moves of one region with its data in L1 (µs a call), the stock reset not counted."""
        args = (m.pop0[r], p.m_ru[0, r], p.m_away[0, r], p.m_inter[0, r], p.m_ur[0, r], p.m_ext_out[0, r], p.m_return[0, r], p.ext_in[0, r], p.return_urban[0, r], out.flows[0, r], cells[0, r])
        _moves_in_l1(1, *args, True)
        both = min(_timed(lambda: _moves_in_l1(n_calls, *args, True)) for _ in range(5))
        reset_only = min(_timed(lambda: _moves_in_l1(n_calls, *args, False)) for _ in range(5))
        return (both - reset_only) / n_calls * 1e6

    reset()
    traffic()
    arrivals()
    return {
        "moves_in_l1_us": R * moves_us(),
        "kernel_us": _best_step_us(reset_k, step_k, n),
        "numpy_us": _best_step_us(reset_n, step_n, max(50, n // 10)),
        "traffic_only_us": _best_step_us(reset, traffic, n),
        "arrivals_us": _best_step_us(lambda: None, arrivals, n),
    }


def main() -> None:
    print("working set | read GB/s | copy GB/s (read + write)")
    for kib in (32, 256, 1024, 4096, 16384, 65536):
        print(f"{kib:>8} KiB | {read_gbs(kib):8.1f} | {copy_gbs(kib):8.1f}")
    b = step_bytes_per_draw()
    print(f"one step, 14 prefectures, full outputs: {b / 1e6:.3f} MB of traffic a draw; 1,000 draws: {b * 1e3 / 1e6:.0f} MB")
    f = step_floor()
    floor = f["traffic_only_us"] + f["arrivals_us"]
    print(
        f"one draw, one step (µs, min of calls): kernel {f['kernel_us']:.1f}, NumPy {f['numpy_us']:.0f}, "
        f"traffic only {f['traffic_only_us']:.1f}, destination choice alone {f['arrivals_us']:.1f}, "
        f"the moves in L1 (Nanning's x 14) {f['moves_in_l1_us']:.1f}"
    )
    print(
        f"floor = traffic + destination choice = {floor:.1f} µs: at most {f['numpy_us'] / floor:.1f}x the reference "
        f"(kernel: {f['numpy_us'] / f['kernel_us']:.1f}x; 20x needs {f['numpy_us'] / 20:.1f} µs)"
    )


if __name__ == "__main__":
    main()
