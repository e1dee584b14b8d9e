"""The observation model applied to an ensemble (:mod:`models.observation`): what the bulletin
will report of Guangxi's totals, and the ensemble conditioned on figures reported after its
jump-off (``observed=FILE``).

- **Reported figures.** Draw ``i``'s reported urban share, residents, births and deaths are its
  projected totals plus an observation error drawn from a generator seeded with ``(seed, i, 2)``
  (the same in any slice of the ensemble): on the logit of the share and the log of residents,
  survey noise plus a random-walk drift of the bulletin's basis from the jump-off census; on
  births and deaths, the sampling error of their rates in the annual sample survey, the
  residents' drift (the rates times a drifting population) and the rounding of the published
  unit. The sizes are the record's (``sim/data/observation_errors.csv``).
- **Conditioning.** Each draw is weighted by the likelihood of the observed figures under it: a
  normal error on the scale above whose covariance across years is the noise on the diagonal plus
  the drift's ``min(s, t) drift^2``; the draws are then resampled (systematic resampling) in
  proportion to their weights, and the effective sample size ``(sum w)^2 / sum w^2`` is
  reported. The jump-off year is the census and is not an observation of the projection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.observation import error_paths, expit, logit

# observable -> (scale of its error, the observation_errors.csv variable of its noise and drift)
OBSERVABLES = {"urban_share": ("logit", "urban_share"), "population": ("log", "population"), "births": ("persons", "births"), "deaths": ("persons", "deaths")}


@dataclass(frozen=True)
class Totals:
    """Guangxi's totals per year and draw (Y, D): what a bulletin reports."""

    years: np.ndarray
    residents: np.ndarray
    urban: np.ndarray
    births: np.ndarray
    deaths: np.ndarray

    def value(self, variable: str) -> np.ndarray:
        return {"urban_share": self.urban / self.residents, "population": self.residents, "births": self.births, "deaths": self.deaths}[variable]


def totals_of(summ) -> Totals:
    """The totals over every region of a :class:`sim.engine.runner.Summary`."""
    return Totals(np.asarray(summ.years), summ.residents.sum(axis=-1), summ.urban.sum(axis=-1), summ.births.sum(axis=-1), summ.deaths.sum(axis=-1))


def _sizes(errors: dict, variable: str) -> tuple[float, float]:
    """(noise, drift) of ``variable``'s error on its scale; counts: (rounding in persons, the
    residents' drift), their survey's relative sampling error apart (:func:`_survey`)."""
    key = OBSERVABLES[variable][1]
    if variable in ("births", "deaths"):
        return errors.get((key, "rounding"), 0.0), errors.get(("population", "drift"), 0.0)
    return errors.get((key, "noise"), 0.0), errors.get((key, "drift"), 0.0)


def _survey(errors: dict, variable: str) -> float:
    """The relative sampling error of a count's rate (the annual sample survey), 0 for others."""
    return errors.get((OBSERVABLES[variable][1], "survey"), 0.0) if variable in ("births", "deaths") else 0.0


def reported(tot: Totals, errors: dict, *, census_year: int, seed: int, draws: np.ndarray) -> dict[str, np.ndarray]:
    """``{observable: (Y, D)}``: each draw's figures as a bulletin would report them (see the
    module); ``draws`` the draws' indices in the whole ensemble (their generators' seeds)."""
    t = tot.years - census_year
    Y, D = tot.residents.shape
    z = np.stack([np.random.default_rng([seed, int(i), 2]).standard_normal((len(OBSERVABLES), 3, Y)) for i in draws], axis=0)  # (D, obs, 3, Y)
    out = {}
    for j, (name, (scale, _)) in enumerate(OBSERVABLES.items()):
        noise, drift = _sizes(errors, name)
        x = tot.value(name)
        if scale == "persons":  # the rate (sampled) times a drifting population, rounded
            d = error_paths(_survey(errors, name), drift, t, z[:, j, 2], z[:, j, 1]).T  # (Y, D), log scale
            e = np.where(t[:, None] > 0, noise * z[:, j, 0].T, 0.0)
            out[name] = x * np.exp(d) + e
        else:
            err = error_paths(noise, drift, t, z[:, j, 0], z[:, j, 1]).T
            out[name] = expit(logit(x) + err) if scale == "logit" else x * np.exp(err)
    return out


def _transform(variable: str, x: np.ndarray) -> np.ndarray:
    scale = OBSERVABLES[variable][0]
    return logit(x) if scale == "logit" else np.log(x) if scale == "log" else np.asarray(x, dtype=float)


def log_likelihood(tot: Totals, rows: list[dict], errors: dict, *, census_year: int) -> tuple[np.ndarray, list[dict]]:
    """Each draw's log-likelihood (D,) of the observed Guangxi figures ``rows`` (the observed
    file's), and the rows used (in the projection's years after the census, of an
    :data:`OBSERVABLES` variable)."""
    years = list(tot.years)
    used = [r for r in rows if r["region"] == "Guangxi" and r["variable"] in OBSERVABLES and r["year"] in years and r["year"] > census_year]
    ll = np.zeros(tot.residents.shape[1])
    for name in OBSERVABLES:
        mine = sorted((r for r in used if r["variable"] == name), key=lambda r: r["year"])
        if not mine:
            continue
        yi = np.array([years.index(r["year"]) for r in mine])
        t = np.array([r["year"] - census_year for r in mine], dtype=float)
        noise, drift = _sizes(errors, name)
        x = tot.value(name)[yi]  # (n, D)
        obs = np.array([r["value"] for r in mine])
        if OBSERVABLES[name][0] == "persons":  # relative drift and sampling error of the count, rounding in persons
            resid = obs[:, None] - x
            sd = np.sqrt(noise**2 + x**2 * (drift**2 * t[:, None] + _survey(errors, name) ** 2))
            ll += (-0.5 * (resid / sd) ** 2 - np.log(sd)).sum(axis=0)
            continue
        resid = _transform(name, obs)[:, None] - _transform(name, x)
        cov = noise**2 * np.eye(len(t)) + drift**2 * np.minimum.outer(t, t)
        L = np.linalg.cholesky(cov)
        w = np.linalg.solve(L, resid)
        ll += -0.5 * (w**2).sum(axis=0) - np.log(np.diag(L)).sum()
    return ll, used


def weights_of(ll: np.ndarray) -> tuple[np.ndarray, float]:
    """Normalised importance weights from log-likelihoods, and their effective sample size."""
    w = np.exp(ll - ll.max())
    w /= w.sum()
    return w, float(1.0 / np.sum(w**2))


def systematic_resample(w: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` draw indices, each draw taken about ``n w`` times (systematic resampling: one
    uniform offset, ``n`` evenly spaced points on the cumulated weights; Kitagawa 1996)."""
    u = (np.random.default_rng([seed, 3]).random() + np.arange(n)) / n
    return np.minimum(np.searchsorted(np.cumsum(w), u), len(w) - 1)


@dataclass(frozen=True)
class Conditioned:
    index: np.ndarray  # the resampled draws (positions in the ensemble)
    weights: np.ndarray
    ess: float
    used: list[dict]


def condition(tot: Totals, rows: list[dict], errors: dict, *, census_year: int, seed: int) -> Conditioned:
    """The ensemble conditioned on ``rows`` (see the module)."""
    ll, used = log_likelihood(tot, rows, errors, census_year=census_year)
    w, ess = weights_of(ll)
    D = tot.residents.shape[1]
    return Conditioned(systematic_resample(w, D, seed), w, ess, used)
