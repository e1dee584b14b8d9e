"""Which lever packages reach the targets: a policy search over the levers and the forecast's
uncertainty, with probabilities, land, the Pareto set and PRIM boxes (scenario discovery).

``python -m experiments.discover [spec=FILE] [samples=N] [draws=M] [out=DIR] [Hydra overrides]``

The spec (``experiments/discover.yaml``) names the levers: a continuous one by its config path
and range (``policy.hukou.conversion_rate: {range: [0.02, 0.3]}``; a number is a constant path),
sampled by a Latin hypercube (:class:`scipy.stats.qmc.LatinHypercube`, ``samples`` points); a
categorical one by its policy group and options (``policy/services: {options: [baseline,
equalization]}``), enumerated: every point of the hypercube is crossed with every combination of
options, one **package** each. Each package is projected with ``draws`` posterior draws
(``params=calibrated_ensemble`` in the spec's base overrides: the calibration's parameter draws
with their process noise) in batched kernel calls (:func:`sim.outputs.batch.batch_model`: the
packages of one combination of options share one model, their levers per-draw multipliers on
it), reduced outputs. Per package and target (every target of the run's ``targets`` config, the
spec's ``extra_targets``, and for the urban-share targets of Guangxi each prefecture on its own)
the probability of meeting it is the share of the draws that meet it; the land is the urban land
the package's urban residents need at the per-capita standard (median over draws).

Writes into ``out`` (default ``outputs/discover``):
- ``packages.csv``: every package, its lever values, the probability of every target, of all
  the spec's ``objectives`` at once (``p_objectives``, per draw), the land and the first year the
  median path meets each objective;
- ``pareto.csv``, ``pareto.png``: probability of the objectives against land needed, the
  non-dominated packages (no other has at least the probability for at most the land, one of
  them strictly) marked;
- ``boxes.md``, ``boxes.png``: PRIM (Friedman & Fisher 1999, as implemented by the EMA
  Workbench, Kwakkel 2017) on "P(objectives) >= threshold": the lever ranges within which the
  objectives hold, with coverage, density and mass, and the peeling trajectory;
- ``discover.nc`` (everything, labelled) and ``discover.json`` (spec, resolved config, code
  version, input checksum, timings).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

from sim import files

log = logging.getLogger("sim")
SPEC = Path(__file__).with_name("discover.yaml")
DEFAULTS = {"spec": str(SPEC), "samples": None, "draws": None, "out": "outputs/discover"}
SPEC_KEYS = ("base_overrides", "samples", "draws", "seed", "levers", "objectives", "extra_targets", "threshold", "box_density", "prefecture_targets")


def _continuous_levers() -> tuple[str, ...]:
    """Config paths a package may vary continuously: the policy levers the kernel varies per
    draw (:data:`sim.outputs.batch.BATCHABLE`)."""
    from sim.outputs.batch import BATCHABLE

    return tuple(p for p in BATCHABLE if p.startswith("policy."))


def _cat(group: str) -> str:
    """The label of a categorical lever in the outputs: the config path of its option's name."""
    return f"policy.{group}.name"


def _groups() -> dict[str, list[str]]:
    """Policy groups and their options (``configs/policy/<group>/<option>.yaml``)."""
    from sim.paths import CONFIG_DIR

    root = CONFIG_DIR / "policy"
    return {d.name: sorted(p.stem for p in d.glob("*.yaml")) for d in sorted(root.iterdir()) if d.is_dir()}


@dataclass
class Spec:
    base_overrides: list[str]
    samples: int
    draws: int
    seed: int
    continuous: dict[str, tuple[float, float]]  # config path -> (low, high)
    categorical: dict[str, list[str]]  # policy group -> options
    objectives: list[str]  # target names: a package's probability of meeting all of them (per draw)
    threshold: float  # PRIM: a package holds when P(objectives) >= threshold
    box_density: float = 0.8  # PRIM: the box reported is the widest (coverage) with at least this density
    extra_targets: list[dict] = field(default_factory=list)
    prefecture_targets: bool = True  # Guangxi's urban-share targets evaluated for each prefecture too
    raw: dict = field(default_factory=dict)


