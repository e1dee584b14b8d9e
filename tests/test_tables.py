"""The one-table declarations (flows, parameters, models, regional levers, file names) and what is
derived from them agree with the code that uses them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import models
from sim import axes, files
from sim.config import parameters as P
from sim.config.schema import Config, ConfigError, PullConfig, UncertaintyConfig, check_regions, pull_levers, region_fields
from sim.engine.contract import StepInputs

REGIONS = ["Nanning", "Liuzhou", "Guilin"]


# ---- flows -------------------------------------------------------------------------------------
def test_flow_positions_follow_the_table():
    assert axes.FLOWS == tuple(f.name for f in axes.FLOW_TABLE)
    assert axes.N_FLOWS == 8
    for name, pos in [("rural_to_urban", axes.F_RURAL_TO_URBAN), ("urban_to_rural", axes.F_URBAN_TO_RURAL), ("to_away", axes.F_TO_AWAY),
                      ("from_away", axes.F_FROM_AWAY), ("interregional_out", axes.F_INTER_OUT), ("interregional_in", axes.F_INTER_IN),
                      ("external_in", axes.F_EXT_IN), ("external_out", axes.F_EXT_OUT)]:
        assert axes.FLOWS[pos] == name


def test_a_flow_counts_in_net_migration_exactly_when_it_crosses_the_regions_four_states():
    for f in axes.FLOW_TABLE:
        assert f.kind in ("within", "between", "border")
        expected = 1 if f.source == "outside" else -1 if f.target == "outside" else 0
        assert f.net == expected, f.name
        if f.kind == "within":
            assert f.net == 0
    # the four flows of the accounting identity, with their signs
    assert dict(axes.NET_MIGRATION) == {axes.F_INTER_OUT: -1, axes.F_INTER_IN: 1, axes.F_EXT_IN: 1, axes.F_EXT_OUT: -1}


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, (2, 3, axes.N_FLOWS, 2, 4), elements=st.floats(0, 1e6)))
def test_net_migration_is_in_minus_out_bit_for_bit(flows):
    hand = flows[:, :, axes.F_INTER_IN] - flows[:, :, axes.F_INTER_OUT] + flows[:, :, axes.F_EXT_IN] - flows[:, :, axes.F_EXT_OUT]
    assert np.array_equal(axes.net_migration(flows, axis=2), hand)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, (3, axes.N_STATES), elements=st.floats(0, 1e7)))
def test_residents_are_every_state_but_away(by_state):
    r = axes.residents(by_state)
    np.testing.assert_allclose(r, by_state[:, list(axes.RESIDENT_STATES)].sum(axis=1), rtol=1e-12, atol=1e-6)
    assert axes.STATES[axes.AWAY] == "away" and axes.AWAY not in axes.RESIDENT_STATES
    # along another axis, the same
    np.testing.assert_allclose(axes.residents(by_state.T[None], axis=1)[0], r, rtol=1e-12, atol=1e-6)


# ---- parameters --------------------------------------------------------------------------------
def test_per_draw_fields_are_step_inputs_and_the_kernels_factor_order():
    from sim.engine import kernel

    for name, fld in P.FACTOR_FIELD.items():
        assert fld in StepInputs._fields, (name, fld)
    assert kernel.FACTOR_FIELDS == tuple(P.FACTOR_FIELD.values())
    assert kernel.N_FACTORS == len(P.FACTOR_FIELD)


def test_derived_parameter_lists():
    names = [p.name for p in P.PARAMETERS]
    assert len(names) == len(set(names))
    # an uncertain parameter can vary per draw (it has a StepInputs field)
    assert all(P.BY_NAME[n].field for n in P.UNCERTAIN_PARAMETERS)
    assert list(UncertaintyConfig().sd) == list(P.UNCERTAIN_PARAMETERS)
    assert set(P.REGIONAL_PARAMETERS) <= set(P.CALIBRATED_PARAMETERS)
    assert set(P.SHARED_FIT) <= set(P.CALIBRATED_PARAMETERS)
    assert all(P.BY_NAME[n].prior_sd > 0 for n in P.SHARED_FIT)


def test_calibration_space_comes_from_the_table():
    from calibration.core import PRIOR_SD, REGIONAL, SHARED, Space

    assert SHARED == P.SHARED_FIT and REGIONAL == P.REGIONAL_PARAMETERS
    sp = Space(REGIONS, region_sd=0.7)
    assert len(sp) == len(SHARED) + len(REGIONAL) * len(REGIONS)
    assert sp.prior_sd[: len(SHARED)].tolist() == [PRIOR_SD[p] for p in SHARED]
    assert PRIOR_SD["mortality"] == 0.3 and PRIOR_SD["beta_size"] == 0.5 and PRIOR_SD["to_away"] == 1.0
    # the regional deviations' prior s.d.: the table's own centre where it sets one, else region_sd
    own = {p: P.BY_NAME[p].region_sd for p in REGIONAL if P.BY_NAME[p].region_sd}
    assert own == {"mortality": 0.15}
    assert sp.prior_sd[len(SHARED):].tolist() == [own.get(p, 0.7) for p in REGIONAL for _ in REGIONS]


# ---- models ------------------------------------------------------------------------------------
def test_every_catalogued_model_resolves_and_the_schema_offers_exactly_them():
    for kind, entries in models.CATALOGUE.items():
        for name in entries:
            assert callable(models.get_model(kind, name)) or hasattr(models.get_model(kind, name), "life_table_Lx")
    meta = {f.name: f.metadata for f in dataclasses.fields(Config().demography.mortality)}
    assert meta["model"]["choices"] == models.names("mortality")
    meta = {f.name: f.metadata for f in dataclasses.fields(Config().demography.fertility)}
    assert meta["model"]["choices"] == models.names("fertility")
    with pytest.raises(KeyError, match="known: \\['gamma'\\]"):
        models.get_model("fertility", "hadwiger")


# ---- regional levers ---------------------------------------------------------------------------
def test_region_fields_cover_every_pull_lever():
    cfg = Config()
    fields = region_fields(cfg)
    pulls = [f.name for f in dataclasses.fields(cfg.policy) if isinstance(getattr(cfg.policy, f.name), PullConfig)]
    assert len(pull_levers(cfg.policy)) == len(pulls) == 3
    for name in pulls:
        assert f"policy.{name}.regions" in fields
    assert {"geography.regions", "policy.hukou.big_cities", "policy.hukou.openness", "policy.land.exempt_regions"} <= set(fields)


@pytest.mark.parametrize("path", sorted(region_fields(Config())))
def test_each_region_field_is_checked_against_the_geography(path):
    cfg = Config()
    obj = cfg
    *parents, leaf = path.split(".")
    for p in parents:
        obj = getattr(obj, p)
    setattr(obj, leaf, {"Atlantis": 0.5} if isinstance(getattr(obj, leaf), dict) else ["Atlantis"])
    with pytest.raises(ConfigError, match=f"{path}: unknown region"):
        check_regions(cfg, REGIONS, REGIONS)


# ---- file names --------------------------------------------------------------------------------
def test_file_names_are_distinct_and_the_config_default_is_the_projection():
    names = [v for k, v in vars(files).items() if k.isupper() and isinstance(v, str)]
    assert len(names) == len(set(names))
    assert Config().output == files.PROJECTION == "projection.nc"
    assert files.inputs_name("guangxi_prefectures", 2020) == "guangxi_prefectures_2020.nc"
