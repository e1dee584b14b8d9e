"""The numba kernel of one annual step. It has the same events, order and conventions as
:mod:`sim.engine.reference` (whose docstring describes the model).

Work is split into units of one (draw, region). Only the destination choice mixes regions; it
is one matrix product over the flattened (sex, age) cells, in blocks of destinations.

Three layouts share the stage functions: serial (draws in sequence on the calling thread: one
draw of few regions), by draw (a draw per thread, regions in sequence: ensembles) and by region
(units of (draw, region) per thread, stage by stage: few draws of many regions). :func:`step`
picks one. For timing ``end`` a step by region is:
  0. per draw: the capacity brake of every region;
  A. per unit: survival and births (in place, ages walked downwards), local moves;
  B. per draw: destination pulls; per (draw, block of destinations): arrivals;
  C. per unit: add arrivals, hukou conversion, reclassification, land.
For timing ``even``, A is preceded by a first half of the moves and its own arrivals.

:func:`summary` runs whole ensembles with reduced outputs: every year of a draw in one thread's
scratch state, the draw's parameter multipliers applied in the kernel.

Parameter arrays whose draw axis has length 1 are shared by every draw (index ``d % len``).

The kernel keeps flat arguments and positions for speed; each comes from one declaration: the
state positions (RURAL, URBAN_LOCAL, URBAN_MIGRANT, AWAY) and the flow positions (F_*) from
:mod:`sim.axes` (``STATES``, ``FLOW_TABLE``), the fields of a step from
:class:`sim.engine.contract.StepInputs`, the rows of the per-draw factor table from the parameter
table (:mod:`sim.config.parameters`), the compile options from :mod:`sim.engine.jit`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

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
    N_CAPS,
    N_FLOWS,
    RURAL,
    URBAN_LOCAL,
    URBAN_MIGRANT,
)
from sim.config.parameters import FACTOR_FIELD
from sim.engine.contract import TIMING_EVEN, StepInputs, StepOutputs
from sim.engine.jit import JIT, ROW, VIEW, VIEW_SUM

# the brake on urban inflows near land capacity (the model catalogue's only one, a plain NumPy
# function compiled here)
capacity_brake = njit(**JIT)(get_model("capacity_brake", "logistic"))

_MIN_REGIONS_TO_SHARE = 64  # see step()


@njit(**VIEW_SUM)
def _urban(x):
    """Urban residents of one region's stock ``x[K, S, A]``."""
    K, S, A = x.shape
    u = 0.0
    for s in range(S):
        for a in range(A):
            u += x[URBAN_LOCAL, s, a] + x[URBAN_MIGRANT, s, a]
    return u


@njit(**VIEW_SUM)
def _births(asfr, women):
    """``sum_a asfr[a] * women[a]``."""
    b = 0.0
    for a in range(asfr.shape[0]):
        b += asfr[a] * women[a]
    return b


@njit(**VIEW_SUM)
def _total(x):
    """Sum of a 2-D array."""
    t = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            t += x[i, j]
    return t


@njit(**JIT, inline="always")
def _at(a, d):
    """Draw ``d``'s slice of a parameter array (shared when its draw axis has length 1)."""
    return a[d % a.shape[0]]


# Stage functions take arrays and scalars, never the StepInputs tuple: handing a tuple of ~25
# arrays to a compiled call costs a reference-count update per member (0.3 us a call, and
# atomic updates that two threads contend on).


@njit(**JIT, inline="always")
def _moves_cells(
    xr_, xl_, xm_, xa_, ru_, ur_, ret_, eo_, ei_, ar_, al_, am_, ir_, il_, im_,
    f_ru, f_ur, f_ta, f_fa, f_io, f_ei, f_eo, oi_, frac, gr, ru_share, add,
):
    """The moves of one (region, sex) row of ages, in place on the states' rows ``x*_``, from
    the rates ``ru_`` (rural -> urban_migrant), ``ur_``, ``ret_`` (return from away), ``eo_``
    (leaving the model), ``ei_`` (in-migrants from other provinces, persons), ``a*_`` (-> away)
    and ``i*_`` (-> other regions) of the rural, urban_local and urban_migrant states. Flows go
    to the rows ``f_*`` (added when ``add``, else overwritten), departures to other regions to
    ``oi_``. Returns the number of capped cells of each state (rural, urban_local,
    urban_migrant, away) and the rural residents who left.

    Branch-free so that LLVM vectorises it: a cell's rates are scaled by ``1 / max(total, 1)``,
    which is exactly 1 when they do not exceed 1."""
    n_r = 0
    n_l = 0
    n_m = 0
    n_a = 0
    left = 0.0
    b_ru = frac * gr
    b_ret_r = frac * (1.0 - ru_share)
    b_ret_u = frac * ru_share * gr
    b_in = frac * gr
    for a in range(xr_.shape[0]):
        # rural
        r1, r2, r3 = b_ru * ru_[a], frac * ar_[a], frac * ir_[a]
        t = r1 + r2 + r3
        n_r += t > 1.0
        c = xr_[a] / max(t, 1.0)
        o_ru, o_r_away, o_r_int = r1 * c, r2 * c, r3 * c
        # urban_local
        l1, l2 = frac * al_[a], frac * il_[a]
        t = l1 + l2
        n_l += t > 1.0
        c = xl_[a] / max(t, 1.0)
        o_l_away, o_l_int = l1 * c, l2 * c
        # urban_migrant
        m1, m2, m3, m4 = frac * ur_[a], frac * am_[a], frac * im_[a], frac * eo_[a]
        t = m1 + m2 + m3 + m4
        n_m += t > 1.0
        c = xm_[a] / max(t, 1.0)
        o_ur, o_m_away, o_m_int, o_ext = m1 * c, m2 * c, m3 * c, m4 * c
        # away
        a1, a2 = b_ret_r * ret_[a], b_ret_u * ret_[a]
        t = a1 + a2
        n_a += t > 1.0
        c = xa_[a] / max(t, 1.0)
        o_a_rur, o_a_urb = a1 * c, a2 * c
        e_in = b_in * ei_[a]

        o_r = o_ru + o_r_away + o_r_int
        left += o_r
        to_away = o_r_away + o_l_away + o_m_away
        from_away = o_a_rur + o_a_urb
        oi = o_r_int + o_l_int + o_m_int
        xr_[a] = xr_[a] - o_r + o_ur + o_a_rur
        xl_[a] = xl_[a] - o_l_away - o_l_int
        xm_[a] = xm_[a] + o_ru - o_ur - o_m_away - o_m_int - o_ext + o_a_urb + e_in
        xa_[a] = xa_[a] + to_away - from_away
        oi_[a] = oi
        if add:
            f_ru[a] += o_ru
            f_ur[a] += o_ur
            f_ta[a] += to_away
            f_fa[a] += from_away
            f_io[a] += oi
            f_ei[a] += e_in
            f_eo[a] += o_ext
        else:
            f_ru[a] = o_ru
            f_ur[a] = o_ur
            f_ta[a] = to_away
            f_fa[a] = from_away
            f_io[a] = oi
            f_ei[a] = e_in
            f_eo[a] = o_ext
    return n_r, n_l, n_m, n_a, left