def load_spec(path: str | Path, *, samples=None, draws=None):
    """The spec at ``path``, checked before anything is computed: known keys; each lever a
    continuous lever (:func:`_continuous_levers`) with ``range: [low, high]``, low < high, both
    inside the schema's range, or a policy group with ``options`` among its files; samples and
    draws positive integers; threshold in (0, 1]. Objectives are checked against the targets by
    :func:`targets_of`. Errors (:class:`sim.config.schema.ConfigError`) name the field, the value
    and what is allowed."""
    from sim.config.compose import compose_config
    from sim.config.schema import ConfigError, validate_changed
    from sim.outputs.batch import _set

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"spec = {str(path)!r}: no such file")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"spec = {str(path)!r}: not YAML ({e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"spec = {str(path)!r}: must be a mapping with keys {', '.join(SPEC_KEYS)}")
    unknown = [k for k in raw if k not in SPEC_KEYS]
    if unknown:
        raise ConfigError(f"spec: unknown key(s) {', '.join(map(str, unknown))}; allowed: {', '.join(SPEC_KEYS)}")

    def integer(key, v):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{key} = {v!r}: must be a positive integer")
        return v

    n = integer("samples", samples if samples is not None else raw.get("samples", 100))
    m = integer("draws", draws if draws is not None else raw.get("draws", 100))
    seed = integer("seed", raw.get("seed", 1))
    thr = raw.get("threshold", 0.8)
    if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0 < thr <= 1:
        raise ConfigError(f"threshold = {thr!r}: must be a probability in (0, 1]")
    dens = raw.get("box_density", 0.8)
    if isinstance(dens, bool) or not isinstance(dens, (int, float)) or not 0 < dens <= 1:
        raise ConfigError(f"box_density = {dens!r}: must be a share in (0, 1]")
    levers = raw.get("levers") or {}
    if not isinstance(levers, dict) or not levers:
        raise ConfigError("levers: name at least one lever (a config path with {range: [low, high]} or a policy group with {options: [...]})")
    cont_allowed, groups = _continuous_levers(), _groups()
    probe = compose_config([])
    continuous, categorical = {}, {}
    for name, v in levers.items():
        key = f"levers.{name}"
        if name in cont_allowed:
            rng = v.get("range") if isinstance(v, dict) else None
            if not (isinstance(rng, list) and len(rng) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in rng)):
                raise ConfigError(f"{key} = {v!r}: a continuous lever needs range: [low, high] (two numbers)")
            lo, hi = float(rng[0]), float(rng[1])
            if not lo < hi:
                raise ConfigError(f"{key}.range = {rng!r}: empty range; low must be below high")
            for x in (lo, hi):
                try:
                    validate_changed(_set(probe, name, x), [name])
                except ConfigError as e:
                    raise ConfigError(f"{key}.range: {e}") from None
            continuous[name] = (lo, hi)
        elif name.startswith("policy/") and name.split("/", 1)[1] in groups:
            group = name.split("/", 1)[1]
            opts = v.get("options") if isinstance(v, dict) else None
            if not (isinstance(opts, list) and opts):
                raise ConfigError(f"{key} = {v!r}: a categorical lever needs options: [...] (at least one of {', '.join(groups[group])})")
            bad = [o for o in opts if str(o) not in groups[group]]
            if bad:
                raise ConfigError(f"{key}.options: {', '.join(map(repr, bad))} not an option of policy/{group}; allowed: {', '.join(groups[group])}")
            categorical[group] = [str(o) for o in dict.fromkeys(opts)]
        else:
            allowed = [*cont_allowed, *(_cat(g) for g in groups)]
            raise ConfigError(f"{key}: unknown lever; allowed: {', '.join(allowed)}")
    if not continuous:
        raise ConfigError(f"levers: name at least one continuous lever ({', '.join(cont_allowed)}); PRIM needs ranges to bound")
    objectives = raw.get("objectives") or []
    if not isinstance(objectives, list) or not objectives or not all(isinstance(o, str) for o in objectives):
        raise ConfigError(f"objectives = {objectives!r}: a list of target names (of the run's targets config or extra_targets)")
    extra = raw.get("extra_targets") or []
    base = raw.get("base_overrides") or []
    if not isinstance(base, list) or not all(isinstance(o, str) for o in base):
        raise ConfigError(f"base_overrides = {base!r}: a list of Hydra overrides (strings)")
    return Spec(list(base), n, m, seed, continuous, categorical, list(objectives), float(thr), float(dens), list(extra), bool(raw.get("prefecture_targets", True)), raw)


