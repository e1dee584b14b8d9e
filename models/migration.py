"""Migration age schedules (Rogers-Castro) and region-to-region destination choice.

Rogers, A. & Castro, L. J. (1981) *Model Migration Schedules*, IIASA RR-81-30: the age profile of
migration rates is ``m(x) = a1 exp(-alpha1 x) + a2 exp(-alpha2 (x - mu2) - exp(-lambda2 (x - mu2))) + c``
(pre-labour-force, labour-force and constant components). The defaults below are the mean
parameters of the fundamental 7-parameter schedule reported there (their Table 4: a1 0.02,
alpha1 0.10, a2 0.06, alpha2 0.11, mu2 20.0, lambda2 0.40, c 0.003), with mu2 moved to 22,
closer to the peak ages of Chinese labour migration.
"""

from __future__ import annotations

import numpy as np

from sim.axes import N_AGES

RC_STANDARD = dict(a1=0.02, alpha1=0.10, a2=0.06, alpha2=0.11, mu2=22.0, lambda2=0.40, c=0.003)


def rogers_castro(ages=None, *, a1, alpha1, a2, alpha2, mu2, lambda2, c) -> np.ndarray:
    """Rogers-Castro 7-parameter schedule at ages 0..100 (or ``ages``), unnormalised."""
    x = np.arange(N_AGES, dtype=float) if ages is None else np.asarray(ages, dtype=float)
    return a1 * np.exp(-alpha1 * x) + a2 * np.exp(-alpha2 * (x - mu2) - np.exp(-lambda2 * (x - mu2))) + c


def migrant_stock_propensity(window: int = 10) -> np.ndarray:
    """Relative propensity, by age 0..100, of belonging to a recent-migrant stock.

    The stock at age ``a`` is taken proportional to the mean move rate over ages
    ``a-window+1 .. a`` (over ``0 .. a`` for children, who move with their parents) under the
    standard schedule, normalised to mean 1. Used as the
    prior age profile of unsettled urban migrants and of the away state."""
    m = rogers_castro(**RC_STANDARD)
    stock = np.array([m[max(0, a - window + 1) : a + 1].mean() for a in range(N_AGES)])
    return stock / stock.mean()


def destination_utility(distance_km: np.ndarray, *, beta_distance: float, openness: np.ndarray, beta_openness: float) -> np.ndarray:
    """Fixed part of the destination-choice utility ``V[i, j]`` (origin ``i``, destination ``j``).

    ``V = -beta_distance * log(d_ij) + beta_openness * openness_j``, with the diagonal set to
    -inf (no move to the own region). The kernel adds the state-dependent part
    ``beta_size * log(urban residents_j) + log(capacity brake_j)`` every year and takes the
    multinomial logit over ``j != i``."""
    d = np.asarray(distance_km, dtype=float)
    with np.errstate(divide="ignore"):
        V = -beta_distance * np.log(np.where(d > 0, d, 1.0)) + beta_openness * np.asarray(openness)[None, :]
    np.fill_diagonal(V, -np.inf)
    return V
