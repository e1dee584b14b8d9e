"""What every projection must satisfy, checked after it ran: no stock or flow below zero.

The step bounds every rate where it is applied (``sim.axes.CAP_GROUPS``), so a negative value
is a defect of the engine or of its inputs, never a result: the run stops with the first
offending cell named. Rounding may leave a cell a few ulps below zero (a cell emptied by moves
whose rates summed to exactly 1); :data:`TOLERANCE` persons are allowed for it.
"""

from __future__ import annotations

import numpy as np

from sim.axes import CAP_GROUPS, FLOWS, SEXES, STATES

TOLERANCE = 1e-6  # persons


class NegativeValueError(RuntimeError):
    """A stock or flow of a projection fell below zero."""


def _first_negative(name: str, a: np.ndarray, axes: tuple, labels: dict, years) -> str | None:
    if a.size == 0:
        return None
    lo = float(a.min())
    if lo >= -TOLERANCE:
        return None
    where = np.unravel_index(int(np.argmin(a)), a.shape)
    parts = []
    for ax, i in zip(axes, where):
        if ax == "year":
            parts.append(f"year {int(years[i])}")
        elif ax in labels:
            parts.append(f"{ax} {labels[ax][i]}")
        else:
            parts.append(f"{ax} {int(i)}")
    n = int((a < -TOLERANCE).sum())
    return f"{name} = {lo:.6g} persons at {', '.join(parts)} ({n} cells below zero)"


def check_projection(proj, regions) -> None:
    """Raise :class:`NegativeValueError` if a stock or flow of ``proj`` (a
    :class:`sim.engine.runner.Projection`) is below zero; ``regions``: the region names."""
    labels = {"region": list(regions), "state": STATES, "sex": SEXES, "flow": FLOWS, "cap": CAP_GROUPS}
    full = ("year", "draw", "region")
    checks = (
        ("population", proj.population, full + ("state", "sex", "age")),
        ("births", proj.births, full + ("state", "sex")),
        ("deaths", proj.deaths, full + ("state", "sex", "age")),
        ("migration", proj.flows, full + ("flow", "sex", "age")),
        ("settled", proj.settled, full),
        ("reclassified", proj.reclassified, full),
        ("urban_land", proj.land, full),
    )
    for name, a, axes in checks:
        msg = _first_negative(name, a, axes, labels, proj.years)
        if msg:
            raise NegativeValueError(f"negative {msg}: a rate was applied unbounded; please report it with the run's config")


def check_summary(summ, regions) -> None:
    """The same for reduced outputs (:class:`sim.engine.runner.Summary`): their totals."""
    labels = {"region": list(regions)}
    for name in ("residents", "urban", "urban_local", "all_states", "land", "births", "deaths"):
        msg = _first_negative(name, getattr(summ, name), ("year", "draw", "region"), labels, summ.years)
        if msg:
            raise NegativeValueError(f"negative {msg}: a rate was applied unbounded; please report it with the run's config")
