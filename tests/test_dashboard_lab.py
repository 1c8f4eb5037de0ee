"""The dashboard on a lab's database (`cellseq dashboard --db`): every station's runs, read
from the lab record on the tests' PostgreSQL while station workers run them; the same answers
as the station's own run directory gives; controls that go through the lab's cancel or are
refused, saying why; and a real browser on the served page."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

import pytest

pytest.importorskip("starlette", reason="the dashboard extra is not installed")
pytest.importorskip("httpx2", reason="Starlette's test client needs httpx2")
pytest.importorskip("psycopg", reason="the lab extra is not installed")

from starlette.testclient import TestClient

from sequencer.dashboard.app import TOKEN_HEADER, Access, build_app
from sequencer.dashboard.lab import LabRuns
from sequencer.dashboard.local import LocalRuns
from sequencer.lab.settings import lab_db

from .lab_server import LONG, QUICKSTART, ROOT
from .test_dashboard_browser import WAIT_MS, browser  # noqa: F401 -- the browser fixture
from .test_lab_workers import operator, stations_up, submitted

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the tests stop workers with SIGINT")
TOKEN = "lab-t0ken"


def _client(lab, login: str, monkeypatch) -> TestClient:
    """The dashboard's web layer on the lab's record, logged in as ``login`` (its password
    from the lab's pgpass file, as on a lab PC)."""
    monkeypatch.setenv("PGPASSFILE", str(lab.folder / "pgpass"))
    source = LabRuns(lab_db(lab.url(login), lab.name))
    return TestClient(build_app(source, Access(TOKEN, pages_need_token=False)),
                      base_url="http://127.0.0.1")


def _two_stations(lab, tmp_path, count: int = 25000) -> tuple[str, str, int]:
    """st-1 runs the quickstart to its end, st-2 a run far longer than the test, still going
    however fast the simulators are; returns their run ids and the long one's job id."""
    cellseq = operator(lab)
    for station in ("st-1", "st-2"):
        lab.start_worker(station, lab.login(f"{lab.name}_{station[-1]}", "station"))
    lab.wait(lambda: stations_up(lab, "st-1", "st-2"), 60, "both stations to join")
    _, done = submitted(cellseq("lab", "submit", QUICKSTART, "--station", "st-1"))
    (tmp_path / "long.yaml").write_text(LONG.format(count=count))
    job, going = submitted(cellseq("lab", "submit", tmp_path / "long.yaml", "--station",
                                   "st-2"))
    lab.wait(lambda: lab.run(done)["status"] == "completed", 90, "the quickstart to end")
    lab.wait(lambda: lab.points(going) > 0, 60, "the long run's first points")
    return done, going, job


def test_the_lab_dashboard_shows_every_station_s_runs_as_their_stores_hold_them(
        lab, tmp_path, monkeypatch, request):
    done, going, job = _two_stations(lab, tmp_path)
    reader = lab.login(f"{lab.name}_rd", "reader")
    with _client(lab, reader, monkeypatch) as client:
        listed = {r["id"]: r for r in client.get("/api/runs").json()["runs"]}
        assert set(listed) == {done, going}
        assert listed[done]["status"] == "completed" and not listed[done]["live"]
        assert listed[going]["status"] == "running" and listed[going]["live"]
        assert "station st-1" in listed[done]["campaign"]
        assert "station st-2" in listed[going]["campaign"]

        # the record's answers are the station's own run directory's answers
        local = LocalRuns([lab.run_dir("st-1", done)])
        try:
            here = local.runs()[0].id
            ov = client.get(f"/api/runs/{done}").json()
            mine = local.overview(here)
            assert [(c["cell"], c["state"], c["cycle"], c["voltage_V"]) for c in ov["cells"]] \
                == [(c.cell, c.state, c.cycle, c.voltage_V) for c in mine.cells]
            assert ov["last_event_id"] == mine.last_event_id
            cycles = client.get(f"/api/runs/{done}/cells/ncm811-1/cycles").json()
            theirs = local.cycles(here, "ncm811-1")
            assert cycles["complete"] and len(cycles["cycles"]) == len(theirs.rows) == 3
            assert [c["discharge_Ah"] for c in cycles["cycles"]] == \
                [r.discharge_Ah for r in theirs.rows]
            series = client.get(f"/api/runs/{done}/cells/ncm811-1/series?width=300").json()
            view = local.series(here, "ncm811-1", None, None, 300)
            assert series["points_in_view"] == view.points_in_view > 0
            assert series["traces"]["voltage_V"]["y"] == view.traces["voltage_V"].y.tolist()
            spectra = client.get(f"/api/runs/{done}/cells/aiose-blocking-1/spectra").json()
            assert [round(s["temperature_C"]) for s in spectra["spectra"]] == [25, 60]
            events = client.get(f"/api/runs/{done}/events?after=-1&limit=3").json()["events"]
            assert events == local.events(here, -1, None, 3)
        finally:
            local.close()
        results = client.get(f"/api/runs/{done}/results").json()
        assert not results["has_report"] and "cellseq report --db" in results["notes"][0]

        # the running one moves on as its station copies it
        first = client.get(f"/api/runs/{going}").json()["cells"][0]
        lab.wait(lambda: client.get(f"/api/runs/{going}").json()["cells"][0]["t_s"]
                 > first["t_s"], 30, "the long run's values to move")

        # controls: what the lab cannot do is refused, saying so; nothing is cancelled
        headers = {TOKEN_HEADER: TOKEN}
        got = client.post(f"/api/runs/{going}/control", headers=headers,
                          json={"action": "pause", "cell": "ncm-a", "who": "pat"})
        assert got.status_code == 409
        assert "takes no pause, continue or one-cell stop from afar" in got.json()["error"]
        got = client.post(f"/api/runs/{going}/control", headers=headers,
                          json={"action": "stop", "who": "pat"})
        assert got.status_code == 409 and "operator role" in got.json()["error"]
        got = client.post(f"/api/runs/{done}/control", headers=headers,
                          json={"action": "stop", "who": "pat"})
        assert got.status_code == 409 and "nothing to stop" in got.json()["error"]
        assert lab.run(going)["status"] == "running"

    # the rest in a real browser, on `cellseq dashboard --db` as an operator; where no
    # browser can be had, the stop goes through the same web layer without one
    try:
        browser = request.getfixturevalue("browser")
    except pytest.skip.Exception:
        _stop_through_the_api(lab, going, monkeypatch)
        raise
    _in_a_browser(browser, lab, done, going)
    lab.wait(lambda: lab.sql("SELECT status::text FROM procrastinate_jobs WHERE id = %s",
                             (job,)) == [("aborted",)], 30, "the job to end aborted")


def _stop_through_the_api(lab, going: str, monkeypatch) -> None:
    """An operator's dashboard stops the run through the lab's cancel: every output off."""
    with _client(lab, f"{lab.name}_op", monkeypatch) as client:
        got = client.post(f"/api/runs/{going}/control", headers={TOKEN_HEADER: TOKEN},
                          json={"action": "stop", "who": "quinn"})
        assert got.status_code == 202, got.text
        assert "its station was asked to stop the run" in got.json()["answer"]
        lab.wait(lambda: lab.run(going)["status"] == "cancelled", 60, "the run to be cancelled")
        assert lab.sql("SELECT message FROM lab_events WHERE run_id = %s AND kind ="
                       " 'cancel_requested'", (going,)) == \
            [("cancelled by quinn (testclient) from the dashboard",)]


def test_cellseq_dashboard_db_refuses_a_database_it_cannot_reach(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sequencer", "dashboard", "--db",
         f"postgresql://nobody@/x?host={tmp_path}&port=1", "--port", "0"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith(("PG", "CELLSEQ_LAB"))})
    assert result.returncode == 2, result.stderr
    assert "cannot reach lab 'lab'" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "-m", "sequencer", "dashboard", "--db",
                             "postgresql://x@h/d", str(tmp_path)], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2 and "not both" in result.stderr


