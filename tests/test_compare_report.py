"""python -m sim.compare and python -m sim.report on two small runs."""

from __future__ import annotations

import base64
import csv
import io
import re
import shutil
import stat
import subprocess

import matplotlib.image
import numpy as np
import pytest
import xarray as xr

from sim.compare import main as compare_main
from sim.outputs.comparison import compare, difference_figure
from sim.outputs.figures import urban_share_figure
from sim.outputs.html import write_report
from sim.outputs.job import run
from sim.outputs.runs import load_runs
from sim.report import main as report_main
from tests.test_config import compose_cfg


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    for i, scen in enumerate(["trend", "plan"]):
        run(compose_cfg([f"scenario={scen}", "end_year=2036", "quiet=true", "figures.enabled=false"]), root / str(i))
    return root


def test_runs_load_from_a_sweep_a_run_and_a_collected_file(sweep, tmp_path):
    runs = load_runs([sweep])
    assert list(runs) == ["trend", "plan"]
    assert list(load_runs([sweep / "1"])) == ["plan"]
    # two runs of one scenario get distinct labels
    assert list(load_runs([sweep / "0", sweep / "0"])) == ["trend (0)", "trend (0) #2"]
    # a collected dataset with a scenario dimension is split into its runs
    both = xr.concat([runs["trend"], runs["plan"]], dim="scenario")
    both.to_netcdf(tmp_path / "collected.nc")
    split = load_runs([tmp_path / "collected.nc"])
    assert list(split) == ["trend", "plan"]
    np.testing.assert_array_equal(split["plan"].urban_share.values, runs["plan"].urban_share.values)


def test_compare_writes_figures_and_a_gap_table(sweep, tmp_path):
    res = compare([sweep], tmp_path / "cmp", year=2035, quiet=True)
    names = sorted(p.name for p in (tmp_path / "cmp").iterdir())
    assert names == ["difference.png", "land.png", "regions.png", "target_gaps.csv", "urban_share.png"]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "cmp" / "target_gaps.csv").read_text(encoding="utf-8"))))
    runs = load_runs([sweep])
    for r in rows:
        if r["target"] == "resident urbanization ~68% by 2035":
            want = float(runs[r["run"]].total_urban_share.sel(year=2035)) - 0.68
            assert float(r["gap"]) == pytest.approx(want, abs=1e-12)
    assert {r["run"] for r in rows} == {"trend", "plan"}
    assert "trend" in res["table"] and "plan" in res["table"]
    # one line per run in the comparison figure of the urban share
    fig_share = urban_share_figure(runs)
    assert len([ln for ln in fig_share.axes[0].get_lines() if ln.get_label() in runs]) == 2


def test_difference_is_each_run_minus_the_baseline(sweep):
    runs = load_runs([sweep])
    fig = difference_figure(runs, 2030)
    bars = fig.axes[0].patches
    assert len(bars) == 14
    want = 100 * (runs["plan"].urban_share - runs["trend"].urban_share).sel(year=2030).values
    np.testing.assert_allclose([b.get_width() for b in bars], want, rtol=1e-12)
    with pytest.raises(ValueError, match="--baseline 'nope': unknown; allowed: trend, plan"):
        difference_figure(runs, 2030, "nope")


def test_compare_cli_errors_clearly(tmp_path, capsys):
    assert compare_main([str(tmp_path / "missing")]) == 2
    assert "no projection.nc" in capsys.readouterr().err


def test_html_report_is_self_contained(sweep, tmp_path):
    path = write_report([sweep / "0"], tmp_path / "one.html")
    text = path.read_text(encoding="utf-8")
    imgs = re.findall(r'<img alt="([^"]+)" src="([^"]+)"', text)
    assert [a for a, _ in imgs] == ["urban_share", "regions", "map", "pyramid", "land", "flows"]
    for _, src in imgs:
        assert src.startswith("data:image/png;base64,")
        img = matplotlib.image.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
        assert img[..., :3].std() > 0.05
    assert "resident urbanization ~68% by 2035" in text and "input_sha256" in text and "code_version" in text
    assert "&quot;capacity_m2_per_person&quot;: 70.0" in text  # the resolved config, HTML-escaped
    assert not re.search(r'(src|href)="(?!data:)', text), "the page must not load anything from outside"
    assert stat.S_IMODE(path.stat().st_mode) & 0o044, "a report others can read"
    assert report_main([str(sweep), "--out", str(tmp_path / "both.html")]) == 0
    both = (tmp_path / "both.html").read_text(encoding="utf-8")
    assert both.count("<h2>Provenance:") == 2 and 'alt="difference"' in both


def test_html_report_renders_in_headless_chromium(sweep, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (make test installs it where apt-get can)")
    page = write_report([sweep / "0"], tmp_path / "r.html")
    shot = tmp_path / "shot.png"
    cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,5000", f"--screenshot={shot}", page.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=True)
    img = matplotlib.image.imread(shot)[..., :3]
    assert img.std() > 0.05  # not blank
    # every image loaded: the DOM after load reports each image's natural width
    js = "<script>window.onload=()=>{document.title=[...document.images].map(i=>i.naturalWidth).join(',')}</script>"
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", js + "</body>"), encoding="utf-8")
    dom = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout
    widths = [int(w) for w in re.search(r"<title>([\d,]*)</title>", dom).group(1).split(",")]
    assert len(widths) == 6 and min(widths) > 0, widths
