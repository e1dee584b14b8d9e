"""The explorer's page: a Bokeh document per browser session, its controls wired to an
:class:`sim.explore.session.Explorer` shared by the sessions (Bokeh runs every callback on the
server's one event loop, so they take turns).

Every change composes the whole control state into command-line overrides and projects it; a
refused value shows the schema's message, puts the control back and leaves the panels as they
were. The page's elements carry CSS classes (``lever-<path>-<k>``, ``group-<key>``, ``status``,
``error``, ``targets``...) for tests and the benchmark; ``status`` holds the run counter
(``data-run``) that is written last, after every panel of the run.
"""

from __future__ import annotations

import html
import time

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import (
    Button,
    ColorBar,
    ColumnDataSource,
    Div,
    HoverTool,
    LinearColorMapper,
    NumericInput,
    Select,
    Slider,
    TabPanel,
    Tabs,
)
from bokeh.palettes import RdBu11, Viridis256
from bokeh.plotting import figure

from sim.config.schema import ConfigError
from sim.explore import controls
from sim.explore.session import Explorer, guangxi_paths, map_values, observed, region_paths, result_json, share_targets, table_rows

MAX_PINS = 4
PIN_COLOURS = ("#d95f02", "#7570b3", "#e7298a", "#66a61e")
MAP_YEAR = 2035
MAP_VARIABLES = {"urban_share": f"urban share {MAP_YEAR}", "target_gap": f"gap to the {MAP_YEAR} target"}
GRADE_MARKERS = {"A": "circle", "B": "square", "C": "triangle"}


def css_name(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)


def lever_class(path: str, k: int) -> str:
    """The CSS class of a lever's ``k``-th value input (0: the value or level, 1: the 2030 value)."""
    return f"lever-{css_name(path)}-{k}"


def group_class(key: str) -> str:
    return f"group-{css_name(key)}"


def _ring_patches():
    """The prefecture outlines as patches: xs, ys and the name of each ring."""
    from sim.outputs.figures import _rings, prefecture_outlines

    xs, ys, names, zh = [], [], [], []
    for feat in prefecture_outlines():
        for ring in _rings(feat["geometry"]):
            xs.append(ring[:, 0].tolist())
            ys.append(ring[:, 1].tolist())
            names.append(feat["properties"]["name"])
            zh.append(feat["properties"].get("name_zh", ""))
    return xs, ys, names, zh


