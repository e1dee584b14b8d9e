"""The config outside a Hydra app: the schema registered in Hydra's ConfigStore, and a config
composed from ``configs/`` with overrides (for tests, notebooks and the commands that are not
Hydra apps)."""

from __future__ import annotations

import copy

from sim.config.schema import Config
from sim.paths import CONFIG_DIR


def compose_config(overrides=(), config_name: str = "config") -> Config:
    """The :class:`Config` of ``configs/<config_name>.yaml`` (``config``: a projection,
    ``calibration``: the fit) with Hydra ``overrides`` (not yet validated against the inputs:
    :func:`sim.engine.prepare.prepare` does that). Every error in the overrides is a
    :class:`sim.config.schema.ConfigError` naming the field."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from sim.config.cli import check_group_choices, config_exceptions, describe, rewrite_overrides
    from sim.config.schema import ConfigError

    check_group_choices(list(overrides))
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        try:
            return OmegaConf.to_object(compose(config_name=config_name, overrides=rewrite_overrides(list(overrides))))
        except ConfigError:
            raise
        except config_exceptions() as e:  # Hydra's and OmegaConf's, in the schema's words
            raise ConfigError(describe(e)) from e


def register_configs() -> None:
    """Store the schema in Hydra's ConfigStore (group ``schema``), for ``configs/config.yaml``."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(group="schema", name="config", node=Config)


CALIBRATED = "calibrated"  # configs/params/calibrated.yaml: the central fit of python -m calibration


def calibrated_params():
    """The central calibrated parameters (``configs/params/calibrated.yaml``) as a
    :class:`sim.config.schema.ParamsConfig`, or None when the file is missing."""
    import yaml

    from sim.config.schema import ParamsConfig

    path = CONFIG_DIR / "params" / f"{CALIBRATED}.yaml"
    if not path.is_file():
        return None
    st = path.stat()
    key = (st.st_mtime_ns, st.st_size)
    if _CALIBRATED.get("key") != key:  # parsed once per process and version of the file
        _CALIBRATED.update(key=key, dict=yaml.safe_load(path.read_text(encoding="utf-8")))
    d = copy.deepcopy(_CALIBRATED["dict"])
    return ParamsConfig(**{k: v for k, v in d.items() if k in ParamsConfig.__dataclass_fields__})


_CALIBRATED: dict = {}


def job_composer():
    """A :class:`sim.config.jobs.JobComposer` of ``configs/config.yaml`` outside a Hydra app: it
    composes each distinct set of config-group choices once and applies value overrides to a
    copy, with the schema's validation (what the batched launcher does for a sweep's jobs), for
    callers that compose many configs in one process (the explorer)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from sim.config.jobs import JobComposer

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):  # restores the global Hydra on exit
        h = GlobalHydra.instance().hydra
        master = h.compose_config("config", overrides=[], run_mode=RunMode.MULTIRUN, with_log_configuration=False)
        return JobComposer(h.config_loader, master)
