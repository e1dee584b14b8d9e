"""``python -m calibration [key=value ...]``: fit the engine to 2010-2020 (Hydra app on the same
config tree as ``python -m sim``, primary config ``configs/calibration.yaml``)."""

from __future__ import annotations

import sys

import numpy as np

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sim.config.cli import run_app
from sim.config.compose import register_configs
from sim.config.schema import ConfigError

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="calibration")
def main(cfg: DictConfig) -> None:
    from calibration.run import run

    hc = HydraConfig.get()
    try:
        res = run(OmegaConf.to_object(cfg), hc.runtime.output_dir, overrides=list(hc.overrides.task))
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        sys.exit(2)
    st = res["statistics"]
    print(f"calibration: {res['seconds']:.1f} s; fit cost {res['cost']:.2f}")
    for k, s in st.items():
        print(f"  {k:20s} n={s['n']:4d}  RMSE {s['rmse']:.3f} {s['unit']}  max {s['max_abs']:.3f} {s['unit']}")
    if res["posterior"] is not None:
        post = res["posterior"]
        kind = {"metropolis": "Metropolis chains", "emcee": "emcee walkers"}.get(res["sampler"], "")
        how = "the Laplace approximation" if res["sampler"] == "laplace" else f"{post.chains} {kind} x {post.iterations} iterations; acceptance {post.acceptance:.2f}, largest split R-hat {res['max_rhat']:.3f}"
        if post.ess is not None:
            how += f", smallest bulk ESS {np.nanmin(post.ess):.0f}"
        print(f"  posterior: {len(post.thetas)} draws from {how}")
    print(f"report: {hc.runtime.output_dir}/fit_report.md")
    for p in res["written"]:
        print(f"wrote {p}")


if __name__ == "__main__":
    run_app(main)
