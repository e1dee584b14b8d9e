"""``python -m benchmarks [--smoke] [--out DIR] [pytest args]``: run the suite and write
``DIR/latest.json`` (pytest-benchmark's JSON: machine, every timing, extra figures) and
``DIR/latest.md`` (the results table, with each goal of issue 7 and whether it is met)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from benchmarks import machine, write_results

HERE = Path(__file__).resolve().parent

# Issue 7's goals, checked by goals()
GOALS = {
    "ratio": 50.0,  # kernel / NumPy for one annual step of the 14 prefectures
    "ensemble_10k_s": 10.0,
    "ensemble_10k_mb": 2048.0,
    "threads_speedup": 1.7,
    "china_counties_s": 60.0,
    "china_counties_mb": 8192.0,
    "cold_s": 30.0,
    "warm_s": 5.0,
}
# Issue 19's (sweeps at kernel speed): tighter goals for the same cases
GOALS_19 = {"china_counties_s": 6.0, "warm_s": 2.5, "ensemble_10k_s": 2.0}


def _ms(x):
    return f"{1e3 * x:.3f}"


def table(res: dict) -> str:
    """The Markdown results from pytest-benchmark's JSON."""
    m = res["machine_info"]
    lines = [f"# Benchmarks ({res.get('command', 'python -m benchmarks')})", "", f"{res['datetime']}; {m.get('cpu', {}).get('brand_raw', m.get('processor'))}, {os.cpu_count()} cores; Python {m['python_version']}; commit {res.get('commit_info', {}).get('id', '?')[:10]}", ""]
    by = res["benchmarks"]
    steps = {(b["extra_info"]["backend"], b["extra_info"]["draws"]): b["stats"] for b in by if b["extra_info"].get("case") == "step"}
    ratios = {d: steps[("numpy", d)]["min"] / steps[("numba", d)]["min"] for (b, d) in steps if b == "numba" and ("numpy", d) in steps}
    lines += ["## 1. One annual step, 14 prefectures (min of repeats)", "", "| draws | kernel (ms) | NumPy (ms) | ratio | kernel µs per draw |", "|---:|---:|---:|---:|---:|"]
    for d, r in sorted(ratios.items()):
        k, n = steps[("numba", d)]["min"], steps[("numpy", d)]["min"]
        lines.append(f"| {d} | {_ms(k)} | {_ms(n)} | {r:.1f}x | {1e6 * k / d:.1f} |")
    ens = {(b["extra_info"]["draws"], b["extra_info"]["threads"]): b for b in by if b["extra_info"].get("case") == "ensemble"}
    lines += ["", "## 2-3. Ensembles 2020-2035, reduced outputs", "", "| draws | threads | wall (s) | draws/s | peak memory (MB, fresh process) |", "|---:|---:|---:|---:|---:|"]
    for (d, t), b in sorted(ens.items()):
        mb = b["extra_info"].get("peak_rss_mb")
        lines.append(f"| {d} | {t} | {b['stats']['min']:.3f} | {d / b['stats']['min']:.0f} | {'' if mb is None else f'{mb:.0f}'} |")
    for d in sorted({d for d, _ in ens}):
        if (d, 1) in ens and (d, 2) in ens:
            lines.append(f"\n{d} draws: 2 threads {ens[(d, 1)]['stats']['min'] / ens[(d, 2)]['stats']['min']:.2f}x faster than 1")
    geo = [b for b in by if b["extra_info"].get("case") == "geography"]
    lines += ["", "## 4. Deterministic 2020-2035 run by geography (inputs + model + projection)", "", "| geography | regions | wall (s) | peak memory (MB, fresh process) |", "|---|---:|---:|---:|"]
    for b in sorted(geo, key=lambda b: b["extra_info"]["regions"]):
        mb = b["extra_info"].get("peak_rss_mb")
        lines.append(f"| {b['extra_info']['geography']} | {b['extra_info']['regions']} | {b['stats']['min']:.3f} | {'' if mb is None else f'{mb:.0f}'} |")
    start = next((b["extra_info"] for b in by if b["extra_info"].get("case") == "start"), None)
    if start:
        lines += ["", "## 5. `python -m sim` (default run 2020-2050, netCDF, report, figures)", "", f"default (`backend=auto`: the NumPy reference for this run): empty numba cache {start['cold_s']:.1f} s; warm (best of 3) {start['warm_s']:.2f} s"]
        if "cold_kernel_s" in start:
            lines += ["", f"`backend=numba` (the kernel): empty numba cache (every kernel compiled) {start['cold_kernel_s']:.1f} s; warm (best of 3) {start['warm_kernel_s']:.2f} s"]
    if "--smoke" not in res.get("command", ""):  # smoke runs time tiny cases once: no goals
        lines += ["", "## Goals (issue 7)", ""] + [f"- {g}" for g in goals(ratios, ens, geo, start)]
        lines += ["", "## Goals (issue 19)", ""] + [f"- {g}" for g in goals_19(ens, geo, start)]
    return "\n".join(lines)