def targets_of(spec: Spec, cfg, regions: list[str]):
    """The targets evaluated: the run's (``cfg.targets``) of its geography, the spec's extra
    ones, and with ``prefecture_targets`` each Guangxi urban-share target for each region too
    (named ``"<target> [<region>]"``). Objectives must be among them."""
    from sim.config.schema import ConfigError, Target, TargetsConfig, _walk

    geo = cfg.geography.name
    own = [t for t in cfg.targets.targets if t.geography in (None, geo)]
    extra = []
    fields = {f.name for f in dataclasses.fields(Target)}
    for i, d in enumerate(spec.extra_targets):
        if not isinstance(d, dict) or set(d) - fields:
            raise ConfigError(f"extra_targets[{i}] = {d!r}: a target with keys among {', '.join(sorted(fields))}")
        t = Target(**d)
        _walk(t, f"extra_targets[{i}]")
        extra.append(t)
    allt = own + extra
    names = [t.name for t in allt]
    missing = [o for o in spec.objectives if o not in names]
    if missing:
        raise ConfigError(f"objectives: {', '.join(map(repr, missing))} not a target; allowed: {', '.join(map(repr, names))}")
    if spec.prefecture_targets:
        for t in list(allt):
            if t.region == "Guangxi" and t.variable == "urban_share":
                allt += [dataclasses.replace(t, name=f"{t.name} [{r}]", region=r) for r in regions]
    return TargetsConfig(name=cfg.targets.name, groups=dict(cfg.targets.groups), targets=allt, region_years=[])


def packages(spec: Spec) -> list[dict]:
    """Every package: a Latin-hypercube point over the continuous levers (scaled to their
    ranges; scipy's ``LatinHypercube`` seeded by the spec) crossed with every combination of
    the categorical options, point-major."""
    from scipy.stats import qmc

    names = list(spec.continuous)
    lo = np.array([spec.continuous[n][0] for n in names])
    hi = np.array([spec.continuous[n][1] for n in names])
    pts = qmc.scale(qmc.LatinHypercube(d=len(names), seed=spec.seed).random(spec.samples), lo, hi)
    combos = list(itertools.product(*spec.categorical.values())) or [()]
    out = []
    for i, x in enumerate(pts):
        for combo in combos:
            out.append({"point": i, **dict(zip(names, map(float, x))), **{_cat(g): o for g, o in zip(spec.categorical, combo)}})
    return out


def pareto_front(prob: np.ndarray, land: np.ndarray) -> np.ndarray:
    """Mask of the non-dominated packages: none other has at least the probability for at most
    the land with one of the two strictly better. Sort by land (ties: probability descending)
    and keep each package whose probability beats every cheaper one's."""
    prob, land = np.asarray(prob, dtype=float), np.asarray(land, dtype=float)
    order = np.lexsort((-prob, land))
    keep = np.zeros(len(prob), dtype=bool)
    best, best_land = -np.inf, np.nan
    for i in order:
        if prob[i] > best:
            keep[i], best, best_land = True, prob[i], land[i]
        elif prob[i] == best and land[i] == best_land:  # an exact tie with a front member: not dominated
            keep[i] = True
    return keep


