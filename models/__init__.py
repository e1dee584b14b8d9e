"""Component models: each turns parameters (and input data) into rates for the kernel.

:data:`CATALOGUE` is the one list of models: kind -> name -> ``"module:attribute"``. A config
picks a model by name (the schema's ``choices`` are :func:`names` of its kind) and the engine
gets it with :func:`get_model`; the module is imported only then, so reading the catalogue
(the config schema does) loads neither scipy nor numba. An unknown name fails with the list of
known ones. A new model: its function in a module here and one row below.
"""

from __future__ import annotations

import importlib
from typing import Any

CATALOGUE: dict[str, dict[str, str]] = {
    "mortality": {"siler": "models.mortality:SILER"},
    "fertility": {"gamma": "models.fertility:gamma_schedule"},
    "migration_schedule": {"rogers_castro": "models.migration:rogers_castro"},
    # the brake on urban inflows near land capacity, compiled into the kernel by sim.engine.kernel (no config choice)
    "capacity_brake": {"logistic": "models.land:capacity_brake"},
}


def names(kind: str) -> tuple[str, ...]:
    """The model names of ``kind`` (a config's allowed values)."""
    if kind not in CATALOGUE:
        raise KeyError(f"unknown model kind {kind!r}; known: {sorted(CATALOGUE)}")
    return tuple(CATALOGUE[kind])


def get_model(kind: str, name: str) -> Any:
    """Model ``name`` of ``kind`` (imports its module)."""
    if name not in names(kind):
        raise KeyError(f"unknown {kind} model {name!r}; known: {sorted(CATALOGUE[kind])}")
    module, attr = CATALOGUE[kind][name].split(":")
    return getattr(importlib.import_module(module), attr)
