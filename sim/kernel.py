"""The numba kernel of one annual step. It has the same events, order and conventions as
:mod:`sim.reference` (whose docstring describes the model).

Work is split into units of one (draw, region). Every stage that does not mix regions runs as a
``prange`` over all units; this uses both cores even for a single draw. Only the destination
choice mixes regions; it runs per draw, as one matrix product over the flattened (sex, age) cells.

Two layouts share these stage functions: by draw (a draw per thread, regions in sequence: best
for ensembles) and by region (below; best for few draws). :func:`step` picks one.
For timing ``end`` a step by region is three parallel stages:
  A. per unit: capacity brake, survival and births (in place, ages walked downwards), local moves;
  B. per draw: arrivals from the other regions;
  C. per unit: add arrivals, hukou conversion, reclassification, land.
For timing ``even``, A is preceded by a first half of the moves and its own arrivals.

Parameter arrays whose draw axis has length 1 are shared by every draw (index ``d % len``).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from models.land import capacity_brake
from sim.axes import (
    AWAY,
    F_EXT_IN,
    F_EXT_OUT,
    F_FROM_AWAY,
    F_INTER_IN,
    F_INTER_OUT,
    F_RURAL_TO_URBAN,
    F_TO_AWAY,
    F_URBAN_TO_RURAL,
    FEMALE,
    RURAL,
    URBAN_LOCAL,
    URBAN_MIGRANT,
)
from sim.reference import TIMING_EVEN, StepInputs, StepOutputs

_JIT = dict(cache=True, nogil=True, error_model="numpy")
# Sums over ages may be reassociated so that LLVM vectorises them (a serial float sum waits on
# every add); only 'reassoc' is allowed: NaN and infinity semantics stay strict.
_SUM = dict(_JIT, fastmath={"reassoc"})


@njit(**_SUM)
def _urban(x):
    """Urban residents of one region's stock ``x[K, S, A]``."""
    K, S, A = x.shape
    u = 0.0
    for s in range(S):
        for a in range(A):
            u += x[URBAN_LOCAL, s, a] + x[URBAN_MIGRANT, s, a]
    return u


@njit(**_SUM)
def _births(asfr, start_f, end_f):
    """``sum_a asfr[a] * (start_f[a] + end_f[a]) / 2``."""
    b = 0.0
    for a in range(asfr.shape[0]):
        b += asfr[a] * (start_f[a] + end_f[a])
    return 0.5 * b


@njit(**_SUM)
def _total(x):
    """Sum of a 2-D array."""
    t = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            t += x[i, j]
    return t


@njit(**_JIT, inline="always")
def _cap(total):
    """Scale for a cell's out-rates summing to ``total``: 1, or 1/total (and one capped cell)
    when they exceed 1, so that no cell goes negative."""
    if total > 1.0:
        return 1.0 / total, 1
    return 1.0, 0


