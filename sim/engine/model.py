"""Turn a validated config and the inputs into the kernel's per-year :class:`StepInputs`.

All component models are called here (through the registry); the kernel sees only arrays.
Parameters are shared by all draws (a draw axis of length 1) unless ``uncertainty.enabled``: then
draw ``i`` multiplies the parameters named in ``uncertainty.sd`` by ``exp(sd * z)`` with ``z`` from a
generator seeded by ``(seed, i)``, so that a draw does not depend on how an ensemble is split
into jobs (``draws.start``, ``draws.count``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import xarray as xr

from models import get_model
from models.migration import RC_STANDARD, destination_utility
from sim.axes import AWAY, N_AGES, N_SEXES, N_STATES, RURAL, STATES, URBAN_LOCAL, URBAN_MIGRANT
from sim.config.parameters import CALIBRATED_PARAMETERS, FACTOR_FIELD, PATH_END, PATH_KNOTS, TRENDS, UNCERTAIN_PARAMETERS
from sim.config.schema import Config, ConfigError
from sim.config.values import region_mask, year_map
from sim.engine import levers
from sim.engine.classic import survival_ratios
from sim.engine.contract import TIMING_END, TIMING_EVEN, StepInputs
from sim.paths import repo_path

E0_YEAR = 2020  # the year of demography.mortality's e0 levels
CHILD_COVERAGE_AGES = 10  # params.factors.child_coverage multiplies a 2010 jump-off's ages 0..9
OLDER_RETURN_AGES = (40, 70)  # params.factors.older_return: a bump over these ages (peak midway)


def older_return_bump(ages: np.ndarray) -> np.ndarray:
    """0..1 over ``ages``: sin^2 across :data:`OLDER_RETURN_AGES` (1 at their middle, 55), 0 outside."""
    lo, hi = OLDER_RETURN_AGES
    x = (np.asarray(ages, dtype=float) - lo) / (hi - lo)
    return np.where((x > 0.0) & (x < 1.0), np.sin(np.pi * x) ** 2, 0.0)


def damped_sum(phi: float, n: int) -> float:
    """``phi + phi^2 + ... + phi^n`` (0 for n <= 0): the years of change a damped trend (Gardner &
    McKenzie 1985) adds up to ``n`` years after its anchor."""
    return float(sum(phi**k for k in range(1, n + 1)))


def path_factor(cfg: Config, name: str, year: int) -> float:
    """The multiplier in ``year`` of the time path of parameter ``name`` (``tfr``, ``mortality``):
    log-linear between its knots (``params.factors`` of the parameter table's knots of ``name``,
    1 where not set) up to PATH_END, where it is 1; flat before the first knot. After PATH_END
    the TFR path goes on as a damped trend of its own recent change, estimated from the fitted
    path alone (no figure after 2020): ``b`` = its log change a year over the last
    ``demography.fertility.trend_window`` years, and the multiplier ``exp(b (phi + ... +
    phi^(year - 2020)))`` with ``phi = demography.fertility.trend_damping``, which fades to a
    total change of ``b phi / (1 - phi)``: the rule of the migration trends (:func:`trend_factor`).
    The other paths are 1 after PATH_END (mortality improves by its model)."""
    knots = PATH_KNOTS.get(name)
    if not knots:
        return 1.0
    ys = sorted(knots) + [PATH_END]
    logs = [np.log(float(cfg.params.factors.get(knots[k], 1.0))) for k in sorted(knots)] + [0.0]
    if year <= PATH_END or name != "tfr":
        return float(np.exp(np.interp(float(min(year, PATH_END)), ys, logs)))
    f = cfg.demography.fertility
    b = -float(np.interp(float(PATH_END - f.trend_window), ys, logs)) / f.trend_window
    return float(np.exp(b * damped_sum(f.trend_damping, year - PATH_END)))


def trend_factor(cfg: Config, name: str, year: int) -> float:
    """The multiplier in ``year`` of intensity ``name`` from its fitted trend (log change ``b`` a
    year, ``params.factors`` of the trend parameter = exp(b)): ``exp(b (year - 2020))`` up to 2020,
    and after it ``exp(b (phi + phi^2 + ... + phi^(year - 2020)))``, a damped trend (Gardner &
    McKenzie 1985) with ``phi = demography.migration.trend_damping``: the history's slope goes on
    and fades, to a total of ``b phi / (1 - phi)``."""
    key = TRENDS.get(name)
    b = np.log(float(cfg.params.factors.get(key, 1.0))) if key else 0.0
    if b == 0.0:
        return 1.0
    if year <= PATH_END:
        return float(np.exp(b * (year - PATH_END)))
    return float(np.exp(b * damped_sum(cfg.demography.migration.trend_damping, year - PATH_END)))


def draw_factors(cfg: Config) -> dict[str, np.ndarray] | None:
    """``{parameter: (D,) multipliers}`` for the job's draws, or None (central parameters)."""
    u = cfg.uncertainty
    if not u.enabled:
        return None
    names = list(UNCERTAIN_PARAMETERS)
    idx = range(cfg.draws.start, cfg.draws.start + cfg.draws.count)
    z = np.array([np.random.default_rng([u.seed, i]).standard_normal(len(names)) for i in idx])
    return {n: np.exp(float(u.sd.get(n, 0.0)) * z[:, j]) for j, n in enumerate(names)}


