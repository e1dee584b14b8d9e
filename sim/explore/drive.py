"""Drive the explorer in a real browser: start ``python -m sim.explore`` on a free port, open
its page in headless Chromium (Debian's, through Playwright) and move controls as a user does,
waiting for the run counter the page writes after its last panel. For the browser tests and
``python -m benchmarks.explore``; needs Playwright (the ``test`` extra) and ``chromium``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from sim.explore.app import group_class, lever_class
from sim.paths import REPO

CHROMIUM = ("chromium", "chromium-browser")


def chromium() -> str | None:
    """The system Chromium's path, or None."""
    return next((p for p in map(shutil.which, CHROMIUM) if p), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(*args: str, timeout: float = 180.0):
    """``python -m sim.explore args port=<free>`` running for the block; yields its URL."""
    port = free_port()
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(REPO / ".numba_cache"))
    proc = subprocess.Popen([sys.executable, "-m", "sim.explore", *args, f"port={port}"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        t0, lines = time.monotonic(), []
        while True:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                raise RuntimeError("the explorer did not start:\n" + "".join(lines))
            lines.append(line)
            if line.startswith("explorer: http"):
                break
            if time.monotonic() - t0 > timeout:
                raise TimeoutError("the explorer did not print its URL:\n" + "".join(lines))
        yield line.split()[1]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


class Driver:
    """A page of the explorer in headless Chromium."""

    def __init__(self, url: str, timeout_ms: float = 60_000):
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        self.page = self.browser.new_page(viewport={"width": 1600, "height": 1200})
        self.page.set_default_timeout(timeout_ms)
        self.url = url
        self.page.goto(url)
        self.page.wait_for_selector(".status .run")

    def close(self):
        self.browser.close()
        self._pw.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- reading -----------------------------------------------------------------------------
    def run_number(self) -> int:
        return int(self.page.locator(".status .run").get_attribute("data-run"))

    def result(self) -> dict:
        """The current run's overrides and target values (what the table shows, unrounded)."""
        return json.loads(self.page.locator(".status .run").get_attribute("data-result"))

    def table(self) -> dict[str, float | None]:
        """The target table's projected values as the page holds them (``data-value``)."""
        out = {}
        for tr in self.page.locator(".targets tr[data-target]").all():
            v = tr.locator("td.projected").get_attribute("data-value")
            out[tr.get_attribute("data-target")] = float(v) if v else None
        return out

    def error(self) -> str:
        msg = self.page.locator(".error .msg")
        return msg.inner_text().strip() if msg.count() else ""

    def lever(self, path: str, k: int = 0) -> float:
        return float(self.page.locator(f".{lever_class(path, k)} input").input_value())

    # -- acting ------------------------------------------------------------------------------
    def _wait_run(self, before: int):
        self.page.wait_for_selector(f'.status .run[data-run="{before + 1}"]')

    def set_lever(self, path: str, value, k: int = 0, expect_run: bool = True) -> float:
        """Type ``value`` into the lever's input (``k``: 0 the value or level, 1 the 2030 value)
        and press Enter; returns the seconds until the page wrote its next run (every panel)."""
        before = self.run_number()
        box = self.page.locator(f".{lever_class(path, k)} input")
        box.fill(str(value))
        t0 = time.perf_counter()
        box.press("Enter")
        if expect_run:
            self._wait_run(before)
        return time.perf_counter() - t0

    def wait_error(self) -> str:
        self.page.wait_for_selector(".error .msg")
        return self.error()

    def set_option(self, group: str, option: str) -> float:
        before = self.run_number()
        t0 = time.perf_counter()
        self.page.locator(f".{group_class(group)} select").select_option(option)
        self._wait_run(before)
        return time.perf_counter() - t0

    def click(self, css: str, wait: str | None = None):
        self.page.locator(f".{css} button").click()
        if wait:
            self.page.wait_for_selector(wait)

    def screenshot(self, path: str | Path) -> Path:
        self.page.screenshot(path=str(path), full_page=True)
        return Path(path)

    def download(self, href: str) -> bytes:
        """The bytes a link of the page serves (same origin)."""
        r = self.page.request.get(self.url.rstrip("/") + href)
        if not r.ok:
            raise RuntimeError(f"{href}: HTTP {r.status}")
        return r.body()
