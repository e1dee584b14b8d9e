"""Several models of one jump-off state projected as the draws of one projection.

A sweep's jobs that differ in their policy options (``policy/hukou=easing``, ``scenario=plan``)
have models whose rates differ but whose jump-off stock, land, regions and years are the same.
:class:`Stack` puts them side by side on the draw axis: member ``m``'s draws are those of its own
projection, the members in order. Each year's rates (:meth:`Stack.step_inputs`) hold one row per
draw for a field in which the members differ and the shared row otherwise (the draws in the
stack's ``order``: a sweep's jobs in their own order, however its batches interleave them), so the step kernels
(which read row ``d`` of a field with a row per draw, the only row of a shared one) project
every member as its own run does. For the ensemble kernel (:func:`sim.engine.kernel.summary`)
the stacked rates hold a row per member (a *variant*) where they differ, each draw reads its
member's (:meth:`Stack.variants`), and the members' per-draw factors are stacked as their draws.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from sim.engine.contract import StepInputs
from sim.engine.model import Model

STACK_BYTES = 256 * 2**20  # the largest stacked copy of one rate field a stack may make (bytes)


@dataclass
class Stack:
    """The models ``members`` (one jump-off state: see the module) as one projection's draws.
    Reads like a :class:`sim.engine.model.Model` for :mod:`sim.engine.runner` and
    :func:`sim.outputs.dataset.to_dataset`: ``cfg`` is the first member's with every member's
    draws, ``inputs``, ``pop0``, ``land0`` and ``static`` are the first member's (the same in
    all: :meth:`of` checks those the runner and the outputs read)."""

    members: list[Model]
    cfg: object
    order: np.ndarray | None = None  # the stack's draw k is the members' draw order[k] (None: members in turn)
    factors: None = None  # per member, inside each member (see factor_table)
    process: None = None

    @classmethod
    def of(cls, members: list[Model], order=None) -> "Stack":
        """The stack of ``members``, or ValueError naming what differs between them. ``order``:
        a permutation of the members' draws taken in turn (member 0's, then member 1's, ...):
        the stack's draw ``k`` is their draw ``order[k]`` (default: in turn)."""
        first = members[0]
        for m in members[1:]:
            why = _differs(first, m)
            if why:
                raise ValueError(f"models cannot share a projection: {why}")
        n = sum(m.draws for m in members)
        if order is not None:
            order = np.asarray(order, dtype=np.int64)
            if not np.array_equal(np.sort(order), np.arange(n)):
                raise ValueError(f"order: not a permutation of the members' {n} draws")
        cfg = replace(first.cfg, draws=replace(first.cfg.draws, count=n))
        return cls(list(members), cfg, order)

    @property
    def inputs(self):
        return self.members[0].inputs

    @property
    def pop0(self) -> np.ndarray:
        return self.members[0].pop0

    @property
    def land0(self) -> np.ndarray:
        return self.members[0].land0

    @property
    def static(self) -> dict:
        return self.members[0].static

    @property
    def draws(self) -> int:
        return sum(m.draws for m in self.members)

    def draws_of(self) -> list[np.ndarray]:
        """Each member's draws: their places on the stack's draw axis, in the member's order."""
        member = self.variants()
        return [np.flatnonzero(member == i) for i in range(len(self.members))]

    @cached_property
    def _in_turn(self) -> tuple[np.ndarray, np.ndarray]:
        """The members' draws taken in turn: the member of each and its draw within the member
        (computed once: every field of every year's rates is taken by it)."""
        member = np.repeat(np.arange(len(self.members)), [m.draws for m in self.members])
        within = np.concatenate([np.arange(m.draws) for m in self.members])
        return member, within

    def _take(self, arrays: list[np.ndarray], axis: int, per_draw: bool) -> np.ndarray:
        """One array of the members' ``arrays`` (each a field's rows on ``axis``): the shared one
        when every member's is the same single row; else their rows side by side, taken a row
        per draw in the stack's order (``per_draw``: a member's single row for each of its draws,
        its row per draw for each) or a row per member (the members' single rows, in turn)."""
        first = arrays[0]
        if first.shape[axis] == 1 and all(a.shape == first.shape and np.array_equal(a, first) for a in arrays[1:]):
            return first
        side = np.concatenate(arrays, axis=axis)
        if not per_draw:
            return side
        rows = np.array([a.shape[axis] for a in arrays])
        offset = np.concatenate([[0], np.cumsum(rows)[:-1]])
        member, within = self._in_turn
        idx = offset[member] + within % rows[member]
        if self.order is not None:
            idx = idx[self.order]
        return np.take(side, idx, axis=axis)

    def step_inputs(self, year: int) -> StepInputs:
        """The members' rates for the step of ``year``, a row per draw where they differ."""
        ps = [m.step_inputs(year) for m in self.members]
        return StepInputs(*(self._take([p[i] for p in ps], 0, True) for i in range(len(ps[0]) - 1)), ps[0].timing)

    def stacked_inputs(self, years) -> StepInputs:
        """The members' central rates of ``years`` (:meth:`Model.stacked_inputs`): a leading year
        axis, then a row per member where they differ (one row where they agree)."""
        ps = [m.stacked_inputs(years) for m in self.members]
        return StepInputs(*(self._take([p[i] for p in ps], 1, False) for i in range(len(ps[0]) - 1)), ps[0].timing)

    def variants(self) -> np.ndarray:
        """The member of each draw: the row of :meth:`stacked_inputs` a draw reads."""
        member = self._in_turn[0]
        return member if self.order is None else member[self.order]

    def factor_table(self, years) -> np.ndarray:
        """The members' per-draw factor tables stacked as their draws (a member without factors:
        ones), or an empty table when no member has any."""
        tables = [m.factor_table(years) for m in self.members]
        if all(t.size == 0 for t in tables):
            return np.zeros((0, 0, 0, 0))
        shape = next(t.shape for t in tables if t.size)[1:]
        out = np.concatenate([t if t.size else np.ones((m.draws,) + shape) for t, m in zip(tables, self.members)])
        return out if self.order is None else np.ascontiguousarray(out[self.order])


def _differs(a: Model, b: Model) -> str:
    """What of ``a`` and ``b`` a shared projection would need equal and is not ("" if nothing)."""
    ca, cb = a.cfg, b.cfg
    if (ca.start_year, ca.end_year) != (cb.start_year, cb.end_year):
        return f"years {ca.start_year}-{ca.end_year} and {cb.start_year}-{cb.end_year}"
    if ca.demography.migration.timing != cb.demography.migration.timing:
        return "demography.migration.timing"
    if not (a.inputs.region.values.tolist() == b.inputs.region.values.tolist() and np.array_equal(a.pop0, b.pop0) and np.array_equal(a.land0, b.land0)):
        return "the jump-off state (regions, stock or land)"
    if not np.array_equal(a.static["other_province_share"], b.static["other_province_share"]):
        return "the census share of migrants registered in another province"
    return ""


def stack_fits(members: list[Model], years: int) -> bool:
    """Whether stacking ``members`` over ``years`` projected years keeps every stacked rate field
    within :data:`STACK_BYTES` (the destination weights, regions x regions, are the largest):
    a row per draw (the step kernels) and a row per member and year (the ensemble kernel)."""
    R = members[0].pop0.shape[0]
    draws = sum(m.draws for m in members)
    return max(draws, len(members) * years) * R * R * 8 <= STACK_BYTES


__all__ = ["Stack", "stack_fits", "STACK_BYTES"]
