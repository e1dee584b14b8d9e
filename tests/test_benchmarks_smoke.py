"""The benchmark harness runs (CI-sized), so it never rots. No timing is asserted here."""

from __future__ import annotations

import math

from benchmarks.run import main


def test_benchmarks_quick_run(tmp_path):
    res = main(["--quick", "--out", str(tmp_path)])
    assert [(s["regions"], s["draws"]) for s in res["step"]] == [(14, 1), (14, 10), (111, 1)]
    for s in res["step"]:
        assert math.isfinite(s["ratio"]) and s["kernel_s"] > 0 and s["numpy_s"] > 0
    assert res["projection_2020_2050"]["project_numba_s"] > 0
    assert res["figures_run_s"] > 0 and res["figures_ensemble_draws"] == 20
