"""The derivation of the engine's inputs from the census tables (the library of
``python -m sim.derive``): for each geography and census the jump-off state
``population[region, state, sex, age]`` and the per-region facts the component models need,
the observed series the calibration fits, and the prefecture outlines. Every number is
computed here from the census tables; the methods and sources are in ``sim/data/PROVENANCE.md``.
Only this module (and tests) read the raw tables."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import xarray as xr

from models.migration import migrant_stock_propensity
from sim import files
from sim.axes import (
    AWAY,
    CENSUS_GROUP_EDGES,
    CENSUS_GROUP_LABELS,
    N_AGES,
    N_GROUPS,
    N_SEXES,
    N_STATES,
    RURAL,
    SEXES,
    STATES,
    URBAN_LOCAL,
    URBAN_MIGRANT,
    group_index_of_age,
)
from sim.config.schema import DERIVED_ON_FIRST_USE, GUANGXI_GEOGRAPHIES
from sim.inputs.prep import ecological_profiles, graduate, ipf

GEOGRAPHIES = GUANGXI_GEOGRAPHIES  # the geographies shipped in sim/data
YEARS = (2010, 2020)

# --- documented estimates (see PROVENANCE.md) ---------------------------------------------------
# Official hukou urbanization rate (户籍人口城镇化率): 2020 33.28 % (Guangxi New Urbanization Plan
# 2021-2035, ch.1). For 2010 the census's non-agricultural hukou share of the hukou population,
# 19.03 % (6th census county yearbook), stands in for it.
HUKOU_URBAN_SHARE = {2010: 0.1903, 2020: 0.3328}
# Guangxi hukou population (millions): 2010 census 51.591711; end-2015 55.18, end-2016 55.79
# (Guangxi statistics bureau, see shared/data/guangxi_annual_2010_2020.csv). 2020 (1 Nov) is the
# 2015->2016 increment extrapolated 3 5/6 years: 55.79 + 0.61 * (3 + 10/12).
HUKOU_POP_2020_ESTIMATE = 55.79e6 + 0.61e6 * (3 + 10 / 12)
# Urban construction land of Guangxi in 2020 (km2; Plan 2021-2035 ch.1) over its 2020 urban
# residents (27,170,956): m2 per urban resident, applied to every region and census year.
URBAN_LAND_2020_KM2 = 2378.0
LAND_M2_PER_URBAN_2020 = URBAN_LAND_2020_KM2 * 1e6 / 27_170_956
# China's hukou urbanization rate at end-2020, 45.4 % (National Bureau of Statistics; the
# 14th Five-Year Plan outline, 2021, reports it as the 2020 base): the target of the urban split
# for the geographies covering all of China.
HUKOU_URBAN_SHARE_CHINA_2020 = 0.454
# Rows of the 2020 county table that repeat the sum of coded rows (skipped).
AGGREGATE_ROWS = ("全国", "省直辖县级行政区划", "自治区直辖县级行政区划")
# Bounds on the urban_migrant share of each region's urban residents.
MIGRANT_SHARE_BOUNDS = (0.05, 0.95)
# Relative weight floor in the ecological profiles (avoids structural zeros in the IPF seed).
PROFILE_FLOOR = 1e-3


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _num(v: str) -> float:
    return float("nan") if v in ("", "NA") else float(v)


def _columns(year: int):
    """Column names of a county census table: (name, residents, urban, rural, city proper, first
    age column), the three hukou-elsewhere columns, the hukou population column."""
    if year == 2020:
        names = ("区县", "人口数_合计", "城镇人口", "乡村人口", "城区人口", "男_0岁")
        mig = ("户口登记地在外乡镇街道人口_本县", "户口登记地在外乡镇街道人口_本省其他县", "户口登记地在外乡镇街道人口_省外")
        return names, mig, None
    names = ("地区", "合计", "城镇人口", "乡村人口", None, "0岁（男）")
    mig = ("迁入人口（人）-本县（市）/\n本市市区", "迁入人口（人）-本省其他县\n（市）、市区", "迁入人口（人）-外省")
    return names, mig, "户籍人口"


class DerivationError(ValueError):
    """A census table cannot be used: the message names the file, the line and the column."""


# The columns each table must have (besides a county table's age groups, checked by count).
_TABLE_COLUMNS = {
    "prefectures_2010_2020.csv": ("prefecture_zh", "prefecture_en", "pop_2010", "pop_2020", "urban_rate_2010", "urban_rate_2020"),
    "guangxi_annual_2010_2020.csv": ("year", "urban_rate", "total_pop"),
    "census_city_2010_2020.csv": ("province_code", "city_code", "province", "city", "coord"),
}


def _header(path: Path, encoding: str = "utf-8-sig") -> list[str]:
    if not path.is_file():
        raise DerivationError(f"{path}: no such file")
    with open(path, encoding=encoding, newline="") as f:
        return next(csv.reader(f), [])


def _need(path: Path, head: list[str], columns) -> None:
    missing = [c for c in columns if c and c not in head]
    if missing:
        shown = ", ".join(repr(c) for c in missing)
        raise DerivationError(f"{path}: missing column(s) {shown}; the table has {len(head)} columns: {', '.join(head[:12])}{' ...' if len(head) > 12 else ''}")


def check_county_table(path: Path, year: int) -> None:
    """Every column the derivation reads is there, and every count of Guangxi's rows (province
    code 45) is blank or a non-negative number: :class:`DerivationError` naming the file, the
    line and the column otherwise."""
    head = _header(path)
    (name_c, tot_c, urb_c, rur_c, cp_c, age0_c), mig, hukou = _columns(year)
    _need(path, head, ("区划代码", name_c, tot_c, urb_c, rur_c, cp_c, age0_c, *mig, hukou))
    col = {c: i for i, c in enumerate(head)}
    a0 = col[age0_c]
    if len(head) < a0 + 2 * N_GROUPS:
        raise DerivationError(f"{path}: {len(head) - a0} age-group columns from {age0_c!r}; the derivation needs {2 * N_GROUPS} (19 groups by sex)")
    numeric = [tot_c, urb_c, rur_c, cp_c, *mig, hukou] + head[a0 : a0 + 2 * N_GROUPS]
    idx = [(c, col[c]) for c in numeric if c]
    with open(path, encoding="utf-8-sig", newline="") as f:
        for line, x in enumerate(csv.reader(f), start=1):
            if line == 1 or not x:
                continue
            if len(x) != len(head):
                raise DerivationError(f"{path} line {line}: {len(x)} cells, the header has {len(head)}")
            if not x[col["区划代码"]].startswith("45"):
                continue
            for c, i in idx:
                v = x[i].strip()
                if v in ("", "NA"):
                    continue
                try:
                    n = float(v)
                except ValueError:
                    raise DerivationError(f"{path} line {line}, column {c!r}: {v!r} is not a number") from None
                if not math.isfinite(n) or n < 0:
                    raise DerivationError(f"{path} line {line}, column {c!r}: {v!r}: counts must be finite and non-negative")


def check_tables(census_dir: Path) -> None:
    """Check every table the derivation reads before anything is derived or written."""
    census_dir = Path(census_dir)
    if not census_dir.is_dir():
        raise DerivationError(f"--census {census_dir}: no such folder")
    for year in YEARS:
        check_county_table(census_dir / f"census_county_{year}.csv", year)
    for name, columns in _TABLE_COLUMNS.items():
        _need(census_dir / name, _header(census_dir / name), columns)
    read_annual(census_dir / ANNUAL_FILE)  # checks each row, naming its line


def read_records(path: Path, year: int, keep, dropped: list | None = None) -> list[dict]:
    """The rows of a county census table for which ``keep(code, row_dict)`` is true, as dicts of
    numbers (a blank urban or rural cell means none: e.g. a district that is all urban).
    A row whose age groups or urban + rural do not add up to its residents raises, or, given a
    ``dropped`` list, is left out and described there."""
    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f))
    head = rows[0]
    col = {name: i for i, name in enumerate(head)}
    (name_c, tot_c, urb_c, rur_c, cp_c, age0_c), mig, hukou = _columns(year)
    recs = []
    for x in rows[1:]:
        if not x:  # a blank line
            continue
        code = x[col["区划代码"]]
        if not keep(code, dict(zip(head, x))):
            continue
        a0 = col[age0_c]
        ages = np.array([_num(v) for v in x[a0 : a0 + 2 * N_GROUPS]]).reshape(N_GROUPS, 2)  # male, female
        recs.append(
            dict(
                code=code,
                province_zh=x[col["省"]].strip() if "省" in col else "",
                city_zh=x[col["市"]].strip() if "市" in col else "",
                name_zh=x[col[name_c]].strip(),
                residents=_num(x[col[tot_c]]),
                urban=_num(x[col[urb_c]]),
                rural=_num(x[col[rur_c]]),
                city_proper=_num(x[col[cp_c]]) if cp_c else float("nan"),
                groups=np.stack([ages[:, 1], ages[:, 0]]),  # (sex: female, male; group)
                hukou_elsewhere=np.array([_num(x[col[m]]) for m in mig]),
                hukou_pop=_num(x[col[hukou]]) if hukou else float("nan"),
            )
        )
    good = []
    for r in recs:
        if math.isnan(r["rural"]):
            r["rural"] = r["residents"] - r["urban"]
        if math.isnan(r["urban"]):
            r["urban"] = r["residents"] - r["rural"]
        if not (abs(r["groups"].sum() - r["residents"]) <= 0.5 and abs(r["urban"] + r["rural"] - r["residents"]) <= 0.5):
            msg = f"census {year} {r['code']} {r['name_zh']}: age groups or urban+rural do not sum to residents"
            if dropped is None:
                raise ValueError(msg)
            dropped.append(f"{r['province_zh']} {r['city_zh']} {r['name_zh']} ({r['residents']:.0f}, no age groups)")
            continue
        good.append(r)
    return good


def read_census(census_dir: Path, year: int) -> dict:
    """Guangxi rows of a county census table as a dict of arrays, prefectures and counties apart."""
    path = census_dir / f"census_county_{year}.csv"
    recs = read_records(path, year, lambda code, row: code.startswith("45") and code != "450000")
    pref = [r for r in recs if r["code"].endswith("00")]
    cty = [r for r in recs if not r["code"].endswith("00")]
    return {"prefectures": pref, "counties": cty, "path": path}


def read_guangxi_total(census_dir: Path, year: int) -> dict:
    path = census_dir / f"census_county_{year}.csv"
    with open(path, encoding="utf-8") as f:
        for x in csv.DictReader(f):
            if x["区划代码"] == "450000":
                out = {"residents": float(x["人口数_合计" if year == 2020 else "合计"])}
                if year == 2010:
                    out["hukou_pop"] = float(x["户籍人口"])
                    out["other_province"] = float(x["迁入人口（人）-外省"])
                else:
                    out["other_province"] = float(x["户口登记地在外乡镇街道人口_省外"])
                return out
    raise ValueError(f"no Guangxi total row in {path}")


def read_prefecture_names(census_dir: Path) -> dict:
    with open(census_dir / "prefectures_2010_2020.csv", encoding="utf-8") as f:
        return {r["prefecture_zh"]: r["prefecture_en"] for r in csv.DictReader(f) if r["prefecture_zh"] != "广西壮族自治区"}


def read_boundaries(census_dir: Path, province: str | None = "450000") -> dict:
    """Centroid (lon, lat), area (km2), province and city names of each prefecture-level city of
    ``province`` (None: all of China) from its WKT boundary, keyed by the 4-digit prefecture
    code (a province's prefectures) or the 6-digit city code (all of China: the county-level
    cities administered by their province carry codes like 429004)."""
    import shapely.wkt  # only the derivation needs shapely

    out = {}
    with open(census_dir / "census_city_2010_2020.csv", encoding="utf-8-sig") as f:
        for r in csv.DictReader(f):
            if province is not None and r["province_code"] != province:
                continue
            geom = shapely.wkt.loads(r["coord"])
            c = geom.centroid
            km_per_deg_lat = 111.32
            area = geom.area * km_per_deg_lat**2 * math.cos(math.radians(c.y))
            key = r["city_code"][:4] if province is not None else r["city_code"]
            out[key] = (c.x, c.y, area, r["province"], r["city"])
    return out


BOUNDARY_TOLERANCE_DEG = 0.01  # Douglas-Peucker tolerance for the shipped outlines (about 1 km)


def boundaries_geojson(census_dir: Path) -> dict:
    """Guangxi's prefecture outlines as a GeoJSON FeatureCollection (lon/lat, WGS84 as given),
    simplified (topology preserved) for maps; properties: code, name (English), name_zh."""
    import shapely.geometry
    import shapely.wkt

    names = read_prefecture_names(census_dir)
    feats = []
    with open(census_dir / "census_city_2010_2020.csv", encoding="utf-8-sig") as f:
        for r in csv.DictReader(f):
            if r["province_code"] != "450000":
                continue
            geom = shapely.wkt.loads(r["coord"]).simplify(BOUNDARY_TOLERANCE_DEG, preserve_topology=True)
            geom = shapely.set_precision(geom, 1e-4)
            feats.append({"type": "Feature", "properties": {"code": r["city_code"][:4], "name": names[r["city"]], "name_zh": r["city"]}, "geometry": shapely.geometry.mapping(geom)})
    feats.sort(key=lambda x: x["properties"]["code"])
    return {"type": "FeatureCollection", "source": "census_city_2010_2020.csv (leiii/census, MIT), boundaries simplified by python -m sim.derive", "features": feats}


def haversine_km(lon1, lat1, lon2, lat2) -> np.ndarray:
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(h))


def centroid_distances(unit, bounds, *, counties: bool):
    """Longitude, latitude and the distance matrix (km) of regions lying in the prefecture-level
    units ``unit[R]`` whose centroid and area are ``bounds[unit] = (lon, lat, km2, ...)``.

    Counties carry their prefecture's centroid; two counties of one prefecture are set apart by
    the typical spacing sqrt(prefecture area / its number of counties)."""
    unit = np.asarray(unit)
    lon = np.array([bounds[c][0] for c in unit])
    lat = np.array([bounds[c][1] for c in unit])
    dist = haversine_km(lon[:, None], lat[:, None], lon[None, :], lat[None, :])
    if counties:
        for c in np.unique(unit):
            m = np.flatnonzero(unit == c)
            dist[np.ix_(m, m)] = math.sqrt(bounds[c][2] / len(m))
    np.fill_diagonal(dist, 0.0)
    return lon, lat, dist


def split_urban(urban, hukou_elsewhere_total, f):
    lo, hi = MIGRANT_SHARE_BOUNDS
    return np.clip(f * hukou_elsewhere_total, lo * urban, hi * urban)


def solve_migrant_factor(urban, hukou_elsewhere_total, total_with_away, target_share) -> float:
    """f such that sum(urban - urban_migrant(f)) / sum(all states) equals the hukou urban share."""
    from scipy.optimize import brentq

    def gap(f):
        local = urban - split_urban(urban, hukou_elsewhere_total, f)
        return local.sum() / total_with_away - target_share

    return brentq(gap, 0.0, 5.0, xtol=1e-12)


def build(census_dir: Path, geography: str, year: int) -> xr.Dataset:
    cen = read_census(census_dir, year)
    gx = read_guangxi_total(census_dir, year)
    names_en = read_prefecture_names(census_dir)
    bounds = read_boundaries(census_dir)
    pref_by_code = {r["code"][:4]: r for r in cen["prefectures"]}
    pref_en = {code: names_en[r["name_zh"]] for code, r in pref_by_code.items()}

    regions = cen["prefectures"] if geography == "guangxi_prefectures" else cen["counties"]
    pcode = np.array([r["code"][:4] for r in regions])
    residents = np.array([r["residents"] for r in regions])
    urban = np.array([r["urban"] for r in regions])
    rural = np.array([r["rural"] for r in regions])
    groups = np.stack([r["groups"] for r in regions])  # (R, sex, group)
    helse = np.stack([r["hukou_elsewhere"] for r in regions])  # (R, 3)

    # ---- away (hukou here, living in another province) ----
    if year == 2010:
        away_total = gx["hukou_pop"] - (gx["residents"] - gx["other_province"])
        # per prefecture: hukou - residents + other-province in-migrants, floored at 0, rescaled
        pref_codes = sorted(pref_by_code)
        raw = {c: max(pref_by_code[c]["hukou_pop"] - pref_by_code[c]["residents"] + pref_by_code[c]["hukou_elsewhere"][2], 0.0) for c in pref_codes}
        s = sum(raw.values())
        away_pref = {c: away_total * raw[c] / s for c in pref_codes}
        if geography == "guangxi_prefectures":
            away = np.array([away_pref[c] for c in pcode])
        else:
            raw_c = np.maximum(np.array([r["hukou_pop"] - r["residents"] + r["hukou_elsewhere"][2] for r in regions]), 0.0)
            raw_c = np.where(raw_c > 0, raw_c, 1.0)
            away = np.array([away_pref[c] * raw_c[i] / raw_c[pcode == c].sum() for i, c in enumerate(pcode)])
    else:
        away_total = HUKOU_POP_2020_ESTIMATE - (gx["residents"] - gx["other_province"])
        ref = build_away_2010_shares(census_dir)
        away_pref = {c: away_total * ref[c] for c in ref}
        if geography == "guangxi_prefectures":
            away = np.array([away_pref[c] for c in pcode])
        else:
            away = np.array([away_pref[c] * rural[i] / rural[pcode == c].sum() for i, c in enumerate(pcode)])

    # ---- urban split, age-sex-state structure, fertility ----
    cty = cen["counties"]
    T = np.stack([np.array([r["rural"] for r in cty]), np.array([r["urban"] for r in cty])], axis=1)
    st = derive_states(residents, urban, rural, groups, helse, away, HUKOU_URBAN_SHARE[year], T, np.stack([r["groups"] for r in cty]), np.array([r["urban"] / r["residents"] for r in cty]))

    # sex ratio at birth: boys/girls aged 0 at the census in the region's prefecture
    srb_pref = {c: r["groups"][1, 0] / r["groups"][0, 0] for c, r in pref_by_code.items()}
    srb = np.array([srb_pref[c] for c in pcode])

    # ---- geography: centroids and distances ----
    lon, lat, dist = centroid_distances(pcode, bounds, counties=geography == "guangxi_counties")

    if geography == "guangxi_prefectures":
        region = [pref_en[c] for c in pcode]
        prefecture = region
    else:
        region = [r["code"] for r in regions]
        prefecture = [pref_en[c] for c in pcode]
    return inputs_dataset(
        geography, year, region, prefecture, [r["name_zh"] for r in regions], [r["code"] for r in regions], lon, lat, groups,
        residents, urban, np.array([r["city_proper"] for r in regions]), helse, away, st, srb, dist, cen["path"],
    )


def inputs_dataset(geography, year, region, prefecture, name_zh, code, lon, lat, groups, residents, urban, city_proper, helse, away, st, srb, dist, source, extra_coords=None) -> xr.Dataset:
    """The engine's input file for one geography and census year (see :func:`build`)."""
    pop, f, itfr, tfr_urban, tfr_rural, ratio_urban_rural = (st[k] for k in ("pop", "f", "itfr", "tfr_urban", "tfr_rural", "ratio"))
    land = LAND_M2_PER_URBAN_2020 * urban / 1e6

    coords = {
        "region": ("region", region),
        "state": ("state", list(STATES)),
        "sex": ("sex", list(SEXES)),
        "age": ("age", np.arange(N_AGES)),
        "age_group": ("age_group", list(CENSUS_GROUP_LABELS)),
        "region_to": ("region_to", region),
        "name_zh": ("region", name_zh),
        "code": ("region", code),
        "prefecture": ("region", prefecture),
        "lon": ("region", lon, {"units": "degrees_east", "long_name": "centroid longitude"}),
        "lat": ("region", lat, {"units": "degrees_north", "long_name": "centroid latitude"}),
    }
    P = "persons"
    ds = xr.Dataset(
        {
            "population": (("region", "state", "sex", "age"), pop, {"units": P, "long_name": "jump-off population by state (census date, taken as year end)"}),
            "census_groups": (("region", "sex", "age_group"), groups, {"units": P, "long_name": "census residents by 19 age groups"}),
            "residents": ("region", residents, {"units": P, "long_name": "census residents"}),
            "urban": ("region", urban, {"units": P, "long_name": "census urban residents"}),
            "city_proper": ("region", city_proper, {"units": P, "long_name": "census city-proper (城区) residents"}),
            "hukou_elsewhere": (("region", "origin"), helse, {"units": P, "long_name": "residents with hukou registered elsewhere"}),
            "away": ("region", away, {"units": P, "long_name": "estimated hukou holders living in another province"}),
            "tfr_urban": ("region", tfr_urban, {"units": "1", "long_name": "total fertility rate, urban (iTFR split)"}),
            "tfr_rural": ("region", tfr_rural, {"units": "1", "long_name": "total fertility rate, rural (iTFR split)"}),
            "itfr": ("region", itfr, {"units": "1", "long_name": "iTFR = 7 x children 0-4 / (resident + away women 15-49)"}),
            "srb": ("region", srb, {"units": "1", "long_name": "sex ratio at birth, boys per girl (census age 0)"}),
            "distance_km": (("region", "region_to"), dist, {"units": "km", "long_name": "distance between region centroids"}),
            "urban_land": ("region", land, {"units": "km2", "long_name": "urban construction land (2020 m2 per urban resident x urban residents)"}),
        },
        coords={**coords, **(extra_coords or {}), "origin": ("origin", ["same_county", "other_county", "other_province"])},
        attrs={
            "title": f"Engine inputs: {geography}, census {year}",
            "census_year": year,
            "geography": geography,
            "source": "China population census (6th 2010 / 7th 2020) county-level yearbook tables "
            "(第六/七次全国人口普查分县资料) and city bulletins, digitised by leiii/census (Lei Dong et al., MIT licence)",
            "derived_by": "python -m sim.derive (methods: sim/data/PROVENANCE.md)",
            "source_sha256": f"{source.name}={sha256(source)}",
            "migrant_factor": f,
            "tfr_urban_rural_ratio": ratio_urban_rural,
        },
    )
    return ds


