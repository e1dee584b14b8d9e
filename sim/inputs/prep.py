"""Demographic preparation methods used to build the engine's inputs from census tables.

* :func:`graduate` splits 5-year age groups into single years 0..99 and 100+.
* :func:`ipf` fits a table to its margins by iterative proportional fitting.
* :func:`ecological_profiles` estimates per-state age-sex profiles from many areas' totals.

All are pure functions of arrays; :mod:`sim.derive` applies them to the census.
"""

from __future__ import annotations

import numpy as np

from sim.axes import CENSUS_GROUP_EDGES, N_AGES

# Open group 85+ is spread over 85..99 and 100+ as a stationary population under a Gompertz
# hazard mu(x) = A * exp(B (x - 85)); A = 0.12, B = 0.10 are typical of Chinese old-age mortality
# around 2010-2020 (Gompertz slopes of 0.09-0.11 per year, e.g. Thatcher, Kannisto & Vaupel 1998).
OPEN_GOMPERTZ_A = 0.12
OPEN_GOMPERTZ_B = 0.10


def _open_group_weights() -> np.ndarray:
    """Share of an 85+ population at each age 85..99 and in 100+ (sums to 1)."""
    x = np.arange(85, 131, dtype=float)
    cum_hazard = OPEN_GOMPERTZ_A / OPEN_GOMPERTZ_B * (np.exp(OPEN_GOMPERTZ_B * (x - 85)) - 1)
    lx = np.exp(-cum_hazard)
    # person-years in [x, x+1) by the trapezoid rule; ages above 100 pooled into 100+
    Lx = 0.5 * (lx[:-1] + lx[1:])
    w = np.concatenate([Lx[:15], [Lx[15:].sum()]])
    return w / w.sum()


def graduate(groups: np.ndarray) -> np.ndarray:
    """Single-year ages 0..99, 100+ from the census's 19 groups (0, 1-4, 5-9, ..., 80-84, 85+).

    Monotone piecewise-cubic Hermite interpolation (PCHIP, Fritsch & Carlson 1980) of the
    cumulative count at the group boundaries, differenced at whole ages: the interpolant passes
    through every boundary, so each group total is preserved exactly, and it is monotone, so no
    single-year count is negative (the mean-preserving monotone spline used for age graduation,
    e.g. ``graduate_mono`` in DemoTools). The open group is split by a Gompertz stationary
    population (see ``OPEN_GOMPERTZ_*``).

    ``groups``: array ``(..., 19)`` of non-negative counts. Returns ``(..., 101)``.
    """
    groups = np.asarray(groups, dtype=float)
    if groups.shape[-1] != len(CENSUS_GROUP_EDGES):
        raise ValueError(f"graduate: expected 19 age groups on the last axis, got {groups.shape[-1]}")
    if np.any(groups < 0):
        raise ValueError("graduate: age-group counts must be non-negative")
    flat = groups.reshape(-1, groups.shape[-1])
    knots = np.append(CENSUS_GROUP_EDGES[:-1], 85).astype(float)  # 0, 1, 5, ..., 80, 85
    out = np.empty((flat.shape[0], N_AGES))
    w_open = _open_group_weights()
    for i, g_raw in enumerate(flat):
        # graduation is scale-invariant: work on counts scaled to at most 1 so that tiny
        # (subnormal) counts cannot overflow PCHIP's slope arithmetic
        closed = g_raw[:-1]
        scale = closed.max() if closed.max() > 0 else 1.0
        g = closed / scale
        cum = np.concatenate([[0.0], np.cumsum(g)])
        # slopes that differ by subnormal amounts overflow inside PCHIP's harmonic mean; scipy
        # then sets that derivative to 0, which keeps the interpolant monotone
        from scipy.interpolate import PchipInterpolator  # imported when used: 0.4 s a run does not need

        with np.errstate(over="ignore", divide="ignore"):
            single = np.diff(PchipInterpolator(knots, cum)(np.arange(86.0)))
        single = np.maximum(single, 0.0)  # removes -1e-12 roundoff only (PCHIP is monotone)
        # restore each group's total exactly after the roundoff guard
        for lo, hi, tot in zip(knots[:-1].astype(int), knots[1:].astype(int), g):
            s = single[lo:hi].sum()
            single[lo:hi] = single[lo:hi] * (tot / s) if s > 0 else tot / (hi - lo)
        out[i, :85] = single * scale
        out[i, 85:] = g_raw[-1] * w_open
    return out.reshape(groups.shape[:-1] + (N_AGES,))


def ipf(seed: np.ndarray, margins: dict, *, tol: float = 1e-10, max_iter: int = 1000) -> np.ndarray:
    """Iterative proportional fitting (Deming & Stephan 1940) of ``seed`` to its margins.

    ``margins`` maps a tuple of the axes *kept* in a margin to the target array of that margin
    (e.g. ``{(0,): state_totals, (1, 2): sex_age_totals}``). Every margin must have the same
    grand total. Iterates until every margin holds to ``tol`` relative; raises if it does not
    converge (e.g. a margin asks for mass where the seed has structural zeros).
    """
    x = np.array(seed, dtype=float)
    totals = [float(np.sum(m)) for m in margins.values()]
    if not np.allclose(totals, totals[0], rtol=1e-9):
        raise ValueError(f"ipf: margins have different totals {totals}")
    axes_all = tuple(range(x.ndim))
    for _ in range(max_iter):
        worst = 0.0
        for keep, target in margins.items():
            drop = tuple(a for a in axes_all if a not in keep)
            current = x.sum(axis=drop, keepdims=True)
            tgt = np.asarray(target, dtype=float).reshape(current.shape)
            worst = max(worst, float(np.max(np.abs(current - tgt) / np.maximum(tgt, 1.0))))
            with np.errstate(invalid="ignore", divide="ignore"):
                factor = np.where(current > 0, tgt / current, 0.0)
            x *= factor
        if worst < tol:
            return x
    raise RuntimeError(f"ipf did not converge in {max_iter} iterations (worst relative gap {worst:.3g})")


def ecological_profiles(group_counts: np.ndarray, state_totals: np.ndarray) -> np.ndarray:
    """Age-sex composition of each state from areas' totals, by ecological regression.

    Goodman's (1953) ecological regression: across areas ``c``, the count in age-sex group
    ``g`` is ``N[c, g] = sum_k T[c, k] * p[k, g]`` where ``T[c, k]`` is the number of people in
    state ``k`` and ``p[k, g]`` the share of state ``k`` in group ``g``. Solved for each group by
    non-negative least squares (scipy ``nnls``), then each state's profile normalised to sum 1.

    ``group_counts``: ``(areas, groups)``; ``state_totals``: ``(areas, states)``. Returns
    ``(states, groups)``.
    """
    from scipy.optimize import nnls

    A = np.asarray(state_totals, dtype=float)
    N = np.asarray(group_counts, dtype=float)
    p = np.empty((A.shape[1], N.shape[1]))
    for g in range(N.shape[1]):
        p[:, g] = nnls(A, N[:, g])[0]
    s = p.sum(axis=1, keepdims=True)
    if np.any(s <= 0):
        raise ValueError("ecological_profiles: a state got an empty profile")
    return p / s
