"""Axis names, coordinates and positions shared by every part of the engine.

The population stock is ``P[draw, region, state, sex, age]`` (C-contiguous float64). Kernels index
axes by the named positions below, never by bare numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATES = ("rural", "urban_local", "urban_migrant", "away")
RURAL, URBAN_LOCAL, URBAN_MIGRANT, AWAY = range(4)
N_STATES = len(STATES)
RESIDENT_STATES = (RURAL, URBAN_LOCAL, URBAN_MIGRANT)

SEXES = ("female", "male")
FEMALE, MALE = range(2)
N_SEXES = len(SEXES)

MAX_AGE = 100  # the last age index is the open interval 100+
N_AGES = MAX_AGE + 1
AGES = np.arange(N_AGES)

# Axis positions of the state array P[draw, region, state, sex, age].
DRAW_AXIS, REGION_AXIS, STATE_AXIS, SEX_AXIS, AGE_AXIS = range(5)

# Migration flows: the one declaration. Every flow is a count of persons in the year, by region,
# sex and the age reached at the year end. ``kind``: within the region's four states, between
# regions of the model, or across the province's border. ``net``: +1 / -1 when the flow enters /
# leaves the region's four states (it counts in net_migration), 0 when it moves persons among
# them. FLOWS, the F_* positions (the kernel's and the reference's flow axis), the output's
# `migration` coordinate and the net-migration formula (NET_MIGRATION) are derived from it.
@dataclass(frozen=True)
class Flow:
    name: str
    source: str  # the state(s) left ("outside": not a state of the region)
    target: str  # the state entered
    kind: str  # "within", "between" (regions) or "border" (the province's)
    net: int  # sign in net_migration
    doc: str


FLOW_TABLE = (
    Flow("rural_to_urban", "rural", "urban_migrant", "within", 0, "in-situ urbanization, county seats"),
    Flow("urban_to_rural", "urban_migrant", "rural", "within", 0, "return to the countryside"),
    Flow("to_away", "rural, urban_local, urban_migrant", "away", "border", 0, "leave for another province (hukou stays)"),
    Flow("from_away", "away", "rural, urban_migrant", "border", 0, "return from another province"),
    Flow("interregional_out", "rural, urban_local, urban_migrant", "outside", "between", -1, "leave the region for another region of the model"),
    Flow("interregional_in", "outside", "urban_migrant", "between", +1, "arrive from another region of the model"),
    Flow("external_in", "outside", "urban_migrant", "border", +1, "in-migrants with hukou in another province"),
    Flow("external_out", "urban_migrant", "outside", "border", -1, "such in-migrants leaving the province again"),
)
FLOWS = tuple(f.name for f in FLOW_TABLE)
N_FLOWS = len(FLOWS)
F_RURAL_TO_URBAN = FLOWS.index("rural_to_urban")
F_URBAN_TO_RURAL = FLOWS.index("urban_to_rural")
F_TO_AWAY = FLOWS.index("to_away")
F_FROM_AWAY = FLOWS.index("from_away")
F_INTER_OUT = FLOWS.index("interregional_out")
F_INTER_IN = FLOWS.index("interregional_in")
F_EXT_IN = FLOWS.index("external_in")
F_EXT_OUT = FLOWS.index("external_out")
# (position, sign) of the flows that count in net_migration, in flow order
NET_MIGRATION = tuple((i, f.net) for i, f in enumerate(FLOW_TABLE) if f.net)


# Rates bounded where they are applied: the out-moves of each state (all its out-rates of a
# cell together, scaled to sum 1 when they exceed it), hukou conversion and reclassification
# (each at most 1). A step counts, per region and group, the (sex, age) cells it bounded.
CAP_GROUPS = ("rural_moves", "urban_local_moves", "urban_migrant_moves", "away_moves", "hukou_conversion", "reclassification")
N_CAPS = len(CAP_GROUPS)
C_RURAL, C_LOCAL, C_MIGRANT, C_AWAY, C_CONVERSION, C_RECLASS = range(N_CAPS)


def net_migration(flows: np.ndarray, axis: int) -> np.ndarray:
    """Persons entering the region's four states from outside them minus those leaving: the
    signed sum of ``flows`` along the flow ``axis`` (added in flow order)."""
    out = np.zeros(np.delete(flows.shape, axis))
    at = (slice(None),) * (axis % flows.ndim)
    for i, sign in NET_MIGRATION:
        x = flows[at + (i,)]  # a view (np.take would copy, slowly from a strided array)
        (np.add if sign > 0 else np.subtract)(out, x, out=out)  # in place: the same sums, no array per flow
    return out


def residents(by_state: np.ndarray, axis: int = -1) -> np.ndarray:
    """Residents (every state but ``away``) of counts with a state ``axis``: all states minus away."""
    return by_state.sum(axis=axis) - by_state[(slice(None),) * (axis % by_state.ndim) + (AWAY,)]


def registered(births_by_state: np.ndarray, other_province_share) -> np.ndarray:
    """Births to the registered (hukou) population of counts with the state on the last axis:
    to residents, less those to urban migrants registered in another province (their share of
    urban_migrant, ``other_province_share``, broadcast against the remaining axes), plus those in
    the away state (the statistical bulletin's basis)."""
    return residents(births_by_state) + births_by_state[..., AWAY] - other_province_share * births_by_state[..., URBAN_MIGRANT]


# Census 5-year groups (the first two are 0 and 1-4; the last is open).
CENSUS_GROUP_EDGES = np.array([0, 1] + list(range(5, 90, 5)))  # lower bounds, 19 groups
CENSUS_GROUP_LABELS = ("0", "1-4") + tuple(f"{x}-{x + 4}" for x in range(5, 85, 5)) + ("85+",)
N_GROUPS = len(CENSUS_GROUP_LABELS)


def group_index_of_age() -> np.ndarray:
    """Census group index (0..18) of each single age 0..100."""
    return np.searchsorted(CENSUS_GROUP_EDGES, AGES, side="right") - 1


def to_groups(x: np.ndarray) -> np.ndarray:
    """Sum the last (single-year age) axis of ``x`` into the 19 census groups."""
    out = np.zeros(x.shape[:-1] + (N_GROUPS,))
    np.add.at(out, (..., group_index_of_age()), x)
    return out