def derive_states(residents, urban, rural, groups, helse, away, hukou_share, T, cty_groups, cty_share) -> dict:
    """The jump-off state of every region and its fertility (methods 2-5 of PROVENANCE.md).

    Per region: census ``residents``, ``urban``, ``rural``, 19 age groups ``groups (R, sex,
    group)``, residents with hukou elsewhere ``helse (R, 3)`` and the estimated ``away`` stock;
    ``hukou_share`` the official hukou urbanization rate of the whole set. ``T (C, [rural,
    urban])``, ``cty_groups (C, sex, group)`` and ``cty_share (C,)`` (urban share): the counties
    whose cross-section gives the urban and rural age profiles and the urban/rural fertility
    ratio."""
    R = len(residents)
    # ---- urban split: local urban hukou vs migrants ----
    f = solve_migrant_factor(urban, helse.sum(axis=1), residents.sum() + away.sum(), hukou_share)
    migrant = split_urban(urban, helse.sum(axis=1), f)
    local = urban - migrant

    # ---- prior age-sex profiles per state ----
    # Urban and rural age-sex profiles from the county cross-section by Goodman's ecological
    # regression; within the urban population, unsettled migrants get the urban profile times
    # the recent-migrant propensity of a Rogers-Castro standard schedule.
    N = cty_groups.reshape(len(cty_groups), -1)
    prof = ecological_profiles(N, T).reshape(2, N_SEXES, N_GROUPS)
    prof = np.maximum(prof, PROFILE_FLOOR * prof.max(axis=(1, 2), keepdims=True))
    width = np.diff(np.append(CENSUS_GROUP_EDGES, 101))[group_index_of_age()]
    prof_rural, prof_urban = prof[:, :, group_index_of_age()] / width  # per single year
    stock = migrant_stock_propensity()
    seed = np.stack([prof_rural, prof_urban, prof_urban * stock])  # (3, sex, age)

    # ---- single years and IPF into states ----
    single = graduate(groups)  # (R, sex, age)
    pop = np.zeros((R, N_STATES, N_SEXES, N_AGES))
    for i in range(R):
        targets = np.array([rural[i], local[i], migrant[i]])
        pop[i, :3] = ipf(seed, {(0,): targets, (1, 2): single[i]})
        # away: the region's own age-sex structure times the recent-migrant propensity
        w = single[i] * stock
        pop[i, AWAY] = away[i] * w / w.sum()

    # ---- fertility: iTFR from child-woman ratios, split urban/rural by county regression ----
    # Children 0-4 living in the region include those left behind by mothers working in other
    # provinces, so the women of the away state join the denominator: every child is counted
    # against all the region's hukou mothers once (and the away women then bear children too).
    w_away = pop[:, AWAY, 0, 15:50].sum(axis=1)
    itfr = _itfr(groups, extra_women=w_away)
    c_itfr = _itfr(cty_groups)
    slope, intercept = np.polyfit(cty_share, c_itfr, 1)
    ratio_urban_rural = (intercept + slope) / intercept
    women = pop[:, :, 0, 15:50].sum(axis=2)  # (R, state)
    w_u = women[:, URBAN_LOCAL] + women[:, URBAN_MIGRANT] + women[:, AWAY]
    w_r = women[:, RURAL]
    tfr_rural = itfr * (w_u + w_r) / (w_r + ratio_urban_rural * w_u)
    tfr_urban = ratio_urban_rural * tfr_rural

    return dict(pop=pop, f=f, itfr=itfr, tfr_urban=tfr_urban, tfr_rural=tfr_rural, ratio=ratio_urban_rural)


