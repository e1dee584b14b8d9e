"""The step contract: what one annual step takes (:class:`StepInputs`, a year's rates) and
gives (:class:`StepOutputs`, the year's flows), shared by the numba kernel and the NumPy
reference. Parameter arrays carry a leading draw axis of length 1 (shared by all draws) or D;
the flow axis F follows :data:`sim.axes.FLOW_TABLE`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sim.axes import N_CAPS, N_FLOWS

TIMING_END, TIMING_EVEN = 0, 1


class StepInputs(NamedTuple):
    """Rates for one year. Shapes use d = 1 or D draws, R regions, K=4 states, S=2, A=101."""

    sx: np.ndarray  # (d,R,K,S,A) survival ratio from age a to a+1; is the open-group ratio
    nb: np.ndarray  # (d,R,K,S) newborn survival L(0)/l(0)
    asfr: np.ndarray  # (d,R,K,A) births per woman-year by age of mother
    srb: np.ndarray  # (d,R) boys per girl
    m_ru: np.ndarray  # (d,R,S,A) rural -> urban_migrant rate
    m_ur: np.ndarray  # (d,R,S,A) urban_migrant -> rural rate
    m_away: np.ndarray  # (d,R,K,S,A) -> away rate (K index 0..2 used)
    m_return: np.ndarray  # (d,R,S,A) away -> residence rate
    return_urban: np.ndarray  # (d,R) share of returns into urban_migrant
    m_inter: np.ndarray  # (d,R,K,S,A) -> other regions rate (K index 0..2 used)
    dest_weight: np.ndarray  # (d,R,R) exp(V): fixed destination weight, 0 on the diagonal
    beta_size: np.ndarray  # (d,)
    ext_in: np.ndarray  # (d,R,S,A) in-migrants from other provinces (persons per year)
    m_ext_out: np.ndarray  # (d,R,S,A) urban_migrant -> out of the model rate
    h_conv: np.ndarray  # (d,R,S,A) hukou conversion rate
    reclass: np.ndarray  # (d,R) reclassification rate
    reclass_local: np.ndarray  # (d,R) share of reclassified into urban_local
    land_base: np.ndarray  # (d,R) km2 per year
    land_per_settled: np.ndarray  # (d,R) m2 per settled person (0 where exempt / link off)
    land_release: np.ndarray  # (d,R) km2 per year
    land_per_leaver: np.ndarray  # (d,R) m2 per rural resident who left in the year
    capacity_m2: np.ndarray  # (d,) m2 per urban resident
    brake_width: np.ndarray  # (d,) 0 = no brake
    # movers between regions at the ages of ``student_ages`` (1; 0 elsewhere, (d,A)) choose their
    # destination with weights ``dest_weight[i, j] * student_pull[j]`` (d,R): students going where
    # the colleges are. Where every student_pull is 1 the movers of all ages share one choice.
    student_pull: np.ndarray  # (d,R)
    student_ages: np.ndarray  # (d,A) 1 at the ages of the students' choice, else 0
    timing: int  # TIMING_END or TIMING_EVEN


class StepOutputs(NamedTuple):
    """Flows of one year, all draws (D,...)."""

    births: np.ndarray  # (D,R,K,S)
    deaths: np.ndarray  # (D,R,K,S,A)
    flows: np.ndarray  # (D,R,F,S,A)
    settled: np.ndarray  # (D,R)
    reclassified: np.ndarray  # (D,R)
    capped: np.ndarray  # (D,R,C) cells whose rates were bounded, per group of sim.axes.CAP_GROUPS
    od: np.ndarray  # (D,R,R) moves from region i to region j; (D,0,0) when not asked for


def new_outputs(D: int, R: int, K: int, S: int, A: int, *, od: bool = True) -> StepOutputs:
    """Zeroed outputs; ``od=False`` skips the origin-destination matrix (R^2 per draw)."""
    z = np.zeros
    n = R if od else 0
    return StepOutputs(z((D, R, K, S)), z((D, R, K, S, A)), z((D, R, N_FLOWS, S, A)), z((D, R)), z((D, R)), z((D, R, N_CAPS)), z((D, n, n)))