@njit(**_JIT)
def _local_moves(x, p, d, r, gr, frac, flows, o_int, shift):
    """Stage-3 moves of region ``r`` at ``frac`` of their rates, applied to ``x[K, S, A]`` in
    place; departures to other regions go to ``o_int[S, A]``. Returns the number of capped cells
    and the number of rural residents who left."""
    K, S, A = x.shape
    m_ru = p.m_ru[d % p.m_ru.shape[0], r]
    m_away = p.m_away[d % p.m_away.shape[0], r]
    m_inter = p.m_inter[d % p.m_inter.shape[0], r]
    m_ur = p.m_ur[d % p.m_ur.shape[0], r]
    m_ext_out = p.m_ext_out[d % p.m_ext_out.shape[0], r]
    m_return = p.m_return[d % p.m_return.shape[0], r]
    ext_in = p.ext_in[d % p.ext_in.shape[0], r]
    ru_share = p.return_urban[d % p.return_urban.shape[0], r]
    n_capped = 0
    left = 0.0
    for s in range(S):
        for a in range(A):
            ae = min(a + 1, A - 1) if shift else a
            # rural
            r1 = frac * m_ru[s, a] * gr
            r2 = frac * m_away[RURAL, s, a]
            r3 = frac * m_inter[RURAL, s, a]
            c, k = _cap(r1 + r2 + r3)
            n_capped += k
            xr = x[RURAL, s, a]
            o_ru, o_r_away, o_r_int = r1 * c * xr, r2 * c * xr, r3 * c * xr
            left += o_ru + o_r_away + o_r_int
            # urban_local
            l1 = frac * m_away[URBAN_LOCAL, s, a]
            l2 = frac * m_inter[URBAN_LOCAL, s, a]
            c, k = _cap(l1 + l2)
            n_capped += k
            xl = x[URBAN_LOCAL, s, a]
            o_l_away, o_l_int = l1 * c * xl, l2 * c * xl
            # urban_migrant
            m1 = frac * m_ur[s, a]
            m2 = frac * m_away[URBAN_MIGRANT, s, a]
            m3 = frac * m_inter[URBAN_MIGRANT, s, a]
            m4 = frac * m_ext_out[s, a]
            c, k = _cap(m1 + m2 + m3 + m4)
            n_capped += k
            xm = x[URBAN_MIGRANT, s, a]
            o_ur, o_m_away, o_m_int, o_ext = m1 * c * xm, m2 * c * xm, m3 * c * xm, m4 * c * xm
            # away
            ret = frac * m_return[s, a]
            a1 = ret * (1.0 - ru_share)
            a2 = ret * ru_share * gr
            c, k = _cap(a1 + a2)
            n_capped += k
            xa = x[AWAY, s, a]
            o_a_rur, o_a_urb = a1 * c * xa, a2 * c * xa
            e_in = frac * ext_in[s, a] * gr

            x[RURAL, s, a] = xr - o_ru - o_r_away - o_r_int + o_ur + o_a_rur
            x[URBAN_LOCAL, s, a] = xl - o_l_away - o_l_int
            x[URBAN_MIGRANT, s, a] = xm + o_ru - o_ur - o_m_away - o_m_int - o_ext + o_a_urb + e_in
            x[AWAY, s, a] = xa + o_r_away + o_l_away + o_m_away - o_a_rur - o_a_urb
            oi = o_r_int + o_l_int + o_m_int
            o_int[s, a] = oi

            flows[F_RURAL_TO_URBAN, s, ae] += o_ru
            flows[F_URBAN_TO_RURAL, s, ae] += o_ur
            flows[F_TO_AWAY, s, ae] += o_r_away + o_l_away + o_m_away
            flows[F_FROM_AWAY, s, ae] += o_a_rur + o_a_urb
            flows[F_INTER_OUT, s, ae] += oi
            flows[F_EXT_IN, s, ae] += e_in
            flows[F_EXT_OUT, s, ae] += o_ext
    return n_capped, left


@njit(**_JIT)
def _survive_and_bear(x, p, d, r, births, deaths):
    """Survival, ageing and births of region ``r``, replacing ``x[K, S, A]`` by the survivors
    and newborns; births add up ``asfr * (women at start + women at end) / 2``."""
    K, S, A = x.shape
    sx_r = p.sx[d % p.sx.shape[0], r]
    asfr_r = p.asfr[d % p.asfr.shape[0], r]
    nb_r = p.nb[d % p.nb.shape[0], r]
    srb = p.srb[d % p.srb.shape[0], r]
    start = x.copy()
    for k in range(K):
        for s in range(S):
            sx = sx_r[k, s]
            x[k, s, 0] = 0.0  # no end-of-year persons at age 0 until the newborns arrive
            for a in range(A - 2):
                new = start[k, s, a] * sx[a]
                x[k, s, a + 1] = new
                deaths[k, s, a + 1] = start[k, s, a] - new
            top = start[k, s, A - 2] + start[k, s, A - 1]
            x[k, s, A - 1] = top * sx[A - 2]
            deaths[k, s, A - 1] = top - x[k, s, A - 1]
        b = _births(asfr_r[k], start[k, FEMALE], x[k, FEMALE])
        births[k, 0] = b / (1.0 + srb)
        births[k, 1] = b * srb / (1.0 + srb)
        for s in range(S):
            x[k, s, 0] = births[k, s] * nb_r[k, s]
            deaths[k, s, 0] = births[k, s] - x[k, s, 0]


