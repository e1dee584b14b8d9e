"""Global sensitivity of the plan's outcomes to levers and uncertain parameters (Sobol indices).

``python -m experiments.sensitivity [--spec FILE] [--samples N] [--out DIR] [override ...]``

Factors and ranges come from ``experiments/sensitivity.yaml`` (``--spec``); each factor multiplies
one parameter of the base scenario (the per-draw multipliers of :mod:`sim.engine.model`). SALib's
Saltelli sampling (Sobol' sequence, ``N x (k + 2)`` points for ``k`` factors, no second-order
terms) gives one parameter set per point; all of them are projected as the draws of one ensemble,
in batches, with reduced outputs (:func:`sim.engine.runner.project_summary`). Outputs (Guangxi):

- ``urban_share_2025``, ``urban_share_2035``: resident urbanization rate;
- ``land_needed_2035_km2``: urban land needed at the per-capita standard for the 2035 urban residents;
- ``urban_land_2035_km2``: urban construction land the quota rules provide by 2035.

SALib's Sobol analysis gives first-order (S1) and total-order (ST) indices with 95 % bootstrap
confidence half-widths (Saltelli et al. 2010, Computer Physics Communications 181: 259-270).
Writes ``sobol_indices.csv``, ``sobol_indices.png`` and ``sensitivity.json`` (spec, resolved
config, code version, input checksum, sample count) into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from sim import files

SPEC = Path(__file__).with_name("sensitivity.yaml")
OUTPUTS = ("urban_share_2025", "urban_share_2035", "land_needed_2035_km2", "urban_land_2035_km2")


def load_spec(path: str | Path, samples: int | None = None) -> dict:
    from sim.config.parameters import UNCERTAIN_PARAMETERS
    from sim.config.schema import ConfigError

    spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    allowed = [*UNCERTAIN_PARAMETERS, "land_link"]
    for name, bounds in spec["factors"].items():
        if name not in allowed:
            raise ConfigError(f"factors.{name}: unknown factor; allowed: {', '.join(allowed)}")
        if not (isinstance(bounds, list) and len(bounds) == 2 and 0 <= bounds[0] < bounds[1]):
            raise ConfigError(f"factors.{name} = {bounds!r}: must be [low, high] with 0 <= low < high")
    if samples is not None:
        spec["samples"] = samples
    n = int(spec["samples"])
    if n < 2 or n & (n - 1):
        raise ConfigError(f"samples = {n}: must be a power of 2 (Sobol' sequence), at least 2")
    return spec


def evaluate(cfg, factors: dict[str, np.ndarray], batch: int = 512, backend: str = "numba") -> dict[str, np.ndarray]:
    """The outputs for every row of ``factors`` (multipliers, one array per factor)."""
    from sim.engine.prepare import prepare
    from sim.engine.runner import project_summary

    n = len(next(iter(factors.values())))
    out = {k: np.empty(n) for k in OUTPUTS}
    std = cfg.policy.land.capacity_m2_per_person
    base = prepare(cfg, reduced=True)
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        c = dataclasses.replace(cfg, draws=dataclasses.replace(cfg.draws, start=0, count=hi - lo))
        model = dataclasses.replace(base, cfg=c, factors={k: np.asarray(v[lo:hi], dtype=float) for k, v in factors.items()})
        s = project_summary(model, backend=backend)
        yi = {int(y): i for i, y in enumerate(s.years)}
        urban = s.urban.sum(axis=-1)
        share = urban / s.residents.sum(axis=-1)
        out["urban_share_2025"][lo:hi] = share[yi[2025]]
        out["urban_share_2035"][lo:hi] = share[yi[2035]]
        out["land_needed_2035_km2"][lo:hi] = urban[yi[2035]] * std / 1e6
        out["urban_land_2035_km2"][lo:hi] = s.land[yi[2035]].sum(axis=-1)
    return out


def analyze(spec: dict, cfg, backend: str = "numba") -> tuple[list[dict], dict]:
    from SALib.analyze import sobol as sobol_analyze
    from SALib.sample import sobol as sobol_sample

    names = list(spec["factors"])
    problem = {"num_vars": len(names), "names": names, "bounds": [spec["factors"][n] for n in names]}
    X = sobol_sample.sample(problem, int(spec["samples"]), calc_second_order=False, seed=int(spec["seed"]))
    Y = evaluate(cfg, {n: X[:, j] for j, n in enumerate(names)}, backend=backend)
    rows = []
    for o in OUTPUTS:
        si = sobol_analyze.analyze(problem, Y[o], calc_second_order=False, seed=int(spec["seed"]))
        for j, n in enumerate(names):
            rows.append({"output": o, "factor": n, "S1": si["S1"][j], "S1_conf": si["S1_conf"][j], "ST": si["ST"][j], "ST_conf": si["ST_conf"][j]})
    summary = {o: {"mean": float(Y[o].mean()), "sd": float(Y[o].std()), "p5": float(np.quantile(Y[o], 0.05)), "p95": float(np.quantile(Y[o], 0.95))} for o in OUTPUTS}
    return rows, {"runs": int(X.shape[0]), "outputs": summary}


def figure(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim.outputs.figures import save

    factors = list(dict.fromkeys(r["factor"] for r in rows))
    fig, axes = plt.subplots(1, len(OUTPUTS), figsize=(4.2 * len(OUTPUTS), 0.45 * len(factors) + 1.6), sharey=True)
    y = np.arange(len(factors))
    for ax, o in zip(axes, OUTPUTS):
        sel = [next(r for r in rows if r["output"] == o and r["factor"] == f) for f in factors]
        ax.barh(y + 0.2, [r["ST"] for r in sel], 0.4, xerr=[r["ST_conf"] for r in sel], color="#c44e52", label="total order (ST)")
        ax.barh(y - 0.2, [r["S1"] for r in sel], 0.4, xerr=[r["S1_conf"] for r in sel], color="#4c72b0", label="first order (S1)")
        ax.set_title(o.replace("_", " "), fontsize=10)
        ax.set_xlabel("Sobol index (1)")
        ax.axvline(0, color="k", lw=0.6)
    axes[0].set_yticks(y, factors)
    axes[0].invert_yaxis()
    axes[-1].legend(loc="lower right", fontsize=8)
    fig.suptitle("Global sensitivity (Saltelli sampling, Sobol indices; bars: 95 % confidence)", fontsize=11)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.sensitivity", description=__doc__.split("\n\n")[0])
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of the base run, after the spec's base_overrides")
    ap.add_argument("--spec", default=str(SPEC), help="factors, ranges and base scenario (YAML)")
    ap.add_argument("--samples", type=int, help="N of Saltelli's scheme (a power of 2); overrides the spec")
    ap.add_argument("--out", default="outputs/sensitivity", help="output directory")
    ap.add_argument("--backend", default="numba", choices=("numba", "numpy"))
    a = ap.parse_args(argv)

    from sim.config.compose import compose_config
    from sim.config.schema import ConfigError, validate
    from sim.engine.prepare import prepare
    from sim.files import write_text
    from sim.outputs.dataset import code_version
    from sim.outputs.targets import to_csv

    try:
        spec = load_spec(a.spec, a.samples)
        cfg = validate(compose_config(list(spec.get("base_overrides", [])) + list(a.overrides)))
        inputs_sha = prepare(cfg).inputs.attrs.get("input_sha256", "")
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    rows, info = analyze(spec, cfg, backend=a.backend)
    seconds = time.perf_counter() - t0
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(to_csv([{k: (round(float(v), 6) if k not in ("output", "factor") else v) for k, v in r.items()} for r in rows]), out / files.SOBOL_INDICES)
    figure(rows, out / "sobol_indices.png")
    meta = {"spec": spec, "config": dataclasses.asdict(cfg), "code_version": code_version(), "input_sha256": inputs_sha, "seconds": round(seconds, 2), **info}
    write_text(json.dumps(meta, indent=1, default=str) + "\n", out / files.SENSITIVITY)
    print(f"{info['runs']} projections in {seconds:.1f} s")
    for o in OUTPUTS:
        print(f"\n{o}: mean {info['outputs'][o]['mean']:.4g}, 90 % range {info['outputs'][o]['p5']:.4g} .. {info['outputs'][o]['p95']:.4g}")
        print(f"  {'factor':<18}{'S1':>8}{'±':>7}{'ST':>8}{'±':>7}")
        for r in (r for r in rows if r["output"] == o):
            print(f"  {r['factor']:<18}{r['S1']:8.3f}{r['S1_conf']:7.3f}{r['ST']:8.3f}{r['ST_conf']:7.3f}")
    print(f"\nwrote {out / 'sobol_indices.csv'}, {out / 'sobol_indices.png'}, {out / 'sensitivity.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
