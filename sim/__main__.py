"""Hydra entry point: ``python -m sim [overrides]`` (``--help``, ``--cfg job``, ``-m`` as usual)."""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sim.schema import ConfigError, register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="config")
def main(cfg: DictConfig) -> None:
    from sim.app import run

    try:
        obj = OmegaConf.to_object(cfg)
        run(obj, HydraConfig.get().runtime.output_dir)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
