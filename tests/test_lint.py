"""The code passes ruff (pyflakes, pycodestyle and bugbear rules, see pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    r = subprocess.run([ruff, "check", "sim", "models", "tests", "benchmarks", "experiments", "calibration"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