def _in_a_browser(browser, lab, done: str, going: str) -> None:  # noqa: F811
    op = f"{lab.name}_op"
    env = {**lab.env(), "PGPASSWORD": lab.passwords[op]}
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "sequencer", "dashboard", "--db", lab.url(op), "--port", "0"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: d.accept())
    try:
        ready, _, _ = select.select([dashboard.stdout], [], [], 120)
        assert ready, "the dashboard printed nothing"
        line = dashboard.stdout.readline()
        assert "cellseq dashboard: 2 runs at http://127.0.0.1:" in line, line
        url = line.split(" at ", 1)[1].strip()
        page.goto(url)
        page.wait_for_selector("body[data-painted=overview]", state="attached")
        for run in (done, going):
            page.locator(f"section[data-run='{run}']").wait_for()
        assert page.locator(f"section[data-run='{done}'] [data-status]").inner_text() == \
            "completed"
        assert "station st-2" in page.locator(f"section[data-run='{going}'] h2").inner_text()
        cell = f"section[data-run='{going}'] tr[data-cell='ncm-a']"
        t_first = page.locator(cell).locator("td.num").nth(4).inner_text()
        page.wait_for_function(
            "([sel, t]) => document.querySelector(sel).querySelectorAll('td.num')[4]"
            ".textContent !== t", arg=[cell, t_first], timeout=WAIT_MS)

        # a cell's pause is refused, visibly; the run's stop is the lab's cancel
        page.locator(cell).locator("button[data-action=pause]").click()
        page.wait_for_function("() => document.querySelector('#notice').textContent.includes("
                               "'takes no pause')", timeout=WAIT_MS)
        assert lab.run(going)["status"] == "running"
        page.locator(f"section[data-run='{going}'] h2 button[data-action=stop]").click()
        page.wait_for_function("() => document.querySelector('#notice').textContent.includes("
                               "'asked to stop the run')", timeout=WAIT_MS)
        lab.wait(lambda: lab.run(going)["status"] == "cancelled", 60, "the run to be cancelled")
        assert lab.sql("SELECT message FROM lab_events WHERE run_id = %s AND kind ="
                       " 'cancel_requested'", (going,)) == \
            [("cancelled by someone (127.0.0.1) from the dashboard",)]
        page.wait_for_function(
            f"() => document.querySelector(\"section[data-run='{going}'] [data-status]\")"
            ".dataset.status === 'cancelled'", timeout=WAIT_MS)

        # a cell page of a lab run plots it
        page.goto(f"{url.split('/?')[0]}/#/run/{done}/cell/ncm811-1")
        page.wait_for_selector("body[data-painted=cell]", state="attached")
        assert page.locator(".chart canvas").count() >= 3
        assert errors == []
    finally:
        context.close()
        dashboard.send_signal(signal.SIGINT)
        try:
            dashboard.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            dashboard.kill()
            dashboard.communicate()