class Page:
    """One session's page."""

    def __init__(self, explorer: Explorer):
        self.ex = explorer
        self.syncing = False
        self.runs = 0
        self.pins: list[dict] = []
        self.state = controls.State(explorer.default_scenario)
        self.result = explorer.run(self.state)
        self.choices = explorer.choices(self.state.scenario)
        self._controls()
        self._panels()
        self.layout = row(self.sidebar, self.main, sizing_mode="stretch_width")
        self.draw(self.result)

    # -- controls ----------------------------------------------------------------------------
    def _controls(self):
        ex = self.ex
        self.scenario = Select(title="scenario", value=self.state.scenario, options=ex.scenarios, css_classes=["scenario"], width=300)
        self.scenario.on_change("value", lambda a, o, n: self._guard(self.set_scenario, n))
        self.reset = Button(label="Reset", css_classes=["reset"], width=90)
        self.reset.on_click(lambda: self.apply(controls.State(ex.default_scenario)))
        self.pin = Button(label="Compare: pin", css_classes=["pin"], width=110)
        self.pin.on_click(self.add_pin)
        self.unpin = Button(label="Clear pins", css_classes=["unpin"], width=90)
        self.unpin.on_click(self.clear_pins)
        self.export_button = Button(label="Export", button_type="primary", css_classes=["export"], width=90)
        self.export_button.on_click(self.export)
        self.menus, self.inputs = {}, {}
        panels = {root: [] for root in controls.GROUP_ROOTS}
        for g in ex.groups:
            menu = Select(title=g.key, value=self.choices[g.key], options=list(g.options), css_classes=[group_class(g.key)], width=300)
            menu.on_change("value", lambda a, o, n, g=g: self._guard(self.set_option, g, n))
            self.menus[g.key] = menu
            items = [menu]
            for lev in g.levers:
                titles = [f"{lev.label} ({self.result.cfg.start_year})", f"{lev.label} ({controls.SECOND_YEAR})"] if lev.years else [lev.label]
                pairs = []
                for k, title in enumerate(titles):
                    s = Slider(start=lev.lo, end=lev.hi, step=lev.step, value=lev.lo, title=title, width=200, show_value=False)
                    n = NumericInput(value=lev.lo, mode="float", width=90, css_classes=[lever_class(lev.path, k)], description=lev.doc or None)
                    s.on_change("value_throttled", lambda a, o, v, lev=lev, k=k: self._guard(self.set_lever, lev, k, v))
                    n.on_change("value", lambda a, o, v, lev=lev, k=k: self._guard(self.set_lever, lev, k, v))
                    pairs.append((s, n))
                    items.append(row(s, n))
                self.inputs[lev.path] = (lev, pairs)
            panels[g.key.split("/")[0]].append(column(*items, styles={"border-top": "1px solid #ddd", "padding-top": "4px"}))
        tabs = Tabs(tabs=[TabPanel(child=column(*panels[r]), title=r) for r in controls.GROUP_ROOTS])
        # fixed sizes: a Div whose text changes then redraws alone, without a layout of the page
        self.status = Div(text="", css_classes=["status"], width=300, height=22)
        self.error = Div(text="", css_classes=["error"], width=300, height=60, styles={"color": "#b00020", "overflow-y": "auto"})
        self.exported = Div(text="", css_classes=["exported"], width=300, height=90, styles={"overflow-y": "auto", "font-size": "11px"})
        self.pinned = Div(text="", css_classes=["pinned"], width=300, height=110, styles={"overflow-y": "auto", "font-size": "11px"})
        head = Div(text=f"<b>Urbanization explorer</b><br><small>{html.escape(' '.join(ex.base) or 'default inputs')}</small>", width=300)
        self.sidebar = column(head, self.scenario, row(self.reset, self.pin, self.unpin), row(self.export_button), self.status, self.error,
                              self.exported, self.pinned, tabs, width=330, height=1100, styles={"overflow-y": "auto"})

    def _guard(self, fn, *args):
        if not self.syncing:
            fn(*args)

    def set_scenario(self, name: str):
        self.apply(controls.State(name))

    def set_option(self, g: controls.Group, option: str):
        new = self.state.copy()
        choices = self.ex.choices(new.scenario)
        if option == choices[g.key]:
            new.options.pop(g.key, None)
        else:
            new.options[g.key] = option
        for lev in g.levers:
            new.values.pop(lev.path, None)
        self.apply(new)

    def set_lever(self, lev: controls.Lever, k: int, v):
        if v is None:
            return
        vals = list(controls.slider_values(self.result.cfg, lev))
        vals[k] = float(v)
        new = self.state.copy()
        new.values[lev.path] = controls.lever_value(lev, tuple(vals), self.result.cfg.start_year)
        self.apply(new)

    def apply(self, new: controls.State):
        t0 = time.perf_counter()
        try:
            res = self.ex.run(new)
        except ConfigError as e:
            self.error.text = f'<span class="msg">config error: {html.escape(str(e))}</span>'
            self.sync(self.result)  # the controls back to what the panels show
            return
        self.state, self.result = new, res
        self.choices = self.ex.choices(new.scenario)
        self.error.text = ""
        self.draw(res, t0)

    def sync(self, res):
        """The controls set to the config ``res`` projected, without triggering runs."""
        self.syncing = True
        try:
            if self.scenario.value != res.state.scenario:
                self.scenario.value = res.state.scenario
            choices = self.ex.choices(res.state.scenario)
            for key, menu in self.menus.items():
                want = res.state.options.get(key, choices[key])
                if menu.value != want:
                    menu.value = want
            for lev, pairs in self.inputs.values():
                for (s, n), v in zip(pairs, controls.slider_values(res.cfg, lev)):
                    if s.value != v:
                        s.value = min(max(v, s.start), s.end)
                    if n.value != v:
                        n.value = v
        finally:
            self.syncing = False

    # -- panels ------------------------------------------------------------------------------
    def _panels(self):
        res = self.result
        tools = "pan,wheel_zoom,box_zoom,reset,save"
        g = figure(title="Resident urbanization rate, all regions (%)", width=760, height=360, tools=tools, css_classes=["panel-guangxi"])
        self.src_gx = ColumnDataSource(dict(year=[], mid=[], lo=[], hi=[]))
        g.varea("year", "lo", "hi", source=self.src_gx, fill_alpha=0.25, fill_color="#1f77b4", legend_label="90 % band")
        g.line("year", "mid", source=self.src_gx, line_width=2.5, color="#1f77b4", legend_label="projection")
        for variable, colour, label in (("urban_share", "black", "observed"), ("urban_share_original", "#999999", "observed, pre-census basis")):
            years, vals, grades = observed("Guangxi", variable)
            for grade, marker in GRADE_MARKERS.items():
                pts = [(y, v) for y, v, gr in zip(years, vals, grades) if (gr or "A") == grade]
                if pts:
                    g.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, size=7, color=colour, fill_alpha=1.0 if grade == "A" else 0.0, legend_label=f"{label} ({grade})")
        tg = share_targets(res.cfg)
        self.src_targets = ColumnDataSource(dict(year=[t[0] for t in tg], value=[t[1] for t in tg], op=[t[2] for t in tg]))
        g.scatter("year", "value", source=self.src_targets, marker="star", size=16, color="#d62728", legend_label="plan targets")
        self.pin_gx = [ColumnDataSource(dict(year=[], mid=[])) for _ in range(MAX_PINS)]
        for k, src in enumerate(self.pin_gx):
            g.line("year", "mid", source=src, line_dash="dashed", line_width=2, color=PIN_COLOURS[k])
        g.legend.location = "bottom_right"
        g.legend.label_text_font_size = "8pt"
        g.add_tools(HoverTool(tooltips=[("year", "@year"), ("urban share", "@mid{0.00} %")], renderers=[g.renderers[1]]))
        self.fig_gx = g

        self.trellis = Trellis([str(r) for r in res.ds.region.values])
        self.fig_reg = self.trellis.figure

        xs, ys, rnames, zh = _ring_patches()
        self.src_map = ColumnDataSource(dict(xs=xs, ys=ys, name=rnames, zh=zh, value=[np.nan] * len(xs)))
        self.mapper = LinearColorMapper(palette=Viridis256, low=0, high=100, nan_color="#eeeeee")
        m = figure(title="", width=520, height=440, tools="pan,wheel_zoom,reset,hover,save", match_aspect=True, css_classes=["panel-map"],
                   tooltips=[("prefecture", "@name @zh"), ("value", "@value{0.0}")])
        m.patches("xs", "ys", source=self.src_map, fill_color={"field": "value", "transform": self.mapper}, line_color="white", line_width=0.6)
        m.add_layout(ColorBar(color_mapper=self.mapper, width=10), "right")
        m.axis.visible = False
        m.grid.visible = False
        self.fig_map = m
        self.map_variable = Select(title="map colour", value="urban_share", options=list(MAP_VARIABLES.items()), width=220, css_classes=["map-variable"])
        self.map_variable.on_change("value", lambda a, o, n: self.draw_map(self.result))

        land = figure(title="Urban land, all regions (km²)", width=520, height=300, tools=tools, css_classes=["panel-land"])
        self.src_land = ColumnDataSource(dict(year=[], land=[], need=[]))
        land.line("year", "land", source=self.src_land, line_width=2, color="#2ca02c", legend_label="urban land (quota rules)")
        land.line("year", "need", source=self.src_land, line_width=2, color="#9467bd", line_dash="dotdash", legend_label="land needed at the standard")
        land.legend.location = "top_left"
        land.legend.label_text_font_size = "8pt"
        self.fig_land = land

        self.targets = Div(text="", css_classes=["targets"], width=760, height=300, styles={"overflow-y": "auto"})
        regions = Div(text="<b>Urban share by region (%)</b>: median, 90 % band, census points, pinned runs dashed")
        self.main = column(row(self.fig_gx, column(self.map_variable, self.fig_map)), row(self.targets, self.fig_land), regions, self.fig_reg)

    def draw(self, res, t0: float | None = None):
        """Every panel from ``res``; the status (the run counter) last."""
        t0 = time.perf_counter() if t0 is None else t0
        gx = guangxi_paths(res)
        self.src_gx.data = {k: gx[k] for k in ("year", "mid", "lo", "hi")}
        tg = share_targets(res.cfg)
        self.src_targets.data = dict(year=[t[0] for t in tg], value=[t[1] for t in tg], op=[t[2] for t in tg])
        self.src_land.data = {k: gx[k] for k in ("year", "land", "need")}
        reg = region_paths(res)
        self.trellis.draw(gx["year"], reg)
        self.draw_map(res)
        self.targets.text = targets_html(res)
        self.sync(res)
        self.runs += 1
        secs = time.perf_counter() - t0
        kind = f"{res.ds.sizes['draw']} draws" if res.draws else "deterministic"
        self.status.text = (f'<span class="run" data-run="{self.runs}" data-result="{html.escape(result_json(res))}">run {self.runs}: {secs:.2f} s '
                            f'({kind}{", model built" if res.built else ""})</span>')

    def draw_map(self, res):
        variable = self.map_variable.value
        vals, label = map_values(res, MAP_YEAR, variable)
        self.src_map.patch({"value": [(slice(0, len(self.src_map.data["name"])), [vals.get(n, np.nan) for n in self.src_map.data["name"]])]})  # the outlines stay
        v = np.array([x for x in vals.values() if np.isfinite(x)])
        if variable == "target_gap" and label.endswith("(pp)"):
            lim = float(max(1e-6, np.abs(v).max())) if v.size else 1.0
            self.mapper.update(palette=RdBu11[::-1], low=-lim, high=lim)  # below the target red, above it blue
        else:
            self.mapper.update(palette=Viridis256, low=float(v.min()) if v.size else 0, high=float(v.max()) if v.size else 100)
        self.fig_map.title.text = label

    # -- compare and export --------------------------------------------------------------------
    def add_pin(self):
        if len(self.pins) >= MAX_PINS:
            self.error.text = f'<span class="msg">at most {MAX_PINS} pinned runs: clear them first</span>'
            return
        res = self.result
        gx, reg = guangxi_paths(res), region_paths(res)
        k = len(self.pins)
        self.pins.append({"overrides": res.overrides})
        self.pin_gx[k].data = dict(year=gx["year"], mid=gx["mid"])
        self.trellis.pin(k, gx["year"], reg)
        self.pinned.text = pins_html(self.pins, self.ex.base)

    def clear_pins(self):
        self.pins = []
        for src in self.pin_gx:
            src.data = dict(year=[], mid=[])
        self.trellis.pin(None)
        self.pinned.text = ""

    def export(self):
        from sim.explore.session import EXPORT_FILES

        try:
            token, out = self.ex.export(self.state, self.result)
        except ConfigError as e:
            self.error.text = f'<span class="msg">config error: {html.escape(str(e))}</span>'
            return
        links = " · ".join(f'<a href="/export/{token}/{name}" download="{name}">{name}</a>' for name in EXPORT_FILES)
        cmd = (out / "overrides.txt").read_text(encoding="utf-8").strip()
        self.exported.text = f'<div data-token="{token}">exported to {html.escape(str(out))}: {links}<br><code>{html.escape(cmd)}</code></div>'


