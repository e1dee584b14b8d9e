"""The sizes of the ensemble's process innovations, estimated from the record:
``python -m calibration.noise [--write]``.

The record gives the year-to-year change that persists in the provinces' urban shares (logit) and
residents (log): ``sim/data/observation_errors.csv``, component ``process`` (pooled second-difference
moments over the 31 provinces' series revised after the 2020 census, :mod:`models.observation`).
Two innovations of the ensemble (:func:`sim.engine.model.process_factors`) are sized to reproduce
them, each by simulation: the fitted model (``params=calibrated``, no parameter uncertainty) is
projected one year with ``PROBE`` draws of a probe innovation of s.d. ``PROBE_SD`` on one process
alone, the s.d. of Guangxi's change across the draws is measured, and the size is the probe's
times the record's over the measured (the response is linear at these sizes):

- ``uncertainty.process_sd.rural_to_urban`` (moves from rural to urban residence, common to all
  regions plus each region's own part) against the urban share's persisting change;
- ``uncertainty.process_pull`` (a shock shared by every region that moves departures to other
  provinces up and returns down) against the residents'.

Left out: the other processes' sizes (no series in the record pins them) and the cross effects
(the pull on the urban share, rural-to-urban moves on the residents).

The sizes are measured, not yet applied: rural-to-urban moves are only part of the urbanization
(reclassification, moves between regions and births add to it), so that alone they need an
innovation of s.d. 0.79 to reproduce the record's change; and the record's model (a level that is a
random walk with drift) asks for innovations independent from year to year in the flows
(``process_rho`` 0), where the ensemble's are a random walk in the rates (``process_rho`` 1, its
bands sized by the backtests). Applying them is the next step of issue 45 (one urbanization shock on
every urbanizing flow, rho 0, the backtests re-run).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

PROBE = 400  # draws of a probe
PROBE_SD = 0.05  # the probe innovation's s.d. (log)
# the ensemble's innovation -> (the record's variable whose persisting change it is sized to, the
# uncertainty field it sets)
SIZED = {"rural_to_urban": ("urban_share", "process_sd.rural_to_urban"), "pull": ("population", "process_pull")}


def _one_year_sd(which: str) -> float:
    """The s.d. across :data:`PROBE` draws of Guangxi's one-year change (logit urban share, or
    log residents) under a probe innovation of :data:`PROBE_SD` on ``which`` alone."""
    from sim.config.compose import compose_config
    from sim.engine.prepare import prepare
    from sim.engine.runner import project_summary

    cfg = compose_config(["params=calibrated", "end_year=2021", "figures.enabled=false", f"draws.count={PROBE}"])
    u = dataclasses.replace(
        cfg.uncertainty, enabled=False, process=True, process_region_share=cfg.uncertainty.process_region_share,
        process_sd={"rural_to_urban": PROBE_SD} if which == "rural_to_urban" else {}, process_pull=PROBE_SD if which == "pull" else 0.0,
    )
    s = project_summary(prepare(dataclasses.replace(cfg, uncertainty=u), reduced=True), backend="numpy")
    res, urb = s.residents.sum(axis=-1), s.urban.sum(axis=-1)  # (Y, D)
    if which == "rural_to_urban":
        x = np.log(urb / (res - urb))
    else:
        x = np.log(res)
    return float(np.std(x[1] - x[0]))


def estimate() -> dict[str, dict]:
    """For each sized innovation: the record's persisting change, the probe's measured s.d. and
    the size (see the module)."""
    from sim.inputs.load import observation_errors

    errors = observation_errors()
    out = {}
    for which, (variable, field) in SIZED.items():
        target = errors[(variable, "process")]
        measured = _one_year_sd(which)
        out[which] = {"field": field, "record": target, "probe": PROBE_SD, "measured": measured, "size": round(PROBE_SD * target / measured, 4)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m calibration.noise", description=__doc__.split("\n\n")[0])
    ap.parse_args(argv)
    sizes = estimate()
    for s in sizes.values():
        print(f"{s['field']}: {s['size']:.4f}  (record's persisting change {s['record']:.5f}; probe {s['probe']} gave {s['measured']:.5f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
