"""The numba kernel, its pure-Python form and the NumPy reference agree; the step's accounting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.axes import F_EXT_IN, F_EXT_OUT, F_INTER_IN, F_INTER_OUT, N_AGES, N_SEXES, N_STATES
from sim.engine import kernel, reference
from sim.engine.contract import TIMING_END, TIMING_EVEN, new_outputs
from tests.conftest import random_inputs, random_state


def run(step_fn, pop, land, settled, p, od=True):
    pop, land, settled = pop.copy(), land.copy(), settled.copy()
    D, R = land.shape
    out = new_outputs(D, R, N_STATES, N_SEXES, N_AGES, od=od)
    step_fn(pop, land, settled, p, out)
    return pop, land, settled, out


def py_func_step(pop, land, settled, p, out):
    kernel._step_by_region.py_func(pop, land, settled, p, out.births, out.deaths, out.flows, out.settled, out.reclassified, out.capped, out.od)


def by_draw(pop, land, settled, p, out):
    kernel.step(pop, land, settled, p, out, layout="draw")


def by_region(pop, land, settled, p, out):
    kernel.step(pop, land, settled, p, out, layout="region")


def serial(pop, land, settled, p, out):
    kernel.step(pop, land, settled, p, out, layout="serial")


def assert_close(a, b, rtol=1e-10):
    scale = np.maximum(np.abs(b), 1.0)
    assert np.all(np.abs(a - b) <= rtol * scale), float(np.max(np.abs(a - b) / scale))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), D=st.integers(1, 3), R=st.integers(1, 5), even=st.booleans(), big=st.booleans())
def test_kernel_equals_reference_and_py_func(seed, D, R, even, big):
    rng = np.random.default_rng(seed)
    p = random_inputs(rng, D, R, timing=TIMING_EVEN if even else TIMING_END, big_rates=big)
    state = random_state(rng, D, R)
    ref = run(reference.step, *state, p)
    for fn in (by_draw, by_region, serial, py_func_step):
        got = run(fn, *state, p)
        for a, b in zip(got[:3], ref[:3]):
            assert_close(a, b)
        for a, b in zip(got[3], ref[3]):
            assert_close(a, b)


@pytest.mark.parametrize("timing", [TIMING_END, TIMING_EVEN])
@pytest.mark.parametrize("backend", [reference.step, by_draw, by_region, serial])
def test_accounting_identity_and_balance(backend, timing):
    rng = np.random.default_rng(7)
    D, R = 2, 6
    p = random_inputs(rng, D, R, timing=timing, big_rates=True)
    pop0, land, settled = random_state(rng, D, R)
    pop1, _, _, out = run(backend, pop0, land, settled, p)
    f = out.flows
    net = f[:, :, F_INTER_IN] - f[:, :, F_INTER_OUT] + f[:, :, F_EXT_IN] - f[:, :, F_EXT_OUT]
    change = pop1.sum(axis=(2, 3, 4)) - pop0.sum(axis=(2, 3, 4))
    comp = out.births.sum(axis=(2, 3)) - out.deaths.sum(axis=(2, 3, 4)) + net.sum(axis=(2, 3))
    np.testing.assert_allclose(change, comp, rtol=0, atol=1e-8 * pop0.sum())
    # what leaves regions arrives in other regions
    np.testing.assert_allclose(f[:, :, F_INTER_OUT].sum(axis=(1, 2, 3)), f[:, :, F_INTER_IN].sum(axis=(1, 2, 3)), rtol=1e-12)
    # the origin-destination matrix: rows are each region's departures, columns its arrivals,
    # nothing on the diagonal
    np.testing.assert_allclose(out.od.sum(axis=2), f[:, :, F_INTER_OUT].sum(axis=(2, 3)), rtol=1e-12)
    np.testing.assert_allclose(out.od.sum(axis=1), f[:, :, F_INTER_IN].sum(axis=(2, 3)), rtol=1e-12)
    assert np.all(np.diagonal(out.od, axis1=1, axis2=2) == 0) and out.od.sum() > 0
    assert pop1.min() >= 0 and out.deaths.min() >= 0 and f.min() >= 0
    # big rates made some cells exceed 1 and they were counted
    assert out.capped.sum() > 0


@pytest.mark.parametrize("R", [13, 70])
def test_kernel_equals_reference_over_several_destination_blocks(R):
    """Arrivals are summed in blocks of 8 destinations and tiles of 4 x 4: 13 regions leave
    remainders in both directions; 70 regions take the by-region layout of few draws."""
    rng = np.random.default_rng(R)
    p = random_inputs(rng, 1, R)
    state = random_state(rng, 1, R)
    ref = run(reference.step, *state, p)
    for fn in (serial, by_region, kernel.step):
        got = run(fn, *state, p)
        for a, b in zip((*got[:3], *got[3]), (*ref[:3], *ref[3])):
            assert_close(a, b)


@pytest.mark.parametrize("timing", [TIMING_END, TIMING_EVEN])
@pytest.mark.parametrize("layout", ["serial", "draw", "region"])
def test_every_output_is_overwritten(layout, timing):
    """The kernel writes each flow first with ``=`` (no zeroing pass): outputs full of NaN from
    an earlier use come out equal to the reference's."""
    rng = np.random.default_rng(17)
    D, R = 2, 5
    p = random_inputs(rng, D, R, timing=timing)
    state = random_state(rng, D, R)
    ref = run(reference.step, *state, p)
    pop, land, settled = (a.copy() for a in state)
    out = new_outputs(D, R, N_STATES, N_SEXES, N_AGES)
    for a in out:
        a[...] = np.nan
    kernel.step(pop, land, settled, p, out, layout=layout)
    for a, b in zip((pop, land, settled, *out), (*ref[:3], *ref[3])):
        assert_close(a, b)