class Trellis:
    """Small multiples of the regions' urban share in one canvas (one redraw per run, where a
    figure per region costs a redraw each: 0.4 s for the 14 prefectures in headless Chromium):
    panel ``(row, col)`` spans :data:`FIRST_YEAR`..end on x and 0..100 % on y, offset by cell."""

    FIRST_YEAR, LAST_YEAR, NCOLS = 2010, 2050, 7
    CELL_X, CELL_Y = 48.0, 130.0  # data units of a cell (years + gap; percent + title)

    def __init__(self, names: list[str]):
        from bokeh.models import Range1d

        self.names = names[:70]  # the first 70 regions (all of a prefecture run)
        n = len(self.names)
        self.nrows = -(-n // self.NCOLS)
        cols = min(n, self.NCOLS)
        f = figure(width=190 * cols, height=150 * self.nrows + 30, tools="hover", toolbar_location=None, css_classes=["panel-regions"],
                   x_range=Range1d(-8, cols * self.CELL_X), y_range=Range1d(-22, self.nrows * self.CELL_Y), tooltips=[("region", "@name"), ("", "@label")])
        f.axis.visible = False
        f.grid.visible = False
        f.outline_line_color = None
        left = [self._x(k, self.FIRST_YEAR) for k in range(n)]
        bottom = [self._y(k, 0.0) for k in range(n)]
        f.quad(left=left, right=[x + self.LAST_YEAR - self.FIRST_YEAR for x in left], bottom=bottom, top=[b + 100 for b in bottom], fill_color="#f6f6f6", line_color="#cccccc")
        for level in (25, 50, 75):
            f.segment(x0=left, x1=[x + self.LAST_YEAR - self.FIRST_YEAR for x in left], y0=[b + level for b in bottom], y1=[b + level for b in bottom], line_color="#e0e0e0")
        f.text(x=left, y=[b + 102 for b in bottom], text=self.names, text_font_size="8pt", text_font_style="bold")
        for k in range(n):
            if k % self.NCOLS == 0:
                f.text(x=[left[k] - 1] * 3, y=[bottom[k] + v for v in (0, 50, 100)], text=["0", "50", "100"], text_font_size="7pt", text_align="right", text_baseline="middle")
            if k >= n - self.NCOLS:
                f.text(x=[self._x(k, y) for y in (2010, 2030, 2050)], y=[bottom[k] - 3] * 3, text=["2010", "2030", "2050"], text_font_size="7pt", text_align="center", text_baseline="top")
        self.band = ColumnDataSource(dict(xs=[], ys=[], name=[], label=[]))
        self.line = ColumnDataSource(dict(xs=[], ys=[], name=[], label=[]))
        self.pins = ColumnDataSource(dict(xs=[], ys=[], color=[], name=[], label=[]))
        self._pins: dict[int, tuple] = {}
        f.patches("xs", "ys", source=self.band, fill_color="#1f77b4", fill_alpha=0.25, line_color=None)
        f.multi_line("xs", "ys", source=self.line, line_color="#1f77b4", line_width=2)
        f.multi_line("xs", "ys", source=self.pins, line_color="color", line_dash="dashed", line_width=1.5)
        ox, oy = [], []
        for k, name in enumerate(self.names):
            years, vals, _ = observed(name)
            ox += [self._x(k, y) for y in years]
            oy += [self._y(k, v) for v in vals]
        f.scatter(ox, oy, size=4, color="black")
        self.figure = f

    def _x(self, k: int, year):
        return (k % self.NCOLS) * self.CELL_X + (np.asarray(year, dtype=float) - self.FIRST_YEAR)

    def _y(self, k: int, value):
        return (self.nrows - 1 - k // self.NCOLS) * self.CELL_Y + np.asarray(value, dtype=float)

    def draw(self, years, reg: dict):
        xs, ys, bx, by, labels = [], [], [], [], []
        for k, name in enumerate(self.names):
            r = reg[name]
            x = self._x(k, years)
            xs.append(x)
            ys.append(self._y(k, r["mid"]))
            bx.append(np.concatenate([x, x[::-1]]))
            by.append(self._y(k, np.concatenate([r["lo"], r["hi"][::-1]])))
            labels.append(f"{r['mid'][0]:.1f} % in {int(years[0])}, {r['mid'][-1]:.1f} % in {int(years[-1])}")
        self.line.data = dict(xs=xs, ys=ys, name=self.names, label=labels)
        self.band.data = dict(xs=bx, ys=by, name=self.names, label=labels)

    def pin(self, k: int | None, years=None, reg: dict | None = None):
        """Pin ``k`` drawn dashed (its regions' medians); ``None``: every pin removed."""
        if k is None:
            self._pins = {}
        else:
            self._pins[k] = (years, {n: reg[n]["mid"] for n in self.names})
        d = dict(xs=[], ys=[], color=[], name=[], label=[])
        for p, (yrs, mids) in sorted(self._pins.items()):
            for j, name in enumerate(self.names):
                d["xs"].append(self._x(j, yrs))
                d["ys"].append(self._y(j, mids[name]))
                d["color"].append(PIN_COLOURS[p])
                d["name"].append(name)
                d["label"].append(f"pin {p + 1}: {mids[name][-1]:.1f} % in {int(yrs[-1])}")
        self.pins.data = d


def targets_html(res) -> str:
    rows = table_rows(res)
    prob = res.draws
    head = "<tr><th>target</th><th>required</th><th>projected</th><th>met</th><th>first year met</th>" + ("<th>P(met)</th>" if prob else "") + "<th>land needed km²</th></tr>"
    body = []
    for r in rows:
        colour = {"met": "#e6f4ea", "not met": "#fde7e9"}.get(r["met"], "#ffffff")
        value = "" if r["value"] is None else repr(r["value"])
        body.append(f'<tr style="background:{colour}" data-target="{html.escape(r["target"])}"><td>{html.escape(r["target"])}</td><td>{html.escape(r["required"])}</td>'
                    f'<td class="projected" data-value="{value}">{r["projected"]}</td><td class="met">{r["met"]}</td><td>{r["first_year_met"]}</td>'
                    + (f'<td class="probability">{r["probability"]}</td>' if prob else "") + f"<td>{r['land']}</td></tr>")
    return f'<table style="border-collapse:collapse;font-size:12px" cellpadding="3">{head}{"".join(body)}</table>'


def pins_html(pins: list[dict], base: list[str]) -> str:
    items = []
    for k, p in enumerate(pins):
        own = [o for o in p["overrides"] if o not in base]
        items.append(f'<li style="color:{PIN_COLOURS[k]}">{html.escape(" ".join(own))}</li>')
    return f"<b>pinned (dashed)</b><ol>{''.join(items)}</ol>"


def make_document(doc, explorer: Explorer) -> None:
    """Bokeh's per-session hook: build the page into ``doc``."""
    page = Page(explorer)
    doc.title = "Urbanization explorer"
    doc.add_root(page.layout)
