"""Structured configs (the schema Hydra validates YAML against) and value checks.

The dataclasses live here, in an importable module, so that launchers that pickle the
ConfigStore work. :func:`validate` checks every value against the bounds declared in the field
metadata (``lo``, ``hi``, ``choices``) and raises :class:`ConfigError` naming the field and the
allowed values, before anything is computed. Year-keyed values (:data:`YearKeyed`) are a
number (a constant path) or a map ``{2020: 0.02, 2030: 0.04}``, interpolated linearly between
the years given and held flat outside them (:func:`sim.config.values.year_map`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from models import names as model_names
from sim import files
from sim.config.parameters import CALIBRATED_PARAMETERS, REGIONAL_PARAMETERS, UNCERTAIN_PARAMETERS

GEOGRAPHY_CHOICES = ("guangxi_prefectures", "guangxi_counties", "china_prefectures", "china_counties")
# Geographies derived from the census tables on first use and cached (2020 census only).
DERIVED_ON_FIRST_USE = ("china_prefectures", "china_counties")
GUANGXI_GEOGRAPHIES = ("guangxi_prefectures", "guangxi_counties")
# how figures and reports name a geography: (the place, what its regions are)
GEOGRAPHY_NAMES = {
    "guangxi_prefectures": ("Guangxi", "prefectures"), "guangxi_counties": ("Guangxi", "counties"),
    "china_prefectures": ("China", "prefecture-level units"), "china_counties": ("China", "county-level units"),
}  # whose totals are Guangxi's (the record's, the observation model's)
# geographies whose inputs include the 2010 census (a 2010 start, a history to continue)
WITH_HISTORY = ("guangxi_prefectures", "guangxi_counties")
JUMP_OFF_CHOICES = ("auto", "continued", "census")
# where jump_off = auto continues the history: the geographies whose regions are the same in both
# censuses (Guangxi's counties changed between them, 109 -> 111: there auto is the census split)
CONTINUED_BY_DEFAULT = ("guangxi_prefectures",)


class ConfigError(ValueError):
    """A config value is out of its allowed range; the message names the field."""


# A value that may change with the year: a number (the same every year) or a map {year: value}.
# Typed Any for OmegaConf, so that a number, a map and any set of years are accepted on the
# command line; :func:`validate` checks the years and each value against the field's range.
YearKeyed = Any
RegionMap = Any  # {region or prefecture: number}, checked by check_region_map
YEARS_ALLOWED = (1950, 2300)  # the keys of a year-keyed map


def _f(default, lo=None, hi=None, choices=None, doc="", regions=False, years=False, mapping=False):
    """A field with its allowed values; ``regions``: its items (a list) or keys (a map) name
    regions or prefectures, which :func:`check_regions` checks against the geography;
    ``years``: a :data:`YearKeyed` value; ``mapping``: a :data:`RegionMap`."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "doc": doc, "regions": regions, "years": years, "mapping": mapping}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


def _years(default, lo, hi, doc=""):
    """A :data:`YearKeyed` field in the range ``lo..hi``."""
    return _f(default, lo, hi, doc=doc, years=True)


@dataclass
class GeographyConfig:
    name: str = _f("guangxi_prefectures", choices=GEOGRAPHY_CHOICES, doc="region set")
    regions: List[str] = _f([], doc="subset of regions to run (empty: all); region or prefecture names", regions=True)
    city_proper_share: float = _f(0.6, 0.0, 1.0, doc="city-proper share of urban residents where the census gives none (county seats)")
    census_dir: str = _f("", doc="census tables for geographies derived on first use (empty: ../shared/data beside the repo, or $URBSIM_CENSUS_DIR)")
    cache_dir: str = _f("", doc="where derived geographies are cached (empty: $URBSIM_CACHE_DIR, else $XDG_CACHE_HOME/urbsim or ~/.cache/urbsim)")


@dataclass
class MortalityConfig:
    model: str = _f("siler", choices=model_names("mortality"))
    # the ranges keep every state's e0 (e0 + urban_advantage, e0 - rural_disadvantage) inside the
    # 20..110 years the Siler shape supports (models.mortality.level_for_e0)
    e0_female: float = _f(80.27, 30.0, 100.0, doc="life expectancy at birth, women, in 2020 (years); a 2010 start goes back from it along the improvement path")
    e0_male: float = _f(74.77, 30.0, 100.0, doc="life expectancy at birth, men, in 2020 (years); a 2010 start goes back from it along the improvement path")
    urban_advantage: float = _f(1.0, -5.0, 5.0, doc="e0 of urban states minus the mean (years)")
    rural_disadvantage: float = _f(1.0, -5.0, 5.0, doc="mean minus e0 of the rural state (years)")
    improvement: YearKeyed = _years({2020: 0.015}, -0.1, 0.1, doc="yearly decline of all hazards (1/year)")
    adult_hazard: float = _f(2.0e-4, 0.0, 0.01, doc="age-independent hazard of the mortality shape (Siler a2: accidents and adult causes; per year, before the level that sets e0): at a given e0, more of it means higher hazards before old age and lower ones at old ages")


