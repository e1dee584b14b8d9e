"""The numba kernel of one annual step: same events, order and conventions as
:mod:`sim.reference` (read its docstring for the model), one loop nest per draw.

Draws are independent, so the outer loop is a ``prange`` over draws; regions are mixed by the
destination choice, so they are not split across threads. Parameter arrays with a draw axis of
length 1 are shared by every draw (index ``d % len``).
"""

from __future__ import annotations

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


@njit(cache=True, nogil=True, error_model="numpy")
def _migrate(x, p, d, g, frac, flows, capped, shift):
    R, K, S, A = x.shape
    # this draw's parameter views, taken once (the inner loop then does no index arithmetic)
    m_ru = p.m_ru[d % p.m_ru.shape[0]]
    m_away = p.m_away[d % p.m_away.shape[0]]
    m_inter = p.m_inter[d % p.m_inter.shape[0]]
    m_ur = p.m_ur[d % p.m_ur.shape[0]]
    m_ext_out = p.m_ext_out[d % p.m_ext_out.shape[0]]
    m_return = p.m_return[d % p.m_return.shape[0]]
    ext_in = p.ext_in[d % p.ext_in.shape[0]]
    return_urban = p.return_urban[d % p.return_urban.shape[0]]
    o_int = np.empty((R, S, A))  # all written in the loop below
    in_int = np.empty((R, S, A))  # filled by _destinations
    for r in range(R):
        gr = g[r]
        ru_share = return_urban[r]
        for s in range(S):
            for a in range(A):
                ae = a
                if shift:
                    ae = min(a + 1, A - 1)
                # rural
                r1 = frac * m_ru[r, s, a] * gr
                r2 = frac * m_away[r, RURAL, s, a]
                r3 = frac * m_inter[r, RURAL, s, a]
                t = r1 + r2 + r3
                if t > 1.0:
                    r1 /= t
                    r2 /= t
                    r3 /= t
                    capped[r] += 1.0
                xr = x[r, RURAL, s, a]
                o_ru, o_r_away, o_r_int = r1 * xr, r2 * xr, r3 * xr
                # urban_local
                l1 = frac * m_away[r, URBAN_LOCAL, s, a]
                l2 = frac * m_inter[r, URBAN_LOCAL, s, a]
                t = l1 + l2
                if t > 1.0:
                    l1 /= t
                    l2 /= t
                    capped[r] += 1.0
                xl = x[r, URBAN_LOCAL, s, a]
                o_l_away, o_l_int = l1 * xl, l2 * xl
                # urban_migrant
                m1 = frac * m_ur[r, s, a]
                m2 = frac * m_away[r, URBAN_MIGRANT, s, a]
                m3 = frac * m_inter[r, URBAN_MIGRANT, s, a]
                m4 = frac * m_ext_out[r, s, a]
                t = m1 + m2 + m3 + m4
                if t > 1.0:
                    m1 /= t
                    m2 /= t
                    m3 /= t
                    m4 /= t
                    capped[r] += 1.0
                xm = x[r, URBAN_MIGRANT, s, a]
                o_ur, o_m_away, o_m_int, o_ext = m1 * xm, m2 * xm, m3 * xm, m4 * xm
                # away
                ret = frac * m_return[r, s, a]
                a1 = ret * (1.0 - ru_share)
                a2 = ret * ru_share * gr
                t = a1 + a2
                if t > 1.0:
                    a1 /= t
                    a2 /= t
                    capped[r] += 1.0
                xa = x[r, AWAY, s, a]
                o_a_rur, o_a_urb = a1 * xa, a2 * xa
                e_in = frac * ext_in[r, s, a] * gr

                x[r, RURAL, s, a] = xr - o_ru - o_r_away - o_r_int + o_ur + o_a_rur
                x[r, URBAN_LOCAL, s, a] = xl - o_l_away - o_l_int
                x[r, URBAN_MIGRANT, s, a] = xm + o_ru - o_ur - o_m_away - o_m_int - o_ext + o_a_urb + e_in
                x[r, AWAY, s, a] = xa + o_r_away + o_l_away + o_m_away - o_a_rur - o_a_urb
                oi = o_r_int + o_l_int + o_m_int
                o_int[r, s, a] = oi

                flows[r, F_RURAL_TO_URBAN, s, ae] += o_ru
                flows[r, F_URBAN_TO_RURAL, s, ae] += o_ur
                flows[r, F_TO_AWAY, s, ae] += o_r_away + o_l_away + o_m_away
                flows[r, F_FROM_AWAY, s, ae] += o_a_rur + o_a_urb
                flows[r, F_INTER_OUT, s, ae] += oi
                flows[r, F_EXT_IN, s, ae] += e_in
                flows[r, F_EXT_OUT, s, ae] += o_ext
    return o_int, in_int


