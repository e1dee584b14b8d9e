"""What a run will need in memory, estimated before anything is allocated, and the refusal when
it will not fit.

The estimate counts the arrays a run keeps (``sim.engine.runner.Projection`` for full outputs,
the totals of ``Summary`` for a posterior ensemble), the per-draw rates of one year (full
outputs with parameters that vary by draw) or the per-draw factor table (reduced outputs), and
:data:`OUTPUT_COPIES` for the dataset and the netCDF writer built from them. It is compared with
the memory this process may use: the smaller of ``MemAvailable`` and the cgroup's limit (a
SLURM job's ``--mem``), or ``$URBSIM_MEMORY_LIMIT`` (bytes, or with a K/M/G suffix).
"""

from __future__ import annotations

import os
from pathlib import Path

from sim.axes import N_AGES, N_FLOWS, N_SEXES, N_STATES
from sim.config.parameters import FACTOR_FIELD
from sim.config.cli import parse_size
from sim.config.schema import ConfigError

F8 = 8
OUTPUT_COPIES = 2.5  # the dataset's derived variables and the netCDF writer's buffers, per byte kept (measured: 100 draws x 15 years, peak RSS 1.99 GB)
N_SUMMARY_COLUMNS = 8  # sim.engine.kernel.N_SUMMARY
# per-draw rate arrays of one year, in (sex, age) rows of a region: m_ru, m_ur, m_return,
# ext_in, m_ext_out, h_conv (1 each), m_away and m_inter (one per state), sx (one per state),
# asfr (one per state, one sex)
_RATE_ROWS = 6 + 3 * N_STATES + N_STATES / N_SEXES


def estimate_bytes(*, years: int, draws: int, regions: int, full: bool, od: bool, per_draw: bool) -> int:
    """Bytes a projection of ``years`` steps (plus the jump-off), ``draws`` and ``regions`` needs:
    ``full`` outputs (every state, sex and age) or totals only; ``od``: the region-to-region
    moves; ``per_draw``: parameters vary by draw."""
    Y, D, R = years + 1, draws, regions
    cells = R * N_STATES * N_SEXES * N_AGES
    if full:
        kept = Y * D * (2 * cells + R * N_FLOWS * N_SEXES * N_AGES + R * N_STATES * N_SEXES + 4 * R + (R * R if od else 0))
        work = D * (3 * cells + (R * _RATE_ROWS * N_SEXES * N_AGES if per_draw else 0))
        return int(F8 * (kept * (1 + OUTPUT_COPIES) + work))
    kept = Y * D * R * N_SUMMARY_COLUMNS
    factors = years * D * R * len(FACTOR_FIELD) * 2 if per_draw else 0  # the table and the process paths
    return int(F8 * (kept * (1 + OUTPUT_COPIES) + factors))


def available_bytes() -> int | None:
    """Memory this process may use (see the module), or None when nothing says."""
    if os.environ.get("URBSIM_MEMORY_LIMIT"):
        return parse_size("URBSIM_MEMORY_LIMIT", os.environ["URBSIM_MEMORY_LIMIT"])
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for p in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            v = Path(p).read_text().strip()
        except OSError:
            continue
        if v.isdigit() and int(v) < 1 << 60:
            limits.append(int(v))
    return min(limits) if limits else None


def gib(n: float) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 28 else f"{n / (1 << 20):.0f} MiB"


def check_memory(cfg, regions: int, *, reduced: bool = False) -> int:
    """Refuse (:class:`ConfigError`, naming ``draws.count``) a run of ``cfg`` over ``regions``
    that will not fit in memory, with the estimate and what to change; returns the estimate.
    ``reduced``: the run keeps totals only (a posterior ensemble, a study's or a batched
    sweep's summary)."""
    full = not (cfg.params.ensemble or reduced)
    per_draw = bool(cfg.params.ensemble or cfg.uncertainty.enabled)
    need = estimate_bytes(years=cfg.end_year - cfg.start_year, draws=cfg.draws.count, regions=regions, full=full, od=cfg.od_flows, per_draw=per_draw)
    have = available_bytes()
    if have is not None and need > have:
        one = estimate_bytes(years=cfg.end_year - cfg.start_year, draws=1, regions=regions, full=full, od=cfg.od_flows, per_draw=per_draw)
        fit = max(1, int(have // max(one, 1) * 0.8))
        fixes = [f"fewer draws per job (about {fit:,} fit here), the rest as slices in other jobs (draws.start, draws.count; python -m sim.collect joins them)"]
        if full:
            fixes.append("od_flows=false (no region-to-region moves)" if cfg.od_flows else "")
            fixes.append("a posterior ensemble with reduced outputs (params=calibrated_ensemble: totals per year, draw and region)")
        fixes.append(f"a shorter horizon (end_year = {cfg.end_year})")
        if os.environ.get("URBSIM_MEMORY_LIMIT") and one > have:  # the limit itself, not the draws
            raise ConfigError(f"URBSIM_MEMORY_LIMIT = {os.environ['URBSIM_MEMORY_LIMIT']!r} ({gib(have)}): one draw of this run needs about {gib(one)}; raise the limit or unset it")
        raise ConfigError(
            f"draws.count = {cfg.draws.count:,}: this run needs about {gib(need)} of memory "
            f"({cfg.end_year - cfg.start_year} years x {regions} regions, {'full' if full else 'reduced'} outputs) and {gib(have)} is available; "
            f"try {'; or '.join(f for f in fixes if f)}"
        )
    return need
