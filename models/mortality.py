"""Parametric mortality: Siler hazard, level set by life expectancy, yearly improvement.

Siler, W. (1979) "A competing-risk model for animal mortality", *Ecology* 60: 750-757:
``mu(x) = a1 exp(-b1 x) + a2 + a3 exp(b3 x)`` (infant, constant and senescent risks). The shape
(defaults in :data:`SILER_SHAPE`, typical of a low-mortality population with e0 near 78) is kept
and all three components are scaled by one level factor ``k`` (proportional hazards) solved so
that the life table's e0 equals the requested value. Mortality improvement multiplies the hazard
by ``exp(-rho)`` a year, i.e. ``k_t = k_0 exp(-rho (t - t0))``.

The life table is single-year, radix 1, ages 0..99 and 100+; ``L(x)`` is integrated numerically
on a 1/20-year grid from the closed-form survivorship ``l(x) = exp(-k H(x))``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from scipy.optimize import brentq

from sim.axes import N_AGES

SILER_SHAPE = dict(a1=0.02, b1=1.5, a2=2.0e-4, a3=3.0e-5, b3=0.098)
_SUB = 20  # grid points per year of age
_TOP = 130.0  # the open interval is integrated to this age


def _cum_hazard(x, a1, b1, a2, a3, b3):
    return a1 / b1 * (1 - np.exp(-b1 * x)) + a2 * x + a3 / b3 * (np.exp(b3 * x) - 1)


_GRID = np.arange(0.0, _TOP + 1e-9, 1.0 / _SUB)


def life_table_Lx(level: np.ndarray, shape: dict | None = None) -> np.ndarray:
    """Person-years ``L(x)`` for ages 0..99 and the open 100+, radix 1.

    ``level``: array of hazard multipliers (any shape). Returns ``level.shape + (101,)``.
    """
    H = _cum_hazard(_GRID, **(shape or SILER_SHAPE))
    level = np.asarray(level, dtype=float)
    lx = np.exp(-level[..., None] * H)  # (..., grid)
    # trapezoid person-years per 1/20 year, summed into single years and the open interval
    seg = 0.5 * (lx[..., :-1] + lx[..., 1:]) / _SUB
    n_closed = (N_AGES - 1) * _SUB
    Lx = np.empty(level.shape + (N_AGES,))
    Lx[..., : N_AGES - 1] = seg[..., :n_closed].reshape(level.shape + (N_AGES - 1, _SUB)).sum(axis=-1)
    Lx[..., N_AGES - 1] = seg[..., n_closed:].sum(axis=-1)
    return Lx


def e0_of_level(level: float, shape: dict | None = None) -> float:
    return float(life_table_Lx(np.array(level), shape).sum())


def level_for_e0(e0: float, shape: dict | None = None) -> float:
    """Hazard multiplier whose life table has life expectancy ``e0`` at birth."""
    if not 20.0 < e0 < 110.0:
        raise ValueError(f"e0 = {e0} outside the range 20..110 the Siler shape supports")
    return brentq(lambda k: e0_of_level(k, shape) - e0, 1e-4, 1e3, xtol=1e-12)


class MortalityModel(NamedTuple):
    """A mortality model: the level that gives an e0, and the life table of a level."""

    level_for_e0: Callable[[float], float]
    life_table_Lx: Callable[[np.ndarray], np.ndarray]


SILER = MortalityModel(level_for_e0, life_table_Lx)
