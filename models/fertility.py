"""Age-specific fertility: TFR times a gamma age schedule, and the sex ratio at birth.

The schedule is a gamma density shifted to start at age 12 (Hoem et al. 1981, "Experiments in
modelling recent Danish fertility curves", *Demography* 18: 231-244), with mean age at
childbearing ``mean_age`` and standard deviation ``sd``; it is integrated over each single year
of age 12..54 (the gamma cdf: the regularized lower incomplete gamma function, scipy's
``gammainc``, which is what ``scipy.stats.gamma.cdf`` evaluates) and sums to 1, so ``asfr = TFR * schedule``.
The TFR levels come from the inputs (census iTFR split urban/rural, see PROVENANCE.md).
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammainc  # scipy.stats would cost 0.6 s of import for the same function

from sim.axes import N_AGES

START_AGE, END_AGE = 12, 55


def gamma_schedule(mean_age: float, sd: float) -> np.ndarray:
    """Share of lifetime births at each age 0..100 (zero outside 12..54; sums to 1)."""
    shift = mean_age - START_AGE
    if shift <= 0 or sd <= 0:
        raise ValueError(f"fertility schedule needs mean_age > {START_AGE} and sd > 0")
    a, scale = (shift / sd) ** 2, sd**2 / shift
    edges = np.arange(START_AGE, END_AGE + 1) - START_AGE
    w = np.diff(gammainc(a, edges / scale))  # = scipy.stats.gamma.cdf(edges, a, scale=scale), edges >= 0
    out = np.zeros(N_AGES)
    out[START_AGE:END_AGE] = w / w.sum()
    return out