@njit(**ROW)
def _moves_row(
    xr_, xl_, xm_, xa_, ru_, ur_, ret_, eo_, ei_, ar_, al_, am_, ir_, il_, im_,
    f_ru, f_ur, f_ta, f_fa, f_io, f_ei, f_eo, oi_, frac, gr, ru_share, add,
):
    """:func:`_moves_cells` with ``add`` a constant in each branch: a loop that tests it per
    cell is vectorised with masked loads and stores, 2.5x slower."""
    if add:
        return _moves_cells(xr_, xl_, xm_, xa_, ru_, ur_, ret_, eo_, ei_, ar_, al_, am_, ir_, il_, im_, f_ru, f_ur, f_ta, f_fa, f_io, f_ei, f_eo, oi_, frac, gr, ru_share, True)
    return _moves_cells(xr_, xl_, xm_, xa_, ru_, ur_, ret_, eo_, ei_, ar_, al_, am_, ir_, il_, im_, f_ru, f_ur, f_ta, f_fa, f_io, f_ei, f_eo, oi_, frac, gr, ru_share, False)


# The flows the moves write (all but F_INTER_IN, which the arrivals write).
_MOVE_FLOWS = (F_RURAL_TO_URBAN, F_URBAN_TO_RURAL, F_TO_AWAY, F_FROM_AWAY, F_INTER_OUT, F_EXT_IN, F_EXT_OUT)


@njit(**ROW)
def _shift_row(dst, src):
    """``dst`` = ``src`` recorded one age up (the open group keeps its members); ``dst[0] = 0``."""
    A = src.shape[0]
    dst[0] = 0.0
    for a in range(1, A - 1):
        dst[a] = src[a - 1]
    dst[A - 1] = src[A - 2] + src[A - 1]


@njit(**VIEW)
def _local_moves(x, m_ru, m_away, m_inter, m_ur, m_ext_out, m_return, ext_in, ru_share, gr, frac, flows, o_int, shift, add, scratch, capped):
    """Stage-3 moves of one region at ``frac`` of their rates, applied to ``x[K, S, A]`` in
    place; flows go to ``flows[F, S, A]`` (added when ``add``, else overwritten; when ``shift``,
    overwritten one age up: the moves before survival are recorded at the age reached at the
    year end; ``scratch`` has the shape of ``flows`` then, else it is not used), departures to
    other regions to ``o_int[S, A]``. Rate arrays are the region's. The capped cells are added
    to ``capped[N_CAPS]`` (the region's row, by group). Returns the rural residents who left."""
    K, S, A = x.shape
    left = 0.0
    fl = scratch if shift else flows
    for s in range(S):
        n_r, n_l, n_m, n_a, lv = _moves_row(
            x[RURAL, s], x[URBAN_LOCAL, s], x[URBAN_MIGRANT, s], x[AWAY, s],
            m_ru[s], m_ur[s], m_return[s], m_ext_out[s], ext_in[s],
            m_away[RURAL, s], m_away[URBAN_LOCAL, s], m_away[URBAN_MIGRANT, s],
            m_inter[RURAL, s], m_inter[URBAN_LOCAL, s], m_inter[URBAN_MIGRANT, s],
            fl[F_RURAL_TO_URBAN, s], fl[F_URBAN_TO_RURAL, s], fl[F_TO_AWAY, s], fl[F_FROM_AWAY, s],
            fl[F_INTER_OUT, s], fl[F_EXT_IN, s], fl[F_EXT_OUT, s], o_int[s], frac, gr, ru_share, add and not shift,
        )
        capped[C_RURAL] += n_r
        capped[C_LOCAL] += n_l
        capped[C_MIGRANT] += n_m
        capped[C_AWAY] += n_a
        left += lv
    if shift:
        for f in _MOVE_FLOWS:
            for s in range(S):
                _shift_row(flows[f, s], fl[f, s])
    return left


@njit(**ROW)
def _survive_row(x, sx, d):
    """Survival and ageing of one (state, sex) row ``x[A]`` in place (ages walked downwards, so
    each cohort is read before it is overwritten), deaths to ``d[1:]``; ``x[0]`` is set to 0 (no
    end-of-year persons at age 0 until the newborns arrive)."""
    A = x.shape[0]
    top = x[A - 2] + x[A - 1]
    x[A - 1] = top * sx[A - 2]
    d[A - 1] = top - x[A - 1]
    for a in range(A - 3, -1, -1):
        new = x[a] * sx[a]
        d[a + 1] = x[a] - new
        x[a + 1] = new
    x[0] = 0.0


@njit(**VIEW)
def _survive_and_bear(x, sx_r, asfr_r, nb_r, srb, births, deaths):
    """Survival, ageing and births of one region, replacing ``x[K, S, A]`` in place by the
    survivors and newborns; births add up ``asfr * (women at start + women at end) / 2``."""
    K, S, A = x.shape
    for k in range(K):
        b_start = _births(asfr_r[k], x[k, FEMALE])
        for s in range(S):
            _survive_row(x[k, s], sx_r[k, s], deaths[k, s])
        b = 0.5 * (b_start + _births(asfr_r[k], x[k, FEMALE]))
        births[k, 0] = b / (1.0 + srb)
        births[k, 1] = b * srb / (1.0 + srb)
        for s in range(S):
            x[k, s, 0] = births[k, s] * nb_r[k, s]
            deaths[k, s, 0] = births[k, s] - x[k, s, 0]


@njit(**ROW)
def _axpy_row(acc, w, src):
    """``acc += w * src``."""
    for c in range(acc.shape[0]):
        acc[c] += w * src[c]