@pytest.mark.parametrize("backend", [reference.step, by_draw, by_region])
def test_od_matrix_is_optional(backend):
    rng = np.random.default_rng(5)
    p = random_inputs(rng, 2, 4)
    state = random_state(rng, 2, 4)
    with_od = run(backend, *state, p)
    without = run(backend, *state, p, od=False)
    assert without[3].od.shape == (2, 0, 0)
    for a, b in zip(with_od[:3] + tuple(with_od[3][:-1]), without[:3] + tuple(without[3][:-1])):
        np.testing.assert_array_equal(a, b)


def test_no_events_means_pure_ageing():
    rng = np.random.default_rng(3)
    D, R = 1, 3
    p = random_inputs(rng, D, R, shared=False)
    zero = {k: np.zeros_like(v) for k, v in p._asdict().items() if isinstance(v, np.ndarray) and k not in ("sx", "nb", "dest_weight", "capacity_m2", "srb", "beta_size")}
    p = p._replace(**zero, sx=np.ones_like(p.sx), nb=np.ones_like(p.nb))
    pop0, land, settled = random_state(rng, D, R)
    for fn in (reference.step, kernel.step):
        pop1, land1, _, out = run(fn, pop0, land, settled, p)
        expect = np.zeros_like(pop0)
        expect[..., 1:] = pop0[..., :-1]
        expect[..., -1] += pop0[..., -1]
        np.testing.assert_allclose(pop1, expect, rtol=1e-14)
        assert out.births.sum() == 0 and out.deaths.sum() == 0 and out.flows.sum() == 0
        np.testing.assert_allclose(land1, land)


def test_capped_rates_never_drive_a_cell_negative():
    rng = np.random.default_rng(11)
    D, R = 1, 4
    p = random_inputs(rng, D, R, big_rates=True)
    p = p._replace(m_away=np.full_like(p.m_away, 5.0), m_ru=np.full_like(p.m_ru, 5.0))
    pop0, land, settled = random_state(rng, D, R)
    for fn in (reference.step, kernel.step):
        pop1, _, _, out = run(fn, pop0, land, settled, p)
        assert pop1.min() >= -1e-9
        assert out.capped.sum() >= R * N_SEXES * (N_AGES - 1)


