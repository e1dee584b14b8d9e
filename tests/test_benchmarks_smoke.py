"""The benchmark suite runs (CI-sized, in a fresh process), so it never rots. No timing is
asserted here: speed goals are measured by ``make bench``, not in tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_suite_smoke_run(tmp_path):
    r = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / "smoke.json").read_text())
    cases = {(b["extra_info"]["case"], b["extra_info"].get("backend"), b["extra_info"].get("draws"), b["extra_info"].get("threads")) for b in res["benchmarks"]}
    steps = {(c, b, d) for c, b, d, _ in cases if c == "step"}
    assert {("step", "numba", 1), ("step", "numpy", 1)} <= steps
    assert {("ensemble", None, 20, 1), ("ensemble", None, 20, 2), ("geography", None, None, None)} <= cases
    assert all(b["stats"]["min"] > 0 for b in res["benchmarks"])
    text = (tmp_path / "smoke.md").read_text()
    assert "| 1 |" in text and "kernel (ms)" in text and res["machine"]["cores"] >= 1


def test_traffic_only_step_writes_every_output_and_reads_the_kernels_inputs():
    """The floor of ``python -m benchmarks.bandwidth`` is a step that does the kernel's memory
    traffic: it must overwrite every output the kernel writes (all filled with NaN first) and
    run on the arrays the kernel step takes."""
    import numpy as np

    from benchmarks import bandwidth, cases
    from sim.engine.contract import new_outputs

    m = cases.model("guangxi_prefectures", 2021)
    p = m.step_inputs(2021)
    R, K, S, A = m.pop0.shape
    pop = m.pop0[None].copy()
    out = new_outputs(1, R, K, S, A, od=True)
    for a in (out.births, out.deaths, out.flows, out.settled, out.reclassified):
        a[...] = np.nan
    cells = np.full((2, R, S, A), np.nan)
    bandwidth._traffic_step(pop, m.land0[None].copy(), np.zeros((1, R)), tuple(p), out.births, out.deaths, out.flows, out.settled, out.reclassified, out.capped, out.od, cells)
    for name, a in (("births", out.births), ("deaths", out.deaths), ("flows", out.flows), ("settled", out.settled), ("reclassified", out.reclassified), ("cells", cells)):
        assert np.isfinite(a).all(), name
    # the state is read and written once: survivors by the ratios, in place
    np.testing.assert_allclose(pop[0], m.pop0 * p.sx[0])
    f = bandwidth.step_floor(n=3)
    assert set(f) == {"kernel_us", "numpy_us", "traffic_only_us", "arrivals_us", "moves_in_l1_us"} and all(v > 0 for v in f.values())


def test_batched_benchmark_keeps_the_rows_of_the_cases_it_did_not_run(tmp_path):
    """``python -m benchmarks.batched --cases groups`` replaces the groups row of the results
    and keeps the others (each row saying when and where it was measured), in the cases' order;
    rows written before rows carried that take the old file's machine."""
    from benchmarks.batched import _merged

    prev = {"machine": {"cpu": "Old CPU"}, "cases": [{"case": "levers_4096", "batched_s": 14.0}, {"case": "groups", "batched_s": 6.3}, {"case": "levers", "batched_s": 4.2}]}
    (tmp_path / "batched.json").write_text(json.dumps(prev))
    rows = _merged(tmp_path, [{"case": "groups", "batched_s": 5.0, "measured": "2026-12-07", "cpu": "New CPU"}])
    assert [r["case"] for r in rows] == ["levers", "groups", "levers_4096"]
    got = {r["case"]: (r["batched_s"], r["measured"], r["cpu"]) for r in rows}
    assert got == {"levers": (4.2, "an earlier run", "Old CPU"), "groups": (5.0, "2026-12-07", "New CPU"), "levers_4096": (14.0, "an earlier run", "Old CPU")}
    assert [r["case"] for r in _merged(tmp_path / "none", rows[:1])] == ["levers"]  # no earlier file: this run's rows


def test_draws_in_lockstep_give_the_kernels_totals():
    """``python -m benchmarks.lockstep`` times issue 19's draws-innermost layout against the
    ensemble kernel: it must compute the same ensemble (its totals equal the kernel's to the bit,
    for blocks that divide the draws and one that does not)."""
    import numpy as np

    from benchmarks import lockstep

    m, years, P, _ = lockstep.inputs(6)
    ref = lockstep.kernel(m, years, P, np.zeros((0, 0, 0, 0)))
    assert ref[-1, :, :, 0].sum() > 1e6  # residents at the end: a real projection
    for block in (1, 4):
        np.testing.assert_array_equal(lockstep.lockstep(m, years, P, block), ref)
