"""Where the repository, its configs, the shipped inputs and the census tables are: every other
module asks here instead of computing a path from its own file."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "configs"
# the derived inputs shipped with the engine (sim/data), each made by python -m sim.derive
DATA_DIR = REPO / "sim" / "data"
# the census tables the inputs are derived from: ../shared/data beside the repository
DEFAULT_CENSUS_DIR = REPO.parent / "shared" / "data"


def repo_path(p: str | os.PathLike) -> Path:
    """``p`` as a path: absolute as given, relative from the repository's root."""
    q = Path(p)
    return q if q.is_absolute() else REPO / q


def census_dir(configured: str = "") -> Path:
    """The census tables: ``geography.census_dir``, else ``$URBSIM_CENSUS_DIR``, else ../shared/data."""
    return Path(configured or os.environ.get("URBSIM_CENSUS_DIR") or DEFAULT_CENSUS_DIR)


def cache_dir(configured: str = "") -> Path:
    """Where geographies derived on first use are cached: ``geography.cache_dir``, else
    ``$URBSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/urbsim`` or ``~/.cache/urbsim``."""
    if configured or os.environ.get("URBSIM_CACHE_DIR"):
        return Path(configured or os.environ["URBSIM_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "urbsim"


def tree_digest(*roots: Path, suffixes: tuple[str, ...] = ()) -> str:
    """SHA-256 of every file under ``roots`` (with one of ``suffixes``, when given): names
    relative to the repository and contents, in sorted order; a missing root counts as empty."""
    h = hashlib.sha256()
    for root in roots:
        for f in sorted(Path(root).rglob("*")) if Path(root).is_dir() else [Path(root)] if Path(root).is_file() else []:
            if f.is_file() and (not suffixes or f.suffix in suffixes):
                h.update(str(f.relative_to(REPO) if f.is_relative_to(REPO) else f.name).encode() + b"\0")
                h.update(f.read_bytes())
    return h.hexdigest()


@functools.cache
def source_digest() -> str:
    """SHA-256 of the source that makes a run's results (every ``.py`` and ``.yaml`` file of
    ``sim``, ``models`` and ``configs/``): a changed line, committed or not, is other code. Read
    once per process."""
    return tree_digest(REPO / "sim", REPO / "models", CONFIG_DIR, suffixes=(".py", ".yaml"))
