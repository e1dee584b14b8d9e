"""Load the engine's derived inputs (``sim/data/{geography}_{year}.nc``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import xarray as xr

DATA_DIR = Path(__file__).resolve().parent / "data"


def input_path(geography: str, year: int, data_dir: Path | None = None) -> Path:
    return (data_dir or DATA_DIR) / f"{geography}_{year}.nc"


def load_inputs(geography: str, year: int, regions: list[str] | None = None, data_dir: Path | None = None) -> xr.Dataset:
    """The inputs of ``geography`` at census ``year``, restricted to ``regions`` when given.

    The dataset's ``input_sha256`` attribute is the checksum of the file read."""
    path = input_path(geography, year, data_dir)
    if not path.exists():
        raise FileNotFoundError(f"no inputs for geography={geography!r}, start_year={year}: {path} is missing (run python -m sim.derive)")
    with xr.open_dataset(path) as f:
        ds = f.load()
    if regions:
        ds = ds.sel(region=list(regions), region_to=list(regions))
    ds.attrs["input_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    ds.attrs["input_file"] = path.name
    return ds