@dataclass
class FertilityConfig:
    model: str = _f("gamma", choices=model_names("fertility"))
    tfr_multiplier: YearKeyed = _years({2020: 1.0}, 0.0, 5.0, doc="multiplier on the census TFR levels (a scenario's lever; the path after 2020 is trend_window and trend_damping's)")
    trend_window: int = _f(5, 1, 9, doc="after 2020 the fitted TFR path's log change a year over its last trend_window years (2015-2020 by default) goes on, damped (years)")
    trend_damping: float = _f(0.8, 0.0, 0.99, doc="damping of that change: each year after 2020 this fraction of the year before's (0: the 2020 level held)")
    mean_age_urban: float = _f(29.0, 15.0, 45.0, doc="mean age at childbearing, urban (years)")
    mean_age_rural: float = _f(27.0, 15.0, 45.0, doc="mean age at childbearing, rural (years)")
    sd_age: float = _f(5.8, 1.0, 15.0, doc="s.d. of age at childbearing (years)")
    srb: Optional[float] = _f(None, 0.9, 1.3, doc="boys per girl at birth; null: the census age-0 ratio")


@dataclass
class MigrationConfig:
    schedule: str = _f("rogers_castro", choices=model_names("migration_schedule"))
    timing: str = _f("end", choices=("end", "even"), doc="end: all moves after survival; even: half before, half after")
    rural_to_urban: YearKeyed = _years({2020: 1.6}, 0.0, 50.0, doc="GMR rural -> urban_migrant, same region")
    urban_to_rural: float = _f(0.3, 0.0, 50.0, doc="GMR urban_migrant -> rural, same region")
    interregional: Dict[str, float] = _f({"rural": 0.6, "urban_local": 0.2, "urban_migrant": 1.0}, 0.0, 50.0, doc="GMR of leaving for another region, by state")
    to_away: Dict[str, float] = _f({"rural": 0.9, "urban_local": 0.2, "urban_migrant": 0.8}, 0.0, 50.0, doc="GMR of leaving for another province, by state")
    from_away: YearKeyed = _years({2020: 3.0}, 0.0, 50.0, doc="GMR of returning from another province")
    return_urban_share: float = _f(0.4, 0.0, 1.0, doc="share of returns that settle in towns (urban_migrant)")
    external_in: YearKeyed = _years({2020: 0.12}, 0.0, 5.0, doc="yearly in-migrants from other provinces / census stock of such residents")
    external_out: float = _f(9.0, 0.0, 50.0, doc="GMR of other-province migrants leaving again (applies to that share of urban_migrant)")
    trend_damping: float = _f(0.8, 0.0, 1.0, doc="after 2020 the fitted intensity trends go on at this share of the year before's step (damped trend; 0: none after 2020, 1: undamped)")
    beta_distance: float = _f(1.5, 0.0, 10.0, doc="destination choice: weight on -log distance")
    beta_size: float = _f(1.0, 0.0, 10.0, doc="destination choice: weight on log urban residents")
    student_ages: List[int] = _f([15, 19], 0, 100, doc="[first, last] age at the move at which movers between regions choose their destination with the student pull (params.region_factors.student_pull: where the colleges are); []: none")
    student_moves: float = _f(0.3, 0.0, 5.0, doc="moves to another region to study: the sum over student_ages of the yearly rate (the same at each of those ages), added to every resident state's rate of leaving for another region")
    graduate_ages: List[int] = _f([22, 24], 0, 100, doc="[first, last] age at the move of graduates leaving their college's region; []: none")
    graduate_moves: float = _f(0.3, 0.0, 5.0, doc="graduates' moves to another region: the sum over graduate_ages of the yearly rate, added like student_moves")


@dataclass
class DemographyConfig:
    mortality: MortalityConfig = field(default_factory=MortalityConfig)
    fertility: FertilityConfig = field(default_factory=FertilityConfig)
    migration: MigrationConfig = field(default_factory=MigrationConfig)


