"""Runs on disk: a run directory's status (``status.json``: running, ok with every file's
SHA-256, or failed), the config digest that decides whether a result can be reused (resume),
and finding and opening finished runs: a run directory, a sweep directory, or a netCDF file (a
collected sweep with a ``scenario`` dimension is split into its runs)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import socket
from pathlib import Path

import xarray as xr

from sim import files
from sim.config.schema import DERIVED_ON_FIRST_USE, Config, FiguresConfig, Target, TargetsConfig
from sim.files import write_text
from sim.paths import DATA_DIR, census_dir, repo_path, source_digest, tree_digest

# fields that do not change a run's results, left out of its config digest
NOT_RESULTS = ("resume", "quiet")


def config_digest(cfg: Config) -> str:
    """SHA-256 of the resolved config, less the fields that do not change the results."""
    d = dataclasses.asdict(cfg)
    for k in NOT_RESULTS:
        d.pop(k, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_status(out_dir: str | Path) -> dict:
    """The run's ``status.json`` (empty when there is none or it cannot be read)."""
    try:
        return json.loads((Path(out_dir) / files.STATUS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@functools.cache
def _inputs_digest(derived: bool, census: str) -> str:
    tables = [census_dir(census) / f"census_county_{y}.csv" for y in (2010, 2020)] if derived else []
    return tree_digest(DATA_DIR, *tables)


def inputs_digest(cfg: Config) -> str:
    """SHA-256 of the input files a run of ``cfg`` may read: the shipped inputs (``sim/data``:
    censuses, observed series, the calibrated ensemble), for a geography derived on first use
    the census tables it is derived from, and the figures of ``observed``. Read once per
    process (but ``observed``)."""
    derived = cfg.geography.name in DERIVED_ON_FIRST_USE
    digest = _inputs_digest(derived, cfg.geography.census_dir if derived else "")
    if cfg.observed:  # the figures an ensemble is conditioned on
        digest = tree_digest(repo_path(cfg.observed)) + digest
    return digest


# what a result is of, in the order a changed one is named: (status.json key, what it digests)
IDENTITY = (("config_sha256", "the config"), ("code_sha256", "the code (sim, models, configs)"), ("inputs_sha256", "the input files"))


def run_identity(cfg: Config) -> dict[str, str]:
    """What a run's results are a function of: its config, the code and the input files (each
    a SHA-256, recorded in ``status.json``); a result is reused (``resume=true``) only when all
    three are the same."""
    return {"config_sha256": config_digest(cfg), "code_sha256": source_digest(), "inputs_sha256": inputs_digest(cfg)}


def not_reusable(out_dir: str | Path, identity: dict[str, str]) -> str | None:
    """None when ``out_dir`` holds a complete result of ``identity`` (:func:`run_identity`), else
    why not, in a few words."""
    st = read_status(out_dir)
    if st.get("status") != "ok":
        return "no complete result there" if not st else f"the stored run's status is {st.get('status')!r}"
    for key, what in IDENTITY:
        if st.get(key) != identity[key]:
            return f"{what} changed since the stored result" if st.get(key) else f"the stored result does not record {what} it was made with"
    if not is_complete(out_dir):
        return "a file of the stored result is missing or altered"
    return None


def is_complete(out_dir: str | Path) -> bool:
    """True when ``out_dir`` holds a finished run: status ``ok`` and every file it lists present
    with its recorded SHA-256 (whose run it is: :func:`not_reusable`)."""
    st = read_status(out_dir)
    if st.get("status") != "ok":
        return False
    listed = st.get("files") or {}
    return bool(listed) and all((Path(out_dir) / n).is_file() and file_sha256(Path(out_dir) / n) == sha for n, sha in listed.items())


def write_status(out_dir: Path, **fields) -> None:
    """Write the run's ``status.json`` (atomically)."""
    write_text(json.dumps(fields, indent=1, default=str) + "\n", out_dir / files.STATUS)


def job_info() -> dict:
    """Where the job runs: host, process and the SLURM job, when there is one."""
    env = {k: os.environ[k] for k in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_CPUS_PER_TASK") if k in os.environ}
    return {"host": socket.gethostname(), "pid": os.getpid(), **({"slurm": env} if env else {})}


class RunFileError(ValueError):
    """A run's file is missing, altered or unreadable; the message names it."""


def check_recorded(path: Path) -> None:
    """Where the run beside ``path`` recorded the file's SHA-256 (its ``status.json``), the file
    must still have it: raise :class:`RunFileError` if it differs."""
    path = Path(path)
    listed = (read_status(path.parent).get("files") or {}) if path.parent.is_dir() else {}
    sha = listed.get(path.name)
    if sha and file_sha256(path) != sha:
        raise RunFileError(f"{path}: its SHA-256 differs from the one its run recorded in {path.parent / files.STATUS} (the file was changed or cut short); run it again")


def open_run(path: Path) -> xr.Dataset:
    """A finished netCDF file, checked against its run's recorded SHA-256, read into memory and
    closed; :class:`RunFileError` (one line naming the file) when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise RunFileError(f"{path}: no such file")
    check_recorded(path)
    try:
        with xr.open_dataset(path) as ds:
            return ds.load()
    except (OSError, ValueError, RuntimeError) as e:
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise RunFileError(f"{path}: not a readable netCDF file (truncated or of another format): {reason}") from None


def find_runs(path: str | Path) -> list[Path]:
    """``projection.nc`` files under ``path`` (itself, when it is a file); sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if (path / files.PROJECTION).is_file():
        return [path / "projection.nc"]
    found = sorted(p for p in path.rglob("*.nc") if not p.name.startswith("."))
    if not found:
        raise FileNotFoundError(f"{path}: no projection.nc (a run directory, a sweep directory or a .nc file is expected)")
    return found


def load_runs(paths) -> dict[str, xr.Dataset]:
    """``{label: dataset}`` for every run under ``paths``. Labels are the runs' scenarios, made
    unique with the run's directory when two runs share a scenario."""
    items: list[tuple[str, Path, xr.Dataset]] = []
    for p in paths:
        for f in find_runs(p):
            ds = open_run(f)
            if "scenario" in ds.dims:
                for s in ds.scenario.values:
                    run = ds.sel(scenario=s).assign_attrs(scenario=str(s))
                    if "config_json" in run.coords:  # sim.collect keeps each run's config per scenario
                        run = run.assign_attrs(config_json=str(run.config_json.values)).drop_vars("config_json")
                    items.append((str(s), f, run))
            else:
                items.append((str(ds.attrs.get("scenario", f.parent.name)), f, ds))
    labels = [lab for lab, _, _ in items]
    out = {}
    for lab, f, ds in items:
        key = lab if labels.count(lab) == 1 else f"{lab} ({f.parent.name})"
        n, base = 2, key
        while key in out:
            key, n = f"{base} #{n}", n + 1
        out[key] = ds
    return out


def recorded_config(ds: xr.Dataset) -> dict:
    """The resolved config a run recorded (``config_json``)."""
    try:
        return json.loads(ds.attrs["config_json"])
    except (KeyError, ValueError):
        return {}


def targets_of(ds: xr.Dataset) -> TargetsConfig:
    """The run's targets, rebuilt from its recorded config."""
    t = recorded_config(ds).get("targets", {})
    return TargetsConfig(
        name=t.get("name", "none"),
        groups={k: list(v) for k, v in t.get("groups", {}).items()},
        targets=[Target(**x) for x in t.get("targets", [])],
        region_years=list(t.get("region_years", [])),
    )


def figures_of(ds: xr.Dataset) -> FiguresConfig:
    """The run's figure settings (defaults where it recorded none)."""
    f = recorded_config(ds).get("figures", {})
    return FiguresConfig(**{k: v for k, v in f.items() if k in FiguresConfig.__dataclass_fields__})
