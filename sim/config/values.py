"""Values a config gives that depend on the year or the region: year-keyed maps and region masks."""

from __future__ import annotations

from typing import Dict, Union

import numpy as np


def year_map(m: Union[float, Dict[int, float]], years) -> np.ndarray:
    """A year-keyed value at ``years``: a number is the same every year; a map is interpolated
    linearly between its years (in any order) and held flat outside them."""
    if not isinstance(m, dict):
        return np.full(np.shape(np.asarray(years, dtype=float)), float(m))
    ks = sorted(int(k) for k in m)
    return np.interp(np.asarray(years, dtype=float), ks, [float(m[k]) for k in ks])


def region_mask(names, regions, prefectures) -> np.ndarray:
    """Boolean mask over regions: those named, or lying in a named prefecture."""
    names = set(names)
    return np.array([r in names or p in names for r, p in zip(regions, prefectures)], dtype=bool)
