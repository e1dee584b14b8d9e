"""Component models: each turns parameters (and input data) into rates for the kernel.

Models are looked up by name so that a config picks them (``get_model("fertility", "gamma")``);
an unknown name fails with the list of known ones.
"""

from __future__ import annotations

from typing import Callable

_REGISTRY: dict[str, dict[str, Callable]] = {}


def register(kind: str, name: str):
    """Decorator: register ``func`` as model ``name`` of ``kind``."""

    def deco(func):
        _REGISTRY.setdefault(kind, {})[name] = func
        return func

    return deco


def get_model(kind: str, name: str) -> Callable:
    # import the modules so that their models register themselves
    from models import fertility, land, migration, mortality  # noqa: F401

    if kind not in _REGISTRY:
        raise KeyError(f"unknown model kind {kind!r}; known: {sorted(_REGISTRY)}")
    if name not in _REGISTRY[kind]:
        raise KeyError(f"unknown {kind} model {name!r}; known: {sorted(_REGISTRY[kind])}")
    return _REGISTRY[kind][name]
