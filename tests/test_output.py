"""The projection file: accounting, units, provenance, atomic writes, and make run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from sim.axes import FLOWS
from sim.config.schema import Config
from sim.files import write_netcdf
from sim.outputs.job import run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = Config()
    cfg.end_year = 2030
    cfg.quiet = True
    run(cfg, out)
    return out


def test_file_round_trips_with_units_and_provenance(short_run):
    with xr.open_dataset(short_run / "projection.nc") as ds:
        assert ds.sizes["year"] == 11 and ds.sizes["region"] == 14
        assert list(ds.state.values) == ["rural", "urban_local", "urban_migrant", "away"]
        assert list(ds.sex.values) == ["female", "male"] and list(ds.flow.values) == list(FLOWS)
        assert ds.region.values[0] == "Nanning" and ds.name_zh.values[0] == "南宁市"
        for v in ds.data_vars:
            assert ds[v].attrs.get("units"), v
            assert ds[v].attrs.get("long_name"), v
        cfg = json.loads(ds.attrs["config_json"])
        assert cfg["end_year"] == 2030 and cfg["geography"]["name"] == "guangxi_prefectures"
        assert ds.attrs["code_version"].startswith("0.1.0+")
        assert len(ds.attrs["input_sha256"]) == 64
        # the jump-off year is the census
        assert round(float(ds.residents.isel(year=0).sum())) == 50_126_804
        assert float(ds.total_urban_share.isel(year=0)) == pytest.approx(27_170_956 / 50_126_804, abs=1e-9)
        assert float(ds.births.isel(year=0).sum()) == 0.0


def test_accounting_identity_holds_in_the_file(short_run):
    with xr.open_dataset(short_run / "projection.nc") as ds:
        pop = ds.population.sum(("state", "sex", "age"))
        change = pop.diff("year")
        comp = (ds.births.sum(("state", "sex")) - ds.deaths.sum(("state", "sex", "age")) + ds.net_migration.sum(("sex", "age"))).isel(year=slice(1, None))
        assert float(np.abs(change - comp).max()) < 1e-6
        assert float(ds.attrs["accounting_max_abs_residual_persons"]) < 1e-6
        # regions' moves to each other cancel out over the province
        m = ds.migration.sum(("sex", "age", "region"))
        np.testing.assert_allclose(m.sel(flow="interregional_out"), m.sel(flow="interregional_in"), rtol=1e-12)
        assert float(ds.population.min()) >= 0


def test_kernel_gives_the_same_file_as_the_reference(tmp_path, short_run):
    """The short run projects with the reference (backend=auto: 14 regions x 10 years); the
    kernel's file is the same to rounding."""
    cfg = Config()
    cfg.end_year = 2030
    cfg.quiet = True
    cfg.backend = "numba"
    ds2 = run(cfg, tmp_path)
    with xr.open_dataset(short_run / "projection.nc") as ds:
        for v in ("population", "births", "deaths", "migration", "settled", "urban_land"):
            np.testing.assert_allclose(ds2[v].values, ds[v].values, rtol=1e-10, atol=1e-9)


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "projection.nc"
    good = xr.Dataset({"x": ("a", np.arange(3.0), {"units": "1", "long_name": "x"})})
    write_netcdf(good, target)
    bad = xr.Dataset({"x": ("a", np.array([object(), object()], dtype=object))})
    with pytest.raises(Exception):
        write_netcdf(bad, target)
    with xr.open_dataset(target) as ds:
        assert list(ds.x.values) == [0.0, 1.0, 2.0]
    assert [p.name for p in tmp_path.iterdir()] == ["projection.nc"]


def test_config_json_is_json_of_asdict():
    """``config_json`` converts without ``dataclasses.asdict``'s deep copy, to the same text."""
    import dataclasses

    from sim.config.compose import compose_config
    from sim.outputs.dataset import config_json

    for ovs in ([], ["scenario=plan", "policy.hukou.conversion_rate={2020: 0.05, 2030: 0.2}", "geography.regions=[Nanning,Liuzhou]"], ["params=calibrated_ensemble"]):
        cfg = compose_config(ovs)
        assert config_json(cfg) == json.dumps(dataclasses.asdict(cfg), default=str, sort_keys=True), ovs


