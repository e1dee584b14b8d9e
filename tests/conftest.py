from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from sim.axes import N_AGES, N_SEXES, N_STATES
from sim.engine.contract import TIMING_END, StepInputs

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("URBSIM_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "census_county_2020.csv").exists():
        pytest.skip(f"census tables not found at {SHARED_DATA}")
    return SHARED_DATA


def random_inputs(rng: np.random.Generator, D: int, R: int, *, timing=TIMING_END, big_rates=False, shared=True) -> StepInputs:
    """Random but valid step inputs; ``shared`` draws some parameters with a draw axis of 1."""
    S, A, K = N_SEXES, N_AGES, N_STATES

    def dd():
        return 1 if (shared and rng.random() < 0.5) else D

    hi = 0.8 if big_rates else 0.05
    sx = rng.uniform(0.5, 1.0, (dd(), R, K, S, A))
    V = rng.normal(0, 1, (dd(), R, R))
    for v in V:
        np.fill_diagonal(v, -np.inf)
    return StepInputs(
        sx=sx,
        nb=rng.uniform(0.9, 1.0, (dd(), R, K, S)),
        asfr=rng.uniform(0, 0.2, (dd(), R, K, A)),
        srb=rng.uniform(1.0, 1.2, (dd(), R)),
        m_ru=rng.uniform(0, hi, (dd(), R, S, A)),
        m_ur=rng.uniform(0, hi, (dd(), R, S, A)),
        m_away=rng.uniform(0, hi, (dd(), R, K, S, A)),
        m_return=rng.uniform(0, hi, (dd(), R, S, A)),
        return_urban=rng.uniform(0, 1, (dd(), R)),
        m_inter=rng.uniform(0, hi, (dd(), R, K, S, A)) if R > 1 else np.zeros((1, R, K, S, A)),
        dest_weight=np.exp(V),
        beta_size=rng.uniform(0, 2, (dd(),)),
        ext_in=rng.uniform(0, 100, (dd(), R, S, A)),
        m_ext_out=rng.uniform(0, hi, (dd(), R, S, A)),
        h_conv=rng.uniform(0, 0.3, (dd(), R, S, A)),
        reclass=rng.uniform(0, 0.05, (dd(), R)),
        reclass_local=rng.uniform(0, 1, (dd(), R)),
        land_base=rng.uniform(0, 5, (dd(), R)),
        land_per_settled=rng.uniform(0, 200, (dd(), R)),
        land_release=rng.uniform(0, 1, (dd(), R)),
        land_per_leaver=rng.uniform(0, 50, (dd(), R)),
        capacity_m2=rng.uniform(50, 120, (dd(),)),
        brake_width=rng.choice([0.0, 0.05, 0.2], (dd(),)),
        student_pull=rng.uniform(0.2, 5.0, (dd(), R)),
        student_ages=np.broadcast_to((np.arange(A) >= 15) & (np.arange(A) <= 19), (dd(), A)).astype(float),
        timing=timing,
    )


def random_state(rng, D, R):
    pop = rng.uniform(0, 1000, (D, R, N_STATES, N_SEXES, N_AGES))
    land = rng.uniform(10, 200, (D, R))
    settled = rng.uniform(0, 5000, (D, R))
    return pop, land, settled