@njit(**_JIT)
def _arrivals(p, d, urban, g, o_int, in_int):
    """Spread each origin's departures over destinations j != i (multinomial logit):
    ``in[j, :] = sum_i P[i, j] out[i, :]``, one matrix product over the (sex, age) cells."""
    R, S, A = o_int.shape
    if R < 2:
        in_int[...] = 0.0
        return
    bs = p.beta_size[d % p.beta_size.shape[0]]
    W = p.dest_weight[d % p.dest_weight.shape[0]]
    pull = np.empty(R)
    for j in range(R):
        pull[j] = urban[j] ** bs * g[j]
    Pt = np.empty((R, R))  # Pt[j, i] = P(destination j | origin i)
    for i in range(R):
        tot = 0.0
        for j in range(R):
            tot += W[i, j] * pull[j]
        for j in range(R):
            Pt[j, i] = W[i, j] * pull[j] / tot
    in_int[...] = np.dot(Pt, o_int.reshape(R, S * A)).reshape(R, S, A)


@njit(**_JIT)
def _add_arrivals(x, in_int, flows, shift):
    K, S, A = x.shape
    for s in range(S):
        for a in range(A):
            ae = min(a + 1, A - 1) if shift else a
            x[URBAN_MIGRANT, s, a] += in_int[s, a]
            flows[F_INTER_IN, s, ae] += in_int[s, a]


@njit(**_JIT)
def _settle_and_reclassify(x, p, d, r, gr, work):
    """Hukou conversion, then reclassification, of region ``r``; returns (settled, reclassified).
    ``work[S, A]`` is scratch space."""
    K, S, A = x.shape
    h = p.h_conv[d % p.h_conv.shape[0], r]
    rc_rate = p.reclass[d % p.reclass.shape[0], r] * gr
    loc = p.reclass_local[d % p.reclass_local.shape[0], r]
    for s in range(S):
        for a in range(A):
            c = h[s, a] * x[URBAN_MIGRANT, s, a]
            x[URBAN_MIGRANT, s, a] -= c
            x[URBAN_LOCAL, s, a] += c
            work[s, a] = c
    conv_tot = _total(work)
    for s in range(S):
        for a in range(A):
            rc = rc_rate * x[RURAL, s, a]
            x[RURAL, s, a] -= rc
            x[URBAN_LOCAL, s, a] += loc * rc
            x[URBAN_MIGRANT, s, a] += (1.0 - loc) * rc
            work[s, a] = rc
    rc_tot = _total(work)
    return conv_tot, rc_tot


@njit(**_JIT)
def _brake(pop_r, p, d, land_r):
    cm2 = p.capacity_m2[d % p.capacity_m2.shape[0]]
    return capacity_brake(_urban(pop_r) / (land_r * 1e6 / cm2), p.brake_width[d % p.brake_width.shape[0]])


@njit(**_JIT)
def _finish_region(x, p, d, r, gr, in_int_r, flows_r, land, settled_prev, settled, reclassified, left):
    """Stage C for one region: arrivals, hukou conversion, reclassification, land."""
    _add_arrivals(x, in_int_r, flows_r, False)
    conv, rc = _settle_and_reclassify(x, p, d, r, gr, in_int_r)  # arrivals are added: reuse as scratch
    settled[r] = conv
    reclassified[r] = rc
    land[r] += (
        p.land_base[d % p.land_base.shape[0], r]
        + p.land_per_settled[d % p.land_per_settled.shape[0], r] * settled_prev[r] / 1e6
        + p.land_release[d % p.land_release.shape[0], r]
        + p.land_per_leaver[d % p.land_per_leaver.shape[0], r] * left / 1e6
    )
    settled_prev[r] = conv