def china_units(census_dir: Path) -> tuple[list[dict], dict]:
    """Every county-level row of China's 2020 table (counties, districts, county-level cities,
    the development zones the table lists without a code, and the prefecture-level cities that
    have no county-level division), each with the prefecture-level
    unit (a 6-digit city code of ``census_city_2010_2020.csv``) it lies in; and that file's
    units. A row's unit is its code's prefecture (``xxxx00``), else its own code (county-level
    cities under their province, e.g. 429004), else the unit of its province and city names
    (development zones, Chongqing's counties). Rows matching no unit, or without age groups,
    are dropped and listed in the second value's ``"unmatched"``."""
    path = census_dir / "census_county_2020.csv"

    def keep(code, row):
        return not (row["省"] in AGGREGATE_ROWS or row["区县"] in AGGREGATE_ROWS or code.endswith("0000"))

    unmatched = []
    recs = read_records(path, 2020, keep, dropped=unmatched)
    # a prefecture row stands for itself only where no county row lies under it (prefecture-level
    # cities without districts: Dongguan, Zhongshan, Jiayuguan, Danzhou)
    with_counties = {r["code"][:4] for r in recs if r["code"].isdigit() and not r["code"].endswith("00")}
    recs = [r for r in recs if not (r["code"].isdigit() and r["code"].endswith("00") and r["code"][:4] in with_counties)]
    bounds = read_boundaries(census_dir, province=None)
    by_name = {(b[3], b[4]): c for c, b in bounds.items()}
    kept = []
    n_dev = {}
    for r in recs:
        code = r["code"]
        unit = None
        if code.isdigit():
            unit = code[:4] + "00" if code[:4] + "00" in bounds else code if code in bounds else None
        unit = unit or by_name.get((r["province_zh"], r["city_zh"]))
        if unit is None:
            unmatched.append(f"{r['province_zh']} {r['city_zh']} {r['name_zh']} ({r['residents']:.0f})")
            continue
        if not code.isdigit():  # uncoded development zone: unit code + D + running number
            n_dev[unit] = n_dev.get(unit, 0) + 1
            r["code"] = f"{unit[:4]}D{n_dev[unit]}"
        r["unit"] = unit
        r["hukou_elsewhere"] = np.nan_to_num(r["hukou_elsewhere"])
        kept.append(r)
    return kept, {"bounds": bounds, "unmatched": unmatched, "path": path}


