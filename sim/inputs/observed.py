"""Observed files: annual figures in the format ``year, region, variable, value`` (more columns
kept, ignored), read and checked row by row; the calibration fits them, the backtests score a
projection on them and a run conditions its ensemble on them (``observed=FILE``)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from sim.config.schema import ConfigError

# what an observed file may hold; the projection is scored on SCORED (the others are calibration targets)
VARIABLES = ("urban_share", "population", "births", "births_registered", "deaths", "birth_rate", "death_rate", "e0", "urban_share_original")
# births_registered (births to the registered population: the statistical bulletin's basis) is
# scored where the projection has it (full outputs)
SCORED = ("urban_share", "population", "births", "births_registered", "deaths")
COLUMNS = ("year", "region", "variable", "value")
COUNTS = ("population", "births", "births_registered", "deaths")


GUANGXI_ZH = ("广西", "广西壮族自治区")
# variables whose values cannot be negative (counts, rates, years of life)
NON_NEGATIVE = ("population", "births", "births_registered", "deaths", "birth_rate", "death_rate", "e0")


def read_observed(path: str | Path, *, regions: list[str] | None = None, aliases: dict[str, str] | None = None) -> list[dict]:
    """The rows of an observed file, checked: every required column present, ``year`` an
    integer, ``value`` a finite number (a fraction for shares, not negative for counts and
    rates), ``variable`` known, ``region`` known (when ``regions`` is given; a name in
    ``aliases``, e.g. a Chinese one, stands for its region), no (year, region, variable) twice.
    A UTF-8 byte-order mark (Excel's "CSV UTF-8") is allowed. Errors name the row (1 = the
    first data row), the line and the column."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"observed = {str(path)!r}: no such file")
    aliases = {**{z: "Guangxi" for z in GUANGXI_ZH}, **(aliases or {})}
    seen: dict[tuple, int] = {}
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise ConfigError(f"{path.name}: missing column(s) {', '.join(missing)}; required columns: {', '.join(COLUMNS)} (found: {', '.join(header) or 'none'})")
        rows = []
        for i, raw in enumerate(reader, start=1):
            r = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else v for k, v in raw.items()}
            where = f"{path.name}, row {i} (line {i + 1})"
            try:
                year = int(r["year"])
            except (TypeError, ValueError):
                raise ConfigError(f"{where}, column year: {r['year']!r} is not an integer year") from None
            try:
                value = float(r["value"])
            except (TypeError, ValueError):
                raise ConfigError(f"{where}, column value: {r['value']!r} is not a number") from None
            if not math.isfinite(value):
                raise ConfigError(f"{where}, column value: {r['value']!r} is not a finite number")
            if r["variable"] not in VARIABLES:
                raise ConfigError(f"{where}, column variable: unknown variable {r['variable']!r}; known: {', '.join(VARIABLES)}")
            r["region"] = aliases.get(r["region"], r["region"])
            if regions is not None and r["region"] not in regions:
                raise ConfigError(f"{where}, column region: unknown region {r['region']!r}; known: {', '.join(regions)}")
            if r["variable"] in ("urban_share", "urban_share_original") and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{where}, column value: urban_share {value} must be a fraction between 0 and 1")
            if r["variable"] in NON_NEGATIVE and value < 0:
                raise ConfigError(f"{where}, column value: {r['variable']} {value} must not be negative")
            key = (year, r["region"], r["variable"])
            if key in seen:
                raise ConfigError(f"{where}: {r['variable']} of {r['region']} in {year} is already given in row {seen[key]}; each (year, region, variable) once")
            seen[key] = i
            rows.append({**r, "year": year, "value": value, "row": i})
    if not rows:
        raise ConfigError(f"{path.name}: no data rows")
    return rows