@njit(**_JIT)
def _step_draw(pop, land, settled_prev, p, d, births, deaths, flows, settled, reclassified, capped):
    """One draw, regions in sequence (the layout for ensembles: one draw's data stays in cache)."""
    R, K, S, A = pop.shape
    even = p.timing == TIMING_EVEN
    g = np.empty(R)
    urban = np.empty(R)
    o_int = np.empty((R, S, A))
    in_int = np.empty((R, S, A))
    left = np.zeros(R)
    flows[...] = 0.0
    capped[...] = 0.0
    for r in range(R):
        g[r] = _brake(pop[r], p, d, land[r])
    if even:
        for r in range(R):
            urban[r] = _urban(pop[r])
            nc, lv = _local_moves(pop[r], p, d, r, g[r], 0.5, flows[r], o_int[r], True)
            capped[r] += nc
            left[r] += lv
        _arrivals(p, d, urban, g, o_int, in_int)
    for r in range(R):
        if even:
            _add_arrivals(pop[r], in_int[r], flows[r], True)
        _survive_and_bear(pop[r], p, d, r, births[r], deaths[r])
        urban[r] = _urban(pop[r])
        nc, lv = _local_moves(pop[r], p, d, r, g[r], 0.5 if even else 1.0, flows[r], o_int[r], False)
        capped[r] += nc
        left[r] += lv
    _arrivals(p, d, urban, g, o_int, in_int)
    for r in range(R):
        _finish_region(pop[r], p, d, r, g[r], in_int[r], flows[r], land, settled_prev, settled, reclassified, left[r])


@njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def _step_by_draw(pop, land, settled_prev, p, births, deaths, flows, settled, reclassified, capped):
    for d in prange(pop.shape[0]):
        _step_draw(pop[d], land[d], settled_prev[d], p, d, births[d], deaths[d], flows[d], settled[d], reclassified[d], capped[d])


@njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def _step_by_region(pop, land, settled_prev, p, births, deaths, flows, settled, reclassified, capped):
    """Units of (draw, region) in parallel, stage by stage (the layout for few draws and many
    regions, so that a deterministic run uses every core)."""
    D, R, K, S, A = pop.shape
    n = D * R
    even = p.timing == TIMING_EVEN
    g = np.empty((D, R))
    urban = np.empty((D, R))
    o_int = np.empty((D, R, S, A))
    in_int = np.empty((D, R, S, A))
    left = np.zeros((D, R))
    for u in prange(n):
        d, r = u // R, u % R
        flows[d, r] = 0.0
        capped[d, r] = 0.0
        g[d, r] = _brake(pop[d, r], p, d, land[d, r])
        if even:
            urban[d, r] = _urban(pop[d, r])
            nc, lv = _local_moves(pop[d, r], p, d, r, g[d, r], 0.5, flows[d, r], o_int[d, r], True)
            capped[d, r] += nc
            left[d, r] += lv
    if even:
        for d in prange(D):
            _arrivals(p, d, urban[d], g[d], o_int[d], in_int[d])
    for u in prange(n):
        d, r = u // R, u % R
        x = pop[d, r]
        if even:
            _add_arrivals(x, in_int[d, r], flows[d, r], True)
        _survive_and_bear(x, p, d, r, births[d, r], deaths[d, r])
        urban[d, r] = _urban(x)
        nc, lv = _local_moves(x, p, d, r, g[d, r], 0.5 if even else 1.0, flows[d, r], o_int[d, r], False)
        capped[d, r] += nc
        left[d, r] += lv
    for d in prange(D):
        _arrivals(p, d, urban[d], g[d], o_int[d], in_int[d])
    for u in prange(n):
        d, r = u // R, u % R
        _finish_region(pop[d, r], p, d, r, g[d, r], in_int[d, r], flows[d, r], land[d], settled_prev[d], settled[d], reclassified[d], left[d, r])


def step(pop: np.ndarray, land: np.ndarray, settled_prev: np.ndarray, p: StepInputs, out: StepOutputs, *, layout: str = "auto") -> None:
    """Same contract as :func:`sim.reference.step`, compiled.

    ``layout``: ``"draw"`` (a draw per thread), ``"region"`` ((draw, region) units per thread,
    stage by stage) or ``"auto"``: by draw when there are at least as many draws as threads."""
    if layout == "auto":
        layout = "draw" if pop.shape[0] >= numba.get_num_threads() else "region"
    fn = _step_by_draw if layout == "draw" else _step_by_region
    fn(pop, land, settled_prev, p, out.births, out.deaths, out.flows, out.settled, out.reclassified, out.capped)