@njit(**JIT, inline="always")
def _p(W, pull, inv, i, j):
    """Probability that a departure from ``i`` goes to ``j``: ``W[i, j] pull_j / sum_k W[i, k] pull_k``."""
    return W[i, j] * pull[j] * inv[i]


@njit(**ROW)
def _axpy4x4_row(a0, a1, a2, a3, s0, s1, s2, s3, w00, w10, w20, w30, w01, w11, w21, w31, w02, w12, w22, w32, w03, w13, w23, w33):
    """``a_j += w0j * s0 + w1j * s1 + w2j * s2 + w3j * s3`` for four rows ``a_j``."""
    for c in range(a0.shape[0]):
        x0, x1, x2, x3 = s0[c], s1[c], s2[c], s3[c]
        a0[c] = a0[c] + w00 * x0 + w10 * x1 + w20 * x2 + w30 * x3
        a1[c] = a1[c] + w01 * x0 + w11 * x1 + w21 * x2 + w31 * x3
        a2[c] = a2[c] + w02 * x0 + w12 * x1 + w22 * x2 + w32 * x3
        a3[c] = a3[c] + w03 * x0 + w13 * x1 + w23 * x2 + w33 * x3


@njit(**ROW)
def _axpy4_row(acc, w0, s0, w1, s1, w2, s2, w3, s3):
    """``acc += w0 * s0 + w1 * s1 + w2 * s2 + w3 * s3``."""
    for c in range(acc.shape[0]):
        acc[c] = acc[c] + w0 * s0[c] + w1 * s1[c] + w2 * s2[c] + w3 * s3[c]


# Destinations are filled in blocks of this many: each origin's row of departures is read once
# per block and the block's sums stay in L1 (one destination at a time streamed every origin
# row from memory once per destination: 16x slower for China's 2,985 counties).
_DEST_BLOCK = 8


@njit(**VIEW)
def _dest_prep(urban, g, o_int, bs, W, pull, inv, tot_out):
    """Destination pull ``urban_j ** bs * g_j``, each origin's ``1 / sum_j W[i, j] pull_j`` and its
    total departures."""
    R = o_int.shape[0]
    for j in range(R):
        pull[j] = urban[j] ** bs * g[j]
    _origin_sums(W, pull, o_int, inv, tot_out)


@njit(**VIEW)
def _origin_sums(W, pull, o, inv, tot_out):
    """Each origin's ``1 / sum_j W[i, j] pull_j`` and its total departures ``o[i]``."""
    for i in range(o.shape[0]):
        tot = 0.0
        for j in range(W.shape[1]):
            tot += W[i, j] * pull[j]
        inv[i] = 1.0 / tot
        tot_out[i] = _total(o[i])


@njit(**VIEW)
def _dest_block(j0, j1, pull, inv, tot_out, o_int, in_int, W, od):
    """Arrivals in destinations ``j0 <= j < j1``: ``in[j, :] = sum_i P[i, j] out[i, :]`` with
    ``P[i, j] = W[i, j] pull_j inv_i``, origins summed in order, in tiles of four destinations by
    four origins (a load of a row feeds four products); adds ``P[i, j] * tot_out[i]`` to
    ``od[i, j]`` unless ``od`` is empty.

    Written as loops, not np.dot: BLAS would start its own threads inside numba's parallel
    region, and the two thread pools then fight over the cores (30x slower for Guangxi's 111
    counties)."""
    R, S, A = o_int.shape
    out = o_int.reshape(R, S * A)
    dst = in_int.reshape(R, S * A)
    if od.shape[0] == R:
        for i in range(R):
            for j in range(j0, j1):
                od[i, j] += _p(W, pull, inv, i, j) * tot_out[i]
    for j in range(j0, j1):
        dst[j, :] = 0.0
    # four destinations by four origins at a time: each load of a row feeds four products
    j = j0
    while j + 4 <= j1:
        i = 0
        while i + 4 <= R:
            _axpy4x4_row(
                dst[j], dst[j + 1], dst[j + 2], dst[j + 3], out[i], out[i + 1], out[i + 2], out[i + 3],
                _p(W, pull, inv, i, j), _p(W, pull, inv, i + 1, j), _p(W, pull, inv, i + 2, j), _p(W, pull, inv, i + 3, j),
                _p(W, pull, inv, i, j + 1), _p(W, pull, inv, i + 1, j + 1), _p(W, pull, inv, i + 2, j + 1), _p(W, pull, inv, i + 3, j + 1),
                _p(W, pull, inv, i, j + 2), _p(W, pull, inv, i + 1, j + 2), _p(W, pull, inv, i + 2, j + 2), _p(W, pull, inv, i + 3, j + 2),
                _p(W, pull, inv, i, j + 3), _p(W, pull, inv, i + 1, j + 3), _p(W, pull, inv, i + 2, j + 3), _p(W, pull, inv, i + 3, j + 3),
            )
            i += 4
        for jj in range(j, j + 4):
            for ii in range(i, R):
                _axpy_row(dst[jj], _p(W, pull, inv, ii, jj), out[ii])
        j += 4
    for jj in range(j, j1):
        i = 0
        while i + 4 <= R:
            _axpy4_row(
                dst[jj], _p(W, pull, inv, i, jj), out[i], _p(W, pull, inv, i + 1, jj), out[i + 1],
                _p(W, pull, inv, i + 2, jj), out[i + 2], _p(W, pull, inv, i + 3, jj), out[i + 3],
            )
            i += 4
        for ii in range(i, R):
            _axpy_row(dst[jj], _p(W, pull, inv, ii, jj), out[ii])


@njit(**VIEW)
def _students_choose(sp, band):
    """:func:`sim.engine.reference.students_choose` for one draw: some age is the students' and
    some destination's student pull ``sp`` is not 1."""
    ages = False
    for a in range(band.shape[0]):
        if band[a] != 0.0:
            ages = True
    if not ages:
        return False
    for j in range(sp.shape[0]):
        if sp[j] != 1.0:
            return True
    return False


@njit(**VIEW)
def _band_size(band):
    """How many ages are the students' (``band[a] != 0``)."""
    n = 0
    for a in range(band.shape[0]):
        if band[a] != 0.0:
            n += 1
    return n


@njit(**VIEW)
def _split_students(o_int, o_s, band):
    """Move the departures at the students' ages (``band[a] = 1``) from ``o_int`` (R, S, A) to
    the compact ``o_s`` (R, S, n: those ages only, in order); ``o_int`` is 0 at their ages."""
    R, S, A = o_int.shape
    for r in range(R):
        for s in range(S):
            k = 0
            for a in range(A):
                if band[a] != 0.0:
                    o_s[r, s, k] = o_int[r, s, a]
                    o_int[r, s, a] = 0.0
                    k += 1


