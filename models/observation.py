"""The observation model: what a statistical bulletin reports of a quantity the engine projects.

A bulletin's annual figure ``y_t`` (an urban share on the logit scale, residents on the log scale)
is the quantity ``x_t`` plus a measurement error: ``y_t = x_t + e_t + d_t``, with

- ``e_t`` survey noise, independent from year to year (s.d. ``noise``);
- ``d_t`` the drift of the bulletin's basis away from the last census: a random walk from 0 in
  the census year (step s.d. ``drift``), which the next census's revision takes back (the 2011-2019
  urban shares as first published drifted 2 pp below the series revised after the 2020 census).

Both sizes are estimated from the record (:func:`random_walk_plus_noise`, :func:`drift_step`;
``python -m sim.derive`` writes them to ``sim/data/observation_errors.csv``), never set by hand.
"""

from __future__ import annotations

import numpy as np


def random_walk_plus_noise(series: list[np.ndarray]) -> dict[str, float]:
    """Moment estimates of the local level model with drift, pooled over a panel of series:
    ``x_t = x_(t-1) + mu_i + eta_t``, ``y_t = x_t + e_t`` (Harvey 1989, ch. 2). The second
    differences remove each unit's drift ``mu_i`` exactly (no mean to estimate, so the moments
    are unbiased however short the series): ``D_t = eta_t - eta_(t-1) + e_t - 2 e_(t-1) +
    e_(t-2)``, whose autocovariances at lags 0, 1, 2 are ``2 a + 6 b``, ``-a - 4 b`` and ``b``
    (``a = s_eta^2``, ``b = s_e^2``). The pooled sample moments (sums of products over every
    unit, over the number of products) are matched by non-negative least squares
    (:func:`scipy.optimize.nnls`).

    ``series``: one array of consecutive annual values per unit (finite, at least 4 values).
    Returns the innovation s.d. ``eta`` (the year-to-year change that persists), the noise s.d.
    ``noise`` (the part that the next year takes back), the three pooled moments and the
    number of second differences."""
    from scipy.optimize import nnls

    sums = np.zeros(3)
    counts = np.zeros(3)
    for y in series:
        y = np.asarray(y, dtype=float)
        if y.size < 4 or not np.isfinite(y).all():
            raise ValueError(f"a series needs at least 4 finite consecutive values, got {y.tolist()}")
        d = np.diff(y, 2)
        for lag in range(3):
            sums[lag] += float(d[lag:] @ d[: d.size - lag])
            counts[lag] += d.size - lag
    g = sums / counts
    (a, b), _ = nnls(np.array([[2.0, 6.0], [-1.0, -4.0], [0.0, 1.0]]), g)
    return {"eta": float(np.sqrt(a)), "noise": float(np.sqrt(b)), "gamma0": float(g[0]), "gamma1": float(g[1]), "gamma2": float(g[2]), "differences": int(counts[0])}


def drift_step(gaps: np.ndarray, years_since_census: np.ndarray) -> float:
    """The step s.d. of a random-walk drift from the observed gaps between a first-published
    series and its revision, ``gaps[k]`` at ``years_since_census[k]`` (> 0) years after the census
    the first-published figures were based on: ``Var(d_t) = t s^2``, so ``s^2`` = the mean of
    ``gap^2 / t`` (the maximum-likelihood estimate for independent gaps; gaps of one path are
    correlated, so it is a rough estimate from few points, said where it is used)."""
    gaps = np.asarray(gaps, dtype=float)
    t = np.asarray(years_since_census, dtype=float)
    if gaps.size == 0 or (t <= 0).any():
        raise ValueError("drift_step needs gaps at years after the census")
    return float(np.sqrt(np.mean(gaps**2 / t)))


def error_sd(noise: float, drift: float, years_since_census: np.ndarray | int) -> np.ndarray:
    """The s.d. of a reported figure's error ``e_t + d_t``, ``t`` years after the census (0 in the
    census year itself: the census is the basis)."""
    t = np.asarray(years_since_census, dtype=float)
    return np.where(t > 0, np.sqrt(noise**2 + np.maximum(t, 0.0) * drift**2), 0.0)


def error_paths(noise: float, drift: float, years_since_census: np.ndarray, z_noise: np.ndarray, z_drift: np.ndarray) -> np.ndarray:
    """Error paths ``e_t + d_t`` (..., year) from standard normals of the same shape: ``d`` the
    cumulated drift steps of the years after the census (0 up to it), ``e`` the noise (0 in the
    census year)."""
    t = np.asarray(years_since_census, dtype=float)
    after = t > 0
    d = np.cumsum(np.where(after, drift * z_drift, 0.0), axis=-1)
    return np.where(after, noise * z_noise + d, 0.0)


def logit(p):
    p = np.asarray(p, dtype=float)
    return np.log(p / (1.0 - p))


def expit(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))