@njit(cache=True, nogil=True, error_model="numpy")
def _destinations(x_start_urban, p, d, g, o_int, in_int):
    """Spread each origin's out-migrants over destinations j != i (multinomial logit).

    Arrivals are one matrix product ``in[j, :] = sum_i P[i, j] out[i, :]`` over the flattened
    (sex, age) cells, so the cost grows like a matrix product in the number of regions."""
    R, S, A = o_int.shape
    if R < 2:
        in_int[...] = 0.0
        return
    u = np.empty(R)
    bs = p.beta_size[d % p.beta_size.shape[0]]
    for j in range(R):
        u[j] = bs * np.log(x_start_urban[j]) + np.log(g[j])
    V = p.V[d % p.V.shape[0]]
    Pt = np.empty((R, R))  # Pt[j, i] = P(destination j | origin i)
    w = np.empty(R)
    for i in range(R):
        m = -np.inf
        for j in range(R):
            w[j] = V[i, j] + u[j]
            if w[j] > m:
                m = w[j]
        tot = 0.0
        for j in range(R):
            w[j] = np.exp(w[j] - m)
            tot += w[j]
        for j in range(R):
            Pt[j, i] = w[j] / tot
    in_int[...] = np.dot(Pt, o_int.reshape(R, S * A)).reshape(R, S, A)