def process_factors(cfg: Config, R: int) -> dict[str, np.ndarray] | None:
    """Process noise (``uncertainty.process``): per draw, year and region the multiplier
    ``exp(e - v / 2)`` of each parameter of ``uncertainty.process_sd``, ``e`` an AR(1) path in
    the log (``e_t = rho e_(t-1) + u_t``, ``e`` 0 before the first projected year; rho = 1: a
    random walk) whose innovation ``u`` is a shock common to all regions (s.d. ``process_sd``)
    plus one of the region's own (s.d. ``process_sd x process_region_share``), ``v`` the
    variance of ``e_t``: the multiplier has mean 1, so the noise leaves each rate's expected
    value (what the calibration fitted to the aggregate flows) where it was; a median of 1 would
    raise the expected rate by ``exp(v / 2)`` (x1.6 after 15 years at s.d. 0.25) and push every
    ensemble's median above its central path. Draw ``i`` takes its innovations from a generator
    seeded with ``(seed, i, 1)``, so that a draw is the same in any slice of an ensemble and
    independent of its parameter draw. ``uncertainty.process_pull``: the s.d. of a further
    innovation shared by every region that moves departures to other provinces up and returns
    down together (:data:`PULLED`; generator ``(seed, i, 4)``), the same AR(1) and mean-1 rule."""
    u = cfg.uncertainty
    if not u.process:
        return None
    names = [n for n in UNCERTAIN_PARAMETERS if u.process_sd.get(n, 0.0) > 0]
    pulled = u.process_pull > 0
    if not names and not pulled:
        return None
    Y = cfg.end_year - cfg.start_year
    idx = range(cfg.draws.start, cfg.draws.start + cfg.draws.count)
    out = {n: np.ones((cfg.draws.count, Y, R)) for n in [*names, *([n for n in PULLED if n not in names] if pulled else [])]}
    if pulled:  # the pull: one shock a year for every region, raising departures and lowering returns together
        for d, i in enumerate(idx):
            z = np.random.default_rng([u.seed, i, 4]).standard_normal(Y)
            e, v = 0.0, 0.0
            for t in range(Y):
                e = u.process_rho * e + u.process_pull * z[t]
                v = u.process_rho**2 * v + u.process_pull**2
                for n, sign in PULLED.items():
                    out[n][d, t] *= np.exp(sign * e - v / 2)
    for d, i in enumerate(idx):
        rng = np.random.default_rng([u.seed, i, 1])
        z = rng.standard_normal((len(names), Y, 1 + R))
        for j, n in enumerate(names):
            sd = float(u.process_sd[n])
            shocks = sd * (z[j, :, :1] + u.process_region_share * z[j, :, 1:])  # (Y, R)
            step_var = sd**2 * (1.0 + u.process_region_share**2)
            e = np.zeros(R)
            v = 0.0
            for t in range(Y):
                e = u.process_rho * e + shocks[t]
                v = u.process_rho**2 * v + step_var
                out[n][d, t] *= np.exp(e - v / 2)
    return out