@dataclass
class HukouConfig:
    name: str = _f("baseline")
    conversion_rate: YearKeyed = _years({2020: 0.05}, 0.0, 1.0, doc="yearly rate urban_migrant -> urban_local, ages 16-59")
    old_age_factor: float = _f(0.3, 0.0, 1.0, doc="conversion rate at 60+ relative to 16-59")
    child_factor: float = _f(1.0, 0.0, 1.0, doc="conversion rate at 0-15 relative to 16-59 (children follow parents)")
    big_cities: List[str] = _f(["Nanning"], doc="regions (or prefectures) treated as big cities", regions=True)
    big_city_factor: float = _f(0.8, 0.0, 5.0, doc="conversion rate in big cities relative to elsewhere")
    # a map typed Any, as the year-keyed ones: the command line passes a map given whole as a quoted
    # string (sim.config.cli.rewrite_overrides), which replaces the field's value (Hydra would merge
    # it into the default and refuse a region the default does not have)
    openness: RegionMap = _f({}, -10.0, 10.0, doc="destination utility added for open hukou, per region or prefecture", regions=True, mapping=True)


@dataclass
class ServicesConfig:
    name: str = _f("baseline")
    retention: float = _f(0.0, 0.0, 1.0, doc="share by which migrants' departures from towns (to rural, away, other provinces) are cut")
    family_factor: float = _f(1.0, 0.0, 5.0, doc="multiplier on children's (0-15) rural -> urban moves")


@dataclass
class PullConfig:
    """A regional development lever: extra pull (destination utility) for some regions."""

    name: str = _f("off")
    regions: List[str] = _f([], doc="regions or prefectures the lever applies to", regions=True)
    pull: float = _f(0.0, -5.0, 5.0, doc="destination utility added for these regions")
    rural_to_urban_factor: float = _f(1.0, 0.0, 5.0, doc="multiplier on these regions' in-situ rural -> urban moves")
    return_factor: float = _f(1.0, 0.0, 5.0, doc="multiplier on returns from other provinces into these regions")
    distance_factor: float = _f(1.0, 0.01, 1.0, doc="multiplier on distances among these regions (integration)")


@dataclass
class LandConfig:
    name: str = _f("off")
    base_quota: YearKeyed = _years({2020: 0.015}, 0.0, 1.0, doc="yearly new urban land as a share of the region's 2020 land")
    m2_per_settled: float = _f(0.0, 0.0, 1000.0, doc="人地挂钩: m2 of new land per migrant settled the year before")
    exempt_regions: List[str] = _f([], doc="regions whose settled migrants earn no land (core of largest cities)", regions=True)
    release_km2: YearKeyed = _years({2020: 0.0}, 0.0, 1000.0, doc="增减挂钩: rural land released into urban quota, km2/year for the whole area (spread by rural residents)")
    release_m2_per_leaver: float = _f(0.0, 0.0, 1000.0, doc="增减挂钩: m2 of rural land turned into urban quota per rural resident who left in the year")
    capacity_m2_per_person: float = _f(70.0, 1.0, 1000.0, doc="per-capita land standard used for capacity (m2/person)")
    brake_width: float = _f(0.05, 0.0, 1.0, doc="softness of the capacity brake; 0 switches the brake off")


@dataclass
class ReclassificationConfig:
    name: str = _f("baseline")
    rate: YearKeyed = _years({2020: 0.004}, 0.0, 1.0, doc="yearly share of rural residents reclassified urban in place")
    to_local_share: float = _f(0.3, 0.0, 1.0, doc="share of the reclassified who get local urban hukou (征地农转非)")


@dataclass
class PolicyConfig:
    hukou: HukouConfig = field(default_factory=HukouConfig)
    land: LandConfig = field(default_factory=LandConfig)
    reclassification: ReclassificationConfig = field(default_factory=ReclassificationConfig)
    services: ServicesConfig = field(default_factory=ServicesConfig)
    nanning_primacy: PullConfig = field(default_factory=PullConfig)
    beibu_integration: PullConfig = field(default_factory=PullConfig)
    east_links: PullConfig = field(default_factory=PullConfig)


TARGET_VARIABLES = ("urban_share", "hukou_urban_share", "population", "city_proper_population", "urban_share_change", "hukou_urban_share_change", "hukou_gap")
# the target variables that are shares or changes of shares (fractions; shown in %), the others persons
SHARE_TARGET_VARIABLES = ("urban_share", "hukou_urban_share", "urban_share_change", "hukou_urban_share_change", "hukou_gap")


