"""The explorer's response (``python -m benchmarks.explore``): the time from a control's change
in the browser to the page's last panel redrawn, median of 20 changes, for the 14 prefectures
deterministic (goal 0.5 s) and with a 200-draw posterior ensemble (goal 2 s).

``python -m sim.explore`` is started, its page opened in headless Chromium (Playwright), and the
hukou lever's 2030 value typed in 20 times (alternating values, so every change projects); the
clock runs from the key press to the page's run counter, which the server writes after every
other panel of the run and the browser has applied. Beside it, as the ratio's baseline, the
same change on the command line's per-run path measured in the same run: ``python -m sim`` of
the same overrides in-process (compose, build, project, write; figures off), its median.
Also a menu change (``policy/land``: a model built the first time, cached after). Writes ``benchmarks/results/explore.{json,md}``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks import machine, write_results

HERE = Path(__file__).resolve().parent
GOALS = {"deterministic": 0.5, "ensemble": 2.0}  # issue 21: seconds from a change to the last panel
LEVER = "policy.hukou.conversion_rate"


def browser_case(args: list[str], n: int) -> dict:
    from sim.explore.drive import Driver, server

    with server(*args) as url, Driver(url, timeout_ms=120_000) as d:
        d.set_lever(LEVER, 0.2, k=1)  # the first change: warm
        times, server_s = [], []
        for k in range(n):
            times.append(d.set_lever(LEVER, 0.1 + 0.01 * (k % 10) + (0.005 if k % 2 else 0.0), k=1))
            text = d.page.locator(".status .run").inner_text()
            server_s.append(float(text.split(":")[1].split("s")[0]))
        menus = [d.set_option("policy/land", opt) for opt in ("link", "off", "link_strict", "link")]
    return {"median_s": statistics.median(times), "max_s": max(times), "server_median_s": statistics.median(server_s), "menu_median_s": statistics.median(menus), "n": n}


def per_run(args: list[str], n: int) -> float:
    """Median seconds of ``python -m sim``'s per-run path (sim.outputs.job.run) for the same lever changes."""
    from sim.config.compose import compose_config
    from sim.config.schema import validate
    from sim.outputs.job import run

    times = []
    with tempfile.TemporaryDirectory() as d:
        for k in range(n + 1):
            ov = [*args, "scenario=trend", f"{LEVER}={{2020:0.05,2030:{0.1 + 0.01 * k}}}", "figures.enabled=false", "quiet=true"]
            t0 = time.perf_counter()
            run(validate(compose_config(ov)), Path(d) / str(k), echo=False)
            if k:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--n", type=int, default=20)
    a = ap.parse_args(argv)
    cases = {"deterministic": [], "ensemble": ["params=calibrated_ensemble", "draws=200"]}
    res = {"machine": machine(), "goals_s": GOALS, "cases": {}}
    for name, args in cases.items():
        c = browser_case(args, a.n)
        base = [o.replace("draws=", "draws.count=") for o in args]
        c["per_run_s"] = per_run(base, 5)
        c["ratio"] = c["per_run_s"] / c["median_s"]
        c["met"] = c["median_s"] <= GOALS[name]
        res["cases"][name] = c
    m = res["machine"]
    lines = ["# Explorer response (python -m benchmarks.explore)", "", f"Machine: {m['cpu']}, {m['cores']} cores, numba threads {m['numba_threads']}.", "",
             f"Time from typing a new 2030 hukou conversion rate (Enter) to the page's last panel redrawn, in headless Chromium, median of {a.n} changes; "
             "per-run path: python -m sim's run of the same overrides (compose, build, project, write; no figures), median of 5.", "",
             "| case | change to last panel (median / max) | server part (median) | menu change (policy/land, median) | per-run path | ratio | goal | met |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, c in res["cases"].items():
        lines.append(f"| {name}{' (200 draws)' if name == 'ensemble' else ''} | {c['median_s']:.3f} / {c['max_s']:.3f} s | {c['server_median_s']:.2f} s | {c['menu_median_s']:.3f} s | "
                     f"{c['per_run_s']:.3f} s | {c['ratio']:.1f}x | <= {GOALS[name]} s | {'yes' if c['met'] else 'no'} |")
    text = "\n".join(lines)
    write_results(a.out, "explore", res, text)
    return res


if __name__ == "__main__":
    main()
