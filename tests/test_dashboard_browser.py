"""The dashboard in a real browser: Chromium driven by Playwright, against `cellseq dashboard`
serving a dry run paced against the wall clock (`cellseq run --sim --speed`), each in its own
process as a lab runs them.

The browser is the system's Chromium (.ci/run installs Debian's `chromium`), or Playwright's
own where `playwright install chromium` put one. Where neither exists the tests skip and say
so, unless CELLSEQ_REQUIRE_BROWSER is set (CI sets it: there they must run).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sequencer.status import run_status
from store import RunStore

from .conftest import ROOT

#: Two Li|Li cells plating and stripping: 2 min steps, a second each at x120.
WATCHED = """
campaign: watched
cells:
  - {id: li-1, kind: symmetric_li, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
  - {id: li-2, kind: symmetric_li, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
experiments:
  - name: plating
    cells: [li-1, li-2]
    steps:
      - kind: loop
        count: 300
        steps:
          - {kind: constant_current, direction: charge, current: 0.1 mA, duration: 2 min,
             record_every: 5 s}
          - {kind: constant_current, direction: discharge, current: 0.1 mA, duration: 2 min,
             record_every: 5 s}
"""
SPEED = 120
#: Waits generous enough for a machine busy with other work (the processes start in 2 s here).
STARTUP_S = 180
WAIT_MS = 60_000
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
NO_BROWSER = ("no Chromium to drive: install Debian's chromium (apt-get install -y chromium)"
              " or Playwright's (python -m playwright install chromium)")


def _chromium_path() -> str | None:
    for name in (os.environ.get("CELLSEQ_CHROMIUM"), "chromium", "chromium-browser",
                 "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _no_browser("Playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        path = _chromium_path()
        try:
            b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        except Error as exc:
            _no_browser(f"{NO_BROWSER} ({str(exc).splitlines()[0]})")
        yield b
        b.close()


def _no_browser(reason: str):
    if os.environ.get("CELLSEQ_REQUIRE_BROWSER"):
        pytest.fail(f"CELLSEQ_REQUIRE_BROWSER is set, but {reason}")
    pytest.skip(reason)


@dataclass
class Served:
    run_dir: Path
    run: subprocess.Popen
    dashboard: subprocess.Popen
    url: str      # with the token
    base: str
    token: str

    def status(self) -> dict:
        return run_status(self.run_dir)

    def events(self, kind: str) -> list[dict]:
        store = RunStore.open(self.run_dir)
        try:
            return [e for e in store.events() if e["kind"] == kind]
        finally:
            store.close()


def _start(tmp_path: Path) -> Served:
    protocol = tmp_path / "watched.yaml"
    protocol.write_text(WATCHED)
    run_dir = tmp_path / "run"
    run = subprocess.Popen([sys.executable, "-m", "sequencer", "run", str(protocol), "--sim",
                            "--speed", str(SPEED), "--out", str(run_dir), "--no-report"],
                           cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + STARTUP_S
    while not (run_dir / "run.sqlite").exists():
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.05)
    dashboard = subprocess.Popen([sys.executable, "-m", "sequencer", "dashboard", str(run_dir),
                                  "--port", "0"], cwd=ROOT, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([dashboard.stdout], [], [], STARTUP_S)
    assert ready, f"the dashboard printed nothing in {STARTUP_S} s"
    line = dashboard.stdout.readline()
    assert " at http://127.0.0.1:" in line, (line, dashboard.stderr.read())
    url = line.split(" at ", 1)[1].strip()
    return Served(run_dir, run, dashboard, url, url.split("/?")[0], url.split("token=")[1])


def _stop(served: Served) -> None:
    served.dashboard.send_signal(signal.SIGINT)
    if served.run.poll() is None:   # Ctrl-C twice: every output off
        served.run.send_signal(signal.SIGINT)
        time.sleep(0.3)
        served.run.send_signal(signal.SIGINT)
    for proc in (served.dashboard, served.run):
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    s = _start(tmp_path_factory.mktemp("watched"))
    yield s
    _stop(s)


@pytest.fixture
def page(browser, served):
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.set_default_timeout(WAIT_MS)
    pg = context.new_page()
    pg.outside = []   # requests to anywhere but the dashboard: there must be none
    pg.on("request", lambda r: None if r.url.startswith((served.base, "data:"))
          else pg.outside.append(r.url))
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("dialog", lambda d: d.accept())
    yield pg
    context.close()
    assert pg.errors == [] and pg.outside == []


def _row(pg, cell: str):
    return pg.locator(f"tr[data-cell='{cell}']")


def test_the_overview_shows_the_run_live_and_its_values_update(page, served):
    page.goto(served.url)
    page.wait_for_selector("body[data-painted=overview]", state="attached")
    assert "token" not in page.url               # taken out of the address bar
    row = _row(page, "li-1")
    row.wait_for()
    page.wait_for_function("() => document.querySelector(\"tr[data-cell='li-1']\")"
                           ".dataset.state === 'running'")
    first = row.locator("td[data-q=voltage]").inner_text()
    t_first = row.locator("td.num").nth(4).inner_text()
    # the row changes as the run commits points: no reload (one navigation only)
    page.wait_for_function(
        "([v, t]) => { const r = document.querySelector(\"tr[data-cell='li-1']\");"
        " return r.querySelector('td[data-q=voltage]').textContent !== v &&"
        " r.querySelectorAll('td.num')[4].textContent !== t; }", arg=[first, t_first],
        timeout=WAIT_MS)
    assert page.locator("section[data-run=run] [data-status]").inner_text() == "running"
    assert "dry run paced x120" in page.locator("section[data-run=run] h2").inner_text()


def test_a_cell_page_plots_follow_the_run_and_zoom_to_every_point(page, served):
    page.goto(served.url)
    page.goto(f"{served.base}/#/run/run/cell/li-2")
    page.wait_for_selector("body[data-painted=cell]", state="attached")
    assert page.locator(".chart canvas").count() >= 3     # V-t, I-t, T-t (uPlot)
    latest = page.locator("#latest")
    t0 = float(latest.get_attribute("data-t"))
    page.wait_for_function(f"() => Number(document.querySelector('#latest').dataset.t) > {t0}",
                           timeout=WAIT_MS)
    current = page.locator(".chart[data-q=current_A] canvas").first
    assert current.is_visible()
    # drag across a tenth of the voltage plot: every point of that range is drawn
    box = page.locator(".chart[data-q=voltage_V] .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.80, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.85, y, steps=5)
    page.mouse.up()
    page.wait_for_function("() => document.querySelector('#shown').dataset.everyPoint === 'true'",
                           timeout=WAIT_MS)
    shown = page.locator("#shown")
    assert 0 < int(shown.get_attribute("data-points")) < 1000
    page.locator("#full").click()
    page.wait_for_function("() => Number(document.querySelector('#latest').dataset.t) > 0")


def test_pausing_a_cell_from_the_page_pauses_it_in_the_run(page, served):
    page.goto(served.url)
    page.wait_for_selector("body[data-painted=overview]", state="attached")
    page.fill("#who", "pat")
    page.locator("#who").dispatch_event("change")
    _row(page, "li-1").locator("button[data-action=pause]").click()
    page.wait_for_function("() => document.querySelector('#notice').textContent.includes("
                           "'li-1 stops at its next step boundary')", timeout=WAIT_MS)
    page.wait_for_function("() => document.querySelector(\"tr[data-cell='li-1']\")"
                           ".dataset.state === 'paused'", timeout=WAIT_MS)
    states = {c["cell"]: c["state"] for c in served.status()["cells"]}
    assert states == {"li-1": "paused", "li-2": "running"}          # the other runs on
    asked = served.events("control_request")[-1]
    assert (asked["cell"], asked["data"]["who"], asked["data"]["address"],
            asked["data"]["action"]) == ("li-1", "pat", "127.0.0.1", "pause")
    store = RunStore.open(served.run_dir)
    try:
        paused_points = store.point_count("li-1")
        time.sleep(1.5)
        assert store.point_count("li-1") == paused_points             # it records nothing
        assert store.point_count("li-2") > 0
    finally:
        store.close()
    _row(page, "li-1").locator("button[data-action=continue]").click()
    page.wait_for_function("() => document.querySelector(\"tr[data-cell='li-1']\")"
                           ".dataset.state === 'running'", timeout=WAIT_MS)
    assert [e["data"]["who"] for e in served.events("control_request")][-2:] == ["pat", "pat"]


def test_controls_need_the_token_printed_at_start(browser, served):
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    pg = context.new_page()
    pg.on("dialog", lambda d: d.accept())
    try:
        before = len(served.events("control_request"))
        pg.goto(served.base + "/")                      # the page, without the token
        pg.wait_for_selector("body[data-painted=overview]", state="attached")
        assert pg.locator("#token-state").inner_text() == "controls need the token"
        _row(pg, "li-2").locator("button[data-action=pause]").click()
        assert "the token printed when the dashboard started is needed" in \
            pg.locator("#notice").inner_text()
        pg.fill("#token-input", "not-" + served.token)
        pg.locator("#token-input").dispatch_event("change")
        _row(pg, "li-2").locator("button[data-action=pause]").click()
        pg.wait_for_function("() => document.querySelector('#notice').textContent.includes("
                             "'controls need the token')")
        time.sleep(0.5)
        assert len(served.events("control_request")) == before     # nothing reached the run
        assert not list((served.run_dir / "controls").glob("*.json"))
    finally:
        context.close()


def test_stopping_the_run_from_the_page_stops_it_as_ctrl_c_twice(browser, tmp_path):
    served = _start(tmp_path)
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    pg = context.new_page()
    pg.on("dialog", lambda d: d.accept())
    try:
        pg.goto(served.url)
        pg.wait_for_selector("body[data-painted=overview]", state="attached")
        pg.fill("#who", "quinn")
        pg.locator("#who").dispatch_event("change")
        pg.locator("section[data-run=run] h2 button[data-action=stop]").click()
        _out, err = served.run.communicate(timeout=STARTUP_S)
        assert served.run.returncode == 130, err
        assert "every output is off" in err and "Traceback" not in err
        pg.wait_for_function("() => document.querySelector('[data-status]').dataset.status"
                             " === 'interrupted'", timeout=WAIT_MS)
        doc = served.status()
        assert doc["status"] == "interrupted"
        assert {c["state"] for c in doc["cells"]} == {"aborted"}
        aborted = served.events("run_aborted")[-1]
        assert aborted["message"] == "stopped by quinn (127.0.0.1) from the dashboard"
        log = (served.run_dir / "run.log").read_text()
        assert "control_request: stop the run, asked by quinn (127.0.0.1)" in log
        # the page now offers no controls: no process runs it
        pg.wait_for_function("() => !document.querySelector('button[data-action=pause]')",
                             timeout=WAIT_MS)
        assert "no process runs it" in pg.locator("section[data-run=run] h2").inner_text()
    finally:
        context.close()
        _stop(served)
    manifest = json.loads((served.run_dir / "manifest.json").read_text())
    assert manifest["speed"] == SPEED              # `cellseq resume` continues it, paced
