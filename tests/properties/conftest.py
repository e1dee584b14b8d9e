"""Hypothesis profiles of the property suite: ``ci`` (the default: fixed seed, small, part of
``make test``) and ``full`` (``make test-props``: more examples, still derandomized so that a
failure can be rerun). Choose with ``HYPOTHESIS_PROFILE``."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_common = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)
settings.register_profile("ci", max_examples=12, **_common)
settings.register_profile("full", max_examples=200, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def scaled(n: int) -> int:
    """``n`` examples in the ci profile, scaled up with the profile's own count."""
    return max(1, round(n * settings().max_examples / 12))