@njit(**VIEW)
def _join_students(o_int, o_s, in_int, sp, band):
    """Undo :func:`_split_students` and :func:`_dest_prep_students` (``o_int`` the students'
    departures again at their ages, exactly) and multiply the arrivals at those ages by each
    destination's student pull ``sp_j``."""
    R, S, A = o_int.shape
    for r in range(R):
        for s in range(S):
            k = 0
            for a in range(A):
                if band[a] != 0.0:
                    o_int[r, s, a] = o_s[r, s, k]
                    in_int[r, s, a] *= sp[r]
                    k += 1


@njit(**VIEW)
def _dest_prep_students(pull, sp, W, o_s, pull_s, inv, inv_s, tot_s, o_int, band):
    """The students' choice folded into the others' product (after :func:`_dest_prep` and
    :func:`_split_students`): their origin sums ``1 / sum_j W[i, j] pull_j sp_j`` and totals, and
    at the students' ages ``o_int`` set to their departures times ``inv_s[i] / inv[i]``, so that
    the others' product ``sum_i W[i, j] pull_j inv[i] o_int[i]`` gives at those ages the
    students' arrivals but for the factor ``sp_j`` (:func:`_join_students` applies it). One
    product for both choices: a second one over the packed ages cost China's counties a third
    more time (the R^2 probabilities again for n of A columns)."""
    R, S, A = o_int.shape
    for j in range(R):
        pull_s[j] = pull[j] * sp[j]
    _origin_sums(W, pull_s, o_s, inv_s, tot_s)
    for r in range(R):
        ratio = inv_s[r] / inv[r]
        for s in range(S):
            k = 0
            for a in range(A):
                if band[a] != 0.0:
                    o_int[r, s, a] = o_s[r, s, k] * ratio
                    k += 1


@njit(**VIEW)
def _od_students(j0, j1, W, pull_s, inv_s, tot_s, od):
    """The students' part of ``od[i, j]`` for destinations ``j0 <= j < j1``:
    ``W[i, j] pull_j sp_j inv_s[i] tot_s[i]`` (nothing unless ``od`` is kept)."""
    if od.shape[0] == W.shape[0]:
        for i in range(W.shape[0]):
            for j in range(j0, j1):
                od[i, j] += _p(W, pull_s, inv_s, i, j) * tot_s[i]


@njit(**VIEW)
def _arrivals(urban, g, o_int, in_int, bs, W, od, pull, inv, tot_out, sp, band, o_s, pull_s, inv_s, tot_s):
    """Spread each origin's departures over destinations j != i (multinomial logit with weights
    ``W[i, j] * urban_j ** bs * g_j``): one matrix product over the (sex, age) cells; the
    departures at the students' ages (``band``) with those weights times ``sp_j``, folded into
    the same product (:func:`_dest_prep_students`), where :func:`_students_choose`. ``pull``,
    ``inv``, ``tot_out``, ``pull_s``, ``inv_s``, ``tot_s`` (R,), ``o_s`` (R, S, A) are scratch
    space."""
    R = o_int.shape[0]
    if R < 2:
        in_int[...] = 0.0
        return
    students = _students_choose(sp, band)
    S = o_int.shape[1]
    n = _band_size(band)
    os_ = o_s.reshape(-1)[: R * S * n].reshape((R, S, n))  # the students' ages only, packed
    if students:
        _split_students(o_int, os_, band)
    _dest_prep(urban, g, o_int, bs, W, pull, inv, tot_out)
    if students:
        _dest_prep_students(pull, sp, W, os_, pull_s, inv, inv_s, tot_s, o_int, band)
    for j0 in range(0, R, _DEST_BLOCK):
        _dest_block(j0, min(j0 + _DEST_BLOCK, R), pull, inv, tot_out, o_int, in_int, W, od)
        if students:
            _od_students(j0, min(j0 + _DEST_BLOCK, R), W, pull_s, inv_s, tot_s, od)
    if students:
        _join_students(o_int, os_, in_int, sp, band)


@njit(**ROW)
def _add_row(dst, src):
    """``dst += src``."""
    for a in range(dst.shape[0]):
        dst[a] += src[a]


@njit(**VIEW)
def _add_arrivals_shifted(x, in_int, flows):
    """Arrivals of the first half of the moves (timing ``even``): into urban_migrant, the flow
    overwritten one age up (the age reached at the year end)."""
    K, S, A = x.shape
    for s in range(S):
        _add_row(x[URBAN_MIGRANT, s], in_int[s])
        _shift_row(flows[F_INTER_IN, s], in_int[s])


@njit(**JIT, inline="always")
def _finish_cells(xr, xl, xm, arrived, f_in, h, rc_rate, loc, add):
    """Stage C for one (region, sex) row: ``arrived`` into urban_migrant (and the flow row
    ``f_in``, added to when ``add``, else overwritten), then hukou conversion at rates ``h``,
    then reclassification at ``rc_rate`` (at most 1), a share ``loc`` to urban_local; each
    conversion rate is bounded at 1. Returns (settled, reclassified, conversion rates bounded)."""
    conv = 0.0
    rcl = 0.0
    n_h = 0
    for a in range(xr.shape[0]):
        v = arrived[a]
        if add:
            f_in[a] += v
        else:
            f_in[a] = v
        m = xm[a] + v
        n_h += h[a] > 1.0
        c = min(h[a], 1.0) * m
        m -= c
        rc = rc_rate * xr[a]
        xr[a] -= rc
        xl[a] = xl[a] + c + loc * rc
        xm[a] = m + (1.0 - loc) * rc
        conv += c
        rcl += rc
    return conv, rcl, n_h


@njit(**ROW)
def _finish_row(xr, xl, xm, arrived, f_in, h, rc_rate, loc, add):
    """:func:`_finish_cells` with ``add`` a constant in each branch (see :func:`_moves_row`)."""
    if add:
        return _finish_cells(xr, xl, xm, arrived, f_in, h, rc_rate, loc, True)
    return _finish_cells(xr, xl, xm, arrived, f_in, h, rc_rate, loc, False)


