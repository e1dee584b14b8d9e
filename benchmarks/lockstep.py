"""``python -m benchmarks.lockstep``: issue 19's suggested layout for the 10,000-draw ensemble,
tried and measured against the kernel's own (``sim.engine.kernel.summary``).

The suggestion: draws innermost, so that one pass over a year's shared rates serves several
draws. :func:`_lockstep` runs blocks of ``B`` draws in lockstep, year by year, and within a year
region by region: the survival, births and local moves of region ``r`` for every draw of the
block in turn (region ``r``'s rates, about 36 kB a year, read once and reused by the block's
draws while in cache), then each draw's destination choice, then the arrivals, hukou conversion,
reclassification and land of region ``r`` for every draw. It calls the kernel's own stage
functions in the kernel's order for each draw, so its totals equal the kernel's to the bit
(checked). ``B = 1`` is the kernel's layout (a draw's whole year, regions in turn).

Only what the experiment needs: timing ``end`` (the default), one set of inputs (no stack of
models) and no per-draw factors, since factors make each draw's rates its own and leave
nothing to share; the kernel is timed with and without them. 2020 -> 2035, the 14 prefectures,
``uncertainty.enabled=true`` (as ``test_ensemble``). Writes ``benchmarks/results/lockstep.{json,md}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from numba import njit, prange

from benchmarks import machine, write_results
from sim.axes import N_CAPS, N_FLOWS
from sim.engine import kernel as K
from sim.engine.contract import TIMING_END

HERE = Path(__file__).resolve().parent
BLOCKS = (1, 2, 4, 8, 16)


@njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def _lockstep(pop0, land0, P, B, out):
    """``out[Y+1, D, R, N_SUMMARY]`` as :func:`sim.engine.kernel.summary` gives it without factors,
    the draws in blocks of ``B`` run in lockstep (see the module); blocks in parallel."""
    Y1, D, R, _ = out.shape
    _, Kk, S, A = pop0.shape
    nblk = (D + B - 1) // B
    for c in prange(nblk):
        lo = c * B
        nb = min(B, D - lo)
        x = np.empty((nb, R, Kk, S, A))
        land = np.empty((nb, R))
        sp = np.zeros((nb, R))
        births = np.zeros((nb, R, Kk, S))
        deaths = np.zeros((nb, R, Kk, S, A))
        flows = np.empty((nb, R, N_FLOWS, S, A))
        capped = np.zeros((nb, R, N_CAPS))
        od = np.empty((0, 0))
        per = np.empty((nb, K._N_PER_REGION, R))
        cells = np.empty((nb, K._N_CELL_ROWS, R, S, A))
        scratch = np.empty((0, S, A))
        no_f = np.empty((0, R))
        buf = (np.empty_like(P.asfr[0, :1]), np.empty_like(P.m_ru[0, :1]), np.empty_like(P.m_away[0, :1]), np.empty_like(P.m_return[0, :1]),
               np.empty_like(P.m_inter[0, :1]), np.empty_like(P.h_conv[0, :1]), np.empty_like(P.reclass[0, :1]), np.empty_like(P.land_per_settled[0, :1]),
               np.empty_like(P.dest_weight[0, :1]), np.empty_like(P.student_pull[0, :1]))
        for b in range(nb):
            x[b] = pop0
            land[b] = land0
            K._summarise(x[b], land[b], births[b], deaths[b], capped[b], out[0, lo + b])
        for y in range(Y1 - 1):
            p = K._year_inputs(P, y, 0, no_f, buf)
            sx, asfr, nbv, srb = p.sx[0], p.asfr[0], p.nb[0], p.srb[0]
            m_ru, m_away, m_inter, m_ur = p.m_ru[0], p.m_away[0], p.m_inter[0], p.m_ur[0]
            m_ext_out, m_return, ext_in, ru = p.m_ext_out[0], p.m_return[0], p.ext_in[0], p.return_urban[0]
            for b in range(nb):  # as _step_draw: rural leavers and bounded cells from zero, the brakes
                per[b, 2, :] = 0.0
                capped[b] = 0.0
                K._brakes(x[b], land[b], p, 0, per[b, 0])
            for r in range(R):  # region r's rates for every draw of the block
                for b in range(nb):
                    K._survive_and_bear(x[b, r], sx[r], asfr[r], nbv[r], srb[r], births[b, r], deaths[b, r])
                    per[b, 1, r] = K._urban(x[b, r])
                    per[b, 2, r] += K._local_moves(x[b, r], m_ru[r], m_away[r], m_inter[r], m_ur[r], m_ext_out[r], m_return[r], ext_in[r], ru[r], per[b, 0, r], 1.0,
                                                   flows[b, r], cells[b, 0, r], False, False, scratch, capped[b, r])
            for b in range(nb):
                K._arrivals(per[b, 1], per[b, 0], cells[b, 0], cells[b, 1], K._at(p.beta_size, 0), K._at(p.dest_weight, 0), od, per[b, 3], per[b, 4], per[b, 5],
                            K._at(p.student_pull, 0), K._at(p.student_ages, 0), cells[b, 2], per[b, 6], per[b, 7], per[b, 8])
            h, rc, loc = p.h_conv[0], p.reclass[0], p.reclass_local[0]
            base, per_settled, release, per_leaver = p.land_base[0], p.land_per_settled[0], p.land_release[0], p.land_per_leaver[0]
            for r in range(R):
                for b in range(nb):
                    conv, _ = K._finish_region(x[b, r], cells[b, 1, r], flows[b, r], h[r], rc[r] * per[b, 0, r], loc[r], False, capped[b, r])
                    land[b, r] += K._land_gain(base[r], per_settled[r], sp[b, r], release[r], per_leaver[r], per[b, 2, r])
                    sp[b, r] = conv
            for b in range(nb):
                K._summarise(x[b], land[b], births[b], deaths[b], capped[b], out[y + 1, lo + b])


def inputs(draws: int):
    """The model of ``test_ensemble`` with ``draws`` draws, its years' stacked inputs and factors."""
    from benchmarks.cases import ENSEMBLE_END, model

    m = model(draws=draws, uncertain=True, reduced=True)
    years = np.arange(m.cfg.start_year, ENSEMBLE_END + 1)
    P = m.stacked_inputs(years[1:])
    if P.timing != TIMING_END:
        raise ValueError("the lockstep layout is written for demography.migration.timing = end")
    return m, years, P, m.factor_table(years[1:])


