"""From a config to a built model: validate it against the schema and the inputs, load the
inputs (restricted to ``geography.regions``) and build the model. Nothing is projected."""

from __future__ import annotations

from sim.config.schema import Config, check_regions, validate
from sim.config.values import region_mask
from sim.engine.model import Model, build_model
from sim.inputs.load import load_inputs


def prepare(cfg: Config) -> Model:
    """Validate the config against the schema and the inputs; build the model (no projecting)."""
    validate(cfg)
    inputs = load_inputs(cfg.geography.name, cfg.start_year, census=cfg.geography.census_dir, cache=cfg.geography.cache_dir)
    check_regions(cfg, [str(r) for r in inputs.region.values], [str(r) for r in inputs.prefecture.values])
    if cfg.geography.regions:
        keep = region_mask(cfg.geography.regions, inputs.region.values, inputs.prefecture.values)
        names = [str(r) for r in inputs.region.values[keep]]
        inputs = inputs.sel(region=names, region_to=names)  # attributes (checksum) are kept
    return build_model(cfg, inputs)