@dataclass
class Target:
    name: str = ""
    region: str = _f("Guangxi", doc="Guangxi (all regions), a region, a prefecture, or a group of targets.groups")
    variable: str = _f("urban_share", choices=TARGET_VARIABLES)
    year: int = 2025
    op: str = _f(">=", choices=(">=", "<=", "~"))
    value: float = 0.0
    tolerance: float = _f(0.01, 0.0, 1e9, doc="for '~': met when within this distance")
    geography: Optional[str] = _f(None, choices=GEOGRAPHY_CHOICES, doc="only evaluated for this geography (null: any)")


@dataclass
class TargetsConfig:
    name: str = "none"
    groups: Dict[str, List[str]] = _f({}, doc="named groups of regions or prefectures")
    targets: List[Target] = field(default_factory=list)
    region_years: List[int] = _f([], doc="years for which every region's urban share is listed")


@dataclass
class FiguresConfig:
    enabled: bool = _f(True, doc="write figures beside the projection")
    formats: List[str] = _f(["png"], doc="file formats (png, pdf, svg)")
    dpi: int = _f(110, 50, 600, doc="resolution of raster figures (dots per inch)")
    map_year: Optional[int] = _f(None, 1900, 2200, doc="year of the map (null: 2035, or the nearest projected year); given, it must be a projected year")
    map_variable: str = _f("urban_share", choices=("urban_share", "target_gap"), doc="map colour: urban share, or its gap to the urban-share target of map_year")
    pyramid_region: str = _f("", doc="region of the population pyramid (empty: the most populous)")
    pyramid_year: Optional[int] = _f(None, 1900, 2200, doc="year of the population pyramid (null: 2035, or the nearest projected year); given, it must be a projected year")
    flows_year: Optional[int] = _f(None, 1900, 2200, doc="year of the region-to-region flow matrix (null: 2025, or the nearest year with flows); given, a year after start_year")
    parallel: bool = _f(True, doc="draw the figures in two processes forked when the run starts (they import matplotlib while the model is built, then draw while the run writes its other files), where the process may use more than one core")


# the figures' years when the config leaves them null (moved to the nearest projected year)
FIGURE_YEAR_DEFAULTS = {"map_year": 2035, "pyramid_year": 2035, "flows_year": 2025}


def figure_year(fig: "FiguresConfig", key: str, first: int, last: int) -> int:
    """The year of figure setting ``key`` (``map_year``, ``pyramid_year``, ``flows_year``): as
    given, or its default moved into ``first..last``."""
    v = getattr(fig, key)
    return int(v) if v is not None else int(min(max(FIGURE_YEAR_DEFAULTS[key], first), last))


FIGURE_FORMATS = ("png", "pdf", "svg")


@dataclass
class DrawsConfig:
    """The ensemble members this job projects: draws ``start`` .. ``start + count - 1``. A large
    ensemble can be split across jobs by slices and reassembled by ``python -m sim.collect``."""

    count: int = _f(1, 1, 10_000_000, doc="number of draws in this job")
    start: int = _f(0, 0, 10_000_000, doc="index of this job's first draw (a slice of a larger ensemble)")


@dataclass
class UncertaintyConfig:
    """Per-draw parameter uncertainty: draw ``i`` multiplies each parameter named in ``sd`` by
    ``exp(sd * z)``, ``z`` standard normal from a generator seeded with ``(seed, i)``, so a draw is
    the same whichever job (slice) projects it. Off: every draw uses the central parameters."""

    enabled: bool = _f(False, doc="vary parameters across draws")
    seed: int = _f(20201101, 0, 2**32 - 1, doc="random seed of the draws")
    sd: Dict[str, float] = _f(
        {"tfr": 0.1, "rural_to_urban": 0.25, "interregional": 0.25, "to_away": 0.2, "from_away": 0.25, "hukou_conversion": 0.3, "reclassification": 0.3},
        0.0,
        2.0,
        doc="log-scale s.d. of each parameter's multiplier (median 1)",
    )
    process: bool = _f(False, doc="process noise: each draw's rates move from year to year (an AR(1) path of each parameter of process_sd), on top of its parameters")
    process_sd: Dict[str, float] = _f(
        {"tfr": 0.03, "rural_to_urban": 0.25, "interregional": 0.05, "to_away": 0.05, "from_away": 0.05, "hukou_conversion": 0.05, "reclassification": 0.05},
        0.0,
        1.0,
        doc="s.d. of the yearly innovation of each parameter's log multiplier, common to all regions; rural_to_urban is sized so that the innovations alone give Guangxi's urban share a s.d. of about 1 pp five years out, the error of the fit's own path in the backtests from 2015 and 2017 (calibration/README.md); the others are guesses",
    )
    process_region_share: float = _f(1.0, 0.0, 10.0, doc="s.d. of a region's own innovation relative to the common one")
    process_pull: float = _f(0.0, 0.0, 1.0, doc="s.d. of a yearly innovation shared by every region that raises departures to other provinces and lowers returns together (a pull from Guangdong), on the log of both; 0: none")
    process_rho: float = _f(1.0, 0.0, 1.0, doc="AR(1) coefficient of the process paths (1: a random walk)")


