"""From a config to a built model: validate it against the schema and the inputs, load the
inputs (restricted to ``geography.regions``), continue the fitted history into the 2020 state
(``jump_off``) and build the model."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import xarray as xr

from sim.axes import AWAY, RESIDENT_STATES
from sim.config.compose import CALIBRATED, calibrated_params
from sim.config.schema import CONTINUED_BY_DEFAULT, CalibrationConfig, Config, DrawsConfig, FiguresConfig, PolicyConfig, TargetsConfig, check_regions, validate
from sim.config.values import region_mask
from sim.engine.memory import check_memory
from sim.engine.model import Model, build_model
from sim.engine.runner import resolve_backend, steps, work
from sim.inputs.load import HISTORY_START, history_inputs, load_inputs, read_only
from sim.inputs.observed import read_observed
from sim.inputs.prep import ipf
from sim.files import read_cache
from sim.paths import repo_path, source_digest

HISTORY_END = 2020  # the second census: where the history ends and a projection starts


def prepare(cfg: Config, *, reduced: bool = False) -> Model:
    """Validate the config against the schema and the inputs (and the run's memory estimate
    against the memory there is: ``reduced``, for a model projected with
    :func:`sim.engine.runner.project_summary`, totals only); build the model (no projecting)."""
    validate(cfg)
    if cfg.start_year == HISTORY_START:
        inputs = history_inputs(cfg.geography.name)
    else:
        inputs = load_inputs(cfg.geography.name, cfg.start_year, census=cfg.geography.census_dir, cache=cfg.geography.cache_dir)
    check_regions(cfg, [str(r) for r in inputs.region.values], [str(r) for r in inputs.prefecture.values])
    if cfg.observed:  # read and checked before anything is computed
        read_observed(repo_path(cfg.observed), regions=["Guangxi", *[str(r) for r in inputs.region.values], *dict.fromkeys(str(p) for p in inputs.prefecture.values)])
    names = None
    if cfg.geography.regions:
        keep = region_mask(cfg.geography.regions, inputs.region.values, inputs.prefecture.values)
        names = [str(r) for r in inputs.region.values[keep]]
    # before anything is computed (the history) or allocated (the model's per-draw arrays)
    check_memory(cfg, len(names) if names else inputs.sizes["region"], reduced=reduced)
    if continues_history(cfg):
        inputs = continued_inputs(cfg, inputs)
    if names:
        inputs = inputs.sel(region=names, region_to=names)  # attributes (checksum) are kept
    return build_model(cfg, inputs)


def history_policy() -> PolicyConfig:
    """The levers of the fitted history 2011-2020: as of 2020 (the schema's defaults, which are the
    baseline options of ``configs/policy``), with the land-capacity brake off: there are no urban
    land data for 2010, and a brake fitted without them acts as a hidden time trend."""
    p = PolicyConfig()
    return dataclasses.replace(p, land=dataclasses.replace(p.land, brake_width=0.0))


def continues_history(cfg: Config) -> bool:
    """Whether the jump-off state continues the fitted history (``jump_off``: continued, or auto
    with a 2020 start on a geography with a 2010 census)."""
    if cfg.jump_off == "census" or cfg.start_year != HISTORY_END:
        return False
    return cfg.jump_off == "continued" or cfg.geography.name in CONTINUED_BY_DEFAULT


def history_config(cfg: Config) -> Config:
    """The config of the history 2010-2020 behind a 2020 jump-off: ``cfg``'s demography, one draw,
    the whole geography, the history's levers (:func:`history_policy`) whatever the scenario, and
    the central fit (``configs/params/calibrated.yaml``) for every calibrated parameter set
    (``calibrated``, ``calibrated_ensemble`` and its draws: the 2020 state is one estimate, the
    draws differ from 2021 on), else ``cfg``'s own parameters."""
    params = dataclasses.replace(cfg.params, ensemble="")
    if cfg.params.name.startswith(CALIBRATED):
        params = calibrated_params() or params
    return dataclasses.replace(
        cfg, start_year=HISTORY_START, end_year=HISTORY_END, policy=history_policy(),
        geography=dataclasses.replace(cfg.geography, regions=[]), draws=DrawsConfig(), uncertainty=dataclasses.replace(cfg.uncertainty, enabled=False),
        params=params, od_flows=False, jump_off="census",
        # fields no model reads, reset so that a sweep's jobs share their history (its backend: "auto", of the
        # history's own size, so that the 2020 state is the same whichever backend the job asks for)
        backend="auto", scenario="history", targets=TargetsConfig(), figures=FiguresConfig(), calibration=CalibrationConfig(), output=Config.output, quiet=False, resume=False,
    )


_HISTORIES: dict[str, tuple[list[str], np.ndarray]] = {}  # per process: a sweep's jobs share their history