@njit(cache=True, nogil=True, error_model="numpy")
def _step_one(pop, land, settled_prev, p, d, births, deaths, flows, settled, reclassified, capped):
    R, K, S, A = pop.shape
    even = p.timing == TIMING_EVEN
    bw = p.brake_width[d % p.brake_width.shape[0]]
    cm2 = p.capacity_m2[d % p.capacity_m2.shape[0]]
    g = np.empty(R)
    for r in range(R):
        urb = 0.0
        for s in range(S):
            for a in range(A):
                urb += pop[r, URBAN_LOCAL, s, a] + pop[r, URBAN_MIGRANT, s, a]
        g[r] = capacity_brake(urb / (land[r] * 1e6 / cm2), bw)

    sx_d = p.sx[d % p.sx.shape[0]]
    asfr_d = p.asfr[d % p.asfr.shape[0]]
    nb_d = p.nb[d % p.nb.shape[0]]
    srb_d = p.srb[d % p.srb.shape[0]]
    h_d = p.h_conv[d % p.h_conv.shape[0]]
    reclass_d = p.reclass[d % p.reclass.shape[0]]
    local_d = p.reclass_local[d % p.reclass_local.shape[0]]
    base_d = p.land_base[d % p.land_base.shape[0]]
    link_d = p.land_per_settled[d % p.land_per_settled.shape[0]]
    release_d = p.land_release[d % p.land_release.shape[0]]

    # with `end` timing the start-of-year stock is only read, so it needs no copy
    x = pop.copy() if even else pop
    if even:
        urban = _urban_totals(x)
        o_int, in_int = _migrate(x, p, d, g, 0.5, flows, capped, True)
        _destinations_from(x, urban, p, d, g, o_int, in_int, flows, True)

    new = np.empty_like(x)  # every cell is written below (ages 1.. by survival, age 0 by births)
    for r in range(R):
        for k in range(K):
            for s in range(S):
                sx = sx_d[r, k, s]
                new[r, k, s, 0] = 0.0  # no end-of-year women at age 0 until the newborns arrive
                for a in range(A - 2):
                    new[r, k, s, a + 1] = x[r, k, s, a] * sx[a]
                    deaths[r, k, s, a + 1] = x[r, k, s, a] - new[r, k, s, a + 1]
                top = x[r, k, s, A - 2] + x[r, k, s, A - 1]
                new[r, k, s, A - 1] = top * sx[A - 2]
                deaths[r, k, s, A - 1] = top - new[r, k, s, A - 1]
            b = 0.0
            asfr = asfr_d[r, k]
            for a in range(A):
                b += asfr[a] * (x[r, k, FEMALE, a] + new[r, k, FEMALE, a]) * 0.5
            srb = srb_d[r]
            births[r, k, 0] = b / (1.0 + srb)
            births[r, k, 1] = b * srb / (1.0 + srb)
            for s in range(S):
                new[r, k, s, 0] = births[r, k, s] * nb_d[r, k, s]
                deaths[r, k, s, 0] = births[r, k, s] - new[r, k, s, 0]

    urban = _urban_totals(new)
    o_int, in_int = _migrate(new, p, d, g, 0.5 if even else 1.0, flows, capped, False)
    _destinations_from(new, urban, p, d, g, o_int, in_int, flows, False)

    for r in range(R):
        conv_tot = 0.0
        rc_tot = 0.0
        rc_rate = reclass_d[r] * g[r]
        loc = local_d[r]
        for s in range(S):
            for a in range(A):
                c = h_d[r, s, a] * new[r, URBAN_MIGRANT, s, a]
                new[r, URBAN_MIGRANT, s, a] -= c
                new[r, URBAN_LOCAL, s, a] += c
                conv_tot += c
        for s in range(S):
            for a in range(A):
                rc = rc_rate * new[r, RURAL, s, a]
                new[r, RURAL, s, a] -= rc
                new[r, URBAN_LOCAL, s, a] += loc * rc
                new[r, URBAN_MIGRANT, s, a] += (1.0 - loc) * rc
                rc_tot += rc
        settled[r] = conv_tot
        reclassified[r] = rc_tot
        land[r] += base_d[r] + link_d[r] * settled_prev[r] / 1e6 + release_d[r]
        settled_prev[r] = conv_tot
    pop[...] = new


@njit(cache=True, nogil=True, error_model="numpy")
def _urban_totals(x):
    R, K, S, A = x.shape
    urban = np.zeros(R)
    for r in range(R):
        for s in range(S):
            for a in range(A):
                urban[r] += x[r, URBAN_LOCAL, s, a] + x[r, URBAN_MIGRANT, s, a]
    return urban


@njit(cache=True, nogil=True, error_model="numpy")
def _destinations_from(x, urban, p, d, g, o_int, in_int, flows, shift):
    """Destination choice on the stock's urban residents before the moves; add the arrivals."""
    R, K, S, A = x.shape
    _destinations(urban, p, d, g, o_int, in_int)
    for r in range(R):
        for s in range(S):
            for a in range(A):
                ae = a
                if shift:
                    ae = min(a + 1, A - 1)
                x[r, URBAN_MIGRANT, s, a] += in_int[r, s, a]
                flows[r, F_INTER_IN, s, ae] += in_int[r, s, a]


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _step_all(pop, land, settled_prev, p, births, deaths, flows, settled, reclassified, capped):
    D = pop.shape[0]
    for d in prange(D):
        flows[d] = 0.0  # accumulated; births and deaths are written whole
        capped[d] = 0.0
        _step_one(pop[d], land[d], settled_prev[d], p, d, births[d], deaths[d], flows[d], settled[d], reclassified[d], capped[d])


def step(pop: np.ndarray, land: np.ndarray, settled_prev: np.ndarray, p: StepInputs, out: StepOutputs) -> None:
    """Same contract as :func:`sim.reference.step`, compiled."""
    _step_all(pop, land, settled_prev, p, out.births, out.deaths, out.flows, out.settled, out.reclassified, out.capped)