def lockstep(m, years, P, block: int) -> np.ndarray:
    out = np.zeros((len(years), m.draws, m.pop0.shape[0], K.N_SUMMARY))
    _lockstep(m.pop0, m.land0, P, block, out)
    return out


def kernel(m, years, P, factors) -> np.ndarray:
    out = np.zeros((len(years), m.draws, m.pop0.shape[0], K.N_SUMMARY))
    K.summary(m.pop0, m.land0, P, factors, out)
    return out


def _best(fn, repeat: int) -> float:
    fn()  # compiled or loaded from the cache
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each layout (the minimum is reported)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    a = ap.parse_args(argv)
    m, years, P, F = inputs(a.draws)
    none = np.zeros((0, 0, 0, 0))
    ref = kernel(m, years, P, none)
    rows = [{"layout": "kernel, per-draw factors", "block": 1, "seconds": _best(lambda: kernel(m, years, P, F), a.repeat), "equal_to_kernel": None},
            {"layout": "kernel, no factors", "block": 1, "seconds": _best(lambda: kernel(m, years, P, none), a.repeat), "equal_to_kernel": True}]
    for b in BLOCKS:
        rows.append({"layout": "lockstep, no factors", "block": b, "seconds": _best(lambda b=b: lockstep(m, years, P, b), a.repeat),
                     "equal_to_kernel": bool(np.array_equal(lockstep(m, years, P, b), ref))})
    res = {"machine": machine(), "command": "python -m benchmarks.lockstep", "draws": a.draws, "years": int(len(years) - 1), "rows": rows}
    lines = [f"# Draws in lockstep ({res['command']})", "", f"Machine: {res['machine']}", "",
             f"{a.draws} draws x {len(years) - 1} years, the 14 prefectures; the minimum of {a.repeat} runs.", "",
             "| layout | draws per block | seconds | totals equal to the kernel's (no factors) |", "|---|---:|---:|---|"]
    for r in rows:
        eq = "" if r["equal_to_kernel"] is None else ("yes, to the bit" if r["equal_to_kernel"] else "NO")
        lines.append(f"| {r['layout']} | {r['block']} | {r['seconds']:.2f} | {eq} |")
    text = "\n".join(lines)
    write_results(a.out, "lockstep", res, text)
    return res


if __name__ == "__main__":
    main()