@dataclass
class ParamsConfig:
    """Fitted parameters (``configs/params/``): multipliers on the central values the rest of the
    config sets, so that a scenario's paths and levers keep their shape. ``params=default``: the
    documented guesses (no multipliers); ``params=calibrated``: the fit to 2010-2020
    (``python -m calibration``); ``params=calibrated_ensemble``: its posterior draws, one per
    ensemble member (``ensemble``)."""

    name: str = "default"
    source: str = _f("", doc="what produced these values (the calibration's report)")
    factors: Dict[str, float] = _f({}, 0.0, 100.0, doc="multiplier on each parameter's central value (keys: CALIBRATED_PARAMETERS)")
    region_factors: Dict[str, Dict[str, float]] = _f({}, doc="further multiplier per region: {parameter: {region: value}} (parameters: REGIONAL_PARAMETERS)")
    ensemble: str = _f("", doc="netCDF of parameter draws (dimension draw), relative to the repository; draw i projects with draw i's parameters")
    keep_draws: bool = _f(False, doc="ensemble runs: also write every draw's urban share per region and year")


@dataclass
class CalibrationConfig:
    """``python -m calibration``: the fit to history (``configs/calibration.yaml`` sets
    ``start_year: 2010``, ``end_year: 2020``)."""

    fit_until: int = _f(2020, 1900, 2200, doc="last year whose observations are fitted (2019: the 2020 census is left out, to score against)")
    observed: str = _f("sim/data/guangxi_observed.csv", doc="observed series (year, region, variable, value), relative to the repository")
    region_sd: float = _f(1.0, 0.01, 10.0, doc="prior s.d. of a prefecture's log deviation from the shared value (with region_sd_rounds > 0: the start and centre of its estimate), for every regional parameter without its own in sim/config/parameters.py (mortality: 0.15)")
    region_sd_rounds: int = _f(10, 0, 50, doc="EM updates of each regional parameter's spread of prefecture deviations (empirical Bayes; 0: fixed at region_sd)")
    max_evaluations: int = _f(300, 5, 100000, doc="at most this many fit evaluations")
    draws: int = _f(1000, 0, 1_000_000, doc="posterior draws kept (0: no ensemble)")
    sampler: str = _f("laplace", choices=("laplace", "metropolis", "emcee"), doc="posterior draws: the Laplace approximation (quick), adaptive random-walk Metropolis chains (the committed ensemble: few long chains), or emcee's affine-invariant ensemble (see calibration/README.md)")
    chains: int = _f(200, 2, 100_000, doc="parallel Metropolis chains or emcee walkers (each iteration projects all of them at once)")
    iterations: int = _f(400, 2, 1_000_000, doc="iterations per chain or walker, burn-in included")
    burn_in: float = _f(0.5, 0.0, 0.9, doc="share of the iterations discarded as burn-in (Metropolis: its proposal is tuned during them)")
    seed: int = _f(20101101, 0, 2**32 - 1)
    write_params: bool = _f(True, doc="write configs/params/calibrated*.yaml and the ensemble file (false: only the run directory)")
    params_dir: str = _f("configs/params", doc="where calibrated.yaml and calibrated_ensemble.yaml go, relative to the repository")
    ensemble_file: str = _f("sim/data/calibrated_ensemble.nc", doc="where the posterior draws go, relative to the repository")
    progress: Optional[bool] = _f(None, doc="progress bars: null shows them on a terminal only")


