"""Writing files, and the names of the files a run writes.

Every file is written atomically (a temporary file in the same directory, then one rename), so
a reader sees the old file or the new one, never half of one. Output file names are written
down here once; everything that writes or finds them takes them from here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import xarray as xr

# A run directory (python -m sim)
PROJECTION = "projection.nc"  # the projection (the default of the config's `output`)
TARGETS = "targets.csv"  # each target: met or not, first year met, land needed
REGIONS = "regions.csv"  # every region's urban share in targets.region_years
REPORT = "report.txt"  # the target report as text
RUN_CONFIG = "config.yaml"  # the run's command-line overrides and its resolved config
STATUS = "status.json"  # running / ok (with every file's SHA-256) / failed
FAILURE = "last_failure.json"  # a run that failed in a directory holding a complete result: its error (the result stays)
LOCK = ".lock"  # held (flock) by the run writing into the directory
STAGING = ".staging"  # a run's files before they are published into the directory as one set
FIGURES = "figures"  # folder of the run's figures
REPORT_HTML = "report.html"  # python -m sim.report
OVERRIDES = "overrides.txt"  # the explorer's export: the command line that reproduces the run
# A sweep directory (python -m sim.collect)
COLLECTED = "collected.nc"
COLLECTED_ZARR = "collected.zarr"
COLLECTED_TARGETS = "collected_targets.csv"
PARTS = "parts"  # a batched sweep's pieces (part-<p>.nc), when it has more than one or runs in chunks
MANIFEST = "manifest.json"  # in PARTS: the pieces and their jobs
# python -m sim.compare
TARGET_GAPS = "target_gaps.csv"
# python -m sim.solve
SOLVE = "solve.json"
SOLVE_PATH = "solve_path.csv"
# python -m calibration (a run directory) and python -m calibration.backtest
FITTED = "fitted.csv"
PARAMETERS = "parameters.csv"
POSTERIOR = "posterior.nc"
FIT_REPORT = "fit_report.md"
FIT_FIGURE = "fit.png"
CALIBRATION = "calibration.json"
BACKTEST = "backtest.csv"
BACKTEST_SUMMARY = "backtest_summary.csv"
CONTINUITY = "continuity.csv"  # python -m calibration.continuity
# python -m calibration.holdout
HOLDOUT = "holdout.csv"
HOLDOUT_SUMMARY = "holdout_summary.csv"
HOLDOUT_FIGURE = "holdout.png"
HOLDOUT_JSON = "holdout.json"
# python -m experiments.sensitivity
SOBOL_INDICES = "sobol_indices.csv"
SENSITIVITY = "sensitivity.json"
# python -m experiments.discover
PACKAGES = "packages.csv"  # every lever package: lever values, probabilities, land
PARETO = "pareto.csv"  # the non-dominated packages
BOXES = "boxes.md"  # PRIM boxes
DISCOVER_NC = "discover.nc"
DISCOVER_JSON = "discover.json"
DISCOVER_PARETO_FIGURE = "pareto.png"
DISCOVER_BOXES_FIGURE = "boxes.png"
# The inputs shipped in sim/data (python -m sim.derive)
BOUNDARIES = "guangxi_prefectures_boundaries.json"  # prefecture outlines for the maps
OBSERVED = "guangxi_observed.csv"  # the observed series the calibration fits
OBSERVATION_ERRORS = "observation_errors.csv"  # the observation model's sizes, estimated from the record


def inputs_name(geography: str, year: int) -> str:
    """The inputs of ``geography`` at census ``year`` (``sim/data``, or the cache of derived ones)."""
    return f"{geography}_{year}.nc"


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give a finished temporary file the usual permissions (mkstemp makes it private) and
    rename it onto ``path`` in one step, so that readers see the old file or the new one."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


# zlib level of the netCDF files written unless a caller says otherwise (``compression`` of the
# config, ``python -m sim.collect --compression``). Off: the engine's float64 outputs shrink by
# about a quarter at level 4 but cost 50 times the time to write (a 64-job sweep's full outputs,
# 770 MB: 29 s at level 4, 23 s at 1, 0.5 s off; measured in session 15).
COMPRESSION = 0


# With ``write_netcdf(release=True)``: data variables of at least this many bytes are written one
# call each (the smaller ones between them together), each deleted from the dataset once written.
RELEASE_BYTES = 16 * 2**20


def _release_groups(ds: xr.Dataset) -> list[list[str]]:
    """The data variables of ``ds`` in their order, in runs: each variable of
    :data:`RELEASE_BYTES` or more alone, the smaller ones between them together."""
    groups: list[list[str]] = [[]]
    for k, v in ds.data_vars.items():
        if v.nbytes >= RELEASE_BYTES:
            groups += [[k], []]
        else:
            groups[-1].append(k)
    return [g for g in groups if g]


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike, compression: int = COMPRESSION, *, release: bool = False) -> Path:
    """Write ``ds`` to ``path`` atomically: a temporary file in the same directory, then rename;
    every data variable zlib-compressed at level ``compression`` (0: not compressed).

    ``release``: the large data variables are written one at a time (appended to the file in
    their order) and each is deleted from ``ds`` once written (also when a later part fails),
    so that its memory is free for the pages of the file still to be written: for a caller
    that holds nothing else of ``ds`` and does not read it again (the batched launcher's
    collected dataset, the largest thing it has). The file reads back identical to the one
    ``release=False`` writes. On this 2-core VM, whose host backs a page the first time the
    guest touches it (about 1.7 s a GB), the 64-job group sweep's 770 MB took 1.25-2.1 s to
    write against 2.2-2.6 s in one call (benchmarks/README.md)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        enc = {k: {"zlib": True, "complevel": int(compression), "shuffle": True} if compression else {"zlib": False} for k in ds.data_vars}
        groups = (_release_groups(ds) or [[]]) if release else [list(ds.data_vars)]
        for i, names in enumerate(groups):
            # every coordinate in each part, in the dataset's order (the first writes them, the
            # others write the same values again)
            part = ds if len(groups) == 1 else ds.drop_vars([k for k in ds.data_vars if k not in names])
            part.to_netcdf(tmp, mode="w" if i == 0 else "a", engine="netcdf4", encoding={k: enc[k] for k in names})
            if release and len(groups) > 1:
                del part
                for k in names:
                    del ds[k]
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(text: str, path: str | os.PathLike) -> Path:
    """Write a text file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_cache(path: str | os.PathLike, read):
    """``read(path)``, or None when there is no such file. A cache file that cannot be read, or
    that ``read`` refuses (it raises: truncated, of another format, NaN where values must be
    finite), is removed and logged by name, so that the caller builds it again: a corrupt cache
    never stops a run, nor needs deleting by hand."""
    import logging

    path = Path(path)
    if not path.is_file():
        return None
    try:
        return read(path)
    except Exception as e:  # any corruption: the cache is only a copy of what can be computed
        reason = (str(e).splitlines() or [""])[0][:200]
        logging.getLogger("sim").warning("%s: cache unreadable (%s: %s); removed, built again", path, type(e).__name__, reason)
        try:
            path.unlink()
        except OSError:
            pass
        return None
