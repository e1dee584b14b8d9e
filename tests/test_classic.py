"""Classic methods against hand-checkable cases, a published data set, and the engine's kernel."""

from __future__ import annotations

import numpy as np
import pytest

from models.mortality import level_for_e0, life_table_Lx
from sim.axes import N_AGES, N_SEXES, N_STATES, RURAL
from sim.engine import kernel, reference
from sim.engine.classic import ccmpp_step, multiregional_projection, survival_ratios
from sim.engine.contract import TIMING_END, StepInputs, new_outputs

# Sweden 1993, women: population, 5Lx (radix 100,000; last value T85), ASFR (both sexes of
# births). Preston, Heuveline & Guillot (2001) *Demography*, Box 6.1, p. 125.
SWEDEN_N = np.array([293395, 248369, 240012, 261346, 285209, 314388, 281290, 286923, 304108, 324946, 247613, 211351, 215140, 221764, 223506, 183654, 141990, 112424], float)
SWEDEN_L = np.array([497487, 497138, 496901, 496531, 495902, 495168, 494213, 492760, 490447, 486613, 480665, 471786, 457852, 436153, 402775, 350358, 271512, 291707], float)
SWEDEN_F = np.zeros(18)
SWEDEN_F[3:10] = [0.0120, 0.0908, 0.1499, 0.1125, 0.0441, 0.0074, 0.0003]


def leslie(L, m):
    """Leslie matrix of the female-dominant CCMPP (radix-1 L, last value T of the open group),
    written out independently of sim.engine.classic: sub-diagonal L(x+5)/L(x), open group
    L(z)/(L(z-5)+L(z)) in both of its last cells, first row L(0)/2 (m(x) + m(x+5) S(x))."""
    n = len(L)
    M = np.zeros((n, n))
    for i in range(n - 1):
        M[i + 1, i] = L[i + 1] / L[i]
    M[n - 1, n - 2] = M[n - 1, n - 1] = L[n - 1] / (L[n - 2] + L[n - 1])
    for i in range(n - 1):
        M[0, i] = L[0] * (m[i] + m[i + 1] * M[i + 1, i]) / 2
    return M


def test_ccmpp_sweden_1993_equals_leslie_projection():
    srb = 1.05
    res = ccmpp_step(SWEDEN_N, SWEDEN_N * 1.02, SWEDEN_L, SWEDEN_L, SWEDEN_F, srb=srb, width=5, radix=100000)
    expect = leslie(SWEDEN_L / 100000, SWEDEN_F / (1 + srb)) @ SWEDEN_N
    np.testing.assert_allclose(res.pop_f, expect, rtol=1e-12)
    # hand check: 5-9 in 1998 = 0-4 in 1993 x 5L5/5L0
    assert res.pop_f[1] == pytest.approx(293395 * 497138 / 497487, rel=1e-14)
    # births 1993-98: 5 x f x mean of women at start and end, summed over ages
    wend = np.r_[0, SWEDEN_N[:-2] * SWEDEN_L[1:-1] / SWEDEN_L[:-2], 0]
    assert res.births_by_age[4] == pytest.approx(5 * 0.0908 * (285209 + 261346 * 495902 / 496531) / 2, rel=1e-14)
    assert res.births_by_age.sum() == pytest.approx(5 * (SWEDEN_F * (SWEDEN_N + wend[: 18])).sum() / 2, rel=1e-12)


def test_ccmpp_hand_case_with_even_migration():
    # three one-year groups, radix 1
    pop = np.array([100.0, 200.0, 300.0])
    L = np.array([0.9, 0.8, 2.0])  # L0, L1, T2
    asfr = np.array([0.0, 0.5, 0.0])
    mig = np.array([10.0, -20.0, 4.0])
    r = ccmpp_step(pop, pop, L, L, asfr, srb=1.0, mig_f=mig, mig_m=mig, width=1, radix=1.0, mig_timing="even")
    start = pop + mig / 2  # 105, 190, 302
    end = np.array([0.0, 105 * 0.8 / 0.9, (190 + 302) * 2.0 / 2.8])
    w_end1 = end[1] + mig[1] / 2
    births = 0.5 * (start[1] + w_end1) / 2
    assert r.births_by_age[1] == pytest.approx(births, rel=1e-14)
    np.testing.assert_allclose(r.pop_f, [births / 2 * 0.9 + 5.0, end[1] - 10.0, end[2] + 2.0], rtol=1e-14)
    # timing "end": migrants added after survival, births from unmigrated women
    r2 = ccmpp_step(pop, pop, L, L, asfr, srb=1.0, mig_f=mig, mig_m=mig, width=1, mig_timing="end")
    b2 = 0.5 * (200 + 100 * 0.8 / 0.9) / 2
    np.testing.assert_allclose(r2.pop_f, [b2 / 2 * 0.9 + 10, 100 * 0.8 / 0.9 - 20, 500 * 2 / 2.8 + 4], rtol=1e-14)
    with pytest.raises(ValueError, match="mig_timing"):
        ccmpp_step(pop, pop, L, L, asfr, srb=1.0, mig_timing="middle")