def _combo_config(spec: Spec, combo: dict, overrides: list[str]):
    from sim.config.compose import compose_config
    from sim.config.schema import ConfigError, validate

    cat = [f"policy/{g}={o}" for g, o in combo.items()]
    cfg = validate(compose_config([*spec.base_overrides, *cat, *overrides, f"draws.count={spec.draws}", "draws.start=0", "figures.enabled=false", "quiet=true"]))
    if spec.draws > 1 and not cfg.params.ensemble and not cfg.uncertainty.enabled:
        raise ConfigError(f"draws = {spec.draws}: the base run has no ensemble; add params=calibrated_ensemble to base_overrides (or draws=1 for a deterministic search)")
    return cfg


def _met_draws(block: xr.Dataset, targets, years) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per package, target and draw whether the target is met ``(n, T, D)``, the median path's
    first year met ``(n, T)`` (0: never; -1: target year outside the projection) and the urban
    land the target's regions need in its year at the per-capita standard ``(n, T)`` (median)."""
    from sim.outputs.targets import met_array, region_selection, variable_of

    groups = dict(targets.groups)
    n = block.sizes["scenario"]
    D = block.sizes.get("draw", 1)
    Y = len(years)
    met = np.zeros((n, len(targets.targets), D), dtype=bool)
    first = np.zeros((n, len(targets.targets)), dtype=int)
    land = np.full((n, len(targets.targets)), np.nan)
    # each target region's totals summed once (many targets share a region): (n, Y, D, G)
    need = ["residents", "urban_population", "urban_local_population", "all_states_population", "city_proper_population", "land_required"]
    names = list(dict.fromkeys(t.region for t in targets.targets))
    M = np.stack([region_selection(block, r, groups) for r in names], axis=1).astype(float)  # (R, G)
    order = ("scenario", "year", "draw", "region") if "draw" in block.dims else ("scenario", "year", "region")
    sums = {v: (np.asarray(block[v].transpose(*order).values, dtype=float) @ M).reshape(n, Y, D, len(names)) for v in need}
    for k, t in enumerate(targets.targets):
        if t.year not in years:
            first[:, k] = -1
            continue
        g = names.index(t.region)
        arr = variable_of({v: sums[v][..., g] for v in need}, t.variable, lambda a: a[:, :1])  # (n, Y, D)
        yi = int(np.flatnonzero(years == t.year)[0])
        met[:, k] = met_array(arr[:, yi], t.op, t.value, t.tolerance)
        ok = met_array(np.median(arr, axis=2), t.op, t.value, t.tolerance)
        first[:, k] = np.where(ok.any(axis=1), years[np.argmax(ok, axis=1)], 0)
        land[:, k] = np.median(sums["land_required"][:, yi, :, g], axis=1)
    return met, first, land


def _last_median(block: xr.Dataset, v: str) -> np.ndarray:
    """``v`` of all regions in the last year, median over draws: one value per package."""
    a = np.asarray(block[v].isel(year=-1).sum("region").values, dtype=float)
    return np.median(a.reshape(block.sizes["scenario"], -1), axis=1)


