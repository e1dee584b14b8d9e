"""The explorer in a real browser: ``python -m sim.explore`` started, its page driven in headless
Chromium (Playwright on Debian's chromium). The hukou and land levers move the target table in
the documented direction; the exported overrides, run by ``python -m sim``, give the page's
values; a bad value shows the schema's error and leaves the panels as they were; the page is
not blank; only the exports it issued are served."""

from __future__ import annotations

import csv
import io
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest

from sim.explore.drive import chromium

pytestmark = pytest.mark.skipif(chromium() is None, reason="chromium not installed (make test installs it where apt-get can)")

HUKOU = "policy.hukou.conversion_rate"
SHARE_2035 = "resident urbanization ~68% by 2035"
HUKOU_2025 = "hukou urbanization on its 2013-2020 pace by 2025"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    pytest.importorskip("playwright")
    from sim.explore.drive import Driver, server

    out = tmp_path_factory.mktemp("explore-out")
    with server(f"out={out}") as url:
        assert url.startswith("http://127.0.0.1:")  # bound to the loopback address by default
        with Driver(url) as d:
            d.out = out
            yield d


def test_levers_move_the_table_and_the_export_reproduces_it_on_the_command_line(page, tmp_path):
    d = page
    first = d.table()
    assert d.run_number() == 1 and d.lever(HUKOU, 0) == pytest.approx(0.05)
    # hukou: conversion rising to 0.3 a year by 2030 settles more migrants (hukou share up) and
    # keeps more of them in towns (resident urban share up)
    d.set_lever(HUKOU, 0.3, k=1)
    hukou = d.table()
    assert hukou[HUKOU_2025] > first[HUKOU_2025] + 0.01
    assert hukou[SHARE_2035] > first[SHARE_2035] + 0.005
    assert d.result()["overrides"] == ["scenario=trend", f"{HUKOU}={{2020:0.05,2030:0.3}}"]
    # land: the 人地挂钩 link adds quota land, the capacity brake eases: the urban share rises
    d.set_option("policy/land", "link")
    linked = d.table()
    assert linked[SHARE_2035] > hukou[SHARE_2035]
    # land: no new quota land at all: the brake binds and the urban share falls
    d.set_lever("policy.land.base_quota", 0.0, k=0)
    d.set_lever("policy.land.base_quota", 0.0, k=1)
    starved = d.table()
    assert starved[SHARE_2035] < linked[SHARE_2035]
    assert d.result()["targets"] == pytest.approx(starved, nan_ok=True)

    d.click("export", wait=".exported [data-token]")
    token = d.page.locator(".exported [data-token]").get_attribute("data-token")
    line = d.download(f"/export/{token}/overrides.txt").decode().strip()
    targets = d.download(f"/export/{token}/targets.csv").decode()
    assert d.download(f"/export/{token}/projection.nc")[:4] in (b"CDF\x01", b"CDF\x02", b"\x89HDF")
    args = shlex.split(line)
    assert args[:3] == ["python", "-m", "sim"]
    r = subprocess.run([sys.executable, "-m", "sim", *args[3:], f"hydra.run.dir={tmp_path / 'cli'}"], capture_output=True, text=True, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "cli" / "targets.csv") as f:
        cli = {row["target"]: float(row["projected"]) for row in csv.DictReader(f)}
    exported = {row["target"]: float(row["projected"]) for row in csv.DictReader(io.StringIO(targets))}
    for name, v in starved.items():
        assert cli[name] == pytest.approx(v, rel=1e-9), name
        assert exported[name] == pytest.approx(v, rel=1e-9), name


def test_a_bad_value_shows_the_error_and_changes_nothing(page):
    d = page
    before, run = d.table(), d.run_number()
    level = d.lever(HUKOU, 1)
    d.set_lever(HUKOU, 5, k=1, expect_run=False)
    msg = d.wait_error()
    assert f"{HUKOU}[2030] = 5.0" in msg and "0.0..1.0" in msg
    assert d.run_number() == run and d.table() == before
    assert d.lever(HUKOU, 1) == pytest.approx(level)  # the control back to what the panels show
    d.set_lever(HUKOU, 0.25, k=1)  # a good value clears the error
    assert d.error() == "" and d.run_number() == run + 1


def test_compare_pins_and_reset(page):
    d = page
    d.click("pin", wait=".pinned li")
    assert d.page.locator(".pinned li").count() == 1
    d.set_option("policy/services", "equalization")
    d.click("pin", wait=".pinned li:nth-child(2)")
    run = d.run_number()
    d.click("reset", wait=f'.status .run[data-run="{run + 1}"]')
    assert d.result()["overrides"] == ["scenario=trend"]
    assert d.lever(HUKOU, 1) == pytest.approx(0.05)
    d.click("unpin")
    d.page.wait_for_function("() => true")  # a round trip to the page
    d.page.locator(".pinned li").first.wait_for(state="detached")


def test_the_page_is_drawn_and_only_its_exports_are_served(page, tmp_path):
    from matplotlib.image import imread

    d = page
    png = d.screenshot(tmp_path / "explore.png")
    img = imread(png)[..., :3]
    assert img.shape[0] > 800 and img.shape[1] > 1200
    assert img.std() > 0.1  # not blank
    colours = np.unique((img.reshape(-1, 3) * 255).astype(int), axis=0)
    assert len(colours) > 200  # lines, the map's colours, the table
    import socket
    from urllib.parse import urlparse

    port = urlparse(d.url).port
    try:  # the address of the machine's outward interface (a UDP connect sends nothing)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.connect(("192.0.2.1", 9))
            own = u.getsockname()[0]
    except OSError:
        own = "127.0.0.1"
    if not own.startswith("127."):  # the machine's own address: nothing listens there (127.0.0.1 only)
        with socket.socket() as s, pytest.raises(OSError):
            s.settimeout(2)
            s.connect((own, port))
    for href in ("/export/0123456789abcdef/projection.nc", "/export/../../etc/passwd", "/export/0123456789abcdef/config.yaml"):
        r = d.page.request.get(d.url.rstrip("/") + href)
        assert r.status == 404, href