def goals(ratios, ens, geo, start) -> list[str]:
    out = []

    def say(label, value, goal, fmt, higher):
        ok = value >= goal if higher else value <= goal
        out.append(f"{label}: {fmt.format(value)} (goal {'≥' if higher else '≤'} {fmt.format(goal)}): {'met' if ok else 'NOT met'}")

    for d, r in sorted(ratios.items()):
        say(f"kernel vs NumPy, one step, {d} draws", r, GOALS["ratio"], "{:.1f}x", True)
    big = max((d for d, _ in ens), default=None)
    if big and (big, 2) in ens:
        b = ens[(big, 2)]
        say(f"{big} draws x 15 years, 2 threads, wall", b["stats"]["min"], GOALS["ensemble_10k_s"], "{:.2f} s", False)
        if "peak_rss_mb" in b["extra_info"]:
            say(f"{big} draws, peak memory", b["extra_info"]["peak_rss_mb"], GOALS["ensemble_10k_mb"], "{:.0f} MB", False)
        if (big, 1) in ens:
            say(f"{big} draws, 2 threads vs 1", ens[(big, 1)]["stats"]["min"] / b["stats"]["min"], GOALS["threads_speedup"], "{:.2f}x", True)
    for b in geo:
        if b["extra_info"]["geography"] == "china_counties":
            say("China's counties 2020-2035, wall", b["stats"]["min"], GOALS["china_counties_s"], "{:.1f} s", False)
            if "peak_rss_mb" in b["extra_info"]:
                say("China's counties, peak memory", b["extra_info"]["peak_rss_mb"], GOALS["china_counties_mb"], "{:.0f} MB", False)
    if start:
        say("cold start (backend=numba: the kernel compiled)", start.get("cold_kernel_s", start["cold_s"]), GOALS["cold_s"], "{:.1f} s", False)
        say("warm start", start["warm_s"], GOALS["warm_s"], "{:.2f} s", False)
    return out


def goals_19(ens, geo, start) -> list[str]:
    out = []

    def say(label, value, goal):
        out.append(f"{label}: {value:.2f} s (goal ≤ {goal:.1f} s): {'met' if value <= goal else 'NOT met'}")

    for b in geo:
        if b["extra_info"]["geography"] == "china_counties":
            say("China's counties 2020-2035, deterministic, wall", b["stats"]["min"], GOALS_19["china_counties_s"])
    if start:
        say("warm python -m sim (default run with figures)", start["warm_s"], GOALS_19["warm_s"])
    big = max((d for d, _ in ens), default=None)
    if big and (big, 2) in ens:
        say(f"stretch: {big} draws x 15 years, 2 threads", ens[(big, 2)]["stats"]["min"], GOALS_19["ensemble_10k_s"])
    return out


def main(argv=None) -> int:
    import pytest

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="CI-sized cases (seconds)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args, rest = ap.parse_known_args(argv)
    if args.smoke:
        os.environ["URBSIM_BENCH_SMOKE"] = "1"
    with tempfile.TemporaryDirectory() as d:
        raw = Path(d) / "raw.json"
        code = pytest.main([str(HERE / "test_benchmarks.py"), "-q", "-p", "no:cacheprovider", f"--benchmark-json={raw}", "--benchmark-columns=min,median,max,rounds", *rest])
        if code != 0:
            return int(code)
        res = json.loads(raw.read_text())
    res["command"] = "python -m benchmarks" + (" --smoke" if args.smoke else "")
    text = table(res)
    res["machine"] = machine()
    write_results(args.out, "smoke" if args.smoke else "latest", res, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
