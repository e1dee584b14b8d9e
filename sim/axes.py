"""Axis names, coordinates and positions shared by every part of the engine.

The population stock is ``P[draw, region, state, sex, age]`` (C-contiguous float64). Kernels index
axes by the named positions below, never by bare numbers.
"""

from __future__ import annotations

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

# Migration flow types reported per region (all counts of persons in the year).
FLOWS = (
    "rural_to_urban",  # rural -> urban_migrant, same region (in-situ urbanization, county seats)
    "urban_to_rural",  # urban_migrant -> rural, same region (return to the countryside)
    "to_away",  # rural/urban_local/urban_migrant -> away (leave for another province)
    "from_away",  # away -> rural or urban_migrant (return from another province)
    "interregional_out",  # leave the region for another region of the model
    "interregional_in",  # arrive from another region of the model (into urban_migrant)
    "external_in",  # in-migrants with hukou in another province (into urban_migrant)
    "external_out",  # such in-migrants leaving the province again (out of the model)
)
(
    F_RURAL_TO_URBAN,
    F_URBAN_TO_RURAL,
    F_TO_AWAY,
    F_FROM_AWAY,
    F_INTER_OUT,
    F_INTER_IN,
    F_EXT_IN,
    F_EXT_OUT,
) = range(len(FLOWS))
N_FLOWS = len(FLOWS)

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