def build_china(census_dir: Path, geography: str) -> xr.Dataset:
    """Inputs for all of China at the 2020 census: ``china_counties`` (every county-level row)
    or ``china_prefectures`` (their prefecture-level units), by the methods of :func:`build`.

    What differs from Guangxi's geographies: the hukou urbanization target of the urban split is
    China's (:data:`HUKOU_URBAN_SHARE_CHINA_2020`); the ``away`` state starts empty (the 2020
    table has no hukou population, and moves between provinces are moves between regions of
    the model); urban land uses Guangxi's 2020 m2 per urban resident everywhere; regions are
    named by code, ``prefecture`` holds the unit's name (English for Guangxi's 14, as in the
    Guangxi geographies, Chinese elsewhere) and ``province_code`` its province."""
    if geography not in DERIVED_ON_FIRST_USE:
        raise ValueError(f"geography = {geography!r}: allowed values are {', '.join(DERIVED_ON_FIRST_USE)}")
    recs, meta = china_units(census_dir)
    bounds = meta["bounds"]
    names_en = read_prefecture_names(census_dir)
    T = np.stack([np.array([r["rural"] for r in recs]), np.array([r["urban"] for r in recs])], axis=1)
    cty_groups = np.stack([r["groups"] for r in recs])
    cty_share = np.array([r["urban"] / r["residents"] for r in recs])
    unit_of = np.array([r["unit"] for r in recs])
    units = sorted(set(unit_of))

    def per_unit(key):
        return np.stack([np.sum([r[key] for r in recs if r["unit"] == u], axis=0) for u in units])

    unit_groups = per_unit("groups")
    srb_unit = dict(zip(units, unit_groups[:, 1, 0] / unit_groups[:, 0, 0]))
    if geography == "china_prefectures":
        region = units
        unit = units
        residents, urban, rural = per_unit("residents"), per_unit("urban"), per_unit("rural")
        groups, helse = unit_groups, per_unit("hukou_elsewhere")
        cp = np.array([np.nansum([r["city_proper"] for r in recs if r["unit"] == u]) for u in units])
        name_zh = [bounds[u][4] for u in units]
    else:
        region = [r["code"] for r in recs]
        unit = list(unit_of)
        residents, urban, rural = (np.array([r[k] for r in recs]) for k in ("residents", "urban", "rural"))
        groups, helse = cty_groups, np.stack([r["hukou_elsewhere"] for r in recs])
        cp = np.array([r["city_proper"] for r in recs])
        name_zh = [r["name_zh"] for r in recs]
    away = np.zeros(len(region))
    st = derive_states(residents, urban, rural, groups, helse, away, HUKOU_URBAN_SHARE_CHINA_2020, T, cty_groups, cty_share)
    lon, lat, dist = centroid_distances(unit, bounds, counties=geography == "china_counties")
    prefecture = [names_en.get(bounds[u][4], bounds[u][4]) if u.startswith("45") else bounds[u][4] for u in unit]
    extra = {"province_code": ("region", [u[:2] for u in unit]), "province_zh": ("region", [bounds[u][3] for u in unit])}
    ds = inputs_dataset(geography, 2020, region, prefecture, name_zh, region, lon, lat, groups, residents, urban, cp, helse, away, st, np.array([srb_unit[u] for u in unit]), dist, meta["path"], extra)
    ds.attrs["unmatched_rows"] = "; ".join(meta["unmatched"]) or "none"
    ds.attrs["derived_by"] = "sim.inputs.derive.build_china, on first use (sim.inputs); methods: sim/data/PROVENANCE.md"
    return ds