@njit(**VIEW)
def _finish_region(x, in_int, flows, h, rc_rate, loc, add, capped):
    """Stage C for one region: arrivals ``in_int[S, A]``, then hukou conversion at rates
    ``h[S, A]`` (each at most 1), then reclassification at ``rc_rate`` (at most 1); the bounded
    cells are added to ``capped[N_CAPS]``. Returns (settled, reclassified)."""
    K, S, A = x.shape
    conv = 0.0
    rcl = 0.0
    if rc_rate > 1.0:
        capped[C_RECLASS] += S * A
        rc_rate = 1.0
    for s in range(S):
        c, r, n_h = _finish_row(x[RURAL, s], x[URBAN_LOCAL, s], x[URBAN_MIGRANT, s], in_int[s], flows[F_INTER_IN, s], h[s], rc_rate, loc, add)
        conv += c
        rcl += r
        capped[C_CONVERSION] += n_h
    return conv, rcl


@njit(**JIT, inline="always")
def _land_gain(base, per_settled, settled_prev, release, per_leaver, left):
    """km2 added in the year: base quota + m2 per migrant settled last year (人地挂钩) + land
    released + m2 per rural resident who left (增减挂钩)."""
    return base + per_settled * settled_prev / 1e6 + release + per_leaver * left / 1e6


# Per-draw stages (regions in a loop; they take the StepInputs tuple once per draw).


@njit(**VIEW)
def _brakes(pop, land, p, d, g):
    """Capacity brake ``g[R]`` of draw ``d`` from its start-of-year stock ``pop[R, K, S, A]``."""
    cm2 = _at(p.capacity_m2, d)
    width = _at(p.brake_width, d)
    for r in range(pop.shape[0]):
        g[r] = capacity_brake(_urban(pop[r]) / (land[r] * 1e6 / cm2), width)


@njit(**VIEW)
def _moves_all(pop, p, d, g, frac, flows, o_int, shift, add, urban, capped, left, scratch, survive, births, deaths):
    """Local moves of every region of draw ``d`` (``urban[R]``: urban residents before them);
    ``shift`` and ``add`` as in :func:`_local_moves`. With ``survive``, each region's survival
    and births come first (region by region, so that its stock is still in L1 for the moves)."""
    m_ru, m_away, m_inter, m_ur = _at(p.m_ru, d), _at(p.m_away, d), _at(p.m_inter, d), _at(p.m_ur, d)
    m_ext_out, m_return, ext_in, ru = _at(p.m_ext_out, d), _at(p.m_return, d), _at(p.ext_in, d), _at(p.return_urban, d)
    sx, asfr, nb, srb = _at(p.sx, d), _at(p.asfr, d), _at(p.nb, d), _at(p.srb, d)
    for r in range(pop.shape[0]):
        if survive:
            _survive_and_bear(pop[r], sx[r], asfr[r], nb[r], srb[r], births[r], deaths[r])
        urban[r] = _urban(pop[r])
        left[r] += _local_moves(pop[r], m_ru[r], m_away[r], m_inter[r], m_ur[r], m_ext_out[r], m_return[r], ext_in[r], ru[r], g[r], frac, flows[r], o_int[r], shift, add, scratch, capped[r])


@njit(**VIEW)
def _finish_all(pop, p, d, g, in_int, flows, land, settled_prev, settled, reclassified, left, add, capped):
    """Stage C of every region of draw ``d``: arrivals (their flow added when ``add``, else
    overwritten), hukou conversion, reclassification, land."""
    h, rc, loc = _at(p.h_conv, d), _at(p.reclass, d), _at(p.reclass_local, d)
    base, per_settled = _at(p.land_base, d), _at(p.land_per_settled, d)
    release, per_leaver = _at(p.land_release, d), _at(p.land_per_leaver, d)
    for r in range(pop.shape[0]):
        conv, rcl = _finish_region(pop[r], in_int[r], flows[r], h[r], rc[r] * g[r], loc[r], add, capped[r])
        settled[r] = conv
        reclassified[r] = rcl
        land[r] += _land_gain(base[r], per_settled[r], settled_prev[r], release[r], per_leaver[r], left[r])
        settled_prev[r] = conv


# Scratch space of one draw's step: rows of per-region numbers (brake, urban residents, rural
# leavers, destination pull, 1 / sum of weights, departures) and (S, A) cells per region.
_N_PER_REGION = 9
_N_CELL_ROWS = 3  # departures to other regions, arrivals from them; the students' departures, packed


@njit(**JIT)
def _draw_scratch(R, S, A, even):
    """Scratch space for :func:`_step_draw`: (per-region numbers, cells, the first half's flows)."""
    return np.empty((_N_PER_REGION, R)), np.empty((_N_CELL_ROWS, R, S, A)), np.empty((N_FLOWS if even else 0, S, A))


@njit(**VIEW)
def _step_draw(pop, land, settled_prev, p, d, births, deaths, flows, settled, reclassified, capped, od, per_region, cells, scratch):
    """One draw, regions in sequence (the layout for ensembles: one draw's data stays in cache).
    ``per_region``, ``cells``, ``scratch``: from :func:`_draw_scratch`."""
    R, K, S, A = pop.shape
    g, urban, left, pull, inv, tot_out = per_region[0], per_region[1], per_region[2], per_region[3], per_region[4], per_region[5]
    pull_s, inv_s, tot_s = per_region[6], per_region[7], per_region[8]
    o_int, in_int, o_s = cells[0], cells[1], cells[2]
    left[:] = 0.0
    capped[...] = 0.0
    od[...] = 0.0
    bs, W, sp, band = _at(p.beta_size, d), _at(p.dest_weight, d), _at(p.student_pull, d), _at(p.student_ages, d)
    _brakes(pop, land, p, d, g)
    # every flow is overwritten by its first write of the year, then added to (no zeroing pass)
    even = p.timing == TIMING_EVEN
    if even:
        _moves_all(pop, p, d, g, 0.5, flows, o_int, True, False, urban, capped, left, scratch, False, births, deaths)
        _arrivals(urban, g, o_int, in_int, bs, W, od, pull, inv, tot_out, sp, band, o_s, pull_s, inv_s, tot_s)
        for r in range(R):
            _add_arrivals_shifted(pop[r], in_int[r], flows[r])
        _moves_all(pop, p, d, g, 0.5, flows, o_int, False, True, urban, capped, left, scratch, True, births, deaths)
    else:
        _moves_all(pop, p, d, g, 1.0, flows, o_int, False, False, urban, capped, left, scratch, True, births, deaths)
    _arrivals(urban, g, o_int, in_int, bs, W, od, pull, inv, tot_out, sp, band, o_s, pull_s, inv_s, tot_s)
    _finish_all(pop, p, d, g, in_int, flows, land, settled_prev, settled, reclassified, left, even, capped)


