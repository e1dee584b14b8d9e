"""Graduation, IPF and the derived inputs reproduce the census."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.axes import CENSUS_GROUP_LABELS, RESIDENT_STATES, URBAN_LOCAL, URBAN_MIGRANT, to_groups
from sim.inputs.derive import build
from sim.inputs.load import load_inputs
from sim.inputs.prep import graduate, ipf
from sim.paths import DATA_DIR


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=19, max_size=19))
def test_graduation_preserves_groups_and_is_non_negative(groups):
    g = np.array(groups)
    single = graduate(g)
    assert single.shape == (101,)
    assert single.min() >= 0
    np.testing.assert_allclose(to_groups(single), g, rtol=1e-12, atol=1e-6)


def test_graduation_known_case():
    # a population flat at 100 per year of age graduates to exactly 100 per year below 85
    g = np.array([100.0, 400.0] + [500.0] * 16 + [1000.0])
    single = graduate(g)
    np.testing.assert_allclose(single[:85], 100.0, rtol=1e-12)
    assert single[85] > single[90] > single[99] > 0  # the open group declines


def test_ipf_fits_margins():
    rng = np.random.default_rng(0)
    seed = rng.uniform(0.1, 2.0, (3, 2, 5))
    rows = np.array([50.0, 30.0, 20.0])
    cells = rng.uniform(1, 10, (2, 5))
    cells *= 100.0 / cells.sum()
    fit = ipf(seed, {(0,): rows, (1, 2): cells})
    np.testing.assert_allclose(fit.sum(axis=(1, 2)), rows, rtol=1e-9)
    np.testing.assert_allclose(fit.sum(axis=0), cells, rtol=1e-9)
    # IPF keeps the seed's odds ratios
    r = fit / seed
    np.testing.assert_allclose(r[0] / r[1], (r[0] / r[1])[0, 0], rtol=1e-8)


def test_ipf_rejects_inconsistent_margins():
    with pytest.raises(ValueError, match="different totals"):
        ipf(np.ones((2, 2)), {(0,): np.array([1.0, 1.0]), (1,): np.array([1.0, 2.0])})


@pytest.mark.parametrize("geography", ["guangxi_prefectures", "guangxi_counties"])
@pytest.mark.parametrize("year", [2010, 2020])
def test_jump_off_reproduces_census(geography, year):
    ds = load_inputs(geography, year)
    pop = ds.population
    residents = pop.isel(state=list(RESIDENT_STATES))
    np.testing.assert_allclose(residents.sum(("state", "sex", "age")), ds.residents, rtol=1e-10)
    np.testing.assert_allclose(pop.isel(state=[URBAN_LOCAL, URBAN_MIGRANT]).sum(("state", "sex", "age")), ds.urban, rtol=1e-9)
    groups = to_groups(residents.sum("state").values)
    np.testing.assert_allclose(groups, ds.census_groups.values, rtol=1e-9, atol=1e-6)
    assert float(pop.min()) >= 0


def test_prefecture_2020_matches_published_tables(shared_data):
    ds = load_inputs("guangxi_prefectures", 2020)
    with open(shared_data / "prefectures_2010_2020.csv", encoding="utf-8") as f:
        rows = {r["prefecture_en"]: r for r in csv.DictReader(f)}
    assert list(ds.region.values) == [r for r in rows if r != "Guangxi (total)"]
    res = ds.population.isel(state=list(RESIDENT_STATES)).sum(("state", "sex", "age"))
    for name in ds.region.values:
        assert round(float(res.sel(region=name))) == int(rows[name]["pop_2020"])
        urban = ds.population.sel(region=name, state=["urban_local", "urban_migrant"]).sum()
        assert abs(100 * float(urban) / float(res.sel(region=name)) - float(rows[name]["urban_rate_2020"])) < 0.006
    assert round(float(res.sum())) == 50_126_804
    assert round(float(ds.urban.sum())) == 27_170_956
    # census age-0 sex ratio for Guangxi, 302,822 boys / 264,556 girls
    g = ds.census_groups.sum("region")
    assert abs(float(g.sel(sex="male", age_group="0") / g.sel(sex="female", age_group="0")) - 302822 / 264556) < 1e-12
    assert list(ds.age_group.values) == list(CENSUS_GROUP_LABELS)


@pytest.mark.parametrize("geography", ["guangxi_prefectures", "guangxi_counties"])
@pytest.mark.parametrize("year", [2010, 2020])
def test_committed_inputs_are_what_the_script_derives(shared_data, geography, year):
    fresh = build(shared_data, geography, year)
    with xr.open_dataset(DATA_DIR / f"{geography}_{year}.nc") as committed:
        for v in fresh.data_vars:
            np.testing.assert_allclose(committed[v].values, fresh[v].values, rtol=1e-12, equal_nan=True, err_msg=v)
        assert committed.attrs["source_sha256"] == fresh.attrs["source_sha256"]


def test_committed_boundaries_are_what_the_script_derives(shared_data):
    import json

    from sim.inputs.derive import boundaries_geojson

    fresh = json.loads(json.dumps(boundaries_geojson(shared_data), ensure_ascii=False))
    committed = json.loads((DATA_DIR / "guangxi_prefectures_boundaries.json").read_text(encoding="utf-8"))
    assert committed == fresh
    assert len(committed["features"]) == 14
    assert {f["properties"]["name"] for f in committed["features"]} == set(xr.open_dataset(DATA_DIR / "guangxi_prefectures_2020.nc").region.values)