@pytest.mark.parametrize("timing", ["end", "even"])
def test_ensemble_summary_is_the_reference_projection_reduced(timing):
    """The fused ensemble path (every year of a draw in one kernel call, factors applied in the
    kernel) equals the NumPy reference stepped year by year with full per-draw arrays."""
    import dataclasses

    from sim.config.compose import compose_config
    from sim.config.parameters import FACTOR_FIELD
    from sim.config.schema import validate
    from sim.engine.prepare import prepare
    from sim.engine.runner import project_summary

    assert tuple(FACTOR_FIELD.values()) == kernel.FACTOR_FIELDS
    cfg = validate(compose_config(["scenario=plan", "end_year=2030", "draws.count=5", "uncertainty.enabled=true", f"demography.migration.timing={timing}"]))
    model = prepare(cfg)
    rng = np.random.default_rng(3)
    per_region = {  # factors per draw and region (calibrated ensembles), rows and columns
        "rural_to_urban": model.factors["rural_to_urban"][:, None] * rng.uniform(0.7, 1.3, (5, 14)),
        "attractiveness": rng.uniform(0.5, 2.0, (5, 14)),
    }
    model = dataclasses.replace(model, factors={**model.factors, **per_region, "land_link": np.array([1.0, 0.0, 2.0, 0.5, 1.5])})
    fast, ref = project_summary(model), project_summary(model, backend="numpy")
    assert fast.births[1:].min() > 0 and fast.deaths[1:].min() > 0 and fast.births[0].max() == 0
    for name in ("residents", "urban", "urban_local", "all_states", "land", "births", "deaths"):
        a, b = getattr(fast, name), getattr(ref, name)
        assert a.shape == (11, 5, 14)
        np.testing.assert_allclose(a, b, rtol=1e-12, err_msg=name)
    # the draws differ, and the land link moves land only where its factor differs
    assert np.ptp(fast.urban_share[-1], axis=0).min() > 1e-4
    assert fast.land[-1, 2].sum() > fast.land[-1, 0].sum() > fast.land[-1, 1].sum()


@pytest.mark.parametrize("backend", [reference.step, by_draw, by_region, serial])
def test_students_choose_their_own_destinations(backend):
    """Movers at the students' ages choose with the student pull, the others as before: a pull
    on region 0 draws more arrivals of those ages there and fewer elsewhere, leaves every other
    age's arrivals and everyone's departures unchanged, and moves no one in or out of the
    regions' total; a pull the same in every region is no pull (the choice is a share)."""
    rng = np.random.default_rng(11)
    D, R = 2, 6
    p = random_inputs(rng, D, R, shared=False)
    band = np.zeros((1, N_AGES))
    band[0, 17:21] = 1.0
    state = random_state(rng, D, R)
    flat = run(backend, *state, p._replace(student_pull=np.ones((1, R)), student_ages=band))[3]
    same = run(backend, *state, p._replace(student_pull=np.full((1, R), 2.5), student_ages=band))[3]
    sp = np.ones((1, R))
    sp[0, 0] = 4.0
    pulled = run(backend, *state, p._replace(student_pull=sp, student_ages=band))[3]
    fin, fout = F_INTER_IN, F_INTER_OUT
    assert_close(same.flows, flat.flows, 1e-12)
    assert_close(pulled.flows[:, :, fout], flat.flows[:, :, fout], 1e-12)
    ages = band[0] > 0
    assert_close(pulled.flows[:, :, fin][..., ~ages], flat.flows[:, :, fin][..., ~ages], 1e-12)
    gain = (pulled.flows[:, 0, fin] - flat.flows[:, 0, fin])[..., ages]
    assert (gain > 0).all()
    assert ((pulled.flows[:, 1:, fin] - flat.flows[:, 1:, fin])[..., ages] < 0).all()
    # arrivals sum to departures in every (sex, age) cell, the students' included
    np.testing.assert_allclose(pulled.flows[:, :, fin].sum(axis=1), pulled.flows[:, :, fout].sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(pulled.od.sum(axis=(1, 2)), pulled.flows[:, :, fout].sum(axis=(1, 2, 3)), rtol=1e-12)
