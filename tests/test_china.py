"""Geographies covering all of China: derived from the 2020 county table on first use, cached,
consistent with the census and with Guangxi's committed inputs."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from sim.config.compose import compose_config
from sim.config.schema import ConfigError, validate
from sim.inputs.load import load_inputs


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("URBSIM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def national_total(shared_data) -> float:
    with open(shared_data / "census_county_2020.csv", encoding="utf-8") as f:
        return next(float(r["人口数_合计"]) for r in csv.DictReader(f) if r["省"] == "全国")


def test_china_prefectures_are_derived_once_and_add_up_to_the_census(shared_data, cache):
    ds = load_inputs("china_prefectures", 2020, census=str(shared_data))
    files = list(cache.glob("china_prefectures_2020_*.nc"))
    assert len(files) == 1 and not list(cache.glob(".*tmp*"))
    mtime = files[0].stat().st_mtime_ns
    again = load_inputs("china_prefectures", 2020, census=str(shared_data))
    assert files[0].stat().st_mtime_ns == mtime and again.attrs["input_sha256"] == ds.attrs["input_sha256"]

    assert 360 <= ds.sizes["region"] <= 370
    # every resident of the national row, but for the few rows listed as dropped
    dropped = sum(float(x.rsplit("(", 1)[1].split(",")[0].rstrip(")")) for x in ds.attrs["unmatched_rows"].split("; "))
    assert float(ds.residents.sum()) + dropped == pytest.approx(national_total(shared_data), abs=2500)
    assert dropped < 10_000
    np.testing.assert_allclose(ds.population.sum(("state", "sex", "age")), ds.residents, rtol=1e-9)
    assert float(ds.urban.sum() / ds.residents.sum()) == pytest.approx(0.6389, abs=0.001)  # 63.89 % (census bulletin)

    # Guangxi's 14 prefectures: the same census counts as the committed Guangxi inputs
    gx = load_inputs("guangxi_prefectures", 2020)
    sel = ds.isel(region=np.flatnonzero(ds.province_code.values == "45"))
    assert sorted(sel.prefecture.values) == sorted(gx.region.values)
    by_name = sel.swap_dims(region="prefecture")
    for v in ("residents", "urban", "census_groups"):
        np.testing.assert_allclose(by_name[v].sel(prefecture=gx.region.values).values, gx[v].values, rtol=1e-12, err_msg=v)


def test_a_changed_table_is_derived_afresh(shared_data, cache, tmp_path):
    census = tmp_path / "census"
    census.mkdir()
    for name in ("census_county_2020.csv", "census_city_2010_2020.csv", "prefectures_2010_2020.csv"):
        shutil.copy(shared_data / name, census / name)
    load_inputs("china_prefectures", 2020, census=str(census))
    with open(census / "census_county_2020.csv", "a", encoding="utf-8") as f:
        f.write("\n")
    load_inputs("china_prefectures", 2020, census=str(census))
    assert len(list(cache.glob("china_prefectures_2020_*.nc"))) == 2


def test_china_geographies_need_the_2020_census_and_the_table(tmp_path, cache):
    with pytest.raises(ConfigError, match="start_year = 2010: geography china_counties has 2020 census inputs only; allowed: 2020"):
        validate(compose_config(["geography=china_counties", "start_year=2010"]))
    with pytest.raises(FileNotFoundError, match="census_county_2020.csv, which is missing"):
        load_inputs("china_counties", 2020, census=str(tmp_path))


def test_guangxi_targets_are_read_from_guangxis_counties_within_china(shared_data, cache):
    from sim.engine.prepare import prepare
    from sim.engine.runner import project
    from sim.outputs.dataset import to_dataset
    from sim.outputs.targets import series

    cfg = validate(compose_config(["geography=china_counties", "od_flows=false", "end_year=2021", f"geography.census_dir={shared_data}"]))
    model = prepare(cfg)
    assert model.pop0.shape[0] > 2900
    ds = to_dataset(model, project(model))
    share = series(ds, "Guangxi", "urban_share")
    gx = ds.isel(region=np.flatnonzero(ds.province_code.values == "45"))
    assert gx.sizes["region"] == 111
    assert float(share.sel(year=2020)) == pytest.approx(0.5420, abs=0.0005)  # the 2020 census: 54.20 %
