"""Values a config gives that depend on the year or the region: year-keyed maps and region masks."""

from __future__ import annotations

from typing import Dict

import numpy as np


def year_map(m: Dict[int, float], years) -> np.ndarray:
    """Interpolate a year-keyed map at ``years`` (linear between keys, flat outside)."""
    ks = sorted(int(k) for k in m)
    return np.interp(np.asarray(years, dtype=float), ks, [float(m[k]) for k in ks])


def region_mask(names, regions, prefectures) -> np.ndarray:
    """Boolean mask over regions: those named, or lying in a named prefecture."""
    names = set(names)
    return np.array([r in names or p in names for r, p in zip(regions, prefectures)], dtype=bool)
