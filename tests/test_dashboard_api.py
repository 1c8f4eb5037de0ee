"""The dashboard's web layer through Starlette's test client: what each URL gives, that no URL
reaches a file outside the served runs, unknown ids, and tokens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the dashboard extra is not installed")
pytest.importorskip("httpx2", reason="Starlette's test client needs httpx2")

from starlette.testclient import TestClient

from analysis.report import make_report
from sequencer.controls import control_dir, read_request
from sequencer.dashboard import local
from sequencer.dashboard.app import TOKEN_COOKIE, TOKEN_HEADER, Access, build_app
from sequencer.dashboard.local import LocalRuns
from sequencer.locks import hold_run_dir
from sequencer.runner import run_simulated

from .conftest import QUICKSTART

TOKEN = "t0ken-for-tests"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A folder with the quickstart's dry run and its report, and a file beside it."""
    root = tmp_path_factory.mktemp("runs")
    run_simulated(QUICKSTART, root / "quick", seed=3)
    make_report(root / "quick")
    (root / "secret.txt").write_text("not a run's")
    return root


@pytest.fixture
def client(runs):
    app = build_app(LocalRuns([], runs), Access(TOKEN, pages_need_token=False))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def test_the_runs_cells_and_their_data(client, runs):
    listed = client.get("/api/runs").json()["runs"]
    assert [(r["id"], r["status"], r["live"]) for r in listed] == [("quick", "completed",
                                                                     False)]
    ov = client.get("/api/runs/quick").json()
    cells = {c["cell"]: c for c in ov["cells"]}
    assert set(cells) == {"aiose-blocking-1", "ncm811-1"}
    assert cells["ncm811-1"]["state"] == "completed" and cells["ncm811-1"]["cycle"] == 3
    s = client.get("/api/runs/quick/cells/ncm811-1/series?width=300").json()
    v = s["traces"]["voltage_V"]
    assert not s["every_point"] and 0 < len(v["t"]) <= 600 and len(v["t"]) == len(v["y"])
    assert min(v["y"]) > 2.7 and max(v["y"]) < 4.4
    zoom = client.get(f"/api/runs/quick/cells/ncm811-1/series?width=2000&t0={v['t'][100]}"
                      f"&t1={v['t'][120]}").json()
    assert zoom["every_point"] and zoom["points_in_view"] > 0
    summary = json.loads((runs / "quick" / "report" / "summary.json").read_text())
    reported = {r["conditions"]["cycle"]: r["value"] for r in summary["results"]
                if r["quantity"] == "discharge_capacity"}
    cycles = client.get("/api/runs/quick/cells/ncm811-1/cycles").json()["cycles"]
    assert {c["cycle"]: pytest.approx(c["discharge_mAh_g"], rel=1e-9) for c in cycles} == \
        reported                      # the report's numbers, from the steps' counters
    assert all(c["complete"] for c in cycles)
    spectra = client.get("/api/runs/quick/cells/aiose-blocking-1/spectra?last=5").json()
    assert [round(sp["temperature_C"]) for sp in spectra["spectra"]] == [25, 60]
    results = client.get("/api/runs/quick/results").json()
    assert results["has_report"] and len(results["results"]) == len(summary["results"])
    figure = client.get(f"/api/runs/quick/figures/{results['figures'][0]}")
    assert figure.status_code == 200 and figure.content.startswith(b"\x89PNG")
    events = client.get("/api/runs/quick/events?after=-1&limit=2").json()["events"]
    assert [e["kind"] for e in events] == ["experiment_finished", "run_completed"]