def _history(cfg: Config) -> tuple[list[str], np.ndarray]:
    """The regions and the 2020 state (R, K, S, A) of the history of :func:`history_config`,
    projected once per process and config, and kept on disk (:func:`_history_file`) for the
    next process: a sweep's jobs and repeated runs share it."""
    hist = history_config(cfg)
    key = repr(hist)  # in this process: the dataclass tree's repr (deterministic, cheap)
    if key not in _HISTORIES:
        inputs = history_inputs(hist.geography.name)
        path = _history_file(hist, json.dumps(dataclasses.asdict(hist), sort_keys=True, default=str), inputs)
        got = _read_history(path)
        if got is None:
            import logging
            import time

            t0 = time.perf_counter()
            logging.getLogger("sim").info("projecting the fitted history 2010-2020 of %s once (kept in %s for later runs)", hist.geography.name, path.parent)
            model = build_model(hist, inputs, factors=None)
            last = None
            for _, state, _, _ in steps(model, 1, resolve_backend(hist.backend, work(model, 1)), False):
                last = state
            got = ([str(r) for r in inputs.region.values], last[0].copy())
            _write_history(path, *got)
            logging.getLogger("sim").info("the fitted history 2010-2020 of %s: %.1f s", hist.geography.name, time.perf_counter() - t0)
        if len(_HISTORIES) >= 8:
            _HISTORIES.pop(next(iter(_HISTORIES)))
        _HISTORIES[key] = got
    return _HISTORIES[key]


def _history_file(hist: Config, key: str, inputs: xr.Dataset):
    """Where the history of ``hist`` is kept: the cache directory (``geography.cache_dir``,
    ``$URBSIM_CACHE_DIR``, ...), named by the digest of its config, its inputs' checksums and
    the source (:func:`sim.paths.source_digest`)."""
    from sim.paths import cache_dir

    h = hashlib.sha256("\n".join([key, inputs.attrs.get("input_sha256", ""), inputs.attrs.get("fertility_reference", ""), source_digest()]).encode()).hexdigest()
    return cache_dir(hist.geography.cache_dir) / "history" / f"{hist.geography.name}-{h[:32]}.npz"


def _read_history(path) -> tuple[list[str], np.ndarray] | None:
    """The kept history, or None: not there, or unreadable or not a state (removed and logged,
    :func:`sim.files.read_cache`): computed again."""

    def read(p):
        with np.load(p, allow_pickle=False) as f:
            regions, state = [str(r) for r in f["regions"]], np.array(f["state"])
        if state.ndim != 4 or state.shape[0] != len(regions) or not np.isfinite(state).all() or (state < 0).any():
            raise ValueError(f"not a 2020 state of {len(regions)} regions (shape {state.shape}, finite and non-negative)")
        return regions, state

    return read_cache(path, read)


def _write_history(path, regions: list[str], state: np.ndarray) -> None:
    """Atomically (a temporary file, then a rename); a cache that cannot be written is skipped."""
    import os
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, regions=np.array(regions), state=state)
        os.replace(tmp, path)
    except OSError:
        pass


def history_state(cfg: Config) -> np.ndarray:
    """The 2020 state (R, K, S, A) of the history 2010-2020 of :func:`history_config`."""
    return _history(cfg)[1].copy()


def history_regions(cfg: Config) -> list[str]:
    """The regions of the history (the 2010 census's), in the order of :func:`history_state`."""
    return list(_history(cfg)[0])


def continued_inputs(cfg: Config, census: xr.Dataset) -> xr.Dataset:
    """The 2020 inputs with the state split continuing the fitted history: in every region the
    history's 2020 resident states (rural, urban_local, urban_migrant by sex and age) are the prior
    of an iterative proportional fit to the census margins: residents by sex and age, and the
    census split's resident state totals (urban and rural residents, the urban_migrant stock
    from residents with hukou elsewhere). The ``away`` state, which no census counts, is the
    history's. The census split (the derivation's) is kept as ``population_census``. Kept per
    process for the history's config and the census state (the jobs of a sweep that differ in
    their policy share it): a shallow copy is returned, its arrays the kept ones, read-only (a
    caller that wrote into them would change every later job's inputs: it fails instead)."""
    hist = history_config(cfg)
    key = (repr(hist), tuple(census.region.values.tolist()), hashlib.sha256(np.ascontiguousarray(census.population.values)).hexdigest())
    if key not in _CONTINUED:
        if len(_CONTINUED) >= 8:
            _CONTINUED.pop(next(iter(_CONTINUED)))
        _CONTINUED[key] = read_only(_continued(cfg, census).copy(deep=True))  # arrays of its own, not the census's
    return _CONTINUED[key].copy(deep=False)


_CONTINUED: dict[tuple, xr.Dataset] = {}


def _continued(cfg: Config, census: xr.Dataset) -> xr.Dataset:
    hist_all = history_state(cfg)
    hist_regions = history_regions(cfg)
    pop = census.population.values.astype(float)
    out = pop.copy()
    unmatched = []
    for r, name in enumerate(census.region.values.tolist()):
        if name not in hist_regions:  # a region the 2010 census does not have: the census split
            unmatched.append(name)
            continue
        hist = hist_all[hist_regions.index(name)]
        seed = hist[list(RESIDENT_STATES)]
        margins = {(0,): pop[r, RESIDENT_STATES].sum(axis=(1, 2)), (1, 2): pop[r, RESIDENT_STATES].sum(axis=0)}
        out[r, RESIDENT_STATES] = ipf(np.maximum(seed, 1e-9), margins)
        out[r, AWAY] = hist[AWAY]
    ds = census.assign(population=(census.population.dims, out, census.population.attrs), population_census=census.population)
    ds.attrs["jump_off"] = (
        "continued: the fitted history 2010-2020's state raked to the 2020 census margins "
        f"(params {cfg.params.name}; away state from the history: {out[:, AWAY].sum():.0f} persons, census split {pop[:, AWAY].sum():.0f})"
        + (f"; the census split for the {len(unmatched)} region(s) the 2010 census does not have: {', '.join(unmatched)}" if unmatched else "")
    )
    return ds
