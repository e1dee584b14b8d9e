"""One self-contained HTML page for a run or a sweep: figures embedded as base64 PNG, the
target table, the resolved config and the provenance. It opens in any browser, no server.
Command line: ``python -m sim.report RUN_OR_SWEEP ... [--out FILE]``."""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from sim import files
from sim.files import write_text
from sim.outputs import figures as F
from sim.outputs.runs import figures_of, load_runs, recorded_config, targets_of
from sim.outputs.targets import land_standard_lines, target_rows

CSS = """
body{font-family:system-ui,'Noto Sans CJK SC',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
figure{margin:1.2em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9em;color:#555}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}tr.miss td{background:#fdecea}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.8em;max-height:30em}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;font-size:.9em}dt{font-weight:600}
"""

CAPTIONS = {
    "urban_share": "Resident urbanization rate of all regions, with the plan's targets (diamonds: about, with tolerance; triangles: at least).",
    "regions": "Urban share (solid) and hukou urbanization (dashed) by region.",
    "map": "Urban share by prefecture (or its gap to the target) in the chosen year.",
    "pyramid": "Population by age, sex and state in the chosen region and year; the line is the jump-off year.",
    "flows": "Moves between regions in the chosen year (origin rows, destination columns).",
    "land": "Urban construction land against the land the urban residents need at the per-capita standard.",
    "difference": "Each run's urban share minus the baseline's, by region.",
}


def png_data_uri(fig: Figure, dpi: int = 100) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure_html(stem: str, fig: Figure) -> str:
    return f'<figure><img alt="{html.escape(stem)}" src="{png_data_uri(fig)}"><figcaption>{html.escape(CAPTIONS.get(stem, stem))}</figcaption></figure>'


def _fmt(r: dict, key: str) -> str:
    v = r.get(key)
    if not isinstance(v, (int, float, np.floating)) or not np.isfinite(v):
        return html.escape(str(v if v is not None else "-"))
    pct = r["variable"] not in ("population", "city_proper_population")
    if key == "gap":
        return f"{100 * v:+.2f} pt" if pct else f"{v:+,.0f}"
    return f"{100 * v:.2f}%" if pct else f"{v:,.0f}"


def targets_html(rows: list[dict], with_run: bool = False) -> str:
    if not rows:
        return "<p>No targets recorded.</p>"
    head = (["run"] if with_run else []) + ["target", "year", "required", "projected", "gap", "met", "first year met"]
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for r in rows:
        met = r["met"] if "probability" not in r else f"p = {r['probability']:.2f}"
        cells = ([r["run"]] if with_run else []) + [r["target"], r["year"], ({">=": "≥ ", "<=": "≤ ", "~": "~ "}[r["op"]] + _fmt(r, "required")), _fmt(r, "projected"), _fmt(r, "gap"), met, r.get("first_year_met", "")]
        cls = ' class="miss"' if r["met"] is False else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return "\n".join(out) + "</table>"


def provenance_html(ds: xr.Dataset) -> str:
    keys = ["title", "scenario", "geography", "code_version", "input_file", "input_sha256", "accounting_identity", "accounting_max_abs_residual_persons", "capped_cells_total", "source"]
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(ds.attrs[k]))}</dd>" for k in keys if k in ds.attrs)
    return f"<dl>{items}</dl>"


