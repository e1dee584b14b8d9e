"""Calibration to 2010-2020: parameter space, targets, fit, identifiability, posterior draws.

The engine's guessed parameters become multipliers ``exp(theta)`` (``params.factors`` and
``params.region_factors``, see :mod:`sim.config.schema`). The fit is a maximum a posteriori estimate:
weighted least squares of the whitened residuals ``(model - observed) / sd`` of every target,
plus the prior's ``theta / prior_sd`` (:func:`scipy.optimize.least_squares`). The posterior is
approximated at the optimum by a Gaussian with precision ``J'J`` (Laplace), which gives the identifiability report and preconditions the sampler: a
adaptive random-walk Metropolis sampler run as a few long parallel chains, all chains'
proposals of an iteration projected as the draws of one ensemble (:func:`posterior_draws`; the
committed ensemble), or emcee's ensemble sampler (:func:`emcee_draws`). Importance sampling
from the Laplace approximation was tried first and rejected: in 56 dimensions its effective
sample size was 3-4 of 2,000-4,000 proposals.

Hierarchy: 14 prefectures cannot identify a free set of every parameter each. Parameters shared
by all prefectures: mortality, fertility, the four migration intensities, hukou conversion,
reclassification and the two destination-choice weights. Per prefecture, as a normal deviation
(log scale, s.d. ``region_sd``) from the shared value: rural -> urban moves (each prefecture's
urban share), departures to other provinces and destination attractiveness (each prefecture's
growth). The deviations' common prior is what the partial pooling is.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from sim.axes import N_GROUPS, RESIDENT_STATES, RURAL, URBAN_LOCAL, URBAN_MIGRANT, group_index_of_age, residents
from sim.axes import registered as births_registered
from sim.config.parameters import BY_NAME as PARAMETER_TABLE
from sim.config.parameters import FACTOR_FIELD, PATH_END, PATH_KNOTS, REGIONAL_PARAMETERS, SHARED_FIT
from sim.engine.model import build_model, process_factors
from sim.engine.runner import project_totals

log = logging.getLogger("calibration")

# the parameter space, from the parameter table (sim.config.parameters): shared values and per
# prefecture deviations; the prior s.d. of each shared log multiplier is the table's (levels the
# census pins and weights of a well-tried model form are held closer to the guesses than
# migration intensities)
SHARED = SHARED_FIT
REGIONAL = REGIONAL_PARAMETERS
PRIOR_SD = {p: PARAMETER_TABLE[p].prior_sd for p in SHARED}
# not among the kernel's per-draw fields: held at the optimum in the posterior draws
HELD_IN_DRAWS = tuple(p for p in dict.fromkeys(SHARED + REGIONAL) if p not in FACTOR_FIELD)
# fitted, but held at the optimum in the posterior draws although the kernel could vary them:
# in-place reclassification (shared and per prefecture) is an alternative to rural -> urban moves
# for the same urban share (their Jacobian columns have cosines 0.95-0.999), so its posterior is
# its prior, and sampled it makes curved ridges with rural -> urban moves along which no sampler
# mixed (calibration/README.md, "Uncertainty"); the student pull per prefecture: sampled, the
# committed budget (16 chains x 80,000 iterations) left it at split R-hat 1.096 and bulk ESS 117
# (and the attractiveness and departures it trades with at up to 1.093), against 1.015 and 858
# without it; reaching 1.05 would take about 2.2 times as long, past the 15-minute limit
NOT_SAMPLED = ("reclassification", "student_pull")


def region_centres(region_sd: float) -> dict[str, float]:
    """Per regional parameter, the prior s.d. of its prefecture deviations' log (the start and
    centre of its estimate): the parameter table's own where it sets one (mortality), else
    ``region_sd`` (calibration.region_sd)."""
    return {p: PARAMETER_TABLE[p].region_sd or float(region_sd) for p in REGIONAL}


@dataclass
class Space:
    """The fitted parameters: ``theta[j]`` is the log multiplier of ``(param, region)``, region
    None for a shared one."""

    regions: list[str]
    region_sd: float | dict = 1.0  # prior s.d. of the prefecture deviations: one for all, or per regional parameter
    # per regional parameter, each prefecture's weight in the province's total (sums to 1; None:
    # equal weights): a prefecture's multiplier is relative to the shared value, normalised so
    # that the weighted mean of the prefectures' multipliers is 1 (see relative_logs)
    weights: dict[str, np.ndarray] | None = None
    names: list[tuple[str, str | None]] = field(init=False)
    prior_sd: np.ndarray = field(init=False)

    def __post_init__(self):
        self.names = [(p, None) for p in SHARED] + [(p, r) for p in REGIONAL for r in self.regions]
        rsd = self.region_sd if isinstance(self.region_sd, dict) else region_centres(self.region_sd)
        self.prior_sd = np.array([PRIOR_SD[p] if r is None else float(rsd[p]) for p, r in self.names])
        R = len(self.regions)
        w = {p: np.full(R, 1.0 / R) for p in REGIONAL}
        for p, v in (self.weights or {}).items():
            v = np.asarray(v, dtype=float)
            w[p] = v / v.sum()
        self.weights = w
        self._cols = {p: np.array([self.names.index((p, r)) for r in self.regions]) for p in REGIONAL}

    def relative_logs(self, thetas: np.ndarray) -> np.ndarray:
        """The log multipliers the engine applies, ``(D, n)`` (or ``(n,)``) for ``thetas``:
        shared values as they are; a prefecture's ``z_r - log(sum_j w_j exp(z_j))``, so that
        the deviations redistribute a parameter's province-wide total among the prefectures
        (weights: their shares of the 2010 rates' base) and the shared value alone sets the total.
        Without it the province's total of ``exp(z_r)`` grows with the spread of the deviations
        (Jensen), and draws of deviations the data do not pin (a backtest without the 2020
        census) push every draw of the province's urban share up."""
        t = np.asarray(thetas, dtype=float)
        out = t.copy()
        for p, cols in self._cols.items():
            z = t[..., cols]
            m = z.max(axis=-1, keepdims=True)
            out[..., cols] = z - (m + np.log((self.weights[p] * np.exp(z - m)).sum(axis=-1, keepdims=True)))
        return out

    def prior_residuals(self, thetas: np.ndarray) -> np.ndarray:
        """The whitened prior terms of ``thetas`` ((n,) or (D, n)): ``theta / prior_sd``, but
        for the knots of a time path a random walk in the log back from PATH_END (where the path
        is 1): a knot's difference from the next knot (or from 0 at PATH_END) over
        ``prior_sd x sqrt(years between them)``, so that the prior asks for a smooth path rather
        than pulling each year separately towards the PATH_END level."""
        t = np.asarray(thetas, dtype=float)
        out = t / self.prior_sd
        for knots in PATH_KNOTS.values():
            ys = sorted(knots)
            cols = [self.names.index((knots[y], None)) for y in ys]
            for i, (y, j) in enumerate(zip(ys, cols)):
                nxt = t[..., cols[i + 1]] if i + 1 < len(ys) else 0.0
                gap = (ys[i + 1] if i + 1 < len(ys) else PATH_END) - y
                out[..., j] = (t[..., j] - nxt) / (self.prior_sd[j] * np.sqrt(gap))
        return out

    def marginal_prior_sd(self) -> np.ndarray:
        """The prior s.d. of each parameter on its own: ``prior_sd``, for a path knot that of the
        random walk at its year, ``prior_sd x sqrt(PATH_END - year)``."""
        out = self.prior_sd.copy()
        for knots in PATH_KNOTS.values():
            for y, name in knots.items():
                j = self.names.index((name, None))
                out[j] *= np.sqrt(PATH_END - y)
        return out

    def __len__(self) -> int:
        return len(self.names)

    def label(self, j: int) -> str:
        p, r = self.names[j]
        return p if r is None else f"{p}[{r}]"

    def to_params(self, theta: np.ndarray) -> tuple[dict, dict]:
        """``(params.factors, params.region_factors)`` of ``theta``."""
        factors, region = {}, {}
        for (p, r), t in zip(self.names, self.relative_logs(theta)):
            if r is None:
                factors[p] = float(np.exp(t))
            else:
                region.setdefault(p, {})[r] = float(np.exp(t))
        return factors, region

    def held(self) -> np.ndarray:
        """Mask of the parameters the kernel cannot vary per draw (held at the optimum in every
        batched projection)."""
        return np.array([p in HELD_IN_DRAWS for p, _ in self.names])

    def sampled(self) -> np.ndarray:
        """Mask of the parameters the posterior draws vary: the kernel's per-draw ones but
        :data:`NOT_SAMPLED`."""
        return ~self.held() & np.array([p not in NOT_SAMPLED for p, _ in self.names])

    def draw_factors(self, thetas: np.ndarray, theta_ref: np.ndarray) -> dict[str, np.ndarray]:
        """Per-draw, per-region multipliers ``{name: (D, R)}`` of ``thetas (D, n)`` relative to the
        model built at ``theta_ref`` (the held parameters must equal ``theta_ref``'s)."""
        if np.abs((np.atleast_2d(thetas) - theta_ref)[:, self.held()]).max(initial=0.0) > 0:
            raise ValueError(f"draws vary {', '.join(HELD_IN_DRAWS)}, which the kernel cannot vary per draw")
        d = self.relative_logs(np.atleast_2d(thetas)) - self.relative_logs(theta_ref)
        R = len(self.regions)
        logf = {}
        for j, (p, r) in enumerate(self.names):
            if p not in FACTOR_FIELD:
                continue
            a = logf.setdefault(p, np.zeros((len(d), R)))
            if r is None:
                a += d[:, j, None]
            else:
                a[:, self.regions.index(r)] += d[:, j]
        return {p: np.exp(a) for p, a in logf.items()}


@dataclass
class Simulated:
    """What the targets need from a projection: totals per year (rows: ``years``) and region,
    the year's births and deaths (resident states), Guangxi's life expectancy, the residents by
    sex and census age group and the unsettled urban migrants at the end."""

    years: np.ndarray
    residents: np.ndarray  # (D, Y, R)
    urban: np.ndarray  # (D, Y, R)
    groups: np.ndarray  # (D, R, sex, group) residents at the last year
    migrants: np.ndarray  # (D, R) urban_migrant at the last year
    births: np.ndarray | None = None  # (D, Y, R) in the year to residents (0 in the jump-off year)
    deaths: np.ndarray | None = None  # (D, Y, R)
    e0: np.ndarray | None = None  # (D, Y) life expectancy at birth of Guangxi's residents (life tables of the year, resident-weighted)
    urban_basis: float = 1.0  # the observation model's basis multiplier (params.factors.urban_basis)
    # (D, Y, R) births to the region's registered (hukou) population: to residents, less those to
    # migrants registered in another province, plus those in the away state
    births_registered: np.ndarray | None = None


def _group_matrix() -> np.ndarray:
    gi = group_index_of_age()
    G = np.zeros((len(gi), N_GROUPS))
    G[np.arange(len(gi)), gi] = 1.0
    return G


def simulate(model, backend: str = "numba") -> Simulated:
    """Project ``model`` (all its draws) from its start to its end year, keeping what targets need
    (:func:`sim.engine.runner.project_totals`: with numba one call of the ensemble kernel, each
    draw's factors applied inside it)."""
    t = project_totals(model, backend=backend)
    years = t.years
    pop = t.population.transpose(1, 0, 2, 3, 4)  # (D,Y,R,K,S)
    tot = pop.sum(axis=-1)  # (D,Y,R,K)
    births_k, deaths_k = t.births.transpose(1, 0, 2, 3), t.deaths.transpose(1, 0, 2, 3)  # (D,Y,R,K)
    other_prov = model.static["other_province_share"]  # (R,) of urban_migrant
    w = pop[:, 1:, :, RESIDENT_STATES]  # (D,Y-1,R,K',S) residents by state and sex at each year's end
    e = np.stack([model.e0(int(y))[:, RESIDENT_STATES] for y in years[1:]])  # (Y-1,R,K',S)
    e0 = np.full((pop.shape[0], len(years)), np.nan)
    e0[:, 1:] = (w * e).sum(axis=(2, 3, 4)) / w.sum(axis=(2, 3, 4))
    groups = residents(t.last, axis=2) @ _group_matrix()  # (D,R,S,G)
    return Simulated(years, residents(tot), tot[..., URBAN_LOCAL] + tot[..., URBAN_MIGRANT], groups, t.last[:, :, URBAN_MIGRANT].sum(axis=(2, 3)),
                     births_k[..., RESIDENT_STATES].sum(axis=-1), deaths_k[..., RESIDENT_STATES].sum(axis=-1), e0,
                     float(model.cfg.params.factors.get("urban_basis", 1.0)), births_registered(births_k, other_prov))


@dataclass
class Block:
    """One kind of target: observed values, their s.d. and how a simulation gives them."""

    name: str
    labels: list[str]
    observed: np.ndarray
    sd: np.ndarray
    scale: str  # "share" (compared as is) or "log" (compared as logs, sd relative)
    get: object  # Simulated -> (D, n)
    units: str = ""
    weight: float = 1.0  # 0: reported, not fitted

    def residuals(self, sim: Simulated) -> np.ndarray:
        m = self.get(sim)
        if self.scale == "log":
            return self.weight * (np.log(m) - np.log(self.observed)) / self.sd
        return self.weight * (m - self.observed) / self.sd


# measurement and model-error s.d. of each target (documented in calibration/README.md); the
# annual series' s.d. is multiplied by its grade's factor (A: an official table; B: quoted by a
# secondary source; C: derived or uncertain)
TARGET_SD = {
    "urban_share": 0.004,  # 0.4 percentage point
    "residents": 0.008,  # 0.8 %
    # a prefecture's age-sex group as a share of its residents: 8 % of the share, plus 0.05 % of
    # the residents (small groups), so that the young groups that carry births and the
    # childbearing ages are held as closely as the large ones, relative to their size
    "age_sex_share": 0.08,
    "age_sex_share_floor": 0.0005,
    "hukou_elsewhere": 0.15,  # 15 %: the urban_migrant stock is itself an estimate
    "guangxi_residents": 0.005,  # 0.5 %
    "guangxi_urban_share": 0.005,
    "guangxi_urban_share_original": 0.004,  # on the pre-census basis, through the basis term
    "guangxi_births": 0.02,  # 2 %
    "guangxi_births_registered": 0.02,  # 2 %
    # 5 %: the annual sample survey's birth rates fall short of the births the counts and the 2020
    # census cohorts imply (2016: 13.82 per 1000 is 0.67 M births; the bulletin's count 0.77 M;
    # the census has 0.79 M aged 3 in 2020)
    "guangxi_birth_rate": 0.05,
    "guangxi_deaths": 0.03,  # 3 %: the model's mortality has one shape for every year
    "guangxi_death_rate": 0.03,
    "guangxi_e0": 0.3,  # years
    "guangxi_age0": 0.02,  # the 2020 census's children aged 0 (births Nov 2019 - Oct 2020 that survived)
    # 15 %: a prefecture's 2010 census death rate relative to Guangxi's. The census misses deaths,
    # and not equally everywhere: at 6 % the fit gave Beihai x0.72 of Guangxi's mortality (its
    # 3.79 per 1000 is low for its ages), and its history then kept 6.6 % more deaths' worth of
    # old people than the 2020 census counts. The cohorts' survival between the two censuses (the
    # age groups above) places a prefecture's old-age mortality better; this holds the rest
    "death_rate_2010_relative": 0.15,
}
GRADE_SD = {"A": 1.0, "B": 1.5, "C": 3.0}
# the original (pre-census) urban share: the model's minus BASIS_OFFSET_2020 x urban_basis in
# 2020, linear from 0 in the 2010 census (the 2020 census put Guangxi about 3 points above the
# 2019 figure on the old basis: shared/data/README.md)
BASIS_OFFSET_2020 = 0.03
BASIS_START = 2010


def census_targets(inputs_end: xr.Dataset, observed_rows: list[dict], *, start_year: int, fit_until: int, census_year: int = 2020) -> list[Block]:
    """The targets up to ``fit_until``: per prefecture the census of ``census_year`` (residents,
    urban share, 19 age groups by sex, residents with hukou elsewhere through the urban_migrant
    stock the inputs derive from them, city-proper residents: reported only, as the engine
    carries them as a fixed share of urban residents; Guangxi's children aged 0), and for
    Guangxi the observed series (``observed_rows``: year, region, variable, value, grade)
    between the start and the census: residents, the urban share on the original basis,
    births, deaths, their crude rates and life expectancy, each weighted by its grade."""
    regions = [str(r) for r in inputs_end.region.values]
    blocks = []

    def at(sim, year):
        return int(np.flatnonzero(sim.years == year)[0])

    if fit_until >= census_year:
        res = inputs_end.residents.values.astype(float)
        urb = inputs_end.urban.values.astype(float)
        grp = inputs_end.census_groups.values.astype(float)  # (R, sex, group)
        mig = inputs_end.population.sel(state="urban_migrant").sum(("sex", "age")).values
        labels_g = [f"{r}:{s}:{g}" for r in regions for s in inputs_end.sex.values for g in inputs_end.age_group.values]

        def at_end(sim):
            return at(sim, census_year)

        blocks += [
            Block("urban_share", regions, urb / res, np.full(len(regions), TARGET_SD["urban_share"]), "share", lambda s: s.urban[:, at_end(s)] / s.residents[:, at_end(s)], "1"),
            Block("residents", regions, res, np.full(len(regions), TARGET_SD["residents"]), "log", lambda s: s.residents[:, at_end(s)], "persons"),
            Block("age_sex_share", labels_g, (grp / res[:, None, None]).ravel(), TARGET_SD["age_sex_share"] * (grp / res[:, None, None]).ravel() + TARGET_SD["age_sex_share_floor"], "share",
                  lambda s: (s.groups / s.residents[:, at_end(s), :, None, None]).reshape(len(s.groups), -1), "1"),
            Block("hukou_elsewhere", regions, mig, np.full(len(regions), TARGET_SD["hukou_elsewhere"]), "log", lambda s: s.migrants, "persons (urban_migrant stock)"),
            Block("guangxi_age0", [f"Guangxi:{census_year}"], np.array([grp[:, :, 0].sum()]), np.array([TARGET_SD["guangxi_age0"]]), "log",
                  lambda s: s.groups[:, :, :, 0].sum(axis=(1, 2))[:, None], "persons"),
        ]
        cp = inputs_end.city_proper.values.astype(float)
        ok = np.isfinite(cp)
        if ok.all():
            share = cp / urb
            blocks.append(Block("city_proper", regions, cp, np.full(len(regions), 0.01), "log", lambda s: s.urban[:, at_end(s)] * share, "persons", weight=0.0))
    blocks += _census_death_rates(regions, observed_rows, start_year)
    series = (
        ("population", "guangxi_residents", "log", "persons"),
        ("urban_share", "guangxi_urban_share", "share", "1"),
        ("urban_share_original", "guangxi_urban_share_original", "share", "1"),
        ("births", "guangxi_births", "log", "persons"),
        ("births_registered", "guangxi_births_registered", "log", "persons"),
        ("birth_rate", "guangxi_birth_rate", "log", "per person-year"),
        ("deaths", "guangxi_deaths", "log", "persons"),
        ("death_rate", "guangxi_death_rate", "log", "per person-year"),
        ("e0", "guangxi_e0", "share", "years"),
    )
    for variable, key, scale, units in series:
        rows = sorted((r for r in observed_rows if r["region"] == "Guangxi" and r["variable"] == variable and start_year < int(r["year"]) <= fit_until
                       and not (int(r["year"]) == census_year and variable in ("population", "urban_share"))), key=lambda r: int(r["year"]))
        if not rows:
            continue
        yrs = np.array([int(r["year"]) for r in rows])
        obs = np.array([float(r["value"]) for r in rows])
        sd = np.array([TARGET_SD[key] * GRADE_SD.get(str(r.get("grade") or "A"), 1.0) for r in rows])
        blocks.append(Block(key, [f"Guangxi:{y}" for y in yrs], obs, sd, scale, _guangxi_getter(variable, yrs), units))
    return blocks


def _census_death_rates(regions: list[str], observed_rows: list[dict], start_year: int) -> list[Block]:
    """The start census's death rates (the 12 months before it) of the prefectures relative to
    Guangxi's, against the first projected year's (deaths over the mean of the residents at its
    start and end): they place each prefecture's mortality level, which the census's missed deaths
    (a level common to all, to a first order) do not bias. None without a row for every region
    and Guangxi."""
    got = {r["region"]: float(r["value"]) for r in observed_rows if r["variable"] == "death_rate" and int(r["year"]) == start_year}
    if "Guangxi" not in got or any(r not in got for r in regions):
        return []
    rel = np.array([got[r] / got["Guangxi"] for r in regions])
    grade = {r["region"]: str(r.get("grade") or "A") for r in observed_rows if r["variable"] == "death_rate" and int(r["year"]) == start_year}
    sd = np.array([TARGET_SD["death_rate_2010_relative"] * GRADE_SD.get(grade[r], 1.0) for r in regions])

    def get(s: Simulated) -> np.ndarray:
        i = int(np.flatnonzero(s.years == start_year + 1)[0])
        deaths, exposure = s.deaths[:, i], 0.5 * (s.residents[:, i - 1] + s.residents[:, i])  # (D, R)
        return (deaths / exposure) / (deaths.sum(axis=1) / exposure.sum(axis=1))[:, None]

    return [Block("death_rate_2010_relative", [f"{r}:{start_year}" for r in regions], rel, sd, "log", get, "ratio to Guangxi's")]


def _guangxi_getter(variable: str, yrs: np.ndarray):
    """Simulated -> (D, len(yrs)): a Guangxi series in ``yrs``."""

    def get(s: Simulated) -> np.ndarray:
        i = np.searchsorted(s.years, yrs)
        res = s.residents[:, i].sum(axis=-1)
        if variable == "population":
            return res
        if variable in ("urban_share", "urban_share_original"):
            share = s.urban[:, i].sum(axis=-1) / res
            if variable == "urban_share_original":
                share = share - BASIS_OFFSET_2020 * s.urban_basis * (yrs - BASIS_START) / 10.0
            return share
        if variable == "e0":
            return s.e0[:, i]
        if variable == "births_registered":
            return s.births_registered[:, i].sum(axis=-1)
        count = (s.births if variable.startswith("birth") else s.deaths)[:, i].sum(axis=-1)
        if variable in ("births", "deaths"):
            return count
        mean_pop = 0.5 * (s.residents[:, i - 1].sum(axis=-1) + res)
        return count / mean_pop

    return get


class Problem:
    """The posterior of ``theta`` given the targets: the residual vector, its Jacobian, batched
    evaluation of many draws."""

    def __init__(self, cfg, inputs: xr.Dataset, blocks: list[Block], space: Space, backend: str = "numba"):
        self.cfg, self.inputs, self.blocks, self.space, self.backend = cfg, inputs, blocks, space, backend
        self.evaluations = 0
        self._central = None  # (theta's bytes, its model): the model the draws of a sampler vary

    def config(self, theta: np.ndarray):
        factors, region = self.space.to_params(theta)
        return dataclasses.replace(self.cfg, params=dataclasses.replace(self.cfg.params, factors=factors, region_factors=region))

    def model(self, theta: np.ndarray, factors: dict | None = None):
        """The model of ``theta``; with ``factors`` (per-draw multipliers relative to ``theta``,
        :meth:`Space.draw_factors`), its draws: a copy of ``theta``'s model, built once and its
        inputs kept (:attr:`sim.engine.model.Model.memo`) for the next set of draws."""
        if not factors:
            return build_model(self.config(theta), self.inputs)
        key = (id(self.space), np.asarray(theta, dtype=float).tobytes())
        if self._central is None or self._central[0] != key:
            self._central = (key, dataclasses.replace(build_model(self.config(theta), self.inputs), memo={}))
        base = self._central[1]
        n = len(next(iter(factors.values())))
        c = dataclasses.replace(base.cfg, draws=dataclasses.replace(base.cfg.draws, count=n, start=0))
        return dataclasses.replace(base, cfg=c, factors=factors, process=process_factors(c, base.pop0.shape[0]))

    def data_residuals(self, sim: Simulated) -> np.ndarray:
        """(D, n_data) whitened residuals of every fitted target."""
        return np.concatenate([b.residuals(sim) for b in self.blocks if b.weight > 0], axis=1)

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        self.evaluations += 1
        sim = simulate(self.model(theta), backend=self.backend)
        return np.concatenate([self.data_residuals(sim)[0], self.space.prior_residuals(theta)])

    def jacobian(self, theta: np.ndarray, step: float = 1e-4, progress=None) -> np.ndarray:
        """Forward differences of :meth:`residuals` (the columns of parameters the kernel varies
        per draw in one batched projection, the others one by one)."""
        f0 = self.residuals(theta)
        n = len(theta)
        J = np.empty((len(f0), n))
        held = self.space.held()
        batch = np.flatnonzero(~held)
        thetas = np.repeat(theta[None], len(batch), axis=0)
        thetas[np.arange(len(batch)), batch] += step
        sim = simulate(self.model(theta, self.space.draw_factors(thetas, theta)), backend=self.backend)
        self.evaluations += len(batch)
        fb = np.concatenate([self.data_residuals(sim), self.space.prior_residuals(thetas)], axis=1)
        J[:, batch] = ((fb - f0) / step).T
        for j in np.flatnonzero(held):
            t = theta.copy()
            t[j] += step
            J[:, j] = (self.residuals(t) - f0) / step
        if progress is not None:
            progress(1)
        return J

    def log_posterior(self, thetas: np.ndarray, theta_ref: np.ndarray, chunk: int = 250, progress=None) -> np.ndarray:
        """Unnormalised log posterior of every row of ``thetas`` (held parameters at ``theta_ref``),
        projected as the draws of ensembles of ``chunk`` members."""
        out = np.empty(len(thetas))
        for lo in range(0, len(thetas), chunk):
            t = thetas[lo : lo + chunk]
            sim = simulate(self.model(theta_ref, self.space.draw_factors(t, theta_ref)), backend=self.backend)
            with np.errstate(invalid="ignore", divide="ignore"):
                r = self.data_residuals(sim)
            out[lo : lo + chunk] = -0.5 * ((r**2).sum(axis=1) + (self.space.prior_residuals(t) ** 2).sum(axis=1))
            self.evaluations += len(t)
            if progress is not None:
                progress(len(t))
        # a draw whose projection leaves a target undefined (a count at or below zero) has no
        # posterior mass
        return np.where(np.isfinite(out), out, -np.inf)


@dataclass
class Fit:
    theta: np.ndarray
    cov: np.ndarray  # Laplace posterior covariance
    jacobian: np.ndarray
    cost: float
    iterations: int
    seconds: float
    message: str


def fit(problem: Problem, *, max_iterations: int = 40, progress=None, x0: np.ndarray | None = None) -> Fit:
    """MAP estimate by trust-region least squares, the Jacobian by :meth:`Problem.jacobian`
    (from ``x0``, default the guesses)."""
    from scipy.optimize import least_squares

    t0 = time.perf_counter()
    n = len(problem.space)
    r = least_squares(
        problem.residuals,
        np.zeros(n) if x0 is None else np.asarray(x0, dtype=float),
        jac=lambda th: problem.jacobian(th, progress=progress),
        bounds=(np.full(n, -5.0), np.full(n, 5.0)),
        method="trf",
        x_scale="jac",
        max_nfev=max_iterations,
        xtol=1e-6,
        ftol=1e-8,
    )
    J = problem.jacobian(r.x)
    cov = np.linalg.pinv(J.T @ J)
    return Fit(r.x, cov, J, float(r.cost), int(r.nfev), time.perf_counter() - t0, str(r.message))


REGION_SD_BOUNDS = (0.05, 3.0)  # the estimated spreads are kept inside (a spread of 0 would be a degenerate mode)
# the spreads' prior: log-normal around calibration.region_sd with this s.d. of the log (a spread
# the data do not inform stays near its start instead of drifting, as plain EM lets it)
REGION_SD_HYPER_SD = 0.5


def region_spreads(space: Space, f: Fit, centre: float | dict = 1.0) -> dict[str, float]:
    """One EM step of the spread of each regional parameter's prefecture deviations: with
    ``S`` the sum over the R prefectures of ``z_r^2 + var(z_r)`` at the fit (the E step, the
    Laplace posterior), the spread maximises ``-R log s - S / (2 s^2)`` plus the log-normal
    prior ``-(log(s / centre))^2 / (2 x REGION_SD_HYPER_SD^2)`` (the M step; a 1-D root), within
    :data:`REGION_SD_BOUNDS`; ``centre``: one for all, or :func:`region_centres`' per parameter."""
    from scipy.optimize import brentq

    centres = centre if isinstance(centre, dict) else region_centres(centre)

    var = np.diag(f.cov)
    lo, hi = np.log(REGION_SD_BOUNDS[0]), np.log(REGION_SD_BOUNDS[1])
    out = {}
    for p in REGIONAL:
        cols = [space.names.index((p, r)) for r in space.regions]
        S, R = float(np.sum(f.theta[cols] ** 2 + var[cols])), len(cols)

        def grad(u, S=S, R=R, c=centres[p]):
            return R - S * np.exp(-2 * u) + (u - np.log(c)) / REGION_SD_HYPER_SD**2

        u = lo if grad(lo) > 0 else hi if grad(hi) < 0 else brentq(grad, lo, hi, xtol=1e-10)
        out[p] = float(np.exp(u))
    return out


def fit_hierarchical(problem: Problem, *, rounds: int, max_iterations: int, progress=None, tol: float = 0.01, centre: float = 1.0) -> tuple[Fit, dict[str, float], list[dict]]:
    """The MAP fit with the spread of each regional parameter's prefecture deviations estimated
    (empirical Bayes by EM, :func:`region_spreads`): fit, update the spreads, refit from the last
    optimum, until the spreads change by less than ``tol`` (relative) or after ``rounds``
    updates. ``problem.space`` ends with the estimated spreads; returns the fit, the spreads and
    each round's spreads and cost."""
    f = fit(problem, max_iterations=max_iterations, progress=progress)
    history = [dict(round=0, cost=f.cost, **{p: float(problem.space.prior_sd[problem.space.names.index((p, problem.space.regions[0]))]) for p in REGIONAL})]
    for k in range(1, rounds + 1):
        new = region_spreads(problem.space, f, centre)
        old = {p: history[-1][p] for p in REGIONAL}
        problem.space = Space(problem.space.regions, region_sd=new, weights=problem.space.weights)
        f = fit(problem, max_iterations=max_iterations, progress=progress, x0=f.theta)
        history.append(dict(round=k, cost=f.cost, **new))
        if max(abs(new[p] - old[p]) / old[p] for p in REGIONAL) < tol:
            break
    return f, {p: history[-1][p] for p in REGIONAL}, history


def identifiability(space: Space, f: Fit, n_data: int) -> list[dict]:
    """Per parameter: optimum, posterior s.d. (Laplace), prior s.d., their ratio, the largest
    posterior correlation with another parameter, and a verdict: ``well identified`` (the data
    shrink the prior s.d. below half), ``weakly`` (below 0.9), ``not identified`` (the prior
    decides)."""
    sd = np.sqrt(np.diag(f.cov))
    corr = f.cov / np.outer(sd, sd)
    np.fill_diagonal(corr, 0.0)
    applied = space.relative_logs(f.theta)  # the multipliers the engine applies
    rows = []
    prior = space.marginal_prior_sd()
    for j in range(len(space)):
        p, r = space.names[j]
        k = int(np.argmax(np.abs(corr[j])))
        ratio = sd[j] / prior[j]
        rows.append(
            dict(
                parameter=p, region=r or "", multiplier=float(np.exp(applied[j])), log_multiplier=float(applied[j]), posterior_sd=float(sd[j]),
                prior_sd=float(prior[j]), sd_ratio=float(ratio), most_correlated=space.label(k), correlation=float(corr[j, k]),
                verdict="well identified" if ratio < 0.5 else ("weakly identified" if ratio < 0.9 else "not identified (prior)"),
            )
        )
    return rows


@dataclass
class Posterior:
    thetas: np.ndarray  # (N, n) draws kept
    acceptance: float  # share of proposals accepted after burn-in
    rhat: np.ndarray  # (n,) split R-hat of every sampled parameter over the kept states (NaN: not sampled)
    chains: int
    iterations: int
    evaluations: int
    seconds: float
    ess: np.ndarray | None = None  # (n,) bulk effective sample size (Metropolis, emcee)
    tau: float | None = None  # emcee's integrated autocorrelation time, largest over the whitened parameters (iterations)


def chain_diagnostics(thetas: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank-normalised split R-hat and bulk effective sample size (Vehtari et al. 2021, from
    arviz) of the parameters ``v`` of the kept states ``thetas (T, C, n)`` (C chains or walkers);
    NaN for the others."""
    import warnings

    with warnings.catch_warnings():  # arviz announces its refactor with a FutureWarning on import
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

    rhat = np.full(thetas.shape[-1], np.nan)
    ess = np.full(thetas.shape[-1], np.nan)
    with warnings.catch_warnings():  # arviz warns when there are more chains than kept draws; the shape is (chain, draw, d)
        warnings.simplefilter("ignore", UserWarning)
        ds = az.convert_to_dataset({"theta": np.moveaxis(thetas[:, :, v], 0, 1)})
        rhat[v] = az.rhat(ds, method="rank")["theta"].values
        ess[v] = az.ess(ds, method="bulk")["theta"].values
    return rhat, ess


def _laplace_factor(f: Fit, v: np.ndarray) -> np.ndarray:
    """Cholesky factor of the Laplace covariance of the parameters ``v`` given the others,
    ``(J'J)_vv^-1``."""
    H = f.jacobian.T @ f.jacobian
    return np.linalg.cholesky(np.linalg.inv(H[np.ix_(v, v)]))


def _unwhiten(f: Fit, v: np.ndarray, L: np.ndarray):
    """The map from whitened coordinates ``z (..., len(v))`` of the parameters ``v`` to full
    parameter vectors ``theta* + L z`` (the others at the optimum)."""

    def to_theta(z: np.ndarray) -> np.ndarray:
        th = np.broadcast_to(f.theta, z.shape[:-1] + f.theta.shape).copy()
        th[..., v] += z @ L.T
        return th

    return to_theta


def laplace_draws(problem: Problem, f: Fit, *, draws: int, seed: int) -> Posterior:
    """Draws from the Laplace approximation: Gaussian around the optimum with the covariance
    ``(J'J)^-1`` of the sampled parameters given the others (no projection needed)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    v = np.flatnonzero(problem.space.sampled())
    x = _unwhiten(f, v, _laplace_factor(f, v))(rng.standard_normal((draws, len(v))))
    return Posterior(x, float("nan"), np.full(len(f.theta), np.nan), 0, 0, 0, time.perf_counter() - t0)


def burn_iterations(iterations: int, burn_in: float) -> int:
    """The iterations discarded as burn-in: the share ``burn_in`` of ``iterations``, rounded
    down, leaving at least one kept."""
    return min(int(iterations * burn_in), iterations - 1)


# adaptive Metropolis: the proposal's covariance is re-estimated every ADAPT_EVERY iterations of
# the burn-in from ADAPT_AFTER on; at most KEEP_PER_CHAIN states per chain are stored for the
# diagnostics and the draws (evenly thinned)
ADAPT_EVERY, ADAPT_AFTER, KEEP_PER_CHAIN = 100, 200, 5000


def posterior_draws(problem: Problem, f: Fit, *, draws: int, chains: int, iterations: int, seed: int, progress=None, burn_in: float = 0.5) -> Posterior:
    """Posterior draws by adaptive random-walk Metropolis run as ``chains`` parallel chains,
    every iteration one batched projection of all chains' proposals (the kernel's draw axis).

    Coordinates: the sampled parameters (:meth:`Space.sampled`) whitened by the Laplace
    covariance. The proposal is Gaussian, ``s L_t z``; during the burn-in (the share
    ``burn_in`` of the iterations) ``L_t`` is the Cholesky factor of the covariance of all
    chains' states over the second half of the burn-in so far (adaptive Metropolis, Haario,
    Saksman & Tamminen 2001, pooled over the chains), re-estimated every ``ADAPT_EVERY``
    iterations, and ``s`` (from ``2.38 / sqrt(d)``, Roberts, Gelman & Gilks 1997) is tuned towards
    an acceptance rate of 0.234; after the burn-in both are fixed, so the kept states are a
    Markov chain with the posterior as its stationary law. Chains start as draws of the Laplace
    approximation scaled by 0.5. Split R-hat and bulk ESS per parameter come from arviz (the
    kept states, evenly thinned to at most ``KEEP_PER_CHAIN`` per chain); the ``draws`` returned
    are evenly spaced over all chains' kept states."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    v = np.flatnonzero(problem.space.sampled())
    d = len(v)
    to_theta = _unwhiten(f, v, _laplace_factor(f, v))

    def log_post(z):
        return problem.log_posterior(to_theta(z), f.theta, chunk=len(z))

    z = 0.5 * rng.standard_normal((chains, d))
    lp = log_post(z)
    log_s, S = np.log(2.38 / np.sqrt(d)), np.eye(d)
    burn = burn_iterations(iterations, burn_in)
    thin = -(-(iterations - burn) // KEEP_PER_CHAIN)
    kept = np.empty(((iterations - burn + thin - 1) // thin, chains, d))
    history = np.empty((burn, chains, d))
    accepted = 0
    for it in range(iterations):
        if ADAPT_AFTER <= it < burn and it % ADAPT_EVERY == 0:
            recent = history[it // 2 : it].reshape(-1, d)
            S = np.linalg.cholesky(np.cov(recent.T) + 1e-8 * np.eye(d))
        prop = z + np.exp(log_s) * rng.standard_normal((chains, d)) @ S.T
        lp_new = log_post(prop)
        ok = np.log(rng.random(chains)) < lp_new - lp
        z[ok], lp[ok] = prop[ok], lp_new[ok]
        if it < burn:
            log_s += (ok.mean() - 0.234) / np.sqrt(it / 10 + 1)
            history[it] = z
        else:
            accepted += ok.sum()
            if (it - burn) % thin == 0:
                kept[(it - burn) // thin] = z
        if progress is not None:
            progress(1)
    thetas = to_theta(kept)  # (T, C, n)
    rhat, ess = chain_diagnostics(thetas, v)
    flat = thetas.reshape(-1, len(f.theta))  # rows (iteration, chain): evenly spaced rows interleave the chains
    idx = np.linspace(0, len(flat) - 1, min(draws, len(flat))).round().astype(int)
    post = Posterior(flat[idx], float(accepted / max((iterations - burn) * chains, 1)), rhat, chains, iterations, (iterations + 1) * chains, time.perf_counter() - t0)
    post.ess = ess
    return post


def emcee_draws(problem: Problem, f: Fit, *, draws: int, walkers: int, iterations: int, seed: int, progress=None, burn_in: float = 0.5) -> Posterior:
    """Posterior draws by emcee's affine-invariant ensemble sampler (Foreman-Mackey et al. 2013),
    every iteration's walkers one batched projection (``vectorize``). The sampled parameters (:meth:`Space.sampled`;
    the others are held at the optimum) are whitened by the Laplace
    approximation, ``x = theta* + L z`` with ``L L' = (J'J)^-1``, so that the stretch move sees a
    posterior near isotropic. Walkers start as draws of the Laplace approximation (a start in a
    small ball around the optimum took more than 3,000 iterations to spread: split R-hat 2.5); the
    share ``burn_in`` of the iterations is burn-in. Split R-hat and bulk effective sample size of every sampled
    parameter come from arviz (the walkers taken as chains)."""
    import emcee

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    v = np.flatnonzero(problem.space.sampled())
    d = len(v)
    if walkers < 2 * d:
        raise ValueError(f"calibration.chains = {walkers}: emcee needs at least twice the {d} sampled parameters as walkers")
    to_theta = _unwhiten(f, v, _laplace_factor(f, v))

    def log_prob(z):
        out = problem.log_posterior(to_theta(z), f.theta, chunk=len(z))
        if progress is not None:
            progress(1)
        return out

    # differential-evolution moves (ter Braak 2006; Nelson et al. 2014) with a share of stretch moves
    moves = [(emcee.moves.DEMove(), 0.8), (emcee.moves.DESnookerMove(), 0.1), (emcee.moves.StretchMove(), 0.1)]
    sampler = emcee.EnsembleSampler(walkers, d, log_prob, vectorize=True, moves=moves)
    sampler.random_state = np.random.RandomState(int(rng.integers(2**31))).get_state()
    z0 = rng.standard_normal((walkers, d))  # the walkers start as draws of the Laplace approximation
    sampler.run_mcmc(z0, iterations, progress=False)
    burn = burn_iterations(iterations, burn_in)
    chain = sampler.get_chain(discard=burn)  # (T, W, d)
    thetas = to_theta(chain.reshape(-1, d)).reshape(chain.shape[0], walkers, -1)  # (T, W, n)
    rhat, ess = chain_diagnostics(thetas, v)
    flat = thetas.reshape(-1, len(f.theta))
    idx = np.linspace(0, len(flat) - 1, min(draws, len(flat))).round().astype(int)
    post = Posterior(flat[idx], float(np.mean(sampler.acceptance_fraction)), rhat, walkers, iterations, (iterations + 1) * walkers, time.perf_counter() - t0)
    post.ess = ess
    # emcee's own diagnostic (Goodman & Weare 2010; Foreman-Mackey et al. 2013): the kept
    # iterations should be many (about 50) autocorrelation times; tol=0 gives the estimate anyway
    with np.errstate(invalid="ignore", divide="ignore"):  # a walker that never moved in the kept half: no estimate from it
        tau = sampler.get_autocorr_time(discard=burn, tol=0)
    post.tau = float(np.nanmax(tau)) if np.isfinite(tau).any() else None
    return post


def fitted_table(problem: Problem, sim: Simulated) -> list[dict]:
    """Per target: observed, fitted, error (fitted - observed; relative for counts)."""
    rows = []
    for b in problem.blocks:
        m = b.get(sim)[0]
        for lab, o, x, s in zip(b.labels, b.observed, m, b.sd):
            err = x - o
            rows.append(dict(target=b.name, label=lab, observed=float(o), fitted=float(x), error=float(err), relative_error=float(err / o) if b.scale == "log" else float("nan"), sd=float(s), fitted_in_objective=b.weight > 0))
    return rows


def summary_stats(rows: list[dict]) -> dict:
    """RMSE and worst error per target kind (shares in percentage points, counts in %)."""
    out = {}
    for name in dict.fromkeys(r["target"] for r in rows):
        sel = [r for r in rows if r["target"] == name]
        rel = not np.isnan(sel[0]["relative_error"])
        years = name.endswith("_e0")  # life expectancy: in years
        e = np.array([r["relative_error"] if rel else r["error"] for r in sel]) * (1.0 if years else 100.0)
        out[name] = dict(unit="years" if years else "%" if rel else "pp", rmse=float(np.sqrt(np.mean(e**2))), max_abs=float(np.abs(e).max()), n=len(sel))
    return out


__all__ = ["Space", "Problem", "census_targets", "fit", "identifiability", "posterior_draws", "simulate", "fitted_table", "summary_stats", "RURAL"]