class _Progress:
    """A tqdm bar with the time left on a terminal, a log line per batch otherwise."""

    def __init__(self, total: int):
        self.total, self.done, self.t0, self.bar = total, 0, time.perf_counter(), None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="discover", unit="projection", file=sys.stderr)

    def __call__(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        else:
            el = time.perf_counter() - self.t0
            left = el / self.done * (self.total - self.done)
            print(f"discover: {self.done}/{self.total} projections, {el:.0f} s, about {left:.0f} s left", file=sys.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def evaluate(spec: Spec, overrides=(), *, progress=None, configs: list | None = None) -> tuple[xr.Dataset, dict]:
    """Project every package with its draws; the labelled result (``package``, ``target``,
    ``draw`` dimensions) and the base configs by combination (``configs``: those already
    composed, one per combination of options in the order of :func:`packages`)."""
    from sim.engine.prepare import prepare
    from sim.engine.runner import project_summary
    from sim.outputs.batch import MAX_BATCH_DRAWS, Batch, _set, batch_model, configs_json, reduced_block

    pk = packages(spec)
    combos = list(itertools.product(*spec.categorical.values())) or [()]
    cont = list(spec.continuous)
    per = max(1, MAX_BATCH_DRAWS["summary"] // spec.draws)
    N = len(pk)
    results = {}
    bases, targets, first_years = {}, None, None
    for ci, combo in enumerate(combos):
        cdict = dict(zip(spec.categorical, combo))
        base = configs[ci] if configs is not None else _combo_config(spec, cdict, list(overrides))
        own = prepare(base, reduced=True)
        if targets is None:
            targets = targets_of(spec, base, own.regions)
        bases[json.dumps(cdict)] = base
        ref = base
        for path in cont:  # the batch's base: every lever at its high end (positive), each package a multiple of it
            ref = _set(ref, path, spec.continuous[path][1])
        idx = [i for i, p in enumerate(pk) if all(p[_cat(g)] == o for g, o in cdict.items())]
        for lo in range(0, len(idx), per):
            chunk = idx[lo:lo + per]
            cfgs = []
            for i in chunk:
                c = base
                for path in cont:
                    c = _set(c, path, pk[i][path])
                cfgs.append(c)
            cfgs.append(ref)
            batch = Batch(list(range(len(chunk))), len(chunk))
            model = batch_model(cfgs, batch, reduced=True, own=own)
            summ = project_summary(model)
            block = reduced_block(model, summ, cfgs, batch.jobs, configs_json(cfgs, batch))
            years = block.year.values
            if first_years is None:
                first_years = years
            met, first, land_t = _met_draws(block, targets, years)
            land, urban_land = _last_median(block, "land_required"), _last_median(block, "urban_land")
            for k, i in enumerate(chunk):
                results[i] = dict(met=met[k], first=first[k], land_t=land_t[k], land=float(land[k]), urban_land=float(urban_land[k]))
            if progress is not None:
                progress(len(chunk) * spec.draws)
    names = [t.name for t in targets.targets]
    obj = [names.index(o) for o in spec.objectives]
    met = np.stack([results[i]["met"] for i in range(N)])  # (N, T, D)
    prob = met.mean(axis=2)
    p_obj = met[:, obj].all(axis=1).mean(axis=1)
    land = np.array([results[i]["land"] for i in range(N)])
    ds = xr.Dataset(
        {
            "probability": (("package", "target"), prob, {"units": "1", "long_name": "share of the draws that meet the target"}),
            "p_objectives": (("package",), p_obj, {"units": "1", "long_name": "share of the draws that meet every objective at once"}),
            "first_year_met": (("package", "target"), np.stack([results[i]["first"] for i in range(N)]), {"long_name": "first year the median path meets the target (0: never; -1: outside the projection)"}),
            "target_land_needed_km2": (("package", "target"), np.stack([results[i]["land_t"] for i in range(N)]), {"units": "km2", "long_name": "urban land the target's regions need in the target's year at the per-capita standard (median over draws)"}),
            "land_needed_km2": (("package",), land, {"units": "km2", "long_name": f"urban land the urban residents of all regions need at the per-capita standard in {int(first_years[-1])} (median over draws)"}),
            "urban_land_km2": (("package",), np.array([results[i]["urban_land"] for i in range(N)]), {"units": "km2", "long_name": f"urban construction land of all regions the quota rules provide by {int(first_years[-1])} (median over draws)"}),
            "pareto": (("package",), pareto_front(p_obj, land), {"long_name": "non-dominated in (p_objectives, land_needed_km2)"}),
        },
        coords={"package": np.arange(N), "target": names, "objective": ("target", [n in spec.objectives for n in names]),
                "target_region": ("target", [t.region for t in targets.targets]), "target_year": ("target", [t.year for t in targets.targets])},
    )
    for path in cont:
        ds.coords[path] = ("package", np.array([p[path] for p in pk]))
    for g in spec.categorical:
        ds.coords[_cat(g)] = ("package", np.array([p[_cat(g)] for p in pk]))
    ds.coords["point"] = ("package", np.array([p["point"] for p in pk]))
    return ds, bases


def lever_frame(ds: xr.Dataset, spec: Spec):
    import pandas as pd

    cols = {p: ds[p].values.astype(float) for p in spec.continuous}
    cols.update({_cat(g): pd.Categorical(ds[_cat(g)].values.astype(str)) for g in spec.categorical})
    return pd.DataFrame(cols)


def prim_boxes(ds: xr.Dataset, spec: Spec) -> dict:
    """PRIM on ``p_objectives >= threshold`` over the levers (EMA Workbench). The box reported is
    the one of the peeling trajectory with the largest coverage among those with a density of
    at least ``box_density`` (none: the densest, the widest of them). Returns the
    trajectory and, per restricted lever, the box's limits; ``note`` when PRIM cannot run (every
    package holds, or none)."""
    y = ds.p_objectives.values >= spec.threshold
    if y.all() or not y.any():
        return {"note": f"{'every' if y.all() else 'no'} package reaches P(objectives) >= {spec.threshold}: no box to find", "holds": int(y.sum()), "n": int(y.size)}
    with warnings.catch_warnings():  # the workbench warns on import about optional parallel back-ends
        warnings.simplefilter("ignore")
        from ema_workbench.analysis import prim
    x = lever_frame(ds, spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = prim.Prim(x, y, threshold=spec.threshold)
        box = p.find_box()
    traj = box.peeling_trajectory
    dens, cov = traj["density"].values, traj["coverage"].values
    ok = np.flatnonzero(dens >= spec.box_density - 1e-12)
    if ok.size:
        i = int(ok[np.argmax(cov[ok])])  # the first of the widest: argmax takes the earliest
    else:
        i = int(np.flatnonzero(dens >= dens.max() - 1e-12)[0])
    lims, full = box.box_lims[i], box.box_lims[0]
    restricted = {}
    for col in x.columns:
        a, b = lims[col].iloc[0], lims[col].iloc[1]
        if isinstance(a, set):
            if a != full[col].iloc[0]:
                restricted[col] = sorted(a)
        elif (a, b) != (full[col].iloc[0], full[col].iloc[1]):
            restricted[col] = [float(a), float(b)]
    return {"index": i, "coverage": float(traj["coverage"].iloc[i]), "density": float(dens[i]), "mass": float(traj["mass"].iloc[i]),
            "restricted": restricted, "holds": int(y.sum()), "n": int(y.size),
            "trajectory": [{k: float(traj[k].iloc[j]) for k in ("coverage", "density", "mass", "res_dim")} for j in range(len(traj))]}


def boxes_markdown(boxes: dict, spec: Spec) -> str:
    L = ["# Scenario discovery: where the objectives hold", "",
         f"Objectives: {'; '.join(spec.objectives)}. A package holds when the share of its draws meeting all of them is at least {spec.threshold:g}.", ""]
    if "note" in boxes:
        return "\n".join(L + [f"{boxes['note']} ({boxes['holds']} of {boxes['n']} packages hold).", ""])
    L += [f"{boxes['holds']} of {boxes['n']} packages hold. PRIM (EMA Workbench) box {boxes['index']} of the peeling trajectory (the widest with a density of at least {spec.box_density:g}): "
          f"coverage {boxes['coverage']:.3f} (share of the holding packages inside), density {boxes['density']:.3f} (share of the packages inside that hold), mass {boxes['mass']:.3f}.", "",
          "| lever | box | searched |", "|---|---|---|"]
    for k, v in boxes["restricted"].items():
        searched = spec.continuous.get(k) or spec.categorical.get(k.split(".")[1])
        box = f"{v[0]:.4g} .. {v[1]:.4g}" if k in spec.continuous else ", ".join(v)
        L.append(f"| {k} | {box} | {', '.join(map(str, searched)) if k not in spec.continuous else f'{searched[0]:.4g} .. {searched[1]:.4g}'} |")
    if not boxes["restricted"]:
        L.append("| (none) | the whole space | |")
    L += ["", "Peeling trajectory:", "", "| box | coverage | density | mass | restricted levers |", "|---:|---:|---:|---:|---:|"]
    for j, r in enumerate(boxes["trajectory"]):
        L.append(f"| {j} | {r['coverage']:.3f} | {r['density']:.3f} | {r['mass']:.3f} | {int(r['res_dim'])} |")
    return "\n".join(L + [""])


def figures(ds: xr.Dataset, boxes: dict, spec: Spec, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim.outputs.figures import save

    fig, ax = plt.subplots(figsize=(7, 4.8))
    p, land, front = ds.p_objectives.values, ds.land_needed_km2.values, ds.pareto.values
    ax.scatter(land, p, s=8, color="0.6", label="package")
    o = np.argsort(land[front])
    ax.plot(land[front][o], p[front][o], "o-", color="C3", ms=4, label="non-dominated")
    ax.axhline(spec.threshold, color="k", lw=0.8, ls=":", label=f"threshold {spec.threshold:g}")
    ax.set_xlabel(ds.land_needed_km2.attrs["long_name"] + " (km²)", fontsize=8)
    ax.set_ylabel("P(all objectives)")
    ax.set_title("Lever packages: probability of the objectives against land", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, out / files.DISCOVER_PARETO_FIGURE)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    if "trajectory" in boxes:
        tr = boxes["trajectory"]
        sc = axes[0].scatter([r["coverage"] for r in tr], [r["density"] for r in tr], c=[r["res_dim"] for r in tr], cmap="viridis", s=14)
        axes[0].plot(boxes["coverage"], boxes["density"], "s", mfc="none", mec="C3", ms=10, label="box reported")
        fig.colorbar(sc, ax=axes[0], label="restricted levers")
        axes[0].set_xlabel("coverage")
        axes[0].set_ylabel("density")
        axes[0].legend(fontsize=8)
        names = list(spec.continuous)
        for j, n in enumerate(names):
            lo, hi = spec.continuous[n]
            a, b = boxes["restricted"].get(n, [lo, hi])
            axes[1].plot([0, 1], [j, j], color="0.85", lw=6)
            axes[1].plot([(a - lo) / (hi - lo), (b - lo) / (hi - lo)], [j, j], color="C0", lw=6)
            axes[1].text(1.02, j, f"{a:.3g} .. {b:.3g}", va="center", fontsize=8)
        axes[1].set_yticks(range(len(names)), names, fontsize=8)
        axes[1].set_xlim(0, 1.35)
        axes[1].set_xlabel("share of the searched range")
        axes[1].set_title("the box's lever ranges (blue) in the searched ranges (grey)", fontsize=9)
    else:
        for a in axes:
            a.text(0.5, 0.5, boxes["note"], ha="center", va="center", wrap=True, fontsize=9)
            a.set_axis_off()
    axes[0].set_title("PRIM peeling trajectory", fontsize=10)
    fig.tight_layout()
    save(fig, out / files.DISCOVER_BOXES_FIGURE)
    plt.close(fig)


def package_rows(ds: xr.Dataset, spec: Spec) -> list[dict]:
    rows = []
    names = list(ds.target.values)
    for i in range(ds.sizes["package"]):
        r = {"package": i}
        for p in spec.continuous:
            r[p] = round(float(ds[p].values[i]), 6)
        for g in spec.categorical:
            r[_cat(g)] = str(ds[_cat(g)].values[i])
        r["p_objectives"] = round(float(ds.p_objectives.values[i]), 6)
        r["land_needed_km2"] = round(float(ds.land_needed_km2.values[i]), 3)
        r["urban_land_km2"] = round(float(ds.urban_land_km2.values[i]), 3)
        r["pareto"] = bool(ds.pareto.values[i])
        for k, n in enumerate(names):
            if "[" in n:  # per-prefecture probabilities: in discover.nc
                continue
            r[f"P({n})"] = round(float(ds.probability.values[i, k]), 6)
            if n in spec.objectives:
                fy = int(ds.first_year_met.values[i, k])
                r[f"first_year({n})"] = fy if fy > 0 else "never"
                r[f"land_km2({n})"] = round(float(ds.target_land_needed_km2.values[i, k]), 3)
        rows.append(r)
    return rows


def cheapest(ds: xr.Dataset, target: str, probability: float) -> int | None:
    """The package with the least land among those meeting ``target`` with at least
    ``probability``; None when there is none."""
    k = list(ds.target.values).index(target)
    ok = np.flatnonzero(ds.probability.values[:, k] >= probability)
    return int(ok[np.argmin(ds.land_needed_km2.values[ok])]) if ok.size else None


def main(argv=None) -> int:
    from sim.config.cli import own_arguments
    from sim.config.schema import ConfigError
    from sim.files import write_text
    from sim.outputs.dataset import code_version
    from sim.outputs.targets import to_csv

    own, rest = own_arguments(list(sys.argv[1:] if argv is None else argv), DEFAULTS)
    try:
        samples = int(own["samples"]) if own["samples"] is not None else None
        draws = int(own["draws"]) if own["draws"] is not None else None
    except ValueError:
        print(f"config error: samples and draws must be integers (samples={own['samples']!r}, draws={own['draws']!r})", file=sys.stderr)
        return 2
    try:
        spec = load_spec(own["spec"], samples=samples, draws=draws)
        # every combination's config and the targets checked before anything is projected
        from sim.engine.prepare import prepare

        combos = list(itertools.product(*spec.categorical.values())) or [()]
        cfgs = [_combo_config(spec, dict(zip(spec.categorical, c)), rest) for c in combos]
        model = prepare(cfgs[0], reduced=True)
        targets_of(spec, cfgs[0], model.regions)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    n = spec.samples * len(combos)
    print(f"discover: {n} packages x {spec.draws} draws = {n * spec.draws} projections, {cfgs[0].start_year}-{cfgs[0].end_year}", file=sys.stderr)
    t0 = time.perf_counter()
    bar = _Progress(n * spec.draws)
    try:
        ds, bases = evaluate(spec, rest, progress=bar, configs=cfgs)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    boxes = prim_boxes(ds, spec)
    out = Path(own["out"])
    out.mkdir(parents=True, exist_ok=True)
    meta = {"spec": spec.raw, "samples": spec.samples, "draws": spec.draws, "overrides": rest, "code_version": code_version(),
            "input_sha256": model.inputs.attrs.get("input_sha256", ""), "seconds": round(seconds, 2), "projections": n * spec.draws,
            "configs": {k: dataclasses.asdict(v) for k, v in bases.items()}, "boxes": boxes}
    ds.attrs.update({"title": "Policy search: lever packages x posterior draws (python -m experiments.discover)", "code_version": meta["code_version"],
                     "input_sha256": meta["input_sha256"], "spec": json.dumps(spec.raw, default=str), "threshold": spec.threshold,
                     "configs_json": json.dumps(meta["configs"], default=str)})
    files.write_netcdf(ds, out / files.DISCOVER_NC)
    rows = package_rows(ds, spec)
    write_text(to_csv(rows), out / files.PACKAGES)
    write_text(to_csv([r for r in rows if r["pareto"]]), out / files.PARETO)
    write_text(boxes_markdown(boxes, spec), out / files.BOXES)
    figures(ds, boxes, spec, out)
    write_text(json.dumps(meta, indent=1, default=str) + "\n", out / files.DISCOVER_JSON)
    print(f"{n * spec.draws} projections in {seconds:.1f} s; {int(ds.pareto.sum())} non-dominated packages; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