def build_away_2010_shares(census_dir: Path) -> dict:
    cen = read_census(census_dir, 2010)
    raw = {r["code"][:4]: max(r["hukou_pop"] - r["residents"] + r["hukou_elsewhere"][2], 0.0) for r in cen["prefectures"]}
    s = sum(raw.values())
    return {c: v / s for c, v in raw.items()}


def _itfr(groups: np.ndarray, extra_women=0.0) -> np.ndarray:
    """Hauer, Baker & Brown (2013) iTFR = 7 * C/W, C children 0-4, W women 15-49 (plus
    ``extra_women``); ``groups`` (..., sex, 19 groups)."""
    children = groups[..., :, 0:2].sum(axis=(-1, -2))
    women = groups[..., 0, 4:11].sum(axis=-1) + extra_women
    return 7.0 * children / women


OBSERVED_COLUMNS = ("year", "region", "variable", "value", "grade", "basis", "source")
ANNUAL_FILE = "guangxi_annual_2010_2020_extended.csv"
ANNUAL_COLUMNS = ("year", "variable", "value", "unit", "basis", "grade", "source")
ANNUAL_GRADES = ("A", "B", "C")
ANNUAL_BASES = ("original", "census", "revised")
LAST_RECORD_YEAR = 2020  # nothing published for a later year goes into the project
# Guangxi rows of the annual file taken as targets: file variable -> (observed variable, unit
# the file must give, factor to the observed variable's unit). Left out: the year-end residents
# and urban residents on the original (pre-census) basis (the revised residents and the 2020
# census are used), hukou population, migration and survey shares (no model counterpart yet).
# The bulletin's births are on the registered (hukou) basis, its deaths on the resident basis:
# 2016's 770,000 births over the end-2016 hukou population (55.79 M, data/README) are 13.80 per
# 1000, the survey's resident birth rate of that year (13.82), while over the residents (48.57 M,
# the mean of the revised year-ends) they would be 15.9; its 290,000 deaths over the residents
# are 5.97 per 1000, the survey's death rate (5.95). So the counts are births to the population
# registered in Guangxi, wherever it lives (the model's residents, less the migrants registered
# in another province, plus the away state): ``births_registered``.
ANNUAL_TARGETS = {
    "GX_births": ("births_registered", "10k persons", 1e4),
    "GX_deaths": ("deaths", "10k persons", 1e4),
    "GX_birth_rate": ("birth_rate", "permille", 1e-3),
    "GX_death_rate": ("death_rate", "permille", 1e-3),
    "GX_life_expectancy": ("e0", "years", 1.0),
    "GX_urbanization_rate_resident": ("urban_share_original", "percent", 1e-2),
}


