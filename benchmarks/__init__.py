"""Benchmarks: the pytest-benchmark suite (``test_benchmarks.py``, run by ``python -m benchmarks``)
and the sweep benchmark (``python -m benchmarks.sweep``). See ``benchmarks/README.md``."""

from __future__ import annotations

import sim  # noqa: F401, I001 (first: NumPy's memory advice, sim/__init__.py, is set before NumPy loads)
import json
import os
import platform
from pathlib import Path

import numpy as np


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__, "numba_threads": numba.get_num_threads()}


def write_results(out: Path, name: str, res: dict, text: str) -> None:
    """Print the table ``text``, then write ``out/name.json`` (every figure) and ``out/name.md``
    (the table), each to a temporary file, renamed."""
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    for suffix, content in ((".json", json.dumps(res, indent=1)), (".md", text + "\n")):
        tmp = out / f".{name}{suffix}.tmp"
        tmp.write_text(content)
        tmp.replace(out / f"{name}{suffix}")