# The three layouts take the StepInputs as a plain tuple ``pt`` and rebuild the named tuple
# inside: numba types a named tuple argument in Python, 1.5 us a call more than a plain tuple.


@njit(**JIT)
def _step_serial(pop, land, settled_prev, pt, births, deaths, flows, settled, reclassified, capped, od):
    """Draws in sequence on the calling thread: for one draw of few regions, where threads have
    nothing to share (and a parallel loop costs ~15 s more to compile cold)."""
    p = StepInputs(*pt)
    D, R, K, S, A = pop.shape
    per_region, cells, scratch = _draw_scratch(R, S, A, p.timing == TIMING_EVEN)
    for d in range(D):
        _step_draw(pop[d], land[d], settled_prev[d], p, d, births[d], deaths[d], flows[d], settled[d], reclassified[d], capped[d], od[d], per_region, cells, scratch)


@njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def _step_by_draw(pop, land, settled_prev, pt, births, deaths, flows, settled, reclassified, capped, od):
    p = StepInputs(*pt)
    D, R, K, S, A = pop.shape
    for d in prange(D):
        per_region, cells, scratch = _draw_scratch(R, S, A, p.timing == TIMING_EVEN)
        _step_draw(pop[d], land[d], settled_prev[d], p, d, births[d], deaths[d], flows[d], settled[d], reclassified[d], capped[d], od[d], per_region, cells, scratch)


@njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def _step_by_region(pop, land, settled_prev, pt, births, deaths, flows, settled, reclassified, capped, od):
    """Units of (draw, region) in parallel, stage by stage (the layout for few draws and many
    regions, so that a deterministic run uses every core). The loops over units unpack the
    parameters themselves (see the note above the stage functions)."""
    p = StepInputs(*pt)
    D, R, K, S, A = pop.shape
    n = D * R
    even = p.timing == TIMING_EVEN
    g = np.empty((D, R))
    urban = np.empty((D, R))
    o_int = np.empty((D, R, S, A))
    in_int = np.empty((D, R, S, A))
    pull, inv, tot_out = np.empty((D, R)), np.empty((D, R)), np.empty((D, R))
    o_s = np.empty((D, R, S, A))  # the students' departures, packed
    pull_s, inv_s, tot_s = np.empty((D, R)), np.empty((D, R)), np.empty((D, R))
    students = np.zeros(D, dtype=np.bool_)
    n_band = np.zeros(D, dtype=np.int64)
    left = np.zeros((D, R))
    scratch = np.empty((D, R, N_FLOWS if even else 0, S, A))  # the first half's flows, before the shift
    capped[...] = 0.0
    od[...] = 0.0
    for d in prange(D):
        _brakes(pop[d], land[d], p, d, g[d])
    for half in range(2 if even else 1):
        frac = 0.5 if even else 1.0
        shift = even and half == 0
        if even and half == 1:
            for u in prange(n):
                d, r = u // R, u % R
                _add_arrivals_shifted(pop[d, r], in_int[d, r], flows[d, r])
        for u in prange(n):
            d, r = u // R, u % R
            x = pop[d, r]
            if not shift:  # survival and births first
                _survive_and_bear(x, _at(p.sx, d)[r], _at(p.asfr, d)[r], _at(p.nb, d)[r], _at(p.srb, d)[r], births[d, r], deaths[d, r])
            urban[d, r] = _urban(x)
            left[d, r] += _local_moves(
                x, _at(p.m_ru, d)[r], _at(p.m_away, d)[r], _at(p.m_inter, d)[r], _at(p.m_ur, d)[r], _at(p.m_ext_out, d)[r],
                _at(p.m_return, d)[r], _at(p.ext_in, d)[r], _at(p.return_urban, d)[r], g[d, r], frac, flows[d, r], o_int[d, r], shift, even, scratch[d, r],
                capped[d, r],
            )
        # arrivals: per draw the pull and origin totals, then blocks of destinations in parallel
        if R < 2:
            in_int[...] = 0.0
        else:
            for d in prange(D):
                band = _at(p.student_ages, d)
                students[d] = _students_choose(_at(p.student_pull, d), band)
                n_band[d] = _band_size(band)
                os_ = o_s[d].reshape(-1)[: R * S * n_band[d]].reshape((R, S, n_band[d]))  # the students' ages only, packed
                if students[d]:
                    _split_students(o_int[d], os_, band)
                _dest_prep(urban[d], g[d], o_int[d], _at(p.beta_size, d), _at(p.dest_weight, d), pull[d], inv[d], tot_out[d])
                if students[d]:
                    _dest_prep_students(pull[d], _at(p.student_pull, d), _at(p.dest_weight, d), os_, pull_s[d], inv[d], inv_s[d], tot_s[d], o_int[d], band)
            nb = (R + _DEST_BLOCK - 1) // _DEST_BLOCK
            for u in prange(D * nb):
                d, b = u // nb, u % nb
                j0, j1 = b * _DEST_BLOCK, min((b + 1) * _DEST_BLOCK, R)
                _dest_block(j0, j1, pull[d], inv[d], tot_out[d], o_int[d], in_int[d], _at(p.dest_weight, d), od[d])
                if students[d]:  # the od sums of a block's destinations: the same cells, after the others'
                    _od_students(j0, j1, _at(p.dest_weight, d), pull_s[d], inv_s[d], tot_s[d], od[d])
            for d in prange(D):
                if students[d]:
                    nj = n_band[d]
                    _join_students(o_int[d], o_s[d].reshape(-1)[: R * S * nj].reshape((R, S, nj)), in_int[d], _at(p.student_pull, d), _at(p.student_ages, d))
    for u in prange(n):
        d, r = u // R, u % R
        conv, rcl = _finish_region(pop[d, r], in_int[d, r], flows[d, r], _at(p.h_conv, d)[r], _at(p.reclass, d)[r] * g[d, r], _at(p.reclass_local, d)[r], even, capped[d, r])
        settled[d, r] = conv
        reclassified[d, r] = rcl
        land[d, r] += _land_gain(
            _at(p.land_base, d)[r], _at(p.land_per_settled, d)[r], settled_prev[d, r], _at(p.land_release, d)[r], _at(p.land_per_leaver, d)[r], left[d, r]
        )
        settled_prev[d, r] = conv