@pytest.mark.parametrize("step_fn", [reference.step, kernel.step])
def test_engine_with_one_region_and_state_equals_ccmpp(step_fn):
    rng = np.random.default_rng(5)
    Lf = life_table_Lx(np.array(level_for_e0(80.0)))
    Lm = life_table_Lx(np.array(level_for_e0(75.0)))
    asfr = np.zeros(N_AGES)
    asfr[15:50] = rng.uniform(0.01, 0.1, 35)
    srb = 1.13
    pop_f, pop_m = rng.uniform(1e3, 1e4, N_AGES), rng.uniform(1e3, 1e4, N_AGES)
    pop = np.zeros((1, 1, N_STATES, N_SEXES, N_AGES))
    pop[0, 0, RURAL, 0], pop[0, 0, RURAL, 1] = pop_f, pop_m
    sx, nb = survival_ratios(np.stack([Lf, Lm]))
    z = np.zeros
    p = StepInputs(
        sx=np.broadcast_to(sx, (1, 1, N_STATES, 2, N_AGES)).copy(), nb=np.broadcast_to(nb, (1, 1, N_STATES, 2)).copy(),
        asfr=np.broadcast_to(asfr, (1, 1, N_STATES, N_AGES)).copy(), srb=np.full((1, 1), srb),
        m_ru=z((1, 1, 2, N_AGES)), m_ur=z((1, 1, 2, N_AGES)), m_away=z((1, 1, N_STATES, 2, N_AGES)), m_return=z((1, 1, 2, N_AGES)),
        return_urban=z((1, 1)), m_inter=z((1, 1, N_STATES, 2, N_AGES)), dest_weight=np.zeros((1, 1, 1)), beta_size=np.ones(1),
        ext_in=z((1, 1, 2, N_AGES)), m_ext_out=z((1, 1, 2, N_AGES)), h_conv=z((1, 1, 2, N_AGES)), reclass=z((1, 1)), reclass_local=z((1, 1)),
        land_base=z((1, 1)), land_per_settled=z((1, 1)), land_release=z((1, 1)), land_per_leaver=z((1, 1)), capacity_m2=np.full(1, 70.0), brake_width=z(1),
        student_pull=np.ones((1, 1)), student_ages=z((1, N_AGES)), timing=TIMING_END,
    )
    land, settled = np.full((1, 1), 100.0), z((1, 1))
    out = new_outputs(1, 1, N_STATES, N_SEXES, N_AGES)
    f, m = pop_f, pop_m
    for _ in range(10):
        step_fn(pop, land, settled, p, out)
        r = ccmpp_step(f, m, Lf, Lm, asfr, srb=srb, width=1, radix=1.0)
        f, m = r.pop_f, r.pop_m
        np.testing.assert_allclose(pop[0, 0, RURAL, 0], f, rtol=1e-12)
        np.testing.assert_allclose(pop[0, 0, RURAL, 1], m, rtol=1e-12)
        assert out.births.sum() == pytest.approx(r.births_by_age.sum(), rel=1e-12)


def test_multiregional_single_region_matches_scalar_formulas():
    mu = np.array([0.02, 0.01, 0.3])
    F = np.array([0.0, 0.4, 0.0])
    n = 5.0
    pop = np.array([[100.0, 80.0, 50.0]])
    out = multiregional_projection(pop, mu[:, None], np.zeros((3, 1, 1)), F[:, None], width=n, steps=1)
    p = (1 - n / 2 * mu) / (1 + n / 2 * mu)
    l = np.array([1.0, p[0], p[0] * p[1]])
    L = np.array([n / 2 * (l[0] + l[1]), n / 2 * (l[1] + l[2]), l[2] / mu[2]])
    S = L[1:] / L[:-1]
    B = [n / 4 * (p[0] + 1) * (F[x] + F[x + 1] * S[x]) for x in range(2)]
    expect = np.array([B[0] * 100 + B[1] * 80, S[0] * 100, S[1] * 80])
    np.testing.assert_allclose(out[1, 0], expect, rtol=1e-13)


def test_multiregional_totals_equal_single_region_when_regions_share_rates():
    rng = np.random.default_rng(2)
    X, n = 8, 5.0
    mu = rng.uniform(0.001, 0.05, X)
    mu[-1] = 0.2
    F = np.zeros(X)
    F[2:5] = rng.uniform(0.05, 0.3, 3)
    mig = rng.uniform(0, 0.05, (X, 3, 3))
    for x in range(X):
        np.fill_diagonal(mig[x], 0.0)
    pop = rng.uniform(100, 1000, (3, X))
    multi = multiregional_projection(pop, np.repeat(mu[:, None], 3, 1), mig, np.repeat(F[:, None], 3, 1), width=n, steps=4)
    single = multiregional_projection(pop.sum(0, keepdims=True), mu[:, None], np.zeros((X, 1, 1)), F[:, None], width=n, steps=4)
    np.testing.assert_allclose(multi.sum(axis=1), single[:, 0], rtol=1e-12)
    # and migration does move people: regions differ from a no-migration run
    still = multiregional_projection(pop, np.repeat(mu[:, None], 3, 1), np.zeros_like(mig), np.repeat(F[:, None], 3, 1), width=n, steps=4)
    assert np.abs(multi[-1] - still[-1]).max() > 1.0