# the shared pull's sign on the intensities it moves (uncertainty.process_pull): a year when
# Guangdong pulls harder, more leave and fewer come back
PULLED = {"to_away": 1.0, "from_away": -1.0}


_LX_CACHE: dict = {}  # (mortality model, background hazard, levels) -> L(x): the models of a sweep share life tables
LX_CACHE_BYTES = 128 * 2**20


def _life_table(mortality, level: np.ndarray, background: float, survival: bool = False):
    """``mortality.life_table_Lx(level, background)``, read-only, computed once per process for equal
    ``level`` arrays (the batches of a sweep that differ in policy only have the same life
    tables every year); the oldest entries go when the cache passes :data:`LX_CACHE_BYTES`.
    ``survival``: instead, its :func:`sim.engine.classic.survival_ratios` ``(sx, nb)`` (shared
    with every later caller: not to be written to)."""
    level = np.ascontiguousarray(level, dtype=float)
    key = (id(mortality), float(background), level.shape, level.tobytes(), survival)
    hit = _LX_CACHE.get(key)
    if hit is not None:
        return hit[1]
    # one table per distinct level (regions share their province's or prefecture's e0: China's
    # 2,985 counties have a few hundred distinct levels, not 23,880); each table is computed
    # element by element, and the survival ratios row by row, so this is exactly the table (and
    # the ratios) of every cell
    uniq, inv = np.unique(level.ravel(), return_inverse=True)
    Lx = mortality.life_table_Lx(uniq, background)
    if survival:  # left writable: they go to the compiled step, to which a read-only array is another type
        sx, nb = survival_ratios(Lx)
        out = (sx[inv].reshape(level.shape + (-1,)), nb[inv].reshape(level.shape))
    else:
        out = Lx[inv].reshape(level.shape + (-1,))
        out.setflags(write=False)
    _LX_CACHE[key] = (mortality, out)  # the model kept: its id cannot be reused while cached
    total = sum(_nbytes(v[1]) for v in _LX_CACHE.values())
    while total > LX_CACHE_BYTES and len(_LX_CACHE) > 1:
        total -= _nbytes(_LX_CACHE.pop(next(iter(_LX_CACHE)))[1])
    return out


def _nbytes(entry) -> int:
    return sum(a.nbytes for a in entry) if isinstance(entry, tuple) else entry.nbytes


