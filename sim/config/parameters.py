"""The parameter table: every parameter a calibration fits or an ensemble varies, as a
multiplier on the central value the config sets, written down once.

Each row says what the multiplier scales (the :class:`sim.engine.contract.StepInputs` field
when the kernel can vary it per draw), whether ``uncertainty.sd`` varies it, whether
``params.factors`` may set it and the calibration fits one value for all regions, whether it
also has a value per region (``params.region_factors``, fitted per prefecture), its prior scale
and the unit of what it multiplies. Everything else is derived from the table:
:data:`FACTOR_FIELD` (and the kernel's factor order), :data:`UNCERTAIN_PARAMETERS`,
:data:`CALIBRATED_PARAMETERS`, :data:`REGIONAL_PARAMETERS`, the calibration's shared and
regional lists and its prior s.d. A new parameter: one row here, and where it applies in
:func:`sim.engine.model.build_model`.

The order of the rows matters in one place: draw ``i`` of ``uncertainty`` takes one standard
normal per uncertain parameter in this order (:func:`sim.engine.model.draw_factors`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Parameter:
    name: str
    field: str  # the StepInputs field a per-draw factor multiplies ("": the kernel cannot vary it per draw)
    uncertain: bool  # varied across draws by uncertainty.sd
    shared: bool  # params.factors may set it; the calibration fits one value for all regions
    regional: bool  # params.region_factors may set it; the calibration fits a value per prefecture
    prior_sd: float  # prior s.d. of the shared log multiplier (regional deviations: calibration.region_sd; a path knot: of its random walk per sqrt(year), calibration.core.Space.prior_residuals)
    unit: str  # unit of the quantity multiplied
    doc: str
    # a knot of a time path: the multiplier in ``year`` of parameter ``path``'s rates (log-linear
    # between knots, 1 from PATH_END on, flat before the first knot)
    path: str = ""
    year: int = 0
    observation: bool = False  # a term of the observation model only (the engine does not apply it)
    # a time trend of parameter ``trend``'s intensity: log change per year (the factor is exp of
    # it), anchored at PATH_END, damped after it (demography.migration.trend_damping)
    trend: str = ""
    # a regional parameter's prior s.d. of the prefecture deviations' log (the centre of its
    # estimate, calibration.core.region_spreads); 0: calibration.region_sd
    region_sd: float = 0.0


PARAMETERS = (
    # per prefecture too: Guangxi's prefectures differ in mortality (the 2010 census's death rates
    # by prefecture, 3.8-6.4 per 1000, and the 2020 census's old ages); a spread of the log
    # around 0.15 (+-15 %) is what a demographer would expect within a province
    Parameter("mortality", "", False, True, True, 0.3, "hazard (Siler level)", "hazard level of every state and sex (demography.mortality; Siler level); per region", region_sd=0.15),
    Parameter(
        "mortality_adult", "", False, True, False, 1.0, "hazard per year",
        "age-independent hazard of the mortality shape (demography.mortality.adult_hazard; Siler a2): at a given e0, how much is lost before old age",
    ),
    Parameter("tfr", "asfr", True, True, False, 0.3, "births per woman", "fertility (demography.fertility.tfr_multiplier)"),
    Parameter("rural_to_urban", "m_ru", True, True, True, 1.0, "moves per person-year", "rural -> urban moves within a region (demography.migration.rural_to_urban)"),
    Parameter("interregional", "m_inter", True, True, False, 1.0, "moves per person-year", "moves to other regions (demography.migration.interregional)"),
    Parameter("to_away", "m_away", True, True, True, 1.0, "moves per person-year", "departures to other provinces (demography.migration.to_away)"),
    Parameter("from_away", "m_return", True, True, False, 1.0, "moves per person-year", "returns from other provinces (demography.migration.from_away)"),
    Parameter("hukou_conversion", "h_conv", True, True, False, 1.0, "conversions per person-year", "hukou conversion (policy.hukou.conversion_rate)"),
    Parameter("reclassification", "reclass", True, True, True, 1.0, "share of rural residents per year", "in-place reclassification (policy.reclassification.rate)"),
    Parameter("beta_distance", "", False, True, False, 0.5, "utility per log km", "destination choice: weight on -log distance (demography.migration.beta_distance)"),
    Parameter("beta_size", "", False, True, False, 0.5, "utility per log person", "destination choice: weight on log urban residents (demography.migration.beta_size)"),
    Parameter(
        "attractiveness", "dest_weight", False, False, True, 1.0, "destination weight",
        "destination choice: multiplier on a destination's weight (exp of a utility added for it); per region",
    ),
    Parameter(
        "student_pull", "student_pull", False, False, True, 1.0, "destination weight",
        "destination choice of the movers at the students' ages (demography.migration.student_ages): multiplier on a destination's weight for them (where the colleges are); per region",
    ),
    Parameter("student_moves", "", False, True, False, 1.0, "moves per person", "moves to another region to study, at the students' ages (demography.migration.student_moves)"),
    Parameter("graduate_moves", "", False, True, False, 1.0, "moves per person", "graduates' moves to another region (demography.migration.graduate_moves)"),
    # the history 2011-2020: time paths of fertility and mortality (knots relative to the 2020
    # level), the 2010 census's coverage of young children, the basis of the pre-census urban share
    Parameter("tfr_2011", "", False, True, False, 0.1, "births per woman", "fertility in 2011 relative to 2020 (path knot)", path="tfr", year=2011),
    Parameter("tfr_2014", "", False, True, False, 0.1, "births per woman", "fertility in 2014 relative to 2020 (path knot)", path="tfr", year=2014),
    Parameter("tfr_2016", "", False, True, False, 0.1, "births per woman", "fertility in 2016 relative to 2020 (path knot: the first year of the universal two-child policy)", path="tfr", year=2016),
    Parameter("tfr_2017", "", False, True, False, 0.1, "births per woman", "fertility in 2017 relative to 2020 (path knot: the two-child peak)", path="tfr", year=2017),
    Parameter("mortality_2010", "", False, True, False, 0.063, "hazard (Siler level)", "hazard level in 2010 relative to the improvement path from 2020 back (path knot)", path="mortality", year=2010),
    Parameter("rural_to_urban_trend", "", False, True, False, 0.05, "log change per year", "trend of rural -> urban moves (0 = 1.0: none)", trend="rural_to_urban"),
    Parameter("to_away_trend", "", False, True, False, 0.05, "log change per year", "trend of departures to other provinces", trend="to_away"),
    Parameter("from_away_trend", "", False, True, False, 0.05, "log change per year", "trend of returns from other provinces", trend="from_away"),
    Parameter("departure_age", "", False, True, False, 0.15, "years", "peak age of departures to other provinces relative to the standard schedule's 22"),
    Parameter("return_age", "", False, True, False, 0.15, "years", "peak age of returns from other provinces relative to the standard schedule's 22"),
    Parameter("child_return", "", False, True, False, 1.0, "moves per person-year", "returns from other provinces at ages 0-15 relative to the schedule (migrants' children coming back for school under hukou-based enrolment)"),
    Parameter("older_return", "", False, True, False, 1.0, "moves per person-year", "returns from other provinces at ages 40-69 relative to the schedule, a smooth bump at 55 (migrant workers going home in middle age)"),
    Parameter("child_coverage", "", False, True, False, 0.1, "persons", "a 2010 jump-off: multiplier on the census count of ages 0-9 (the 2010 census under-counted young children)"),
    Parameter("urban_basis", "", False, True, False, 0.5, "share", "observation model: the original (pre-census) urban share is the model's minus 3 pp x this multiplier in 2020, linear from 0 in 2010", observation=True),
    # set per draw by studies (experiments), never fitted
    Parameter("land_link", "land_per_settled", False, False, False, 1.0, "m2 per settled migrant", "人地挂钩: m2 of new urban land per migrant settled (policy.land.m2_per_settled)"),
)
BY_NAME = {p.name: p for p in PARAMETERS}
PATH_END = 2020  # a path's multiplier is 1 from this year on (its knots are relative to it)
# path name -> {knot year: parameter}
PATH_KNOTS = {}
for _p in PARAMETERS:
    if _p.path:
        PATH_KNOTS.setdefault(_p.path, {})[_p.year] = _p.name
# intensity -> its trend parameter
TRENDS = {_p.trend: _p.name for _p in PARAMETERS if _p.trend}
del _p

# parameter -> the StepInputs field its per-draw factor multiplies (the kernel's factor order)
FACTOR_FIELD = {p.name: p.field for p in PARAMETERS if p.field}
# parameters the ensemble varies (uncertainty.sd keys), with what each multiplies
UNCERTAIN_PARAMETERS = {p.name: p.doc for p in PARAMETERS if p.uncertain}
# parameters a calibration fits, as multipliers on the config's central values (params.factors)
CALIBRATED_PARAMETERS = {p.name: p.doc for p in PARAMETERS if p.shared or p.regional}
# those it may also fit per region (params.region_factors)
REGIONAL_PARAMETERS = tuple(p.name for p in PARAMETERS if p.regional)
# the calibration's parameter space: shared values, then a deviation per prefecture
SHARED_FIT = tuple(p.name for p in PARAMETERS if p.shared)
