"""Urban construction land and the capacity brake on urban inflows.

Each region's urban land ``L`` (km2) grows every year by a quota (applied in the step, see
:mod:`sim.engine.reference`)

    base quota + m2 per migrant settled the year before (人地挂钩) + rural land released (增减挂钩),

and holds ``L * 1e6 / standard`` urban residents at the per-capita land standard (m2/person).
Inflows into the region's urban states are multiplied by the smooth brake of
:func:`capacity_brake`, 1 far below capacity, 1/2 at capacity and falling towards 0 above it.
It is plain NumPy (the reference calls it as it is, without numba); the kernel compiles it.
"""

from __future__ import annotations

import numpy as np


def capacity_brake(ratio, width):
    """Logistic brake ``(1 + e^(-1/w)) / (1 + e^((ratio - 1)/w))`` on urban inflows.

    ``ratio`` = urban residents / capacity (scalar or array); ``width`` > 0 sets how sharply the
    brake bites around capacity (0.05: 0.98 at 80 % of capacity, 0.5 at capacity, 0.12 at
    110 %). Equals 1 at ratio 0. ``width <= 0`` switches the brake off (returns 1)."""
    if width <= 0:
        return 1.0 + 0.0 * ratio
    return (1.0 + np.exp(-1.0 / width)) / (1.0 + np.exp((ratio - 1.0) / width))
