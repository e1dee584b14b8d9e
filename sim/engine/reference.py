"""Plain NumPy reference of one annual step: the test oracle and the benchmark's baseline.

Order of events in year t (population ``pop`` at the end of t-1 to the end of t); every flow is
a count of persons and is recorded by the age the cohort reaches at the end of year t:

0. Capacity brake ``g[r]`` from the start-of-year urban residents and urban land.
1. Migration, first half (only with ``timing = even``): the moves of stage 3 at half rate.
2. Survival and ageing (UN cohort-component conventions): ``new[a+1] = x[a] * sx[a]`` with
   ``sx[a] = L(a+1)/L(a)``; the open group ``new[z] = (x[z-1] + x[z]) * L(z)/(L(z-1)+L(z))``.
   Births by the mother's state ``sum_a asfr[a] * (W_start[a] + W_end[a]) / 2``, split by the
   sex ratio at birth, newborns survived to the year end with ``L(0)/l(0)`` and put in the
   mother's state. Deaths are what survival removes (the newborns' included).
3. Migration (``end``: full rate; ``even``: second half) on the survivors, all moves out of a
   cell computed from the same stock: rural -> urban_migrant (braked by ``g``); urban_migrant ->
   rural; resident states -> away; away -> rural / urban_migrant (the urban part braked);
   urban_migrant -> out of the model (other-province migrants leaving); resident states -> other
   regions, whose destinations follow a multinomial logit with utility
   ``V[i, j] + beta_size * log(urban_j) + log(g_j)``, i.e. weights
   ``exp(V[i, j]) * urban_j ** beta_size * g_j`` (``exp(V)`` is precomputed once per run), and at
   the students' ages (``student_ages``) those weights times ``student_pull_j``, a choice of
   their own (where the colleges are); in-migrants from other provinces (counts)
   into urban_migrant, braked. When a cell's total out-rate exceeds 1 every rate is scaled
   to sum 1 and the cell is counted in ``capped`` (its state's group of ``CAP_GROUPS``).
4. Hukou conversion (市民化): urban_migrant -> urban_local at rate ``min(h[r, s, a], 1)``.
5. Reclassification: rural -> urban at rate ``min(reclass * g, 1)``, a share to urban_local.
   A rate bounded at 1 counts its cells in ``capped`` too.
6. Land: ``land += base + m2_per_settled * settled_last_year / 1e6 + release
   + m2_per_leaver * rural_leavers_this_year / 1e6`` (rural leavers: rural -> urban, away and
   other regions).

Parameter arrays carry a leading draw axis of length 1 (shared by all draws) or D.
"""

from __future__ import annotations

import numpy as np

