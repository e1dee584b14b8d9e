"""No figure published for a year after 2020 goes into the project: the forecast is scored later
against official figures of 2021 onward, which the repository does not have (issue 45).

Checked here: the shipped data (``sim/data``: every year column and coordinate, every attribute),
the priors and path knots of the parameter table, and the configs a forecast is made from
(demography, parameters, geography, the calibration and the top config), where a year after 2020
may only be the key of a what-if option's assumed value, named below with why. Targets
(``configs/targets``) and policy levers (``configs/policy``, ``configs/scenario``) are plans and
scenario settings for future years, not figures, and are not scanned."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import xarray as xr

from sim.config.parameters import PARAMETERS, PATH_END
from sim.paths import CONFIG_DIR, DATA_DIR

LAST_YEAR = 2020
LATER = re.compile(r"(?<![\d.])(20(?:2[1-9]|[3-9]\d))(?![\d])")  # a year 2021-2099 standing alone
LATER_KEY = re.compile(r"(?<![\d.])(20(?:2[1-9]|[3-9]\d))\s*:")  # ... as the key of a year-keyed value
# a line that cites a published figure: a source and a quantity (the slipped fertility config read
# "China's births fell by a quarter from 2020 to 2023 (NBS: 12.0 M to 9.0 M)")
SOURCE = re.compile(r"NBS|bulletin|yearbook|statistic|公报|年鉴|统计|published|reported|census|press", re.I)
QUANTITY = re.compile(r"\d[\d.,]*\s*(?:M\b|%|万|million|thousand|persons|‰|permille|per 1000)")


def later_figures(text: str) -> list[str]:
    """The lines of ``text`` that cite a figure for a year after 2020: a later year beside a
    source and a quantity."""
    return [ln.strip() for ln in text.splitlines() if LATER.search(ln) and SOURCE.search(ln) and QUANTITY.search(ln)]
# what-if options whose year keys after 2020 are the option's assumption (no figure)
ASSUMED = {
    "demography/migration/weak_jobs.yaml": "a what-if of weaker local labour markets from 2025, not a default",
}
SCANNED = ("demography", "params", "geography", "calibration.yaml", "config.yaml")


def test_no_shipped_table_has_a_year_after_2020():
    for f in sorted(DATA_DIR.glob("*.csv")):
        with open(f, encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
        if rows and "year" in rows[0]:  # a table of years
            years = [int(r["year"]) for r in rows if r.get("year")]
            assert years and max(years) <= LAST_YEAR, f"{f.name}: a row for {max(years)}"
        assert not later_figures(f.read_text(encoding="utf-8-sig")), f"{f.name}: {later_figures(f.read_text(encoding='utf-8-sig'))}"
    for f in sorted(DATA_DIR.glob("*.nc")):
        with xr.open_dataset(f) as ds:
            for name in [*ds.coords, *ds.data_vars]:
                if "year" in str(name):
                    assert int(ds[name].max()) <= LAST_YEAR, f"{f.name}: {name}"
            for k, v in ds.attrs.items():
                assert not later_figures(str(v)), f"{f.name}: attribute {k}: {later_figures(str(v))}"
    for f in sorted(DATA_DIR.glob("*.md")):
        assert not later_figures(f.read_text(encoding="utf-8")), f"{f.name}: {later_figures(f.read_text(encoding='utf-8'))}"


def test_no_prior_or_path_knot_is_for_a_year_after_2020():
    assert PATH_END == LAST_YEAR
    for p in PARAMETERS:
        assert p.year <= LAST_YEAR, p.name
        assert not later_figures(p.doc), f"{p.name}: {p.doc}"


def test_the_configs_of_a_forecast_name_no_year_after_2020_but_assumed_what_ifs():
    found = {}
    for entry in SCANNED:
        root = CONFIG_DIR / entry
        for f in [root] if root.is_file() else sorted(root.rglob("*.yaml")):
            rel = f.relative_to(CONFIG_DIR).as_posix()
            text = f.read_text(encoding="utf-8")
            hits = later_figures(text) + ([] if rel in ASSUMED else [m[0] for m in LATER_KEY.finditer(text)])
            if hits:
                found[rel] = hits
    assert not found, f"years after 2020 in configs a forecast is made from: {found}"
    for rel in ASSUMED:  # each still there and still not a default
        assert (CONFIG_DIR / rel).is_file(), rel
        group, _, option = rel.rpartition("/")
        assert f"{group}: {Path(option).stem}" not in (CONFIG_DIR / "config.yaml").read_text(encoding="utf-8")


def test_the_scan_finds_the_figure_that_slipped_in():
    slipped = "# TFR = census iTFR level x multiplier. China's births fell by a quarter\n# from 2020 to 2023 (NBS: 12.0 M to 9.0 M), taken here as a 20 % fall.\ntfr_multiplier: {2020: 1.0, 2023: 0.8}\n"
    assert later_figures(slipped) == ["# from 2020 to 2023 (NBS: 12.0 M to 9.0 M), taken here as a 20 % fall."]
    assert [m[0] for m in LATER_KEY.finditer(slipped)] == ["2023:"]
    assert not later_figures("# Guangxi New Urbanization Plan 2021-2035: targets for 2025 and 2035\nend_year: 2050")


def test_the_default_forecast_has_no_hand_set_path_after_2020():
    from sim.config.compose import compose_config

    cfg = compose_config([])
    for name in ("tfr_multiplier",):
        assert max(getattr(cfg.demography.fertility, name)) <= LAST_YEAR, name
    for name in ("rural_to_urban", "from_away", "external_in"):
        assert max(getattr(cfg.demography.migration, name)) <= LAST_YEAR, name