def step(pop: np.ndarray, land: np.ndarray, settled_prev: np.ndarray, p: StepInputs, out: StepOutputs, *, layout: str = "auto") -> None:
    """Same contract as :func:`sim.engine.reference.step`, compiled.

    ``layout``: ``"draw"`` (a draw per thread), ``"region"`` ((draw, region) units per thread,
    stage by stage), ``"serial"`` (draws in sequence on this thread) or ``"auto"``: by region
    when there are fewer draws than threads and enough regions to share (measured on 2 cores:
    by draw is faster for Guangxi's 14 prefectures, by region for its 111 counties), serial
    for one draw of fewer regions, by draw otherwise."""
    if layout == "auto":
        D, R = pop.shape[:2]
        if D == 1 and R < _MIN_REGIONS_TO_SHARE:
            layout = "serial"
        else:
            threads = numba.get_num_threads()
            if D < threads and R >= _MIN_REGIONS_TO_SHARE:
                layout = "region"
            else:
                layout = "serial" if D == 1 or threads == 1 else "draw"
    fn = _LAYOUTS[layout]
    fn(pop, land, settled_prev, tuple(p), out.births, out.deaths, out.flows, out.settled, out.reclassified, out.capped, out.od)


_LAYOUTS = {"draw": _step_by_draw, "region": _step_by_region, "serial": _step_serial}


# Ensembles with reduced outputs: every year of a draw in one go, in a thread's scratch space.

# Rows of the per-draw factor table (N_FACTORS, R) and the StepInputs field each multiplies, a
# multiplier per region: the region of the row (origin), except dest_weight, whose columns
# (destinations) are scaled. The order is the parameter table's (sim.config.parameters); the
# arithmetic for each field is written out in _year_inputs, which takes its row by these indices.
FACTOR_FIELDS = tuple(FACTOR_FIELD.values())
N_FACTORS = len(FACTOR_FIELDS)
_KERNEL_FACTORS = ("asfr", "m_ru", "m_away", "m_return", "m_inter", "h_conv", "reclass", "land_per_settled", "dest_weight", "student_pull")
if set(FACTOR_FIELDS) != set(_KERNEL_FACTORS):  # a new per-draw field needs its line in _year_inputs
    raise ImportError(f"the parameter table's per-draw fields {FACTOR_FIELDS} differ from those the kernel multiplies {_KERNEL_FACTORS}")
_F_ASFR, _F_RU, _F_AWAY, _F_RETURN, _F_INTER, _F_HCONV, _F_RECLASS, _F_LPS, _F_DEST, _F_STUDENT = (FACTOR_FIELDS.index(n) for n in _KERNEL_FACTORS)
# Totals kept per (year, draw, region): residents, urban, urban_local, all states, land (km2),
# the year's births and deaths of the resident states (zero in the jump-off row), and the cells
# whose rates the year's step bounded (all groups of sim.axes.CAP_GROUPS).
N_SUMMARY = 8


@njit(**VIEW)
def _mul_into(dst, src, f):
    """``dst[r, ...] = f[r] * src[r, ...]`` for C-contiguous arrays of one shape ``(R, ...)``: a
    multiplier per region."""
    R = f.size
    d = dst.reshape((R, -1))
    s = src.reshape((R, -1))
    for r in range(R):
        fr = f[r]
        for i in range(d.shape[1]):
            d[r, i] = fr * s[r, i]


@njit(**VIEW)
def _mul_cols_into(dst, src, f):
    """``dst[i, j] = f[j] * src[i, j]``: a multiplier per destination."""
    R = f.size
    for i in range(R):
        for j in range(R):
            dst[i, j] = f[j] * src[i, j]


@njit(**JIT)
def _year_inputs(P, y, v, f, buf):
    """Year ``y`` of the stacked inputs ``P`` (each array with a leading year axis, then a
    variant axis: of length 1, shared, or one row per variant), for a draw of variant ``v``,
    with the factored fields of that variant multiplied by ``f[N_FACTORS, R]`` into ``buf``
    (one scratch array per factored field, in the order of _KERNEL_FACTORS, each of one row;
    ``f`` empty: no factors). The step reads the result at draw index ``v`` (:func:`_at`: row
    ``v`` of a field with a row per variant, the only row otherwise)."""
    if f.size:
        _mul_into(buf[0][0], _at(P.asfr[y], v), f[_F_ASFR])
        _mul_into(buf[1][0], _at(P.m_ru[y], v), f[_F_RU])
        _mul_into(buf[2][0], _at(P.m_away[y], v), f[_F_AWAY])
        _mul_into(buf[3][0], _at(P.m_return[y], v), f[_F_RETURN])
        _mul_into(buf[4][0], _at(P.m_inter[y], v), f[_F_INTER])
        _mul_into(buf[5][0], _at(P.h_conv[y], v), f[_F_HCONV])
        _mul_into(buf[6][0], _at(P.reclass[y], v), f[_F_RECLASS])
        _mul_into(buf[7][0], _at(P.land_per_settled[y], v), f[_F_LPS])
        _mul_cols_into(buf[8][0], _at(P.dest_weight[y], v), f[_F_DEST])
        _mul_into(buf[9][0], _at(P.student_pull[y], v), f[_F_STUDENT])
        asfr, m_ru, m_away, m_return, m_inter, h_conv, reclass, lps, dest_weight, student_pull = buf
    else:
        asfr, m_ru, m_away, m_return, m_inter = P.asfr[y], P.m_ru[y], P.m_away[y], P.m_return[y], P.m_inter[y]
        h_conv, reclass, lps, dest_weight, student_pull = P.h_conv[y], P.reclass[y], P.land_per_settled[y], P.dest_weight[y], P.student_pull[y]
    return StepInputs(
        P.sx[y], P.nb[y], asfr, P.srb[y], m_ru, P.m_ur[y], m_away, m_return, P.return_urban[y], m_inter,
        dest_weight, P.beta_size[y], P.ext_in[y], P.m_ext_out[y], h_conv, reclass, P.reclass_local[y],
        P.land_base[y], lps, P.land_release[y], P.land_per_leaver[y], P.capacity_m2[y], P.brake_width[y], student_pull, P.student_ages[y], P.timing,
    )