from models import get_model
from sim.axes import (
    AWAY,
    C_AWAY,
    C_CONVERSION,
    C_LOCAL,
    C_MIGRANT,
    C_RECLASS,
    C_RURAL,
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
from sim.engine.contract import TIMING_EVEN, StepInputs, StepOutputs

capacity_brake = get_model("capacity_brake", "logistic")


def students_choose(student_pull: np.ndarray, student_ages: np.ndarray) -> bool:
    """Whether the movers at the students' ages choose apart from the others: some age is one
    of theirs and some destination's student pull is not 1 (else both choices are the same)."""
    return bool(student_ages.any() and (student_pull != 1.0).any())

def _age_shift(x: np.ndarray) -> np.ndarray:
    """Move the last (age) axis up one year, the open group keeping its members."""
    y = np.zeros_like(x)
    y[..., 1:] = x[..., :-1]
    y[..., -1] += x[..., -1]
    return y


def _migrate(x, p: StepInputs, g, frac, flows, capped, shift, leavers, od):
    """Apply the stage-3 moves at ``frac`` of their rates to ``x`` in place; record the flows
    (and region-to-region totals in ``od`` when it is not empty) and add the rural residents
    who left to ``leavers`` (D,R)."""
    rec = _age_shift if shift else (lambda a: a)
    gb = g[:, :, None, None]
    xr_, xl, xm, xa = x[:, :, RURAL], x[:, :, URBAN_LOCAL], x[:, :, URBAN_MIGRANT], x[:, :, AWAY]
    # out-rates per source cell
    r_ru = frac * p.m_ru * gb
    r_r_away = frac * p.m_away[:, :, RURAL]
    r_r_int = frac * p.m_inter[:, :, RURAL]
    r_l_away = frac * p.m_away[:, :, URBAN_LOCAL]
    r_l_int = frac * p.m_inter[:, :, URBAN_LOCAL]
    r_ur = frac * p.m_ur
    r_m_away = frac * p.m_away[:, :, URBAN_MIGRANT]
    r_m_int = frac * p.m_inter[:, :, URBAN_MIGRANT]
    r_ext = frac * p.m_ext_out
    ret_u = p.return_urban[:, :, None, None]
    r_a_rur = frac * p.m_return * (1 - ret_u)
    r_a_urb = frac * p.m_return * ret_u * gb

    def cap(group, *rates):
        tot = sum(np.broadcast_arrays(*rates))
        over = tot > 1.0
        capped[:, :, group] += over.sum(axis=(2, 3))
        scale = np.where(over, 1.0 / np.where(over, tot, 1.0), 1.0)
        return [r * scale for r in rates]

    r_ru, r_r_away, r_r_int = cap(C_RURAL, r_ru, r_r_away, r_r_int)
    r_l_away, r_l_int = cap(C_LOCAL, r_l_away, r_l_int)
    r_ur, r_m_away, r_m_int, r_ext = cap(C_MIGRANT, r_ur, r_m_away, r_m_int, r_ext)
    r_a_rur, r_a_urb = cap(C_AWAY, r_a_rur, r_a_urb)

    o_ru, o_r_away, o_r_int = r_ru * xr_, r_r_away * xr_, r_r_int * xr_
    o_l_away, o_l_int = r_l_away * xl, r_l_int * xl
    o_ur, o_m_away, o_m_int, o_ext = r_ur * xm, r_m_away * xm, r_m_int * xm, r_ext * xm
    o_a_rur, o_a_urb = r_a_rur * xa, r_a_urb * xa
    ext_in = frac * p.ext_in * gb
    leavers += (o_ru + o_r_away + o_r_int).sum(axis=(2, 3))

    # destination choice (multinomial logit over j != i)
    urban = (x[:, :, URBAN_LOCAL] + x[:, :, URBAN_MIGRANT]).sum(axis=(2, 3))  # (D,R)
    out_int = o_r_int + o_l_int + o_m_int  # (D,R,S,A)
    if x.shape[1] > 1:
        w = p.dest_weight * (urban ** p.beta_size[:, None] * g)[:, None, :]
        P = w / w.sum(axis=2, keepdims=True)  # (D, i, j)
        streams = [(P, out_int)]
        if students_choose(p.student_pull, p.student_ages):
            # movers at the students' ages: their own choice, weights times the student pull
            band = np.broadcast_to(p.student_ages, (x.shape[0], x.shape[-1]))[:, None, None, :]  # (D,1,1,A)
            ws = w * p.student_pull[:, None, :]
            streams = [(P, out_int * (1.0 - band)), (ws / ws.sum(axis=2, keepdims=True), out_int * band)]
        in_int = sum(np.einsum("dij,disa->djsa", Pk, ok) for Pk, ok in streams)
        if od.size:
            for Pk, ok in streams:
                od += Pk * ok.sum(axis=(2, 3))[:, :, None]
    else:  # one region: nowhere to go (the model builder sets these rates to 0)
        in_int = np.zeros_like(out_int)

    x[:, :, RURAL] += -o_ru - o_r_away - o_r_int + o_ur + o_a_rur
    x[:, :, URBAN_LOCAL] += -o_l_away - o_l_int
    x[:, :, URBAN_MIGRANT] += o_ru - o_ur - o_m_away - o_m_int - o_ext + o_a_urb + in_int + ext_in
    x[:, :, AWAY] += o_r_away + o_l_away + o_m_away - o_a_rur - o_a_urb

    flows[:, :, F_RURAL_TO_URBAN] += rec(o_ru)
    flows[:, :, F_URBAN_TO_RURAL] += rec(o_ur)
    flows[:, :, F_TO_AWAY] += rec(o_r_away + o_l_away + o_m_away)
    flows[:, :, F_FROM_AWAY] += rec(o_a_rur + o_a_urb)
    flows[:, :, F_INTER_OUT] += rec(out_int)
    flows[:, :, F_INTER_IN] += rec(in_int)
    flows[:, :, F_EXT_IN] += rec(ext_in)
    flows[:, :, F_EXT_OUT] += rec(o_ext)


def step(pop: np.ndarray, land: np.ndarray, settled_prev: np.ndarray, p: StepInputs, out: StepOutputs) -> None:
    """Advance ``pop`` (D,R,K,S,A), ``land`` (D,R) and ``settled_prev`` (D,R) one year, in place.

    ``out`` receives the year's flows (overwritten)."""
    for a in out:
        a[...] = 0.0
    D, R, K, S, A = pop.shape
    urban = (pop[:, :, URBAN_LOCAL] + pop[:, :, URBAN_MIGRANT]).sum(axis=(2, 3))
    capacity = land * 1e6 / p.capacity_m2[:, None]
    g = np.stack([capacity_brake(urban[d] / capacity[d], float(p.brake_width[d % len(p.brake_width)])) for d in range(D)])

    x = pop.copy()
    even = p.timing == TIMING_EVEN
    leavers = np.zeros((D, R))
    if even:
        _migrate(x, p, g, 0.5, out.flows, out.capped, True, leavers, out.od)

    # 2. survival, ageing, births
    new = np.zeros_like(x)
    new[..., 1 : A - 1] = x[..., : A - 2] * p.sx[..., : A - 2]
    new[..., A - 1] = (x[..., A - 2] + x[..., A - 1]) * p.sx[..., A - 2]
    out.deaths[..., 1 : A - 1] = x[..., : A - 2] - new[..., 1 : A - 1]
    out.deaths[..., A - 1] = x[..., A - 2] + x[..., A - 1] - new[..., A - 1]
    births = (p.asfr * (x[:, :, :, FEMALE] + new[:, :, :, FEMALE]) * 0.5).sum(axis=3)  # (D,R,K)
    srb = p.srb[:, :, None]
    out.births[:, :, :, 0] = births / (1.0 + srb)
    out.births[:, :, :, 1] = births * srb / (1.0 + srb)
    new[..., 0] = out.births * p.nb
    out.deaths[..., 0] = out.births - new[..., 0]

    # 3. migration
    _migrate(new, p, g, 0.5 if even else 1.0, out.flows, out.capped, False, leavers, out.od)

    # 4. hukou conversion
    h = np.broadcast_to(p.h_conv, new[:, :, URBAN_MIGRANT].shape)
    out.capped[:, :, C_CONVERSION] += (h > 1.0).sum(axis=(2, 3))
    conv = np.minimum(h, 1.0) * new[:, :, URBAN_MIGRANT]
    new[:, :, URBAN_MIGRANT] -= conv
    new[:, :, URBAN_LOCAL] += conv
    out.settled[...] = conv.sum(axis=(2, 3))

    # 5. reclassification
    rc_rate = np.broadcast_to(p.reclass * g, (D, R))
    out.capped[:, :, C_RECLASS] += (rc_rate > 1.0) * S * A
    rc = np.minimum(rc_rate, 1.0)[:, :, None, None] * new[:, :, RURAL]
    new[:, :, RURAL] -= rc
    new[:, :, URBAN_LOCAL] += p.reclass_local[:, :, None, None] * rc
    new[:, :, URBAN_MIGRANT] += (1.0 - p.reclass_local[:, :, None, None]) * rc
    out.reclassified[...] = rc.sum(axis=(2, 3))

    # 6. land
    land += p.land_base + p.land_per_settled * settled_prev / 1e6 + p.land_release + p.land_per_leaver * leavers / 1e6
    settled_prev[...] = out.settled
    pop[...] = new