def build_html(runs: dict[str, xr.Dataset], title: str | None = None) -> str:
    first_label, first = next(iter(runs.items()))
    title = title or (f"Projection report: {first_label}" if len(runs) == 1 else f"Comparison of {len(runs)} runs")
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style></head><body>"]
    parts.append(f"<h1>{html.escape(title)}</h1><p>{html.escape(first.attrs.get('title', ''))}. Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by <code>python -m sim.report</code>.</p>")
    if len(runs) == 1:
        figs = F.run_figures(first, figures_of(first))
        rows = target_rows(first, targets_of(first))
        parts += ["<h2>Targets</h2>", targets_html(rows)]
        land = [ln for ln in land_standard_lines(first) if ln]
        if land:  # regions whose land per urban resident leaves the national standard
            parts.append(f"<p>{html.escape(land[0])}</p>" + ("<ul>" + "".join(f"<li>{html.escape(ln.strip())}</li>" for ln in land[1:]) + "</ul>" if land[1:] else ""))
        parts.append("<h2>Figures</h2>")
    else:
        from sim.outputs.comparison import comparison_figures, gap_rows

        figs = comparison_figures(runs)
        parts += ["<h2>Targets by run</h2>", targets_html(gap_rows(runs), with_run=True), "<h2>Figures</h2>"]
    parts += [_figure_html(stem, fig) for stem, fig in figs.items()]
    for label, ds in runs.items():
        cfg = json.dumps(recorded_config(ds), indent=2, ensure_ascii=False, sort_keys=True)
        parts.append(f"<h2>Provenance: {html.escape(label)}</h2>{provenance_html(ds)}<details><summary>Resolved config</summary><pre>{html.escape(cfg)}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _png_file_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _csv_table(path: Path, limit: int = 40) -> str:
    import csv

    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        return "<p>None.</p>"
    head, body = rows[0], rows[1 : 1 + limit]
    keep = [i for i, h in enumerate(head) if not h.startswith(("P(", "first_year("))] + [i for i, h in enumerate(head) if h.startswith("first_year(")]
    out = ["<table><tr>" + "".join(f"<th>{html.escape(head[i])}</th>" for i in keep) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{html.escape(r[i])}</td>" for i in keep) + "</tr>" for r in body]
    more = f"<p>{len(rows) - 1 - limit} more in the file.</p>" if len(rows) - 1 > limit else ""
    return "\n".join(out) + "</table>" + more


def discover_html(folder: Path) -> str:
    """The section of a policy search (``python -m experiments.discover``): the Pareto figure and
    the non-dominated packages, the PRIM boxes (text and figure), the search's provenance."""
    meta = json.loads((folder / files.DISCOVER_JSON).read_text(encoding="utf-8"))
    spec = meta.get("spec", {})
    parts = [f"<h2>Policy search: {html.escape(str(folder))}</h2>",
             f"<p>{meta.get('projections', '?')} projections ({meta.get('samples')} Latin-hypercube points x the categorical options, {meta.get('draws')} posterior draws each) in {meta.get('seconds', '?')} s. "
             f"Objectives: {html.escape('; '.join(spec.get('objectives', [])))}.</p>"]
    for name, cap in ((files.DISCOVER_PARETO_FIGURE, "Probability of meeting every objective against the urban land needed; red: the non-dominated packages."),
                      (files.DISCOVER_BOXES_FIGURE, "PRIM: the peeling trajectory and the reported box's lever ranges.")):
        if (folder / name).is_file():
            parts.append(f'<figure><img alt="{name}" src="{_png_file_uri(folder / name)}"><figcaption>{html.escape(cap)}</figcaption></figure>')
    if (folder / files.PARETO).is_file():
        parts += ["<h3>Non-dominated packages</h3>", _csv_table(folder / files.PARETO)]
    if (folder / files.BOXES).is_file():
        parts += ["<h3>Where the objectives hold (PRIM)</h3>", f"<pre>{html.escape((folder / files.BOXES).read_text(encoding='utf-8'))}</pre>"]
    parts.append(f"<dl><dt>code_version</dt><dd>{html.escape(str(meta.get('code_version', '')))}</dd><dt>input_sha256</dt><dd>{html.escape(str(meta.get('input_sha256', '')))}</dd></dl>")
    return "\n".join(parts)


def write_report(paths, out: str | Path | None = None) -> Path:
    """Write the page for the runs under ``paths``; default ``report.html`` in the first path
    (its directory when it is a file). A policy search's folder (``discover.json`` in it) gives
    its own section."""
    searches = [Path(p) for p in paths if (Path(p) / files.DISCOVER_JSON).is_file()]
    rest = [p for p in paths if Path(p) not in searches]
    if out is None:
        p = Path(paths[0])
        out = (p.parent if p.is_file() else p) / files.REPORT_HTML
    if not rest:
        title = "Policy search report"
        page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title><style>{CSS}</style></head><body><h1>{title}</h1>"
                + "\n".join(discover_html(s) for s in searches) + "</body></html>")
        return write_text(page, out)
    page = build_html(load_runs(rest))
    if searches:
        page = page.replace("</body></html>", "\n".join(discover_html(s) for s in searches) + "</body></html>")
    return write_text(page, out)