def read_annual(path: Path) -> list[dict]:
    """The rows of the annual file (``guangxi_annual_2010_2020_extended.csv``), checked: every
    column present, ``year`` an integer no later than 2020, ``value`` a finite number, ``grade``
    A/B/C, ``basis`` original/census/revised, and a target variable in the unit expected. A bad
    row is refused with its line number, the column, the value and what is allowed."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        missing = [c for c in ANNUAL_COLUMNS if c not in header]
        if missing:
            raise DerivationError(f"{path.name}: missing column(s) {', '.join(missing)}; required: {', '.join(ANNUAL_COLUMNS)}")
        rows = []
        for line, r in enumerate(reader, start=2):
            where = f"{path.name}, line {line}"
            try:
                year = int(r["year"])
            except (TypeError, ValueError):
                raise DerivationError(f"{where}, column year: {r['year']!r} is not an integer year") from None
            if not 1949 <= year <= LAST_RECORD_YEAR:
                raise DerivationError(f"{where}, column year: {year} is outside the record; allowed: 1949..{LAST_RECORD_YEAR} (no figure for a year after {LAST_RECORD_YEAR})")
            try:
                value = float(r["value"])
            except (TypeError, ValueError):
                raise DerivationError(f"{where}, column value: {r['value']!r} is not a number") from None
            if not math.isfinite(value):
                raise DerivationError(f"{where}, column value: {r['value']!r} is not a finite number")
            if r["grade"] not in ANNUAL_GRADES:
                raise DerivationError(f"{where}, column grade: {r['grade']!r}; allowed: {', '.join(ANNUAL_GRADES)}")
            if r["basis"] not in ANNUAL_BASES:
                raise DerivationError(f"{where}, column basis: {r['basis']!r}; allowed: {', '.join(ANNUAL_BASES)}")
            target = ANNUAL_TARGETS.get(r["variable"])
            if target and r["unit"] != target[1]:
                raise DerivationError(f"{where}, column unit: {r['unit']!r} for {r['variable']}; allowed: {target[1]!r}")
            rows.append({**r, "year": year, "value": value, "line": line})
    return rows


def observed_series(census_dir: Path) -> list[dict]:
    """Observed values in the backtest's format (year, region, variable, value; plus grade,
    basis and source): the 2010 and 2020 census residents and urban shares of Guangxi and its
    prefectures (``prefectures_2010_2020.csv``, grade A), Guangxi's 2012 urban share (grade B,
    original basis: ``urban_share_original``) and its revised 2015-2019 year-end residents
    (``guangxi_annual_2010_2020.csv``, grade B), and the annual file's Guangxi births, deaths,
    birth and death rates, life expectancy and urban shares on the original basis
    (:data:`ANNUAL_TARGETS`, with their grades), and the 2010 census's death rates of Guangxi
    and its prefectures (``prefectures_extended_census.csv``, grade A). Left out: the year-end 2020 total (the census
    stands for 2020)."""
    rows = []
    with open(census_dir / "prefectures_2010_2020.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            region = "Guangxi" if r["prefecture_en"].startswith("Guangxi") else r["prefecture_en"]
            for y in (2010, 2020):
                src = f"{y} census ({'6th' if y == 2010 else '7th'}), prefectures_2010_2020.csv"
                rows.append(dict(year=y, region=region, variable="population", value=float(r[f"pop_{y}"]), grade="A", basis="census", source=src))
                rows.append(dict(year=y, region=region, variable="urban_share", value=round(float(r[f"urban_rate_{y}"]) / 100, 6), grade="A", basis="census", source=src))
    with open(census_dir / "guangxi_annual_2010_2020.csv", encoding="utf-8") as f:
        annual = {int(r["year"]): r for r in csv.DictReader(f)}
    src = "Guangxi New Urbanization Plan 2014-2020 ch.1 (guangxi_annual_2010_2020.csv)"
    rows.append(dict(year=2012, region="Guangxi", variable="urban_share_original", value=float(annual[2012]["urban_rate"]) / 100, grade="B", basis="original", source=src))
    for y in range(2015, 2020):
        rows.append(dict(year=y, region="Guangxi", variable="population", value=float(annual[y]["total_pop"]) * 1e4, grade="B", basis="revised",
                         source="NBS revised year-end residents (guangxi_annual_2010_2020.csv)"))
    # the 2010 census's death rates (deaths in the 12 months before 1 Nov 2010 per resident) by
    # prefecture: censuses miss deaths (Guangxi's 5.48 per 1000 against the bulletin's about 6),
    # so the calibration fits each prefecture's rate relative to Guangxi's
    with open(census_dir / "prefectures_extended_census.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            region = "Guangxi" if r["prefecture_en"].startswith("Guangxi") else r["prefecture_en"]
            rows.append(dict(year=2010, region=region, variable="death_rate", value=round(float(r["death_rate_2010_census"]) * 1e-3, 10), grade="A", basis="census",
                             source="2010 census (6th), deaths Nov 2009 - Oct 2010 per resident, prefectures_extended_census.csv"))
    for r in read_annual(census_dir / ANNUAL_FILE):
        if r["variable"] not in ANNUAL_TARGETS:
            continue
        name, _, factor = ANNUAL_TARGETS[r["variable"]]
        rows.append(dict(year=r["year"], region="Guangxi", variable=name, value=round(r["value"] * factor, 10), grade=r["grade"], basis=r["basis"],
                         source=f"{ANNUAL_FILE} line {r['line']}: {r['source'][:160]}"))
    return sorted(rows, key=lambda r: (r["year"], r["region"] != "Guangxi", r["region"], r["variable"]))


PROVINCES_FILE = "provinces_annual_2010_2020.csv"
ERROR_COLUMNS = ("variable", "scale", "component", "sd", "n", "method", "source")
ROUNDING_UNIT = 1e4  # Guangxi's bulletin births and deaths are published in 10,000 persons (the annual file's 2016 figures: 77, 29)
# The annual birth and death rates are estimated from the national population change sample survey
# (全国人口变动情况抽样调查), a sample of about 1 per 1000 residents (NBS statistical communiqués, the
# note on population figures; grade B: the design as the bureau states it)
SURVEY_FRACTION = 1e-3


def _provinces(census_dir: Path) -> dict[str, dict[int, dict]]:
    """``provinces_annual_2010_2020.csv`` as province (English name) -> year -> row."""
    out: dict[str, dict[int, dict]] = {}
    with open(census_dir / PROVINCES_FILE, encoding="utf-8") as f:
        for r in csv.DictReader(f):
            out.setdefault(r["province_en"], {})[int(r["year"])] = r
    return out


def observation_errors(census_dir: Path) -> list[dict]:
    """The sizes of the observation model (:mod:`models.observation`), estimated from the record:

    - the drift of a bulletin's basis (``drift``, per square root of a year since the census):
      Guangxi's urban shares (logit) and year-end residents (log) as first published (the annual
      file, basis ``original``) against the same years revised after the 2020 census
      (``provinces_annual_2010_2020.csv``), :func:`models.observation.drift_step`;
    - year-to-year survey noise (``noise``) and the persisting change (``process``) of every
      province's revised urban share (logit, 2012-2020) and residents (log, 2010-2020), pooled
      (:func:`models.observation.random_walk_plus_noise`); the revised series are smoothed by the
      bureau, so their noise comes out near 0 and the first-published figures' noise is in the
      drift;
    - the rounding of the bulletin's births and deaths (published in 10,000 persons): the s.d.
      of a uniform error over one unit, ``unit / sqrt(12)`` (persons)."""
    from models.observation import drift_step, logit, random_walk_plus_noise

    prov = _provinces(census_dir)
    gx = prov["Guangxi"]
    annual = read_annual(census_dir / ANNUAL_FILE)
    out = []
    for variable, name, scale, revised_col, factor in (
        ("urban_share", "GX_urbanization_rate_resident", "logit", "urban_share_pct", 1e-2),
        ("population", "GX_resident_pop_yearend", "log", "residents_10k", 1.0),
    ):
        gaps, ts, lines = [], [], []
        for r in annual:
            y = r["year"]
            if r["variable"] != name or r["basis"] != "original" or not 2010 < y < 2020 or not (gx.get(y) or {}).get(revised_col):
                continue
            first, revised = r["value"] * factor, float(gx[y][revised_col]) * factor
            gaps.append(float(logit(first) - logit(revised)) if scale == "logit" else float(np.log(first / revised)))
            ts.append(y - 2010)
            lines.append(str(r["line"]))
        out.append(dict(variable=variable, scale=scale, component="drift", sd=round(drift_step(np.array(gaps), np.array(ts)), 6), n=len(gaps),
                        method="random-walk drift from the census: sqrt(mean(gap^2 / t)) of first-published minus revised, t years after the 2010 census",
                        source=f"{ANNUAL_FILE} lines {', '.join(lines)} against {PROVINCES_FILE} (Guangxi)"))
        panel = []
        for rows in prov.values():
            ys = sorted(y for y in rows if rows[y].get(revised_col))
            if len(ys) >= 4 and ys == list(range(ys[0], ys[-1] + 1)):
                v = np.array([float(rows[y][revised_col]) * factor for y in ys])
                panel.append(logit(v) if scale == "logit" else np.log(v))
        est = random_walk_plus_noise(panel)
        src = f"{PROVINCES_FILE}: {len(panel)} provinces, {est['differences']} second differences"
        out.append(dict(variable=variable, scale=scale, component="noise", sd=round(est["noise"], 6), n=est["differences"],
                        method="local level with drift plus noise, pooled second-difference moments (revised series: smoothed by the bureau)", source=src))
        out.append(dict(variable=variable, scale=scale, component="process", sd=round(est["eta"], 6), n=est["differences"],
                        method="local level with drift plus noise, pooled second-difference moments: the year-to-year change that persists", source=src))
    residents = float(gx[2020]["residents_10k"]) * 1e4
    for variable, rate_name in (("births", "GX_birth_rate"), ("deaths", "GX_death_rate")):
        out.append(dict(variable=variable, scale="persons", component="rounding", sd=round(ROUNDING_UNIT / np.sqrt(12.0), 3), n=1,
                        method="uniform rounding error over the published unit (10,000 persons): unit / sqrt(12)", source=f"{ANNUAL_FILE}: GX_births 2016 (77), GX_deaths 2016 (29), in 10k persons"))
        last = max((r for r in annual if r["variable"] == rate_name), key=lambda r: r["year"])
        events = SURVEY_FRACTION * residents * last["value"] * 1e-3
        out.append(dict(variable=variable, scale="relative", component="survey", sd=round(1.0 / np.sqrt(events), 6), n=1,
                        method=f"sampling error of the rate: 1 / sqrt(events in the survey's 1 per 1000 sample), {events:.0f} events (rate {last['value']} per 1000 in {last['year']}, {residents:,.0f} residents in 2020)",
                        source=f"{ANNUAL_FILE} line {last['line']}; {PROVINCES_FILE} (Guangxi 2020); survey fraction: NBS communiques"))
    return out


def table_csv(rows: list[dict], columns) -> str:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def observed_csv(rows: list[dict]) -> str:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=OBSERVED_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write(ds: xr.Dataset, path: Path) -> None:
    """Write ``ds`` to ``path`` through a temporary file of this process, renamed at the end."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.nc")
    _netcdf_bytes(ds, tmp)
    tmp.replace(path)


