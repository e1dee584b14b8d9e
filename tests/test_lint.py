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


def test_import_contracts_kept():
    """The import rules of pyproject.toml ([tool.importlinter]): the layers, figures and the HTML
    page free of the engine and numba, no import cycles."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    r = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def test_figures_and_html_load_without_numba():
    code = "import sys, sim.outputs.figures, sim.outputs.html, sim.report, sim.compare; print(sorted(m for m in sys.modules if m == 'numba' or m.startswith('sim.engine')))"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
