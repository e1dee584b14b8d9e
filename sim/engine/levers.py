"""The policy levers as the model builder applies them: each turns a lever group of
``policy`` (and the calibrated multipliers) into the per-region, per-age factors that the rates
of :func:`sim.engine.model.build_model` are multiplied by. A region is named by itself or by its
prefecture (``mask``).
"""

from __future__ import annotations

import numpy as np

from sim.axes import N_AGES, N_SEXES
from sim.config.schema import HukouConfig, LandConfig, PolicyConfig, ServicesConfig, pull_levers

CHILD_AGE_LIMIT = 16  # ages below it are children: they follow their parents (moves, hukou)
OLD_AGE = 60  # hukou conversion at this age and above is old_age_factor of the working ages

_AGES = np.arange(N_AGES)


def regional(policy: PolicyConfig, mask, ru_mult, ret_mult, dist):
    """The regional development levers (every :class:`PullConfig` of ``policy``) and hukou
    openness: ``(rural -> urban multiplier, return multiplier, destination utility bonus,
    distances)`` per region, from copies of the calibrated multipliers and the distances."""
    ru_mult, ret_mult, dist = ru_mult.copy(), ret_mult.copy(), dist.copy()
    bonus = np.zeros(len(ru_mult))
    for lv in pull_levers(policy):
        m = mask(lv.regions)
        ru_mult[m] *= lv.rural_to_urban_factor
        ret_mult[m] *= lv.return_factor
        bonus[m] += lv.pull
        dist[np.ix_(m, m)] *= lv.distance_factor
    for name, value in policy.hukou.openness.items():
        bonus[mask([name])] += value
    return ru_mult, ret_mult, bonus, dist


def family_by_age(services: ServicesConfig) -> np.ndarray:
    """Multiplier on rural -> urban moves by age: ``family_factor`` for children."""
    return np.where(_AGES < CHILD_AGE_LIMIT, services.family_factor, 1.0)


def retention_keep(services: ServicesConfig) -> float:
    """Share of migrants' departures from towns that remain under the services lever's retention."""
    return 1.0 - services.retention


def hukou_shape(hukou: HukouConfig, mask, conversion_factor) -> np.ndarray:
    """Hukou conversion (R, S, A) relative to the configured rate: by age (children follow
    parents, lower at 60+), by city size (big cities) and the calibrated multiplier."""
    h_age = np.where(_AGES < CHILD_AGE_LIMIT, hukou.child_factor, np.where(_AGES >= OLD_AGE, hukou.old_age_factor, 1.0))
    h_region = np.where(mask(hukou.big_cities), hukou.big_city_factor, 1.0) * conversion_factor
    return h_region[:, None, None] * h_age[None, None, :] * np.ones((1, N_SEXES, 1))


def land_per_settled(land: LandConfig, mask) -> np.ndarray:
    """人地挂钩: m2 of new urban land per migrant settled, per region (0 where exempt)."""
    return np.where(mask(land.exempt_regions), 0.0, land.m2_per_settled)