@dataclass
class Config:
    geography: GeographyConfig = field(default_factory=GeographyConfig)
    demography: DemographyConfig = field(default_factory=DemographyConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    targets: TargetsConfig = field(default_factory=TargetsConfig)
    scenario: str = "trend"
    start_year: int = _f(2020, choices=(2010, 2020), doc="jump-off census year")
    jump_off: str = _f(
        "auto", choices=JUMP_OFF_CHOICES,
        doc="the 2020 state: continued (the fitted 2010-2020 history's state raked to the 2020 census margins), census (the census split alone), auto (continued for guangxi_prefectures, census elsewhere)",
    )
    end_year: int = _f(2050, 2011, 2200)
    draws: DrawsConfig = field(default_factory=DrawsConfig)
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)
    params: ParamsConfig = field(default_factory=ParamsConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    backend: str = _f("auto", choices=("auto", "numba", "numpy"), doc="numba (the compiled kernel), numpy (the reference implementation) or auto (numpy where a run projects at most 20,000 region-draw-years, e.g. the default run, since loading the kernel costs about 1 s; numba otherwise); the two agree to rounding")
    output: str = _f(files.PROJECTION, doc="name of the projection file in the run directory: a file name ending in .nc, no folder (the directory is hydra.run.dir)")
    compression: int = _f(files.COMPRESSION, 0, 9, doc="zlib level of the netCDF files written (0: none; 1-9: about a quarter smaller, tens of times slower to write); a batched sweep writes its collected file at the highest level of its jobs")
    od_flows: bool = _f(True, doc="store region-to-region moves (year, region, region_to): R^2 values a year, turn off for thousands of regions")
    figures: FiguresConfig = field(default_factory=FiguresConfig)
    observed: str = _f("", doc="figures reported after the jump-off (a CSV as sim/data/guangxi_observed.csv: year, region, variable, value; Guangxi's urban_share, population, births, deaths), relative to the repository: an ensemble run (params=calibrated_ensemble) is conditioned on them by importance weights and resampling; empty: none")
    quiet: bool = False
    resume: bool = _f(False, doc="skip the run when its output directory already holds a complete result of the same config")


# ------------------------------------------------------------------------------------------------
def _check_value(path: str, v: Any, meta: dict) -> None:
    lo, hi, choices = meta.get("lo"), meta.get("hi"), meta.get("choices")
    if choices is not None and v not in choices:
        raise ConfigError(f"{path} = {v!r}: allowed values are {', '.join(map(str, choices))}")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if not np.isfinite(v):
            raise ConfigError(f"{path} = {v!r}: must be a finite number")
        if lo is not None and v < lo:
            raise ConfigError(f"{path} = {v!r}: must be >= {lo} (allowed range {lo}..{hi})")
        if hi is not None and v > hi:
            raise ConfigError(f"{path} = {v!r}: must be <= {hi} (allowed range {lo}..{hi})")


def check_year_keyed(path: str, v: Any, meta: dict) -> Any:
    """A :data:`YearKeyed` value: a number, or a non-empty map of years to numbers, each in the
    field's range; a string (a map the command line passed quoted) is parsed as YAML first.
    Returns the value (parsed)."""
    lo, hi = YEARS_ALLOWED
    if isinstance(v, str):
        import yaml

        try:
            v = yaml.safe_load(v)
        except yaml.YAMLError:
            raise ConfigError(f"{path} = {v!r}: not a number or a map {{year: value}}") from None
    if isinstance(v, bool) or not isinstance(v, (int, float, dict)):
        raise ConfigError(f"{path} = {v!r}: must be a number (the same every year) or a map {{year: value}}, each value in {meta.get('lo')}..{meta.get('hi')}")
    if not isinstance(v, dict):
        _check_value(path, v, meta)
        return v
    if not v:
        raise ConfigError(f"{path} = {{}}: a year-keyed map needs at least one year; or give a number (the same every year)")
    for k, x in v.items():
        if isinstance(k, bool) or not isinstance(k, int) or not lo <= k <= hi:
            raise ConfigError(f"{path}: key {k!r} is not a year; allowed: integers {lo}..{hi}")
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise ConfigError(f"{path}[{k}] = {x!r}: must be a number in {meta.get('lo')}..{meta.get('hi')}")
        _check_value(f"{path}[{k}]", x, meta)
    return {int(k): float(x) for k, x in sorted(v.items())}


def check_region_map(path: str, v: Any, meta: dict) -> dict:
    """A :data:`RegionMap` value: a map of names to numbers in the field's range (a string, a map
    the command line passed quoted, is parsed as YAML first). Returns the map."""
    if isinstance(v, str):
        import yaml

        try:
            v = yaml.safe_load(v) if v.strip() else {}
        except yaml.YAMLError:
            v = None
    if not isinstance(v, dict):
        raise ConfigError(f"{path} = {v!r}: must be a map {{region: value}}, each value in {meta.get('lo')}..{meta.get('hi')}")
    for k, x in v.items():
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise ConfigError(f"{path}[{k}] = {x!r}: must be a number in {meta.get('lo')}..{meta.get('hi')}")
        _check_value(f"{path}[{k}]", x, meta)
    return {str(k): float(x) for k, x in v.items()}


def _walk(obj: Any, path: str) -> None:
    for f in dataclasses.fields(obj):
        _check_field(obj, f, f"{path}.{f.name}" if path else f.name)


def _check_field(obj: Any, f: dataclasses.Field, p: str) -> None:
    v = getattr(obj, f.name)
    if dataclasses.is_dataclass(v):
        _walk(v, p)
    elif f.metadata.get("years"):
        setattr(obj, f.name, check_year_keyed(p, v, f.metadata))
    elif f.metadata.get("mapping"):
        setattr(obj, f.name, check_region_map(p, v, f.metadata))
    elif isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(x, list):
                _check_value(f"{p}[{k}]", x, f.metadata)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            if dataclasses.is_dataclass(x):
                _walk(x, f"{p}[{i}]")
            else:
                _check_value(f"{p}[{i}]", x, {})
    elif v is not None:
        _check_value(p, v, f.metadata)


def validate_changed(cfg: Config, paths) -> Config:
    """:func:`validate` of a config that differs from a validated one only at the dotted
    ``paths`` (a field, or a key of a map field): the fields at those paths and the checks
    across fields, with the same errors."""
    for path in paths:
        obj, prefix = cfg, ""
        parts = path.split(".")
        for k, part in enumerate(parts):
            fields = {f.name: f for f in dataclasses.fields(obj)}
            if part not in fields:
                raise ConfigError(f"{path}: no such field; allowed under {prefix or 'the config'}: {', '.join(fields)}")
            p = f"{prefix}.{part}" if prefix else part
            child = getattr(obj, part)
            if dataclasses.is_dataclass(child) and k < len(parts) - 1:
                obj, prefix = child, p
                continue
            _check_field(obj, fields[part], p)
            break
    return _check_across(cfg)


def validate(cfg: Config) -> Config:
    """Check every field of ``cfg``; raise :class:`ConfigError` naming the first bad one."""
    _walk(cfg, "")
    return _check_across(cfg)


_OUTPUT_NAME = re.compile(r"[A-Za-z0-9][\w.-]*\.nc")


def _check_across(cfg: Config) -> Config:
    """The checks that involve more than one field."""
    if cfg.geography.name not in WITH_HISTORY and cfg.start_year != 2020:
        raise ConfigError(f"start_year = {cfg.start_year}: geography {cfg.geography.name} has 2020 census inputs only; allowed: 2020")
    if cfg.jump_off == "continued" and (cfg.start_year != 2020 or cfg.geography.name not in WITH_HISTORY):
        raise ConfigError(f"jump_off = continued: needs start_year = 2020 and a geography with a 2010 census ({', '.join(WITH_HISTORY)}); allowed here: auto, census")
    for key in ("student_ages", "graduate_ages"):
        ages = list(getattr(cfg.demography.migration, key))
        if ages and not (len(ages) == 2 and all(isinstance(a, int) and 0 <= a <= 100 for a in ages) and ages[0] <= ages[1]):
            raise ConfigError(f"demography.migration.{key} = {ages}: allowed: [] or [first, last], whole ages with 0 <= first <= last <= 100")
    if cfg.end_year <= cfg.start_year:
        raise ConfigError(f"end_year = {cfg.end_year}: must be after start_year = {cfg.start_year}")
    if cfg.observed and not cfg.params.ensemble:
        raise ConfigError(f"observed = {cfg.observed!r}: conditions an ensemble on reported figures; allowed with params=calibrated_ensemble (an ensemble of posterior draws), else empty")
    if cfg.observed and (cfg.geography.name not in GUANGXI_GEOGRAPHIES or cfg.geography.regions):
        raise ConfigError(f"observed = {cfg.observed!r}: the observation model is of Guangxi's totals; allowed with geography guangxi_prefectures or guangxi_counties, all regions")
    if not (_OUTPUT_NAME.fullmatch(str(cfg.output)) and len(str(cfg.output)) <= 200):
        raise ConfigError(
            f"output = {cfg.output!r}: allowed values are file names ending in .nc (letters, digits, '_', '-', '.', at most 200 characters), "
            "without a folder: the run's directory is hydra.run.dir (a sweep's, hydra.sweep.dir), so that every job writes its own file"
        )
    fig = cfg.figures
    if fig.enabled:
        for key in FIGURE_YEAR_DEFAULTS:
            first = cfg.start_year + 1 if key == "flows_year" else cfg.start_year
            v = getattr(fig, key)
            if v is not None and not first <= v <= cfg.end_year:
                raise ConfigError(f"figures.{key} = {v}: not a year of the projection{' with flows' if key == 'flows_year' else ''}; allowed: {first}..{cfg.end_year} (or null: the default)")
    if fig.enabled and fig.map_variable == "target_gap":
        year = figure_year(fig, "map_year", cfg.start_year, cfg.end_year)
        years = sorted({t.year for t in cfg.targets.targets if t.region == "Guangxi" and t.variable == "urban_share"})
        if year not in years:
            raise ConfigError(f"figures.map_variable = target_gap needs an urban_share target for Guangxi in figures.map_year = {year}; target years: {years}")
    bad = [f for f in cfg.figures.formats if f not in FIGURE_FORMATS]
    if bad:
        raise ConfigError(f"figures.formats: unknown format(s) {bad}; allowed values are {', '.join(FIGURE_FORMATS)}")
    for key in ("sd", "process_sd"):
        unknown = sorted(set(getattr(cfg.uncertainty, key)) - set(UNCERTAIN_PARAMETERS))
        if unknown:
            raise ConfigError(f"uncertainty.{key}: unknown parameter(s) {unknown}; allowed: {', '.join(UNCERTAIN_PARAMETERS)}")
    prm = cfg.params
    unknown = sorted(set(prm.factors) - set(CALIBRATED_PARAMETERS))
    if unknown:
        raise ConfigError(f"params.factors: unknown parameter(s) {unknown}; allowed: {', '.join(CALIBRATED_PARAMETERS)}")
    unknown = sorted(set(prm.region_factors) - set(REGIONAL_PARAMETERS))
    if unknown:
        raise ConfigError(f"params.region_factors: unknown parameter(s) {unknown}; allowed: {', '.join(REGIONAL_PARAMETERS)}")
    for name, per_region in prm.region_factors.items():
        for region, v in per_region.items():
            _check_value(f"params.region_factors[{name}][{region}]", v, {"lo": 0.0, "hi": 100.0})
    if prm.ensemble and cfg.uncertainty.enabled:
        raise ConfigError("uncertainty.enabled = true: not with params.ensemble, whose draws carry their own parameters; allowed: false")
    for state_map in ("interregional", "to_away"):
        keys = set(getattr(cfg.demography.migration, state_map))
        allowed = {"rural", "urban_local", "urban_migrant"}
        if not keys <= allowed:
            raise ConfigError(f"demography.migration.{state_map}: unknown state(s) {sorted(keys - allowed)}; allowed: {sorted(allowed)}")
    return cfg


def region_fields(obj: Any, path: str = "") -> dict[str, list[str]]:
    """``{field path: names}`` of every field of ``obj`` declared with ``regions=True`` (the
    regional levers and the region subset), walking nested configs."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        p = f"{path}.{f.name}" if path else f.name
        if dataclasses.is_dataclass(v):
            out.update(region_fields(v, p))
        elif f.metadata.get("regions"):
            out[p] = list(v)
    return out


def pull_levers(policy: "PolicyConfig") -> list["PullConfig"]:
    """The regional development levers of ``policy`` (its :class:`PullConfig` fields), in order."""
    return [getattr(policy, f.name) for f in dataclasses.fields(policy) if isinstance(getattr(policy, f.name), PullConfig)]


def check_regions(cfg: Config, regions: list[str], prefectures: list[str]) -> None:
    """Every region a config names must exist in its geography (as a region or a prefecture)."""
    named = region_fields(cfg)
    for name, per_region in cfg.params.region_factors.items():
        named[f"params.region_factors[{name}]"] = list(per_region)
    for g, members in cfg.targets.groups.items():
        named[f"targets.groups[{g}]"] = list(members)
    known = set(regions) | set(prefectures)
    for fld, names in named.items():
        bad = [n for n in names if n not in known]
        if bad:
            raise ConfigError(f"{fld}: unknown region(s) {bad}; allowed ({cfg.geography.name}): {', '.join(sorted(known)[:40])}{' ...' if len(known) > 40 else ''}")
    if cfg.figures.enabled and cfg.figures.pyramid_region and cfg.figures.pyramid_region not in regions:
        raise ConfigError(f"figures.pyramid_region = {cfg.figures.pyramid_region!r}: unknown; allowed ({cfg.geography.name}): {', '.join(regions[:40])}{' ...' if len(regions) > 40 else ''}")
    target_known = known | {"Guangxi"} | set(cfg.targets.groups)
    for i, t in enumerate(cfg.targets.targets):
        if t.region not in target_known and (t.geography is None or t.geography == cfg.geography.name):
            raise ConfigError(f"targets.targets[{i}].region = {t.region!r}: unknown; allowed: Guangxi, a group ({', '.join(cfg.targets.groups)}) or a region")
