"""Parametric mortality: Siler hazard, level set by life expectancy, yearly improvement.

Siler, W. (1979) "A competing-risk model for animal mortality", *Ecology* 60: 750-757:
``mu(x) = a1 exp(-b1 x) + a2 + a3 exp(b3 x)`` (infant, constant and senescent risks). The shape
(defaults in :data:`SILER_SHAPE`, typical of a low-mortality population with e0 near 78) is kept
but for the age-independent hazard ``a2`` (``background``: accidents and the adult causes, which
sets how much of a given e0 is lost before old age), and all three components are scaled by one
level factor ``k`` (proportional hazards) solved so that the life table's e0 equals the requested
value. At a fixed e0 a larger ``background`` means higher hazards at young and middle ages and
lower ones at old ages. Mortality improvement multiplies the hazard
by ``exp(-rho)`` a year, i.e. ``k_t = k_0 exp(-rho (t - t0))``.

The life table is single-year, radix 1, ages 0..99 and 100+; ``L(x)`` is integrated numerically
on a 1/20-year grid from the closed-form survivorship ``l(x) = exp(-k H(x))``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np


from sim.axes import N_AGES

SILER_SHAPE = dict(a1=0.02, b1=1.5, a2=2.0e-4, a3=3.0e-5, b3=0.098)
_SUB = 20  # grid points per year of age
_TOP = 130.0  # the open interval is integrated to this age


def _cum_hazard(x, a1, b1, a2, a3, b3):
    return a1 / b1 * (1 - np.exp(-b1 * x)) + a2 * x + a3 / b3 * (np.exp(b3 * x) - 1)


_GRID = np.arange(0.0, _TOP + 1e-9, 1.0 / _SUB)


def _shape(background: float | None) -> dict:
    return SILER_SHAPE if background is None else {**SILER_SHAPE, "a2": float(background)}


def life_table_Lx(level: np.ndarray, background: float | None = None) -> np.ndarray:
    """Person-years ``L(x)`` for ages 0..99 and the open 100+, radix 1.

    ``level``: array of hazard multipliers (any shape); ``background``: the Siler ``a2`` (None:
    :data:`SILER_SHAPE`'s). Returns ``level.shape + (101,)``.
    """
    H = _cum_hazard(_GRID, **_shape(background))
    level = np.asarray(level, dtype=float)
    lx = np.exp(-level[..., None] * H)  # (..., grid)
    # trapezoid person-years per 1/20 year, summed into single years and the open interval
    seg = 0.5 * (lx[..., :-1] + lx[..., 1:]) / _SUB
    n_closed = (N_AGES - 1) * _SUB
    Lx = np.empty(level.shape + (N_AGES,))
    Lx[..., : N_AGES - 1] = seg[..., :n_closed].reshape(level.shape + (N_AGES - 1, _SUB)).sum(axis=-1)
    Lx[..., N_AGES - 1] = seg[..., n_closed:].sum(axis=-1)
    return Lx


def e0_of_level(level: float, background: float | None = None) -> float:
    return float(life_table_Lx(np.array(level), background).sum())


def level_for_e0(e0: float, background: float | None = None) -> float:
    """Hazard multiplier whose life table (age-independent hazard ``background``) has life
    expectancy ``e0`` at birth (Brent's root; the roots already found are kept, see
    :func:`_levels`)."""
    if not 20.0 < e0 < 110.0:
        raise ValueError(f"e0 = {e0} outside the range 20..110 the Siler shape supports")
    key = f"{float(e0)!r}|{background!r}"
    levels = _levels()
    if key not in levels:
        from scipy.optimize import brentq  # imported when a root is new: 0.6 s of import a warm run does not need

        levels[key] = float(brentq(lambda k: e0_of_level(k, background) - e0, 1e-4, 1e3, xtol=1e-12))
        while len(levels) > MAX_KEPT_LEVELS:
            levels.pop(next(iter(levels)))
        _save_levels(levels)
    return levels[key]


MAX_KEPT_LEVELS = 4096
_LEVELS: dict = {}


def _levels_file():
    """The roots found so far, in the cache directory (``$URBSIM_CACHE_DIR``, ...), named by the
    digest of this module's source: another shape or integration is another file."""
    import hashlib
    from pathlib import Path

    from sim.paths import cache_dir

    h = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:24]
    return cache_dir() / "mortality" / f"siler-levels-{h}.json"


def _levels() -> dict:
    """``{"e0|background": level}``, read once per process (exact: JSON keeps a float's repr)."""
    if "levels" not in _LEVELS:
        import json

        from sim.files import read_cache

        def read(p):
            levels = dict(json.loads(p.read_text(encoding="utf-8")))
            bad = [k for k, v in levels.items() if not (isinstance(v, float) and np.isfinite(v) and v > 0)]
            if bad:
                raise ValueError(f"levels not finite and positive: {bad[:3]}")
            return levels

        _LEVELS["levels"] = read_cache(_levels_file(), read) or {}
    return _LEVELS["levels"]


def _save_levels(levels: dict) -> None:
    import json

    from sim.files import write_text

    try:
        write_text(json.dumps(levels), _levels_file())
    except OSError:  # a read-only cache: the roots are found again next time
        pass


class MortalityModel(NamedTuple):
    """A mortality model: the level that gives an e0, and the life table of a level, each for
    an age-independent (background) hazard (None: the model's default)."""

    level_for_e0: Callable[[float, float | None], float]
    life_table_Lx: Callable[[np.ndarray, float | None], np.ndarray]


SILER = MortalityModel(level_for_e0, life_table_Lx)