def _netcdf_bytes(ds: xr.Dataset, path: Path) -> None:
    enc = {v: {"zlib": True, "complevel": 6} for v in ds.data_vars}
    ds.to_netcdf(path, encoding=enc, engine="netcdf4")


def derive_all(census: Path, out: Path, echo=print) -> None:
    """Write every shipped input into ``out``: each geography and census, the observed series and
    the prefecture outlines. The tables are checked first (:func:`check_tables`); everything is
    derived before anything is written; the files are written as temporary files and renamed
    into place together, so that ``out`` holds the old set or the new one."""
    out = Path(out)
    if not out.is_dir():
        raise DerivationError(f"--out {out}: no such folder (create it first)")
    check_tables(census)
    built = {}
    for geo in GEOGRAPHIES:
        for year in YEARS:
            built[files.inputs_name(geo, year)] = build(census, geo, year)
    observed = observed_csv(observed_series(census))
    errors = table_csv(observation_errors(census), ERROR_COLUMNS)
    outlines = json.dumps(boundaries_geojson(census), ensure_ascii=False, separators=(",", ":")) + "\n"
    tmp = {}
    try:
        for name, ds in built.items():
            tmp[name] = out / f".{name}.{os.getpid()}.tmp"
            _netcdf_bytes(ds, tmp[name])
        for name, text in ((files.OBSERVED, observed), (files.OBSERVATION_ERRORS, errors), (files.BOUNDARIES, outlines)):
            tmp[name] = out / f".{name}.{os.getpid()}.tmp"
            tmp[name].write_text(text, encoding="utf-8")
    except BaseException:
        for t in tmp.values():
            t.unlink(missing_ok=True)
        raise
    for name, t in tmp.items():
        files.publish(t, out / name)
    for name, ds in built.items():
        echo(f"wrote {name}: {ds.sizes['region']} regions, migrant factor {ds.attrs['migrant_factor']:.3f}")
    echo(f"wrote {files.OBSERVED}")
    echo(f"wrote {files.OBSERVATION_ERRORS}")
    echo(f"wrote {files.BOUNDARIES}")