@dataclass
class Model:
    """Everything a projection needs besides the time loop."""

    cfg: Config
    inputs: xr.Dataset
    pop0: np.ndarray  # (R,K,S,A)
    land0: np.ndarray  # (R,) km2
    levels: np.ndarray  # (R,K,S) Siler level factors at the jump-off
    asfr_shape: np.ndarray  # (R,K,A) fertility schedule x census TFR
    static: dict
    # per-draw multipliers {name: (D,)}, None: shared parameters. draw_factors() fills the
    # UNCERTAIN_PARAMETERS; a study may also set "land_link" (m2 per settled migrant)
    factors: dict | None = None
    # process noise: per-draw, per-year multipliers {name: (D, Y, R)} of the projected years
    # (uncertainty.process), None: none
    process: dict | None = None
    # the StepInputs of stacked_inputs kept by its years when not None; shared by the copies
    # that dataclasses.replace makes, which read it while their config and inputs are the same
    # objects (calibration.core.Problem.model: thousands of draw sets of one central model)
    memo: dict | None = field(default=None, compare=False, repr=False)

    @property
    def draws(self) -> int:
        return self.cfg.draws.count

    def _per_draw(self, name: str, a: np.ndarray, *, columns: bool = False, year: int | None = None) -> np.ndarray:
        """``a`` with a leading draw axis: length 1, or D when ``name`` varies across draws. A
        factor (D,) or (D, R), times the process innovations of ``year`` (D, R) when there are
        any, multiplies ``a``'s region axis: its first, or with ``columns`` its second (the
        destinations of ``a[i, j]``)."""
        f = None
        if self.factors is not None and name in self.factors:
            f = np.asarray(self.factors[name], dtype=float)  # (D,) or (D, R): a multiplier per region
        if self.process is not None and name in self.process and year is not None:
            p = self.process[name][:, year - self.cfg.start_year - 1]  # (D, R)
            f = p if f is None else (f[:, None] if f.ndim == 1 else f) * p
        if f is None:
            return np.ascontiguousarray(a)[None]
        if columns:
            f = (f[:, None] if f.ndim == 1 else f)[:, None, :]
        f = f.reshape(f.shape + (1,) * (np.ndim(a) + 1 - f.ndim))
        return np.ascontiguousarray(f * a)

    def factor_table(self, years) -> np.ndarray:
        """The per-draw factors of the steps of ``years`` as a (D, Y, len(FACTOR_FIELD), R) table
        (1 where a factor is not drawn; a factor of shape (D,) applies to every region, one of
        shape (D, R) per region; the process innovations of each year multiply it), or an empty
        (0, 0, 0, 0) table when nothing varies across draws."""
        if self.factors is None and self.process is None:
            return np.zeros((0, 0, 0, 0))
        R = self.pop0.shape[0]
        t = np.ones((self.draws, len(years), len(FACTOR_FIELD), R))
        for j, name in enumerate(FACTOR_FIELD):
            if self.factors is not None and name in self.factors:
                f = np.asarray(self.factors[name], dtype=float)
                t[:, :, j] = (f[:, None] if f.ndim == 1 else f)[:, None, :]
            if self.process is not None and name in self.process:
                idx = np.asarray(years) - self.cfg.start_year - 1
                t[:, :, j] *= self.process[name][:, idx]
        return t

    def variants(self) -> None:
        """The inputs each draw reads in the ensemble kernel: None, this model's (a
        :class:`sim.engine.stack.Stack` of several models has one set per model)."""
        return None

    def stacked_inputs(self, years) -> StepInputs:
        """The central (factor-free) StepInputs of ``years``, each array with a leading year axis
        (kept in :attr:`memo` when there is one)."""
        key = (tuple(int(y) for y in years), self.cfg.start_year)
        # what the central inputs are made of, compared by identity: a copy with another config
        # or other inputs does not read the kept entry
        parts = (self.cfg.params, self.cfg.demography, self.cfg.policy, self.static, self.levels, self.asfr_shape, self.pop0, self.land0)
        hit = self.memo.get(key) if self.memo is not None else None
        if hit is not None and all(a is b for a, b in zip(hit[0], parts)):
            return hit[1]
        central = replace(self, factors=None, process=None)
        ps = [central.step_inputs(int(y)) for y in years]
        out = StepInputs(*(np.ascontiguousarray(np.stack(f)) for f in zip(*(p[:-1] for p in ps))), ps[0].timing)
        if self.memo is not None:
            self.memo[key] = (parts, out)
        return out

    def _level(self, year: int) -> np.ndarray:
        """The Siler level factors (R, K, S) of ``year``: the levels, the improvement since the
        jump-off and the mortality path of ``year``."""
        c = self.cfg
        yrs = np.arange(c.start_year + 1, year + 1)
        cum = float(year_map(c.demography.mortality.improvement, yrs).sum()) if len(yrs) else 0.0
        return self.levels * (np.exp(-cum) * path_factor(c, "mortality", year))

    def life_table_Lx(self, year: int) -> np.ndarray:
        """Person-years L(x) (R, K, S, A) of the life tables the step of ``year`` uses."""
        return _life_table(self.static["mortality"], self._level(year), self.static["background_hazard"])

    def survival(self, year: int) -> tuple[np.ndarray, np.ndarray]:
        """``survival_ratios(self.life_table_Lx(year))``: (sx (R, K, S, A), nb (R, K, S)), from
        the distinct life tables only."""
        return _life_table(self.static["mortality"], self._level(year), self.static["background_hazard"], survival=True)

    def e0(self, year: int) -> np.ndarray:
        """Life expectancy at birth (R, K, S) of the life tables the step of ``year`` uses."""
        return self.life_table_Lx(year).sum(axis=-1)

    @property
    def regions(self) -> list[str]:
        return [str(r) for r in self.inputs.region.values]

    def step_inputs(self, year: int) -> StepInputs:
        """Rates for the step that ends on 31 Dec of ``year``."""
        c = self.cfg
        mig = c.demography.migration
        sx, nb = self.survival(year)
        tfr_mult = float(year_map(c.demography.fertility.tfr_multiplier, [year])[0]) * path_factor(c, "tfr", year)
        R = self.pop0.shape[0]

        def y(m):
            return float(year_map(m, [year])[0])

        m_ru = (y(mig.rural_to_urban) * trend_factor(c, "rural_to_urban", year)) * self.static["ru_shape"]
        m_return = (y(mig.from_away) * trend_factor(c, "from_away", year)) * self.static["return_shape"]
        m_away = trend_factor(c, "to_away", year) * self.static["m_away"]
        h = y(c.policy.hukou.conversion_rate) * self.static["h_shape"]
        land_link = self.static["land_per_settled"]
        pol = c.policy
        return StepInputs(
            sx=sx[None],
            nb=nb[None],
            asfr=self._per_draw("tfr", tfr_mult * self.asfr_shape, year=year),
            srb=self.static["srb"][None],
            m_ru=self._per_draw("rural_to_urban", m_ru, year=year),
            m_ur=self.static["m_ur"][None],
            m_away=self._per_draw("to_away", m_away, year=year),
            m_return=self._per_draw("from_away", m_return, year=year),
            return_urban=np.full((1, R), mig.return_urban_share),
            m_inter=self._per_draw("interregional", self.static["m_inter"], year=year),
            dest_weight=self._per_draw("attractiveness", self.static["dest_weight"], columns=True),
            beta_size=np.array([self.static["beta_size"]]),
            ext_in=(y(mig.external_in) * self.static["ext_in_stock"])[None],
            m_ext_out=self.static["m_ext_out"][None],
            h_conv=self._per_draw("hukou_conversion", h, year=year),
            reclass=self._per_draw("reclassification", y(pol.reclassification.rate) * self.static["reclass_factor"], year=year),
            reclass_local=np.full((1, R), pol.reclassification.to_local_share),
            land_base=(y(pol.land.base_quota) * self.land0)[None],
            land_per_settled=self._per_draw("land_link", land_link),
            land_release=(y(pol.land.release_km2) * self.static["release_weight"])[None],
            land_per_leaver=np.full((1, R), pol.land.release_m2_per_leaver),
            capacity_m2=np.array([pol.land.capacity_m2_per_person]),
            # no urban land data before the 2020 jump-off: through the fitted record (a 2010 start's
            # years up to 2020) the brake is off, as in the fit, so that a run from 2010 is the
            # calibration's history and not a hidden time trend (DESIGN: one model across the jump-off)
            brake_width=np.array([pol.land.brake_width if year > PATH_END else 0.0]),
            student_pull=self._per_draw("student_pull", self.static["student_pull"]),
            student_ages=self.static["student_ages"][None],
            timing=TIMING_EVEN if mig.timing == "even" else TIMING_END,
        )