def test_compression_changes_the_file_not_the_values(short_run, tmp_path):
    """``compression`` (the config's, ``write_netcdf``'s) sets the zlib level: the values read
    back are the same; level 0 (the default) stores the variables unfiltered."""
    import netCDF4

    with xr.open_dataset(short_run / "projection.nc") as ds:
        ds = ds.load()
    write_netcdf(ds, tmp_path / "z4.nc", compression=4)
    with netCDF4.Dataset(short_run / "projection.nc") as plain, netCDF4.Dataset(tmp_path / "z4.nc") as packed:
        assert plain["population"].filters()["zlib"] is False
        assert packed["population"].filters()["zlib"] is True and packed["population"].filters()["complevel"] == 4
    assert (tmp_path / "z4.nc").stat().st_size < 0.9 * (short_run / "projection.nc").stat().st_size
    with xr.open_dataset(tmp_path / "z4.nc") as z:
        for v in ("population", "migration", "urban_land"):
            np.testing.assert_array_equal(z[v].values, ds[v].values)


@pytest.mark.slow
def test_make_run_end_to_end(tmp_path):
    env = dict(os.environ)
    r = subprocess.run(["make", "run", f"RUN_DIR={tmp_path}", "ARGS=end_year=2036"], cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resident urbanization" in r.stdout and "Nanning" in r.stdout
    for f in ("projection.nc", "targets.csv", "report.txt", "regions.csv"):
        assert (tmp_path / f).exists(), f
    rows = (tmp_path / "targets.csv").read_text().splitlines()
    assert rows[0].startswith("target,region,variable,year,op,required,projected,gap,met,first_year_met")
    assert len(rows) == 1 + 9  # the targets that apply to prefectures
    assert rows[0].endswith("land_needed_km2")


def test_a_released_write_is_the_same_file_and_frees_the_dataset(short_run, tmp_path, monkeypatch):
    """``write_netcdf(release=True)`` writes the large variables one call each (here every one of
    256 kB or more) and deletes each from the dataset once written: the file reads back identical
    to one written in one call (values, attributes, coordinates, the order of both), and the
    dataset is left without data variables. A failed part keeps the old file."""
    from sim import files

    with xr.open_dataset(short_run / "projection.nc") as ds:
        ds = ds.load()
    monkeypatch.setattr(files, "RELEASE_BYTES", 2**18)
    groups = files._release_groups(ds)
    big = [g[0] for g in groups if ds[g[0]].nbytes >= 2**18]
    assert len(groups) > 3 and {"population", "deaths", "migration"} <= set(big)
    assert [k for g in groups for k in g] == list(ds.data_vars)
    write_netcdf(ds, tmp_path / "one.nc")
    mine = ds.copy()  # the variables' arrays shared: a shallow copy, emptied by the write
    write_netcdf(mine, tmp_path / "parts.nc", release=True)
    assert len(mine.data_vars) == 0 and len(ds.data_vars) > 0
    with xr.open_dataset(tmp_path / "one.nc") as a, xr.open_dataset(tmp_path / "parts.nc") as b:
        assert a.identical(b)
        assert list(a.data_vars) == list(b.data_vars) and list(a.coords) == list(b.coords)
        assert all(a[k].attrs == b[k].attrs for k in a.variables)

    bad = ds.assign(z=("a", np.array([object(), object()], dtype=object)))  # written last, refused
    with pytest.raises(Exception):
        write_netcdf(bad, tmp_path / "one.nc", release=True)
    with xr.open_dataset(tmp_path / "one.nc") as a:
        assert a.identical(xr.open_dataset(tmp_path / "parts.nc"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.nc", "parts.nc"]
