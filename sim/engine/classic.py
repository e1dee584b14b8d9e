"""Classic textbook projection methods, public and documented, sharing the engine's conventions.

* :func:`survival_ratios`: UN cohort-component survival ratios from life-table ``L(x)``.
* :func:`ccmpp_step`: one step of the two-sex, female-dominant cohort-component projection
  (Preston, Heuveline & Guillot 2001, *Demography*, ch. 6; the UN's CCMPP conventions).
* :func:`multiregional_projection`: Rogers' single-sex multiregional projection with the
  linear-integration life table (Rogers 1975, *Introduction to Multiregional Mathematical
  Demography*; Rogers 1995, *Multiregional Demography*, ch. 3-4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def survival_ratios(Lx: np.ndarray, *, width: int = 1, radix: float = 1.0):
    """Survival ratios and newborn survival from person-years ``Lx`` (last axis: age groups).

    Returns ``(sx, nb)``: ``sx[..., x] = L(x+n)/L(x)`` for the closed groups, with
    ``sx[..., z-n] = L(z)/(L(z-n)+L(z))`` (applied to the last closed group plus the open
    group ``z``) and ``sx[..., z] = sx[..., z-n]``; ``nb = L(0)/(width * radix)``.
    """
    Lx = np.asarray(Lx, dtype=float)
    sx = np.empty_like(Lx)
    sx[..., :-2] = Lx[..., 1:-1] / Lx[..., :-2]
    sx[..., -2] = Lx[..., -1] / (Lx[..., -2] + Lx[..., -1])
    sx[..., -1] = sx[..., -2]
    return sx, Lx[..., 0] / (width * radix)


@dataclass
class CCMPPResult:
    pop_f: np.ndarray
    pop_m: np.ndarray
    births_by_age: np.ndarray


def _survive(pop, sx):
    new = np.zeros_like(pop)
    new[1:-1] = pop[:-2] * sx[:-2]
    new[-1] = (pop[-2] + pop[-1]) * sx[-2]
    return new


def ccmpp_step(pop_f, pop_m, Lx_f, Lx_m, asfr, *, srb, mig_f=None, mig_m=None, width=1, radix=1.0, mig_timing="end") -> CCMPPResult:
    """One step of the two-sex, female-dominant cohort-component method for one region.

    ``pop_*``: persons by age group (the last open) at the start; ``Lx_*``: life-table
    person-years per group on radix ``radix``; ``asfr``: annual births per woman by age group;
    ``srb``: boys per girl; ``mig_*``: net migrants in the interval by age group (counts);
    ``width``: group width = projection interval (1 or 5); ``mig_timing``: ``"end"`` (migrants
    added after survival) or ``"even"`` (half before survival, half after).

    Births by age of mother: ``width * asfr * (W_start + W_end) / 2``; with ``"even"`` the
    start includes the first half of the migrants and the end the second half. Newborns of each
    sex survive into the first group with ``L(0) / (width * radix)``.
    """
    if mig_timing not in ("end", "even"):
        raise ValueError(f"mig_timing = {mig_timing!r}: allowed values are 'end', 'even'")
    if width not in (1, 5):
        raise ValueError(f"width = {width!r}: allowed values are 1, 5")
    pop_f, pop_m = np.asarray(pop_f, float), np.asarray(pop_m, float)
    mig_f = np.zeros_like(pop_f) if mig_f is None else np.asarray(mig_f, float)
    mig_m = np.zeros_like(pop_m) if mig_m is None else np.asarray(mig_m, float)
    sx_f, nb_f = survival_ratios(Lx_f, width=width, radix=radix)
    sx_m, nb_m = survival_ratios(Lx_m, width=width, radix=radix)
    before = 0.5 if mig_timing == "even" else 0.0
    start_f = pop_f + before * mig_f
    start_m = pop_m + before * mig_m
    end_f = _survive(start_f, sx_f)
    end_m = _survive(start_m, sx_m)
    after_f = (1.0 - before) * mig_f
    after_m = (1.0 - before) * mig_m
    w_end = end_f + (after_f if mig_timing == "even" else 0.0)
    births_by_age = width * np.asarray(asfr, float) * (start_f + w_end) / 2.0
    B = births_by_age.sum()
    end_f[0] = B / (1.0 + srb) * nb_f
    end_m[0] = B * srb / (1.0 + srb) * nb_m
    return CCMPPResult(end_f + after_f, end_m + after_m, births_by_age)


def multiregional_projection(pop, death_rates, migration_rates, fertility_rates, *, width, steps):
    """Rogers' single-sex multiregional projection with the linear-integration life table.

    ``pop (regions, ages)``; ``death_rates (ages, regions)``; ``migration_rates (ages, origin,
    destination)`` annual rates of moving; ``fertility_rates (ages, regions)`` daughters per
    woman-year. With ``M(x)`` the matrix of rates (deaths plus all out-moves on the diagonal,
    minus the moves into each region off it):

    ``P(x) = (I + n/2 M(x))^-1 (I - n/2 M(x))``, ``l(x+n) = P(x) l(x)`` from ``l(0) = I``,
    ``L(x) = n/2 (l(x) + l(x+n))``, open group ``L(z) = M(z)^-1 l(z)``,
    ``S(x) = L(x+n) L(x)^-1``, births ``n/4 (P(0) + I)(F(x) + F(x+n) S(x))``.

    The generalised Leslie matrix has the births in its first block row (from every group but
    the open one), ``S(x)`` on the sub-diagonal, and the open group refilled by
    ``S(z-n) = L(z) L(z-n)^-1`` from the group before alone (the stationary convention of
    Rogers' programs). Returns ``(steps + 1, regions, ages)``.
    """
    pop = np.asarray(pop, float)
    mu = np.asarray(death_rates, float)
    mig = np.asarray(migration_rates, float)
    F = np.asarray(fertility_rates, float)
    R, X = pop.shape
    n = float(width)
    I = np.eye(R)
    M = np.empty((X, R, R))
    for x in range(X):
        M[x] = np.diag(mu[x] + mig[x].sum(axis=1) - np.diag(mig[x])) - (mig[x] - np.diag(np.diag(mig[x]))).T
    Pm = [np.linalg.solve(I + n / 2 * M[x], I - n / 2 * M[x]) for x in range(X)]
    l = [I]
    for x in range(X - 1):
        l.append(Pm[x] @ l[x])
    L = [n / 2 * (l[x] + l[x + 1]) for x in range(X - 1)]
    L.append(np.linalg.solve(M[X - 1], l[X - 1]))
    S = [L[x + 1] @ np.linalg.inv(L[x]) for x in range(X - 1)]
    B = np.zeros((X, R, R))
    for x in range(X - 1):
        Fx, Fx1 = np.diag(F[x]), np.diag(F[x + 1])
        B[x] = n / 4 * (Pm[0] + I) @ (Fx + Fx1 @ S[x])
    G = np.zeros((X * R, X * R))
    for x in range(X - 1):
        G[0:R, x * R : (x + 1) * R] = B[x]
        G[(x + 1) * R : (x + 2) * R, x * R : (x + 1) * R] = S[x]
    out = np.empty((steps + 1, R, X))
    out[0] = pop
    v = pop.T.reshape(-1)  # age-major: block x holds the regions at age x
    for t in range(steps):
        v = G @ v
        out[t + 1] = v.reshape(X, R).T
    return out
