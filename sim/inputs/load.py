"""Loading the engine's derived inputs: ``sim/data/{geography}_{year}.nc`` (committed), or for the
geographies covering all of China, a file derived from the census table on first use and cached
(``{cache}/{geography}_{year}_{table sha256[:16]}.nc``: a changed table is derived afresh)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import xarray as xr

from sim import files
from sim.config.schema import DERIVED_ON_FIRST_USE
from sim.files import read_cache
from sim.paths import DATA_DIR, cache_dir, census_dir


def input_path(geography: str, year: int, data_dir: Path | None = None) -> Path:
    return (data_dir or DATA_DIR) / files.inputs_name(geography, year)


def derived_path(geography: str, year: int, census: str = "", cache: str = "") -> Path:
    """The cached inputs of a geography derived on first use, deriving them if missing (written
    to a temporary file and renamed, so that jobs deriving at once never read half a file)."""
    from sim.inputs.derive import build_china, sha256, write

    table = census_dir(census) / f"census_county_{year}.csv"
    if not table.exists():
        raise FileNotFoundError(f"geography={geography!r} is derived from {table}, which is missing (set geography.census_dir or URBSIM_CENSUS_DIR)")
    path = cache_dir(cache) / f"{geography}_{year}_{sha256(table)[:16]}.nc"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write(build_china(table.parent, geography), path)
    return path


def read_only(ds: xr.Dataset) -> xr.Dataset:
    """Mark every array of ``ds`` read-only, for a dataset a cache hands out as shallow copies: a
    caller that wrote into it would change every later caller's data, and fails instead."""
    for v in ds.variables.values():
        v.values.flags.writeable = False
    return ds


def load_inputs(geography: str, year: int, regions: list[str] | None = None, data_dir: Path | None = None, *, census: str = "", cache: str = "") -> xr.Dataset:
    """The inputs of ``geography`` at census ``year``, restricted to ``regions`` when given.
    ``census``, ``cache``: the census directory and the cache of derived geographies
    (:func:`census_dir`, :func:`cache_dir`).

    The dataset's ``input_sha256`` attribute is the checksum of the file read."""
    path = derived_path(geography, year, census, cache) if geography in DERIVED_ON_FIRST_USE else input_path(geography, year, data_dir)
    if not path.exists():
        raise FileNotFoundError(f"no inputs for geography={geography!r}, start_year={year}: {path} is missing (run python -m sim.derive)")
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _LOADED:  # read once per process (a sweep's jobs read the same file)
        def read(p):
            with xr.open_dataset(p) as f:
                return f.load()

        if geography in DERIVED_ON_FIRST_USE:  # a cache: a corrupt file is removed, logged and derived again
            ds = read_cache(path, read)
            if ds is None:
                path = derived_path(geography, year, census, cache)
                ds = read(path)
        else:
            ds = read(path)
        ds.attrs["input_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        ds.attrs["input_file"] = path.name
        read_only(ds)  # shared by every caller
        if len(_LOADED) >= 4:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = ds
    ds = _LOADED[key].copy(deep=False)  # its own attributes and variables, the arrays shared (read-only)
    if regions:
        ds = ds.sel(region=list(regions), region_to=list(regions))
    return ds


_LOADED: dict[tuple, xr.Dataset] = {}  # (path, mtime, size) -> the inputs read from it


HISTORY_START = 2010  # the first census: the start of the fitted history 2010-2020
FERTILITY_REFERENCE_YEAR = 2020
FERTILITY_VARIABLES = ("tfr_urban", "tfr_rural", "itfr", "srb")


def history_inputs(geography: str, data_dir: Path | None = None) -> xr.Dataset:
    """The inputs of a 2010 start: the 2010 census state with the fertility levels (urban and
    rural TFR by region) of the 2020 census, so that the history 2010-2020 and a projection from
    2020 use one fertility reference, moved in time by the fitted path (the parameter table's
    ``tfr_*`` knots, relative to the 2020 level), and the sex ratio at birth of the 2020 census
    (boys per girl aged 0; Guangxi 1.145). The 2010 census's own child-woman ratio is held down
    by its under-count of young children (the ``child_coverage`` parameter), and its age-0 sex
    ratio (1.22) raised by that of girls: the 2020 census counts the cohorts born 2010-2020 at
    1.135-1.149 (calibration/README.md, "The 2010 start")."""
    start = load_inputs(geography, HISTORY_START, data_dir=data_dir)
    ref = load_inputs(geography, FERTILITY_REFERENCE_YEAR, data_dir=data_dir)
    out = start.assign({v: ref[v] for v in FERTILITY_VARIABLES})
    out.attrs["fertility_reference"] = f"{ref.attrs['input_file']} (sha256 {ref.attrs['input_sha256'][:16]})"
    return out


def observation_errors(data_dir: Path | None = None) -> dict[tuple[str, str], float]:
    """The observation model's sizes (``sim/data/observation_errors.csv``, derived from the record
    by ``python -m sim.derive``): ``{(variable, component): s.d.}`` (components ``drift``,
    ``noise``, ``process``, ``rounding``; scales in the file)."""
    import csv

    with open((data_dir or DATA_DIR) / files.OBSERVATION_ERRORS, encoding="utf-8") as f:
        return {(r["variable"], r["component"]): float(r["sd"]) for r in csv.DictReader(f)}