def read_ensemble(cfg: Config) -> xr.Dataset:
    """The draws ``draws.start .. draws.start + draws.count - 1`` of the ``params.ensemble`` file:
    ``factors (draw, parameter)`` and ``region_factors (draw, regional_parameter, region)``, with
    the meaning of ``params.factors`` / ``params.region_factors``."""
    path = repo_path(cfg.params.ensemble)
    if not path.is_file():
        raise ConfigError(f"params.ensemble = {cfg.params.ensemble!r}: no such file ({path}); make one with python -m calibration")
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    n = ds.sizes["draw"]
    lo, hi = cfg.draws.start, cfg.draws.start + cfg.draws.count
    if hi > n:
        raise ConfigError(f"draws.start + draws.count = {hi}: the ensemble {path.name} has {n} draws; allowed: start + count <= {n}")
    return ds.isel(draw=slice(lo, hi))


def ensemble_factors(cfg: Config, regions: list[str], prefectures: list[str]) -> dict[str, np.ndarray]:
    """Per-draw multipliers ``{name: (D, R)}`` relative to the central ``params`` values, from the
    ensemble file. The kernel varies the fields of FACTOR_FIELD across draws; any other parameter
    (mortality, destination-choice weights) must be the same in every draw."""
    ds = read_ensemble(cfg)
    central = {k: float(cfg.params.factors.get(k, 1.0)) for k in CALIBRATED_PARAMETERS}
    out = {}
    shared = ds.parameter.values.tolist()
    regional = ds.regional_parameter.values.tolist() if "region_factors" in ds else []
    for name in dict.fromkeys(shared + regional):
        f0 = ds.factors.sel(parameter=name).values if name in shared else np.ones(ds.sizes["draw"])
        v = f0 / central[name]  # (D,)
        if name not in FACTOR_FIELD:
            varies = np.ptp(v) > 1e-12 or abs(v[0] - 1.0) > 1e-5  # the YAML holds 6 significant digits
            if name in regional:
                rf = ds.region_factors.sel(regional_parameter=name).values  # (D, regions of the file)
                varies = varies or bool((np.ptp(rf, axis=0) > 1e-12 * np.abs(rf).max(initial=1.0)).any())
            if varies:
                raise ConfigError(f"params.ensemble: parameter {name} varies across draws or differs from params.factors; only {', '.join(FACTOR_FIELD)} may vary")
            continue
        f = np.broadcast_to(v[:, None], (len(v), len(regions))).copy()
        if name in regional:
            rf = ds.region_factors.sel(regional_parameter=name)
            base = cfg.params.region_factors.get(name, {})
            for j, key in enumerate(rf.region.values.tolist()):
                f[:, region_mask([key], regions, prefectures)] *= rf.values[:, j, None] / float(base.get(key, 1.0))
        out[name] = f
    return out