@njit(**VIEW_SUM)
def _summarise(x, land, births, deaths, capped, out):
    """``out[R, N_SUMMARY]`` from one draw's stock ``x[R, K, S, A]``, land ``land[R]``, the
    year's ``births[R, K, S]`` and ``deaths[R, K, S, A]`` (by the state of mother / of the dead)
    and its bounded cells ``capped[R, N_CAPS]``."""
    R, K, S, A = x.shape
    for r in range(R):
        # residents: every state but away (sim.axes.residents, summed here state by state)
        rural, local, migrant = _total(x[r, RURAL]), _total(x[r, URBAN_LOCAL]), _total(x[r, URBAN_MIGRANT])
        out[r, 0] = rural + local + migrant
        out[r, 1] = local + migrant
        out[r, 2] = local
        out[r, 3] = out[r, 0] + _total(x[r, AWAY])
        out[r, 4] = land[r]
        b = 0.0
        dd = 0.0
        for k in range(K):
            if k != AWAY:
                for s in range(S):
                    b += births[r, k, s]
                dd += _total(deaths[r, k])
        out[r, 5] = b
        out[r, 6] = dd
        n = 0.0
        for c in range(capped.shape[1]):
            n += capped[r, c]
        out[r, 7] = n


@njit(**VIEW_SUM)
def _state_totals(x, births, deaths, pop_ks, births_k, deaths_k):
    """The detail of :func:`_summary` for one draw and year: ``pop_ks[R, K, S]`` (the stock
    ``x[R, K, S, A]`` summed over ages), ``births_k[R, K]`` (by the mother's state) and
    ``deaths_k[R, K]`` (by the state of the dead)."""
    R, K, S, A = x.shape
    for r in range(R):
        for k in range(K):
            b = 0.0
            dd = 0.0
            for s in range(S):
                t = 0.0
                for a in range(A):
                    t += x[r, k, s, a]
                    dd += deaths[r, k, s, a]
                pop_ks[r, k, s] = t
                b += births[r, k, s]
            births_k[r, k] = b
            deaths_k[r, k] = dd


@njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def _summary(pop0, land0, P, factors, variant, chunks, out, pop_ks, births_k, deaths_k, last):
    """Every draw of an ensemble, every year, with only the totals kept: ``out[Y+1, D, R, N_SUMMARY]``
    (row 0: the jump-off); draw ``d`` reads the inputs of variant ``variant[d]`` (empty: 0). Draws are split into ``chunks`` runs of consecutive draws; each run
    has its own scratch state, which stays in the core's cache for all the years of a draw.
    With ``pop_ks`` of shape ``(Y+1, D, R, K, S)`` (else of size 0) also the detail of
    :func:`_state_totals` every year and each draw's last state ``last[D, R, K, S, A]`` (what a
    calibration's targets read)."""
    Y1, D, R, _ = out.shape
    detail = pop_ks.size > 0
    _, K, S, A = pop0.shape
    for c in prange(chunks):
        lo, hi = c * D // chunks, (c + 1) * D // chunks
        x = np.empty((R, K, S, A))
        land = np.empty(R)
        sp = np.empty(R)
        births = np.empty((R, K, S))
        deaths = np.empty((R, K, S, A))
        flows = np.empty((R, N_FLOWS, S, A))
        settled = np.empty(R)
        reclassified = np.empty(R)
        capped = np.zeros((R, N_CAPS))
        od = np.empty((0, 0))
        no_factors = np.empty((0, R))
        per_region, cells, scratch = _draw_scratch(R, S, A, P.timing == TIMING_EVEN)
        buf = (
            np.empty_like(P.asfr[0, :1]), np.empty_like(P.m_ru[0, :1]), np.empty_like(P.m_away[0, :1]), np.empty_like(P.m_return[0, :1]),
            np.empty_like(P.m_inter[0, :1]), np.empty_like(P.h_conv[0, :1]), np.empty_like(P.reclass[0, :1]), np.empty_like(P.land_per_settled[0, :1]),
            np.empty_like(P.dest_weight[0, :1]), np.empty_like(P.student_pull[0, :1]),
        )
        for d in range(lo, hi):
            v = variant[d] if variant.size else 0
            x[...] = pop0
            land[:] = land0
            sp[:] = 0.0
            births[...] = 0.0
            deaths[...] = 0.0
            capped[...] = 0.0
            _summarise(x, land, births, deaths, capped, out[0, d])
            if detail:
                _state_totals(x, births, deaths, pop_ks[0, d], births_k[0, d], deaths_k[0, d])
            for y in range(Y1 - 1):
                f = factors[d, y] if factors.shape[0] else no_factors
                p = _year_inputs(P, y, v, f, buf)
                _step_draw(x, land, sp, p, v, births, deaths, flows, settled, reclassified, capped, od, per_region, cells, scratch)
                _summarise(x, land, births, deaths, capped, out[y + 1, d])
                if detail:
                    _state_totals(x, births, deaths, pop_ks[y + 1, d], births_k[y + 1, d], deaths_k[y + 1, d])
            if detail:
                last[d] = x


def summary(pop0: np.ndarray, land0: np.ndarray, P: StepInputs, factors: np.ndarray, out: np.ndarray, detail: tuple | None = None, variant: np.ndarray | None = None) -> None:
    """Project ``out.shape[1]`` draws of the jump-off state ``pop0`` (R,K,S,A), ``land0`` (R,)
    through the years of ``P`` (StepInputs whose arrays have a leading year axis, then a variant
    axis: of length 1, or a row per variant where the variants differ), draw ``d`` reading the
    inputs of variant ``variant[d]`` (None: every draw variant 0) and its factored parameters in
    year ``y`` multiplied by ``factors[d, y]`` (shape ``(N_FACTORS, R)``: a row per field of
    :data:`FACTOR_FIELDS`, a multiplier per region; an empty table: none), keeping the totals
    ``out[Y+1, D, R, N_SUMMARY]``; ``detail``, if given: the arrays ``(pop_ks, births_k,
    deaths_k, last)`` that :func:`_summary` fills."""
    D = out.shape[1]
    variant = np.zeros(0, dtype=np.int64) if variant is None else np.ascontiguousarray(variant, dtype=np.int64)
    if variant.size and variant.size != D:
        raise ValueError(f"variant: {variant.size} entries for {D} draws")
    chunks = min(D, 8 * numba.get_num_threads())
    if detail is None:  # sizes 0: the kernel keeps the totals only
        detail = (np.zeros((0, 0, 0, 0, 0)), np.zeros((0, 0, 0, 0)), np.zeros((0, 0, 0, 0)), np.zeros((0, 0, 0, 0, 0)))
    _summary(pop0, land0, P, factors, variant, chunks, out, *detail)