def test_pages_and_the_vendored_plotting_library_are_served(client):
    import base64
    import hashlib
    import re

    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-encoding"] == "gzip"
    scripts = re.findall(r"<script>(.*?)</script>", page.text, re.S)
    assert len(scripts) == 2 and "uPlot" in scripts[0] and "cellPage" in scripts[1]
    # one response: the styles and scripts inline
    assert '<link rel="stylesheet"' not in page.text and "<style>" in page.text
    (csp,) = page.headers.get_list("content-security-policy")
    allowed = re.search(r"script-src ([^;]*);", csp)[1].split()
    assert "default-src 'self'" in csp and "'unsafe-inline'" not in allowed
    assert allowed[0] == "'self'" and sorted(allowed[1:]) == sorted(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in scripts)   # these scripts and no other inline one
    plain = client.get("/", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.text == page.text
    script = client.get("/static/vendor/uplot/uPlot.iife.min.js")
    assert script.status_code == 200 and "uPlot" in script.text
    assert "MIT" in client.get("/static/vendor/uplot/LICENSE").text


@pytest.mark.parametrize("url", [
    "/api/runs/nope", "/api/runs/nope/cells/x/series", "/api/runs/quick/cells/nope/series",
    "/api/runs/quick/cells/nope/cycles", "/api/runs/quick/events?cell=nope",
    "/api/runs/quick/figures/nope.png", "/api/stream?run=nope",
])
def test_unknown_runs_cells_and_figures_are_404(client, url):
    got = client.get(url)
    assert got.status_code == 404 and "error" in got.json()


@pytest.mark.parametrize("url", [
    "/static/../run.sqlite", "/static/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
    "/static/..%2f..%2f..%2fpyproject.toml", "/static//etc/passwd", "/static/%2fetc%2fpasswd",
    "/api/runs/..%2Fsecret.txt", "/api/runs/%2E%2E", "/api/runs/quick/figures/..%2Fsummary.json",
    "/api/runs/quick/figures/..%2F..%2Frun.sqlite", "/api/runs/quick/figures/%2Fetc%2Fpasswd",
    "/api/runs/quick/figures/fig001-x.png%00.txt", "/api/runs/quick/../quick/run.sqlite",
    "/quick/run.sqlite", "/api/runs/quick/cells/..%2F..%2Fsecret.txt/series",
])
def test_no_url_reaches_a_file_outside_the_served_runs(client, url):
    got = client.get(url)
    assert got.status_code in (400, 404, 405), (url, got.status_code)
    assert b"not a run's" not in got.content and b"SQLite format" not in got.content
    assert b"root:" not in got.content and b"[project]" not in got.content


def test_a_figure_that_is_a_link_out_of_the_report_is_refused(client, runs):
    figures = runs / "quick" / "report" / "figures"
    link = figures / "fig999-link.png"
    link.symlink_to(runs / "secret.txt")
    try:
        assert "fig999-link.png" not in client.get("/api/runs/quick/results").json()["figures"]
        assert client.get("/api/runs/quick/figures/fig999-link.png").status_code == 404
    finally:
        link.unlink()


@pytest.mark.parametrize(("query", "message"), [
    ("width=wide", "width must be a whole number"), ("width=5", "width must lie between"),
    ("t0=nan", "t0 must be a finite number"), ("t1=1e999", "t1 must be a finite number"),
])
def test_bad_parameters_are_400_with_the_reason(client, query, message):
    got = client.get(f"/api/runs/quick/cells/ncm811-1/series?{query}")
    assert got.status_code == 400 and message in got.json()["error"]


def test_controls_need_the_token_in_their_header(client, runs):
    body = {"action": "pause", "cell": "ncm811-1", "who": "ida"}
    url = "/api/runs/quick/control"
    assert client.post(url, json=body).status_code == 403
    assert client.post(url, json=body, headers={TOKEN_HEADER: "wrong"}).status_code == 403
    client.cookies.set(TOKEN_COOKIE, TOKEN)           # a cookie alone does not do
    assert client.post(url, json=body).status_code == 403
    client.cookies.clear()
    assert client.post(f"{url}?token={TOKEN}", json=body).status_code == 403
    # with the token: refused by the run, which no process holds
    got = client.post(url, json=body, headers={TOKEN_HEADER: TOKEN})
    assert got.status_code == 409 and "no process is running quick" in got.json()["error"]
    assert not control_dir(runs / "quick").exists()


def test_a_control_reaches_a_running_run_with_who_asked(client, runs):
    headers = {TOKEN_HEADER: TOKEN}
    with hold_run_dir(runs / "quick"):     # as a running `cellseq run` holds it
        bad = client.post("/api/runs/quick/control", headers=headers,
                          json={"action": "explode"})
        assert bad.status_code == 400 and "pause, continue or stop" in bad.json()["error"]
        unknown = client.post("/api/runs/quick/control", headers=headers,
                              json={"action": "pause", "cell": "nope"})
        assert unknown.status_code == 404
        got = client.post("/api/runs/quick/control", headers=headers,
                          json={"action": "stop", "cell": "ncm811-1", "who": "  jo  "})
        assert got.status_code == 202
    (path,) = control_dir(runs / "quick").iterdir()
    try:
        request = read_request(path)
        assert path.stem == got.json()["request"]
        assert (request.action, request.cell, request.who, request.address) == \
            ("stop", "ncm811-1", "jo", "testclient")
    finally:
        path.unlink()


def test_only_loopback_host_names_are_answered_on_loopback(client):
    assert client.get("/api/runs", headers={"host": "evil.example"}).status_code == 400
    assert client.get("/api/runs", headers={"host": "localhost:8765"}).status_code == 200


def test_beyond_loopback_every_page_needs_the_token(runs):
    app = build_app(LocalRuns([runs / "quick"]), Access(TOKEN, pages_need_token=True))
    with TestClient(app, base_url="http://192.0.2.7") as c:
        for url in ("/", "/api/runs", "/static/dashboard.js", "/api/runs/quick",
                    "/api/stream", "/api/runs/quick/figures/fig001-conductivity.png"):
            got = c.get(url)
            assert got.status_code == 401, url
            assert "needs its token" in got.json()["error"]
        assert c.get(f"/?token=wrong{TOKEN}").status_code == 401
        first = c.get(f"/?token={TOKEN}")
        assert first.status_code == 200
        assert f"{TOKEN_COOKIE}={TOKEN}" in first.headers["set-cookie"]
        assert "HttpOnly" in first.headers["set-cookie"]
        assert c.get("/api/runs").status_code == 200          # the cookie carries it on
        c.cookies.clear()
        assert c.get("/api/runs", headers={TOKEN_HEADER: TOKEN}).status_code == 200
        assert c.get("/api/runs").status_code == 401


def test_the_dashboard_command_refuses_what_it_cannot_serve(tmp_path, runs):
    import socket

    from typer.testing import CliRunner

    from sequencer.cli import app

    cli = CliRunner()
    got = cli.invoke(app, ["dashboard"])
    assert got.exit_code == 2 and "name run directories, or a folder of them" in got.output
    got = cli.invoke(app, ["dashboard", str(tmp_path)])
    assert got.exit_code == 2 and "is not a cellseq run directory" in got.output
    got = cli.invoke(app, ["dashboard", "--runs", str(tmp_path / "nowhere")])
    assert got.exit_code == 2 and "not a folder" in got.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        got = cli.invoke(app, ["dashboard", str(runs / "quick"), "--port", str(port)])
    assert got.exit_code == 2 and f"cannot serve on 127.0.0.1:{port}" in got.output
    assert "Traceback" not in got.output


def test_a_long_runs_first_view_is_read_over_several_requests_each_answering_at_once(
        runs, monkeypatch):
    """Each request reads what its budget allows and answers with what is read so far,
    marked incomplete; cycles are not counted from part of the points."""
    whole = LocalRuns([], runs)
    want_series = whole.series("quick", "ncm811-1", None, None, 300)
    want_cycles = whole.cycles("quick", "ncm811-1")
    assert want_series.complete and want_cycles.complete and want_cycles.rows
    monkeypatch.setattr(local, "READ_CHUNKS", 2)
    monkeypatch.setattr(local, "READ_BUDGET_S", 0.0)
    monkeypatch.setattr(local, "FIRST_READ_BUDGET_S", 0.0)
    source = LocalRuns([], runs)
    first = source.series("quick", "ncm811-1", None, None, 300)
    assert not first.complete and first.points_total == want_series.points_in_view
    assert 0 < first.points_in_view < first.points_total
    assert first.t_last_s == pytest.approx(want_series.t_last_s)   # the axis: the whole run
    cycles = source.cycles("quick", "ncm811-1")
    assert not cycles.complete and cycles.rows == []
    assert 0 < cycles.points_read < cycles.points_total == first.points_total
    views = [source.series("quick", "ncm811-1", None, None, 300) for _ in range(400)]
    assert not all(v.complete for v in views) and views[-1].complete
    done = views[-1]
    assert done.points_in_view == want_series.points_in_view and done.points_total is None
    for q, trace in want_series.traces.items():
        assert np.array_equal(done.traces[q].t_s, trace.t_s)
        assert np.array_equal(done.traces[q].y, trace.y)
    counted = [source.cycles("quick", "ncm811-1") for _ in range(400)]
    got = counted[-1]
    assert got.complete and (got.points_read, got.points_total) == \
        (want_cycles.points_read, want_cycles.points_total)
    # each read's chunks of a step are summed together (numpy's pairwise sums): where the
    # reads split a step's chunks elsewhere, a capacity may differ in its last bit
    assert [(r.cycle, r.complete) for r in got.rows] == \
        [(r.cycle, r.complete) for r in want_cycles.rows]
    for row, want in zip(got.rows, want_cycles.rows, strict=True):
        for name in ("charge_Ah", "discharge_Ah", "coulombic_efficiency", "charge_mAh_g",
                     "discharge_mAh_g"):
            assert getattr(row, name) == pytest.approx(getattr(want, name), rel=1e-12), name


def test_a_run_begun_after_the_dashboard_started_is_found_when_asked_for(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(local, "RESCAN_S", 1e6)     # the folder's periodic look: not yet
    source = LocalRuns([], tmp_path)
    assert source.runs() == []
    run_simulated(QUICKSTART, tmp_path / "later", seed=3)
    assert source.overview("later").run.status == "completed"   # not 5 s later: at once


def test_a_dashboard_no_page_listens_to_reads_nothing(runs, monkeypatch):
    import time

    from sequencer.dashboard import app as web

    monkeypatch.setattr(web, "TICK_S", 0.02)
    asked: list[str] = []

    class Counted(LocalRuns):
        def version(self, run_id: str) -> tuple[object, ...]:
            asked.append(run_id)
            return super().version(run_id)

    with TestClient(build_app(Counted([], runs), Access(TOKEN, False)),
                    base_url="http://127.0.0.1") as c:
        assert c.get("/api/runs/quick").status_code == 200
        time.sleep(0.3)
    assert asked == []


@pytest.mark.parametrize("window", [(None, None), (3600.0, 7200.0), (100.0, 160.0)])
def test_views_from_the_points_kept_in_memory_equal_views_read_from_the_store(
        runs, monkeypatch, window):
    t0, t1 = window
    widths = (40, 300, 4000)
    monkeypatch.setattr(local, "KEEP_POINTS", 10 ** 9)
    kept = LocalRuns([], runs)
    from_memory = [kept.series("quick", "ncm811-1", t0, t1, w) for w in widths]
    assert kept._run("quick")._points["ncm811-1"].kept is not None
    monkeypatch.setattr(local, "KEEP_POINTS", 0)   # none kept: every view reads the store
    read = LocalRuns([], runs)
    for a, w in zip(from_memory, widths, strict=True):
        b = read.series("quick", "ncm811-1", t0, t1, w)
        assert a.points_in_view == b.points_in_view and a.every_point == b.every_point
        for q, trace in b.traces.items():
            assert np.array_equal(a.traces[q].t_s, trace.t_s)
            assert np.array_equal(a.traces[q].y, trace.y)
    assert read._run("quick")._points["ncm811-1"].kept is None


def test_a_source_made_in_the_background_answers_once_made_or_says_why_not(runs):
    from sequencer.dashboard.loading import LoadingSource
    from sequencer.dashboard.source import SourceError

    made = LoadingSource(lambda: LocalRuns([runs / "quick"]))
    made.start()
    assert [r.id for r in made.runs()] == ["quick"]
    assert made.overview("quick").run.status == "completed"
    made.close()

    def refuse() -> LocalRuns:
        raise SourceError("the runs' folder went away")

    failed = LoadingSource(refuse)
    failed.start()
    with pytest.raises(SourceError, match="the runs' folder went away"):
        failed.overview("quick")
    failed.close()
    LoadingSource(refuse).close()   # never started: nothing to wait for

    def break_down() -> LocalRuns:
        raise OSError("the disk went away")

    broken = LoadingSource(break_down)
    broken.start()
    with pytest.raises(SourceError, match="OSError: the disk went away"):
        broken.runs()


def test_the_event_stream_sends_each_runs_overview_as_json(runs):
    from sequencer.dashboard import app as web

    hub = web.Hub(LocalRuns([runs / "quick"]))
    assert hub._poll()
    sent = json.loads("{" + ",".join(f"{json.dumps(r)}:{t}" for r, t in hub.encoded.items())
                      + "}")
    assert sent["quick"]["run"]["id"] == "quick"
    want = LocalRuns([runs / "quick"]).overview("quick")
    assert [c["cell"] for c in sent["quick"]["cells"]] == [c.cell for c in want.cells]
    assert not hub._poll()   # nothing changed: nothing new to send


def test_the_quick_start_reads_the_usual_command_lines_and_leaves_the_rest_to_the_cli():
    from sequencer.dashboard.start import LocalArgs, parse_quick

    assert parse_quick(["a", "b", "--port", "0", "--host=::1"]) == \
        LocalArgs([Path("a"), Path("b")], None, "::1", 0)
    assert parse_quick(["--runs", "r"]) == LocalArgs([], Path("r"), "127.0.0.1", 8765)
    for argv in ([], ["--help"], ["a", "--db", "postgresql://x"], ["--lab", "x"], ["a", "-p"],
                 ["a", "--port"], ["a", "--port", "70000"], ["a", "--port", "x"],
                 ["a", "--port", "1", "--port", "2"], ["--", "a"], ["a", ""]):
        assert parse_quick(argv) is None, argv


def _dashboard_process(*args: str):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-X", "importtime", "-m", "sequencer",
                             "dashboard", *args], cwd=Path(__file__).resolve().parents[1],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_the_dashboard_on_local_runs_starts_without_the_full_command_line(runs):
    """The address is printed, and the runs served, with no typer or rich loaded; the same
    address and token lines as ever."""
    import signal
    import urllib.request

    proc = _dashboard_process(str(runs / "quick"), "--port", "0")
    try:
        line = proc.stdout.readline()
        assert line.startswith("cellseq dashboard: 1 run at http://127.0.0.1:"), line
        url = line.split(" at ", 1)[1].strip()
        token = url.split("token=")[1]
        assert proc.stdout.readline().startswith(f"token: {token} (pause, continue and stop")
        assert proc.stdout.readline().startswith("Ctrl-C stops the dashboard; the runs go on")
        with urllib.request.urlopen(url.split("/?")[0] + "/api/runs", timeout=60) as got:
            assert [r["id"] for r in json.loads(got.read())["runs"]] == ["quick"]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    imported = {line.split("|")[-1].strip() for line in err.splitlines()
                if line.startswith("import time:")}
    assert "uvicorn" in imported and "numpy" in imported   # the imports were seen
    assert {"typer", "rich", "sequencer.cli"} & imported == set()


def test_a_dashboard_command_line_the_quick_start_cannot_serve_is_refused_by_the_cli(tmp_path):
    proc = _dashboard_process(str(tmp_path))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "is not a cellseq run directory" in err
    assert "Traceback" not in err
