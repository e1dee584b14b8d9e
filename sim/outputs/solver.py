"""Solving for the lever value that meets a target (the library of ``python -m sim.solve``,
whose docstring says how): a grid over the bounds, a monotonicity check, then scipy's brentq."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import brentq

from sim import files
from sim.config.schema import Config, ConfigError, Target, validate
from sim.config.values import year_map
from sim.engine.prepare import prepare
from sim.engine.runner import project, resolve_backend, work
from sim.files import write_netcdf, write_text
from sim.outputs.dataset import to_dataset
from sim.outputs.targets import series


class SolveError(ValueError):
    """The solver refuses: the response is not monotone, or the target is out of reach."""


@dataclass
class Solution:
    target: str
    lever: str
    value: float
    met_at_bound: str  # "" when solved by root-finding, else which bound already meets it
    projected: float
    required: float
    grid: list
    path: dict
    land_km2: float
    land_required_km2: float
    evaluations: int
    seconds: float


def find_target(cfg: Config, name: str) -> Target:
    exact = [t for t in cfg.targets.targets if t.name == name]
    if exact:
        return exact[0]
    hits = [t for t in cfg.targets.targets if name.lower() in t.name.lower()]
    if len(hits) == 1:
        return hits[0]
    names = "; ".join(t.name for t in cfg.targets.targets)
    raise ConfigError(f"target = {name!r}: {'ambiguous' if hits else 'unknown'}; targets are: {names}")


def set_lever(cfg: Config, path: str, value: float, lever_from: int | None = None) -> Config:
    """A copy of ``cfg`` with the number at ``path`` set to ``value`` (see the module doc)."""
    new = copy.deepcopy(cfg)
    *parents, leaf = path.split(".")
    obj = new
    for p in parents:
        if not hasattr(obj, p):
            raise ConfigError(f"lever = {path!r}: no field {p!r}")
        obj = getattr(obj, p)
    if not dataclasses.is_dataclass(obj) or not hasattr(obj, leaf):
        raise ConfigError(f"lever = {path!r}: no field {leaf!r}")
    cur = getattr(obj, leaf)
    if isinstance(cur, dict):
        start = new.start_year
        frm = lever_from if lever_from is not None else start + 1
        setattr(obj, leaf, {start: float(year_map(cur, [start])[0]), frm: float(value)} if frm > start else {start: float(value)})
    elif isinstance(cur, (int, float)) and not isinstance(cur, bool):
        setattr(obj, leaf, type(cur)(value) if isinstance(cur, float) else float(value))
    else:
        raise ConfigError(f"lever = {path!r}: not a number or a year-keyed map (it is {type(cur).__name__})")
    return new


def slack(value: float, t: Target) -> float:
    """Positive when the target is met (for '~': projected minus required)."""
    if t.op == ">=":
        return value - t.value
    if t.op == "<=":
        return t.value - value
    return value - t.value


def target_value(ds, t: Target, groups: dict, probability: float) -> float:
    ser = series(ds, t.region, t.variable, groups).sel(year=t.year)
    if "draw" not in ser.dims:
        return float(ser)
    q = 1.0 - probability if t.op == ">=" else probability if t.op == "<=" else 0.5
    return float(ser.quantile(q, dim="draw"))


def check_monotone(xs, ys, *, rtol=1e-9) -> int:
    """+1 if ``ys`` rises with ``xs``, -1 if it falls; raises :class:`SolveError` otherwise."""
    d = np.diff(np.asarray(ys, dtype=float))
    eps = rtol * max(1.0, float(np.max(np.abs(ys))))
    if np.all(d >= -eps) and np.any(d > eps):
        return 1
    if np.all(d <= eps) and np.any(d < -eps):
        return -1
    if np.all(np.abs(d) <= eps):
        raise SolveError(f"the target does not respond to the lever over the bounds (values {_fmt(xs, ys)})")
    raise SolveError(f"the response is not monotone over the bounds, so the smallest value is not well defined (values {_fmt(xs, ys)}); narrow the bounds")


def _fmt(xs, ys):
    return ", ".join(f"{x:.4g}->{y:.6g}" for x, y in zip(xs, ys))


def solve(cfg: Config, target: str, lever: str, bounds=(0.0, 1.0), *, probability: float = 0.5, grid: int = 7, lever_from: int | None = None, xtol: float = 1e-6) -> tuple[Solution, object]:
    t0 = time.perf_counter()
    validate(cfg)
    t = find_target(cfg, target)
    if t.geography is not None and t.geography != cfg.geography.name:
        raise ConfigError(f"target {t.name!r} needs geography={t.geography}")
    if t.year > cfg.end_year:
        raise ConfigError(f"target {t.name!r} is for {t.year}, after end_year = {cfg.end_year}")
    lo, hi = map(float, bounds)
    if not lo < hi:
        raise ConfigError(f"bounds = {list(bounds)}: the lower bound must be below the upper")
    if not 0.0 < probability < 1.0:
        raise ConfigError(f"probability = {probability}: must be between 0 and 1")
    groups = dict(cfg.targets.groups)
    n_eval = 0

    def run(v):
        nonlocal n_eval
        n_eval += 1
        c = set_lever(cfg, lever, v, lever_from)
        model = prepare(c)  # validates the lever value against its allowed range
        # the grid and brentq's steps: about grid + 20 projections of this size in all
        ds = to_dataset(model, project(model, backend=resolve_backend(c.backend, work(model) * (grid + 20))), scenario=c.scenario)
        return ds

    def response(v):
        return target_value(run(v), t, groups, probability)

    xs = np.linspace(lo, hi, grid)
    ys = np.array([response(x) for x in xs])
    sl = np.array([slack(y, t) for y in ys])
    if np.ptp(ys) <= 1e-9 * max(1.0, float(np.max(np.abs(ys)))):
        check_monotone(xs, ys)  # says the target does not respond to the lever
    # then out of reach: whether the response is monotone does not matter then
    best = int(np.argmin(np.abs(sl))) if t.op == "~" else int(np.argmax(sl))
    reached = f"the projected value ranges {ys.min():.6g} .. {ys.max():.6g}; the best, {ys[best]:.6g}, at {lever} = {xs[best]:.6g}"
    if t.op == "~":
        if not (sl.min() <= 0 <= sl.max()):
            raise SolveError(f"the target cannot be met within bounds [{lo:g}, {hi:g}]: {reached}, required {t.value:g}")
    elif not (sl >= 0).any():
        raise SolveError(f"the target cannot be met within bounds [{lo:g}, {hi:g}]: {reached}, required {t.op} {t.value:g}")
    direction = check_monotone(xs, ys)
    met_at = ""
    if t.op != "~" and sl[0] >= 0:
        value, met_at = lo, "lower"  # already met at the lower bound: the smallest value
    else:
        i = int(np.flatnonzero(np.sign(sl[:-1]) != np.sign(sl[1:]))[0]) if t.op == "~" or direction > 0 else None
        if i is None:  # a falling response that is not met at the lower bound is never met above it
            raise SolveError("the target is met only below the lower bound (the response falls as the lever rises)")
        value = brentq(lambda v: slack(response(v), t), xs[i], xs[i + 1], xtol=xtol)
        if t.op != "~" and slack(response(value), t) < 0:
            value = min(hi, value + xtol)  # land on the met side of the root
    ds = run(value)
    path = series(ds, t.region, t.variable, groups)
    if "draw" in path.dims:
        path = path.median("draw")
    land = ds.urban_land.sel(year=t.year).sum("region")
    need = ds.land_required.sel(year=t.year).sum("region")
    if "draw" in land.dims:
        land, need = land.median("draw"), need.median("draw")
    sol = Solution(
        target=t.name, lever=lever, value=float(value), met_at_bound=met_at,
        projected=target_value(ds, t, groups, probability), required=t.value,
        grid=[[float(x), float(y)] for x, y in zip(xs, ys)],
        path={int(y): float(v) for y, v in zip(path.year.values, path.values)},
        land_km2=float(land), land_required_km2=float(need), evaluations=n_eval, seconds=time.perf_counter() - t0,
    )
    return sol, ds


def format_solution(s: Solution) -> str:
    lines = [f"Solve: {s.target}", f"lever {s.lever} = {s.value:.6g}" + (f"  (already met at the {s.met_at_bound} bound)" if s.met_at_bound else ""),
             f"projected {s.projected:.6g} vs required {s.required:.6g}",
             f"urban land in the target year {s.land_km2:,.0f} km2; needed at the per-capita standard {s.land_required_km2:,.0f} km2",
             f"{s.evaluations} projections in {s.seconds:.1f} s", "", "path at the solution:"]
    lines += [f"  {y}  {v:.6g}" for y, v in s.path.items()]
    return "\n".join(lines)


def write_solution(sol: Solution, ds, out: str | Path) -> Path:
    """Write ``solve.json``, ``solve_path.csv`` and the projection at the solution into ``out``."""
    out = Path(out)
    write_text(json.dumps(dataclasses.asdict(sol), indent=2) + "\n", out / files.SOLVE)
    write_text("year,value\n" + "".join(f"{y},{v}\n" for y, v in sol.path.items()), out / files.SOLVE_PATH)
    write_netcdf(ds, out / files.PROJECTION)
    return out
