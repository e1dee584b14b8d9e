"""Figures: files written and not blank, the expected panels and lines, labels with units."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pytest
import xarray as xr
from matplotlib.collections import PatchCollection, PolyCollection
from matplotlib.image import AxesImage

from sim.config.schema import ConfigError, FiguresConfig, validate
from sim.engine.prepare import prepare
from sim.outputs import figures as F
from sim.outputs.job import run
from tests.test_config import compose_cfg


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("figrun")
    run(compose_cfg(["end_year=2036", "quiet=true"]), out)
    return out


@pytest.fixture(scope="module")
def ds(run_dir):
    with xr.open_dataset(run_dir / "projection.nc") as d:
        return d.load()


def ensemble(ds: xr.Dataset, n: int = 7) -> xr.Dataset:
    """A fake ensemble: the run repeated with urban shares spread +-3 %."""
    e = ds.expand_dims(draw=np.arange(n)).copy()
    spread = xr.DataArray(np.linspace(0.97, 1.03, n), dims="draw")
    for v in ("total_urban_share", "urban_share", "hukou_urban_share"):
        e[v] = (e[v] * spread).assign_attrs(ds[v].attrs)
    return e


def not_blank(path) -> float:
    img = matplotlib.image.imread(path)
    return float(img[..., :3].std())


def test_a_run_writes_every_figure_and_none_is_blank(run_dir):
    names = sorted(p.name for p in (run_dir / "figures").iterdir())
    assert names == ["flows.png", "land.png", "map.png", "pyramid.png", "regions.png", "urban_share.png"]
    for p in (run_dir / "figures").iterdir():
        assert not_blank(p) > 0.05, p.name
    assert not list((run_dir / "figures").glob(".*")), "a temporary file was left behind"


def test_urban_share_lines_targets_and_units(ds):
    fig = F.urban_share_figure({"a": ds, "b": ds})
    ax = fig.axes[0]
    runs = [ln for ln in ax.get_lines() if ln.get_label() in ("a", "b")]
    assert len(runs) == 2
    np.testing.assert_allclose(runs[0].get_ydata(), 100 * ds.total_urban_share.values)
    assert ax.get_ylabel() == "resident urbanization rate, all regions (%)"
    assert ax.get_xlabel() == "year" and ax.get_title() == f"Resident urbanization rate, Guangxi, {ds.sizes['region']} prefectures"  # no internal id
    # the plan's three urban-share targets: 57% (2023, ~), 57% (2025, >=), 68% (2035, ~)
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == ["~57% (2023)", "~68% (2035)", "≥57% (2025)"]


def test_ensemble_is_a_fan_of_50_and_90_percent_bands(ds):
    e = ensemble(ds)
    fig = F.urban_share_figure(e)
    ax = fig.axes[0]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    med = [ln for ln in ax.get_lines() if ln.get_label() == "trend"][0]
    np.testing.assert_allclose(med.get_ydata(), 100 * e.total_urban_share.median("draw").values)
    # the 90 % band is wider than the 50 % band
    w = [np.ptp(b.get_paths()[0].vertices[:, 1]) for b in bands]
    assert w[0] > w[1] > 0


def test_small_multiples_one_panel_per_region(ds):
    fig = F.regions_figure(ds)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 14
    for ax, name in zip(panels, ds.region.values):
        assert ax.get_title().startswith(str(name))
        assert len(ax.get_lines()) == 2  # urban share and hukou urbanization
    np.testing.assert_allclose(panels[0].get_lines()[1].get_ydata(), 100 * ds.hukou_urban_share.isel(region=0).values)


def test_counties_are_drawn_by_prefecture(tmp_path):
    d = run(compose_cfg(["geography=guangxi_counties", "end_year=2022", "quiet=true", "figures.enabled=false"]), tmp_path)
    fig = F.regions_figure(d)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 14
    vals, label, note = F.map_values(d, 2022)
    assert len(vals) == 14 and "counties summed" in note
    # the prefecture's share from its counties' persons
    nn = d.sel(year=2022).isel(region=np.flatnonzero(d.prefecture.values == "Nanning"))
    assert vals["Nanning"] == pytest.approx(100 * float(nn.urban_population.sum() / nn.residents.sum()), rel=1e-12)
    fl = F.flows_figure(d, 2022)
    assert [im for im in fl.axes[0].get_images()][0].get_array().shape == (14, 14)


def test_map_polygons_colours_and_target_gap(ds):
    fig = F.map_figure(ds, 2035)
    pc = [c for c in fig.axes[0].collections if isinstance(c, PatchCollection)][0]
    assert len(pc.get_paths()) >= 14
    assert "(%)" in fig.axes[1].get_ylabel()  # the colour bar carries the units
    vals, label, _ = F.map_values(ds, 2035, "target_gap")
    share = 100 * ds.urban_share.sel(year=2035)
    for r in ds.region.values:
        assert vals[str(r)] == pytest.approx(float(share.sel(region=r)) - 68.0, abs=1e-9)
    assert "percentage points" in label
    with pytest.raises(ValueError, match="no urban_share target for Guangxi in 2030"):
        F.map_values(ds, 2030, "target_gap")


def test_pyramid_by_state_and_sex(ds):
    fig = F.pyramid_figure(ds, "Liuzhou", 2030)
    ax = fig.axes[0]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 8  # 4 states x 2 sexes
    assert "thousand persons" in ax.get_xlabel() and "(years)" in ax.get_ylabel()
    assert "Liuzhou" in ax.get_title() and "2030" in ax.get_title()
    # the outermost female band ends at the region's women of each age (thousands)
    outer = bands[-1].get_paths()[0].vertices[:, 0].max()
    women = ds.population.sel(region="Liuzhou", year=2030, sex="female").sum("state") / 1e3
    assert outer == pytest.approx(float(women.max()), rel=1e-9)
    with pytest.raises(ValueError, match="pyramid_region"):
        F.pyramid_figure(ds, "Atlantis", 2030)


def test_flow_matrix_is_the_od_output(ds):
    fig = F.flows_figure(ds, 2025)
    im = [c for c in fig.axes[0].get_children() if isinstance(c, AxesImage)][0]
    arr = np.ma.filled(im.get_array(), np.nan)
    od = ds.migration_od.sel(year=2025).values
    np.testing.assert_allclose(np.nan_to_num(arr), od)
    assert "(persons)" in fig.axes[1].get_ylabel()


def test_land_against_the_standard(ds):
    fig = F.land_figure(ds)
    left, right = fig.axes[:2]
    assert left.get_ylabel() == "urban construction land at the year end (km²)"
    assert right.get_ylabel() == "urban land per urban resident (m² per person)"
    std = json.loads(ds.attrs["config_json"])["policy"]["land"]["capacity_m2_per_person"]
    assert any(np.allclose(ln.get_ydata(), std) for ln in right.get_lines())


def test_english_names_when_no_cjk_font(ds, monkeypatch):
    monkeypatch.setattr(F, "cjk_font", lambda: None)
    assert F.place_names(ds)[0] == "Nanning"
    fig = F.regions_figure(ds)
    assert fig.axes[0].get_title() == "Nanning"


def test_chinese_names_with_a_cjk_font(ds):
    if F.cjk_font() is None:
        pytest.skip("no CJK font installed (make setup installs fonts-noto-cjk where it can)")
    assert F.place_names(ds)[0] == "Nanning 南宁市"


def test_formats_and_bad_figure_config(ds, tmp_path):
    fc = FiguresConfig(formats=["png", "pdf"])
    paths = F.write_figures(ds, tmp_path, fc)
    assert sorted(p.suffix for p in paths).count(".pdf") == 6
    assert (tmp_path / "map.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(ConfigError, match=r"figures.formats.*png, pdf, svg"):
        validate(compose_cfg(["figures.formats=[gif]"]))
    with pytest.raises(ConfigError, match=r"figures.map_variable = target_gap.*2030; target years: \[2023, 2025, 2035\]"):
        validate(compose_cfg(["figures.map_variable=target_gap", "figures.map_year=2030"]))
    with pytest.raises(ConfigError, match="figures.pyramid_region = 'Atlantis': unknown"):
        prepare(compose_cfg(["figures.pyramid_region=Atlantis"]))


def test_figures_drawn_by_two_processes_equal_those_of_one(tmp_path):
    """figures.parallel (the default): the second process's figures and the run's own are the
    files one process draws, byte for byte."""
    from sim.config.compose import compose_config
    from sim.config.schema import validate
    from sim.outputs.job import run
    from sim.outputs.runs import file_sha256

    out = {}
    for parallel in (True, False):
        cfg = validate(compose_config(["end_year=2026", f"figures.parallel={str(parallel).lower()}"]))
        run(cfg, tmp_path / str(parallel), echo=False)
        out[parallel] = {p.name: file_sha256(p) for p in sorted((tmp_path / str(parallel) / "figures").iterdir())}
    assert out[True] == out[False] and len(out[True]) == 6


def test_a_figure_that_fails_in_the_second_process_fails_the_run(tmp_path, monkeypatch):
    import sim.outputs.figures as F
    from sim.config.compose import compose_config
    from sim.config.schema import validate
    from sim.outputs.job import run
    from sim.outputs.runs import read_status

    def broken(ds):
        raise ValueError("no small multiples today")

    monkeypatch.setattr(F, "regions_figure", broken)  # the forked process has it too
    with pytest.raises((RuntimeError, ValueError), match="no small multiples today"):
        run(validate(compose_config(["end_year=2026"])), tmp_path / "r", echo=False)
    assert read_status(tmp_path / "r")["status"] == "failed"
    assert not (tmp_path / "r" / "projection.nc").exists()  # nothing published