def param_factors(cfg: Config, regions: list[str], prefectures: list[str]) -> dict[str, np.ndarray]:
    """``{parameter: (R,) multiplier}`` from ``params.factors`` times ``params.region_factors``
    (a region named, or its prefecture), for every parameter of CALIBRATED_PARAMETERS."""
    prm = cfg.params
    out = {}
    for name in CALIBRATED_PARAMETERS:
        f = np.full(len(regions), float(prm.factors.get(name, 1.0)))
        for key, v in prm.region_factors.get(name, {}).items():
            f[region_mask([key], regions, prefectures)] *= float(v)
        out[name] = f
    return out


def student_ages(ages) -> np.ndarray:
    """The (A,) mask of ``demography.migration.student_ages``: 1 at ``first..last``, else 0."""
    band = np.zeros(N_AGES)
    if len(ages):
        band[ages[0] : ages[1] + 1] = 1.0
    return band


def build_model(cfg: Config, inputs: xr.Dataset, factors: dict | None = None) -> Model:
    """The model of ``cfg`` on ``inputs``; ``factors``: per-draw multipliers ``{name: (D,) or
    (D, R)}`` (default: those of ``uncertainty``, or of the ``params.ensemble`` draws)."""
    mort, fert, mig = cfg.demography.mortality, cfg.demography.fertility, cfg.demography.migration
    pop0 = np.ascontiguousarray(inputs.population.values, dtype=float)
    R = pop0.shape[0]
    regions = [str(r) for r in inputs.region.values]
    prefectures = [str(p) for p in inputs.prefecture.values]
    pf = param_factors(cfg, regions, prefectures)

    # mortality: e0 by state and sex; urban states (and away) get the urban advantage
    e0 = np.empty((N_STATES, N_SEXES))
    for s, base in enumerate((mort.e0_female, mort.e0_male)):
        e0[:, s] = base + mort.urban_advantage
        e0[RURAL, s] = base - mort.rural_disadvantage
    mortality = get_model("mortality", mort.model)
    # the shape's age-independent hazard (shared by all regions: params.region_factors has none)
    background = mort.adult_hazard * float(pf["mortality_adult"][0])
    uniq = {v: mortality.level_for_e0(v, background) for v in np.unique(e0)}
    levels = np.broadcast_to(np.vectorize(uniq.get)(e0), (R, N_STATES, N_SEXES)) * pf["mortality"][:, None, None]
    if cfg.start_year < E0_YEAR:  # the e0 levels are 2020's: back along the improvement path
        back = year_map(mort.improvement, np.arange(cfg.start_year + 1, E0_YEAR + 1)).sum()
        levels = levels * np.exp(back)
        # the census's coverage of young children (a parameter of the 2010 jump-off)
        pop0 = pop0.copy()
        pop0[..., :CHILD_COVERAGE_AGES] *= pf["child_coverage"][:, None, None, None]

    # fertility: census TFR (urban / rural) x gamma schedule
    fert_model = get_model("fertility", fert.model)
    sch_u = fert_model(fert.mean_age_urban, fert.sd_age)
    sch_r = fert_model(fert.mean_age_rural, fert.sd_age)
    tfr_u = inputs.tfr_urban.values
    tfr_r = inputs.tfr_rural.values
    asfr = np.empty((R, N_STATES, N_AGES))
    asfr[:, RURAL] = tfr_r[:, None] * sch_r
    for k in (URBAN_LOCAL, URBAN_MIGRANT, AWAY):
        asfr[:, k] = tfr_u[:, None] * sch_u
    asfr *= pf["tfr"][:, None, None]
    srb = np.full(R, fert.srb) if fert.srb is not None else inputs.srb.values.astype(float)

    # migration (schedules x intensities; policy levers scale them per region)
    schedule = get_model("migration_schedule", mig.schedule)

    def unit_schedule(peak_factor: float = 1.0) -> np.ndarray:
        """The schedule at gross migraproduction rate 1 (rate = GMR x this), its labour-force
        peak age (mu2) times ``peak_factor``."""
        s = schedule(**{**RC_STANDARD, "mu2": RC_STANDARD["mu2"] * peak_factor})
        return s / s.sum()

    one = unit_schedule()
    # departures to and returns from other provinces: their own peak ages (fitted to the census
    # age structure: young adults leave younger and come back older than the standard schedule)
    one_away = unit_schedule(float(pf["departure_age"][0]))
    one_return = unit_schedule(float(pf["return_age"][0]))
    pol = cfg.policy

    def mask(names):
        return region_mask(names, regions, prefectures)

    ru_mult, ret_mult, bonus, dist = levers.regional(pol, mask, pf["rural_to_urban"], pf["from_away"], inputs.distance_km.values.astype(float))
    fam_age = levers.family_by_age(pol.services)
    ru_shape = ru_mult[:, None, None] * (one * fam_age)[None, None, :] * np.ones((1, N_SEXES, 1))
    # returns by age relative to the schedule (R, A): children's (under hukou-based schooling)
    # and the middle-aged's (migrant workers going home), 1 + (older_return - 1) x the bump
    age_index = np.arange(N_AGES)
    by_age = np.where(age_index[None, :] < levers.CHILD_AGE_LIMIT, pf["child_return"][:, None], 1.0)
    by_age = by_age * (1.0 + (pf["older_return"][:, None] - 1.0) * older_return_bump(age_index)[None, :])
    return_shape = ret_mult[:, None, None] * (one_return[None, :] * by_age)[:, None, :] * np.ones((1, N_SEXES, 1))
    keep = levers.retention_keep(pol.services)

    m_away = np.zeros((R, N_STATES, N_SEXES, N_AGES))
    m_inter = np.zeros((R, N_STATES, N_SEXES, N_AGES))
    for name, gmr in mig.to_away.items():
        m_away[:, STATES.index(name)] = gmr * pf["to_away"][:, None, None] * one_away
    m_away[:, URBAN_MIGRANT] *= keep
    if R > 1:
        for name, gmr in mig.interregional.items():
            m_inter[:, STATES.index(name)] = gmr * pf["interregional"][:, None, None] * one
        # students leaving home for college (who choose with the student pull) and graduates
        # leaving their college's region: the same rate at each of their ages, in every state;
        # moves between regions like the others, so the interregional multiplier scales them
        # too (as its per-draw factor does: it multiplies the whole field)
        for ages, gmr in ((mig.student_ages, mig.student_moves * pf["student_moves"][0]), (mig.graduate_ages, mig.graduate_moves * pf["graduate_moves"][0])):
            band = student_ages(ages)
            if band.any():
                m_inter[:, :AWAY] += (gmr * pf["interregional"])[:, None, None, None] * (band / band.sum())
    # the calibrated weights are shared by all regions (params.region_factors has no beta_*)
    V = destination_utility(dist, beta_distance=mig.beta_distance * pf["beta_distance"][0], openness=bonus, beta_openness=1.0)
    other_prov = inputs.hukou_elsewhere.sel(origin="other_province").values
    migrants = pop0[:, URBAN_MIGRANT].sum(axis=(1, 2))
    ext_share = np.clip(other_prov / np.maximum(migrants, 1.0), 0.0, 1.0)
    ext_in_stock = other_prov[:, None, None] * np.broadcast_to(0.5 * one, (R, N_SEXES, N_AGES)) / one.sum()

    h_shape = levers.hukou_shape(pol.hukou, mask, pf["hukou_conversion"])
    land_per_settled = levers.land_per_settled(pol.land, mask)
    rural0 = pop0[:, RURAL].sum(axis=(1, 2))

    static = dict(
        mortality=mortality,
        background_hazard=background,
        srb=srb,
        ru_shape=np.ascontiguousarray(ru_shape),
        return_shape=np.ascontiguousarray(return_shape),
        m_ur=np.ascontiguousarray(np.broadcast_to(keep * mig.urban_to_rural * one, (R, N_SEXES, N_AGES))),
        m_away=m_away,
        m_inter=m_inter,
        dest_weight=np.ascontiguousarray(np.exp(V) * pf["attractiveness"][None, :]),
        ext_in_stock=np.ascontiguousarray(ext_in_stock),
        m_ext_out=np.ascontiguousarray(keep * mig.external_out * ext_share[:, None, None] * np.broadcast_to(one, (R, N_SEXES, N_AGES))),
        h_shape=np.ascontiguousarray(h_shape),
        land_per_settled=land_per_settled,
        other_province_share=ext_share,
        release_weight=rural0 / rural0.sum(),
        reclass_factor=pf["reclassification"],
        beta_size=mig.beta_size * pf["beta_size"][0],
        student_pull=np.ascontiguousarray(pf["student_pull"]),
        student_ages=student_ages(mig.student_ages),
    )
    if factors is None:
        factors = draw_factors(cfg) if cfg.params.ensemble == "" else ensemble_factors(cfg, regions, prefectures)
    return Model(cfg, inputs, pop0, inputs.urban_land.values.astype(float), levels, asfr, static, factors, process_factors(cfg, R))
