"""The lab's settings, roles, submission, record copy and rebuild, in this process (the tests
with worker processes are in test_lab_workers.py)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from sequencer.cli import app
from sequencer.export import export_run
from sequencer.lab.record import rebuild
from sequencer.lab.replicate import Replica, ReplicaConflict
from sequencer.lab.settings import LabError, lab_db
from sequencer.runner import RunDirError, resume_run, run_simulated
from store import RunStore

from .lab_server import LONG, QUICKSTART

runner = CliRunner()


def cellseq(*args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    """A finished dry run of the quickstart (a station's run directory)."""
    run_dir = tmp_path_factory.mktemp("qs") / "run"
    run_simulated(QUICKSTART, run_dir, seed=3)
    return run_dir


# -- credentials ---------------------------------------------------------------------------

def test_a_password_on_the_command_line_is_refused(monkeypatch):
    monkeypatch.delenv("CELLSEQ_LAB_DB", raising=False)
    with pytest.raises(LabError, match=r"^--db: a password on the command line is visible"):
        lab_db("postgresql://st:secret@db.example/lab")
    monkeypatch.setenv("CELLSEQ_LAB_DB", "postgresql://st:secret@db.example/lab")
    assert "secret" in lab_db(None).conninfo   # from the environment it is fine
    assert "secret" not in lab_db(None).where


def test_a_credential_file_readable_by_others_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("CELLSEQ_LAB_DB", raising=False)
    url = tmp_path / "lab-url"
    url.write_text("postgresql://st:secret@db.example/lab\n")
    url.chmod(0o644)
    monkeypatch.setenv("CELLSEQ_LAB_DB_FILE", str(url))
    with pytest.raises(LabError, match=r"readable by others \(mode 0644\); run: chmod 600"):
        lab_db(None)
    url.chmod(0o600)
    assert lab_db(None).lab == "lab"
    pgpass = tmp_path / "pgpass"
    pgpass.write_text("*:*:*:st:secret\n")
    pgpass.chmod(0o640)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    with pytest.raises(LabError, match=r"pgpass holds a database password and is readable"):
        lab_db(None)


def test_no_database_given_says_what_to_give(monkeypatch):
    for name in ("CELLSEQ_LAB_DB", "CELLSEQ_LAB_DB_FILE"):
        monkeypatch.delenv(name, raising=False)
    result = cellseq("lab", "status")
    assert result.exit_code == 2
    assert "no lab database given: use --db URL" in result.output


def test_an_unreachable_database_exits_2_with_where_and_why():
    result = cellseq("lab", "status", "--db", "postgresql://st@127.0.0.1:9/lab")
    assert result.exit_code == 2, result.output
    assert "cannot reach lab 'lab' at st@127.0.0.1:9/lab" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_single_station_commands_do_not_load_the_lab():
    code = ("import sys, sequencer.cli; bad = [m for m in sys.modules if m.split('.')[0] in"
            " ('psycopg', 'procrastinate', 'pgserver')]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# -- roles ----------------------------------------------------------------------------------

def test_a_station_login_has_only_what_a_station_needs(lab, pg):
    other = type(lab)(pg, lab.name[:-1] + "x", lab.folder)   # a second lab on the server
    with psycopg.connect(other.admin().conninfo, autocommit=True) as conn:
        from sequencer.lab.schema import init_lab
        init_lab(conn, other.admin(), 600)
    other.sql("INSERT INTO runs (run_id, campaign, protocol, seed, status) VALUES"
              " ('theirs', 'c', 'p.yaml', 0, 'queued')")
    st = lab.login(f"{lab.name}_st", "station")
    reader = lab.login(f"{lab.name}_rd", "reader")
    with psycopg.connect(lab_db(lab.url(st), lab.name).conninfo, autocommit=True,
                         password=lab.passwords[st]) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)
        for forbidden in (f"SELECT * FROM cellseq_{other.name}.runs",
                          f"SELECT * FROM cellseq_{other.name}.procrastinate_jobs",
                          "INSERT INTO runs (run_id, campaign, protocol, seed, status) VALUES"
                          " ('x', 'c', 'p.yaml', 0, 'queued')",    # submitting is not its job
                          "INSERT INTO procrastinate_jobs (queue_name, task_name, args) VALUES"
                          " ('q', 'cellseq.run', '{}')", "DELETE FROM procrastinate_jobs",
                          "DELETE FROM run_chunks", "TRUNCATE run_events",
                          "CREATE TABLE mine (a int)", "UPDATE runs SET seed = 1",
                          "INSERT INTO run_files VALUES ('x', 'a', ''::bytea, '')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(forbidden)
    with psycopg.connect(lab_db(lab.url(reader), lab.name).conninfo, autocommit=True,
                         password=lab.passwords[reader]) as conn:
        assert conn.execute("SELECT count(*) FROM run_chunks").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE runs SET status = 'x'")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(lab_db(lab.url(st), lab.name).conninfo, password="guess")


# -- submitting ------------------------------------------------------------------------------

def _register(lab, name: str, seen_ago_s: float = 0.0) -> None:
    """A station as its worker registers it (without a worker)."""
    from sequencer.station import load_station

    record = load_station(lab.station_file(name)).model_dump(mode="json", exclude_none=True)
    lab.sql("INSERT INTO stations (name, kinds, station, host, pid, started, seen) VALUES"
            " (%s, %s, %s, 'pc', 1, now(), now() - make_interval(secs => %s))",
            (name, ["chamber", "cycler", "potentiostat"], json.dumps(record), seen_ago_s))


def _queued(lab) -> int:
    return lab.sql("SELECT (SELECT count(*) FROM procrastinate_jobs)"
                   " + (SELECT count(*) FROM runs)")[0][0]


def test_submit_refuses_what_cannot_run(lab, tmp_path):
    db = ["--db", lab.admin_url, "--lab", lab.name]
    result = cellseq("lab", "submit", QUICKSTART, "--station", "nowhere", *db)
    assert result.exit_code == 2
    assert "has no station 'nowhere' (no station has joined yet)" in result.output
    _register(lab, "st-1")
    bad = tmp_path / "bad.yaml"
    bad.write_text(QUICKSTART.read_text().replace("0.1C", "0.1 parsec"))
    result = cellseq("lab", "submit", bad, *db)
    assert result.exit_code == 2 and "bad.yaml:" in result.output, result.output
    result = cellseq("lab", "submit", QUICKSTART, "--needs", "cycler", *db)
    assert result.exit_code == 2
    assert "needs a chamber and a potentiostat" in " ".join(result.output.split())
    (tmp_path / "other.yaml").write_text(LONG.format(count=3).replace("ncm-a", "ncm-z"))
    result = cellseq("lab", "submit", tmp_path / "other.yaml", "--station", "st-1", *db)
    assert result.exit_code == 2
    assert "cells ncm-z have no instrument channel in station 'st-1'" in result.output
    assert _queued(lab) == 0   # nothing queued by any of them
    result = cellseq("lab", "submit", QUICKSTART, "--station", "st-1", *db)
    assert result.exit_code == 0, result.output
    assert _queued(lab) == 2


def test_a_station_gone_too_long_is_reported_and_its_job_stays(lab):
    db = ["--db", lab.admin_url, "--lab", lab.name]
    _register(lab, "st-1", seen_ago_s=3600)
    _register(lab, "st-2")
    assert cellseq("lab", "submit", QUICKSTART, "--station", "st-1", *db).exit_code == 0
    result = cellseq("lab", "status", "--json", *db)
    st = json.loads(result.output)
    gone = {s["name"]: s["gone"] for s in st["stations"]}
    assert gone == {"st-1": True, "st-2": False}
    assert len(st["problems"]) == 1
    assert "waits for station st-1 to start it, and st-1 has been silent for 60 min" in \
        st["problems"][0]
    assert "it is not moved to another station" in st["problems"][0]
    queue = lab.sql("SELECT queue_name, status::text FROM procrastinate_jobs")
    assert queue == [(f"{lab.name}/s/st-1", "todo")]
    result = cellseq("lab", "status", *db)
    assert "attention:" in result.output and "st-1 has been silent" in result.output


def test_cancel_a_queued_job(lab):
    db = ["--db", lab.admin_url, "--lab", lab.name]
    _register(lab, "st-1")
    out = cellseq("lab", "submit", QUICKSTART, *db).output
    job = out.split()[1].rstrip(":")
    result = cellseq("lab", "cancel", job, *db)
    assert result.exit_code == 0 and "cancelled before it started" in result.output
    assert lab.sql("SELECT status::text FROM procrastinate_jobs") == [("cancelled",)]
    assert lab.sql("SELECT status FROM runs") == [("cancelled",)]
    result = cellseq("lab", "cancel", job, *db)
    assert result.exit_code == 2 and "has already ended" in result.output
    assert cellseq("lab", "cancel", "no-such-run", *db).exit_code == 2


# -- the copy to the record, and back -------------------------------------------------------

def _record_run(lab, run_id: str) -> None:
    lab.sql("INSERT INTO runs (run_id, campaign, protocol, seed, status, station, started)"
            " VALUES (%s, 'quickstart', 'quickstart.yaml', 3, 'running', 'st-1', now())",
            (run_id,))


def test_the_copy_holds_every_row_once_and_sending_again_changes_nothing(lab, quickstart_run):
    _record_run(lab, "r1")
    store = RunStore.open(quickstart_run)
    with psycopg.connect(lab.admin().conninfo, autocommit=True) as conn:
        replica = Replica("r1", quickstart_run, batch=7)   # many small batches
        replica.sync(conn)
        assert replica.resent == 0
        assert replica.points_inserted == store.point_count() > 0
        chunks = conn.execute("SELECT id, cell, n, data FROM run_chunks WHERE run_id = 'r1'"
                              " ORDER BY id").fetchall()
        local = store.rows_after("chunks", 0, 10**6)
        assert [(c[0], c[1], c[2], bytes(c[3])) for c in chunks] == \
            [(r["id"], r["cell"], r["n"], r["data"]) for r in local]
        steps = conn.execute("SELECT id, ended_t, end_reason, params FROM run_steps WHERE"
                             " run_id = 'r1' ORDER BY id").fetchall()
        assert steps == [(r["id"], r["ended_t"], r["end_reason"], r["params"])
                         for r in store.rows_after("steps", 0, 10**6)]
        assert conn.execute("SELECT count(*) FROM run_events WHERE run_id = 'r1'").fetchone() \
            == (len(store.events()),)
        assert dict(conn.execute("SELECT key, value FROM run_meta WHERE run_id = 'r1'")) == \
            {k: json.dumps(v) for k, v in store.meta().items() if k != "sim_snapshot"}
        # a worker that died after its commit sends everything again: one row each still
        again = Replica("r1", quickstart_run, batch=50)
        again._load_marks = lambda conn: {"steps": 0, "chunks": 0, "events": 0}
        assert again.sync(conn) == 0
        assert again.resent == len(local) + len(steps) + len(store.events()) + \
            len(store.cells()) + len(store.meta()) - 1
        assert conn.execute("SELECT count(*), sum(n) FROM run_chunks WHERE run_id = 'r1'"
                            ).fetchone() == (len(local), store.point_count())
        # a store whose committed rows changed under the same ids is refused, loudly
        conn.execute("UPDATE run_chunks SET t_last = t_last + 1 WHERE run_id = 'r1' AND id = 3")
        changed = Replica("r1", quickstart_run)
        changed._load_marks = lambda conn: {"steps": 0, "chunks": 0, "events": 0}
        with pytest.raises(ReplicaConflict, match=r"holds chunks \[3\] with other data"):
            changed.sync(conn)
    store.close()


def test_report_and_export_from_the_record_match_the_station(lab, quickstart_run, tmp_path):
    _record_run(lab, "r2")
    with psycopg.connect(lab.admin().conninfo, autocommit=True) as conn:
        Replica("r2", quickstart_run).sync(conn)
        lab.sql("UPDATE runs SET status = 'completed' WHERE run_id = 'r2'")
    copy = tmp_path / "copy"
    db = ["--db", lab.admin_url, "--lab", lab.name, "--copy-dir", copy]
    result = cellseq("export", "r2", *db)
    assert result.exit_code == 0, result.output
    mine = export_run(quickstart_run, "csv", tmp_path / "station-export")
    assert mine.paths
    for path in mine.paths:
        assert (copy / "export" / path.name).read_bytes() == path.read_bytes()
    result = cellseq("report", "r2", *db)
    assert result.exit_code == 0, result.output
    summary = json.loads((copy / "report" / "summary.json").read_text())
    assert summary["run"]["status"] == "completed"
    assert {r["quantity"] for r in summary["results"]} >= {"ionic_conductivity",
                                                           "discharge_capacity"}
    with pytest.raises(RunDirError, match=r"no manifest\.json"):   # for reading, not resuming
        resume_run(copy)
    with psycopg.connect(lab.admin().conninfo, autocommit=True) as conn, \
            pytest.raises(LabError, match="is not a copy rebuilt from the lab record"):
        rebuild(conn, lab.admin(), "r2", quickstart_run)
    assert cellseq("report", "nope", *db).exit_code == 2


def test_a_run_still_running_reads_as_running(lab, tmp_path):
    run_dir = tmp_path / "long"
    (tmp_path / "long.yaml").write_text(LONG.format(count=3))
    run_simulated(tmp_path / "long.yaml", run_dir, seed=1)
    _record_run(lab, "r3")
    with psycopg.connect(lab.admin().conninfo, autocommit=True) as conn:
        Replica("r3", run_dir).sync(conn)
        conn.execute("DELETE FROM run_steps WHERE run_id = 'r3' AND id > 2")
        conn.execute("DELETE FROM run_chunks WHERE run_id = 'r3' AND step_id > 2")
        status = rebuild(conn, lab.admin(), "r3", tmp_path / "copy")
    assert status == "running"
    copy = RunStore.open(tmp_path / "copy")
    series = copy.read("ncm-a")
    assert len(series["test_time_s"]) > 0 and np.all(np.diff(series["test_time_s"]) >= 0)
    assert set(series["step_count"]) == {1, 2}   # the steps the record holds so far
    copy.close()
    result = cellseq("report", "r3", "--db", lab.admin_url, "--lab", lab.name, "--copy-dir",
                     tmp_path / "copy")
    assert result.exit_code == 0
    assert "run running" in result.output


def test_submit_with_needs_no_station_meets_is_accepted_to_wait_and_says_so(lab, tmp_path):
    """A lab queues work before the station that will run it is set up: the job is accepted
    with a warning, waits in no station's queue, and ``lab status`` says what it waits for."""
    db = ["--db", lab.admin_url, "--lab", lab.name]
    result = cellseq("lab", "submit", QUICKSTART, *db)   # no station has joined at all
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "warning: no station of lab" in said and "none has a chamber and a cycler and a" \
        " potentiostat (no station has joined yet)" in said, said
    assert "waits until a station that can run it joins" in said
    assert "(none can run it yet: it waits for one to join)" in said
    job = int(re.search(r"job (\d+): run \S+ queued", result.output)[1])
    assert lab.sql("SELECT queue_name, status::text FROM procrastinate_jobs") == \
        [(f"{lab.name}/w", "todo")]
    st = json.loads(cellseq("lab", "status", "--json", *db).output)
    assert [p for p in st["problems"] if f"job {job} " in p and "waits for a station that"
            " can run it to join" in p], st["problems"]
    assert cellseq("lab", "cancel", str(job), *db).exit_code == 0   # withdrawn as any job
    assert lab.sql("SELECT status FROM runs") == [("cancelled",)]


def test_a_class_that_joins_later_gets_a_waiting_job_once(lab, tmp_path):
    """``route``: a station's login queues a waiting --needs run for its class, once (again:
    nothing), never a run withdrawn or started, and still may not queue work of its own."""
    from sequencer.lab.queue import capability_class, class_queue, route, waiting_for
    from sequencer.station import load_station

    db = ["--db", lab.admin_url, "--lab", lab.name]
    (tmp_path / "long.yaml").write_text(LONG.format(count=3))
    run, withdrawn = (re.search(r"job \d+: run (\S+) queued", cellseq(
        "lab", "submit", tmp_path / "long.yaml", *db).output)[1] for _ in range(2))
    assert cellseq("lab", "cancel", withdrawn, *db).exit_code == 0
    queue = class_queue(lab.name, capability_class(load_station(lab.station_file("st-1"))))
    st = lab.login(f"{lab.name}_st", "station")
    with psycopg.connect(lab_db(lab.url(st), lab.name).conninfo, autocommit=True,
                         password=lab.passwords[st]) as conn:
        assert waiting_for(conn, ["cycler"], queue) == [(run, "long.yaml", True)]
        assert waiting_for(conn, ["potentiostat"], queue) == []   # not a kind it needs
        first = route(conn, run, queue)
        assert first is not None and route(conn, run, queue) is None   # once per class
        assert route(conn, withdrawn, queue) is None
        assert waiting_for(conn, ["cycler"], queue) == []
        with pytest.raises(psycopg.errors.RaiseException, match="not a class's queue"):
            route(conn, run, f"{lab.name}/s/st-1")
    jobs = lab.sql("SELECT queue_name, status::text FROM procrastinate_jobs WHERE"
                   " args->>'run_id' = %s ORDER BY id", (run,))
    assert jobs == [(f"{lab.name}/w", "todo"), (queue, "todo")]
    lab.sql("UPDATE runs SET station = 'st-1', started = now(), status = 'running' WHERE"
            " run_id = %s", (run,))
    lab.sql("UPDATE procrastinate_jobs SET status = 'cancelled' WHERE id = %s", (first,))
    with psycopg.connect(lab_db(lab.url(st), lab.name).conninfo, autocommit=True,
                         password=lab.passwords[st]) as conn:
        assert route(conn, run, queue) is None   # started: it never moves


# -- the dashboard of the lab --------------------------------------------------------------

def test_the_lab_dashboard_polls_every_run_in_a_few_statements_and_sees_each_change(
        lab, monkeypatch):
    """Each poll of a lab's dashboard reads what every run shown is doing in a few
    statements, however many runs there are (not two or more a run), and still shows the
    one run that changed, as it now is."""
    from sequencer.dashboard import lab as dashboard
    from sequencer.dashboard.app import Hub

    _register(lab, "st-1")
    runs = [f"r-{k:02d}" for k in range(30)]
    for k, run_id in enumerate(runs):
        lab.sql("INSERT INTO runs (run_id, campaign, protocol, seed, status, station, started,"
                " submitted) VALUES (%s, 'c', 'p.yaml', 0, 'running', 'st-1', now(),"
                " now() - make_interval(secs => %s))", (run_id, 100 - k))
        for key, value in (("manifest", {"campaign": "c", "mode": "simulated"}),
                           ("cells", {"a": {}, "b": {}})):
            lab.sql("INSERT INTO run_meta VALUES (%s, %s, %s)", (run_id, key, json.dumps(value)))
        for cell in ("a", "b"):
            lab.sql("INSERT INTO run_cell_state (run_id, cell, state, experiment, step_count,"
                    " checkpoint, last, updated_t) VALUES (%s, %s, 'running', 'e', 3, '{}',"
                    " %s, 10.0)", (run_id, cell, json.dumps({"t": 5.0, "voltage_V": 3.5})))
    for k in range(3):   # queued: nothing of them in the record yet
        lab.sql("INSERT INTO runs (run_id, campaign, protocol, seed, status, needs) VALUES"
                " (%s, 'c', 'p.yaml', 0, 'queued', '{cycler}')", (f"q-{k}",))
    source = dashboard.LabRuns(lab.admin())
    sent: list[str] = []
    rows = source.record.rows

    def counted(query, args=()):
        sent.append(query)
        return rows(query, args)

    monkeypatch.setattr(source.record, "rows", counted)
    hub = Hub(source)
    try:
        hub._poll()
        assert len(sent) <= 3, sent   # versions, the changed runs' cell states, (the list)
        assert set(hub.encoded) == {*runs, "q-0", "q-1", "q-2"}
        shown = json.loads(hub.encoded["r-07"])
        assert [(c["cell"], c["state"], c["voltage_V"]) for c in shown["cells"]] == \
            [("a", "running", 3.5), ("b", "running", 3.5)]
        assert json.loads(hub.encoded["q-1"])["cells"] == []

        lab.sql("UPDATE run_cell_state SET state = 'completed', updated_t = 11.0, last = %s"
                " WHERE run_id = 'r-07' AND cell = 'a'", (json.dumps({"t": 6.0,
                                                                       "voltage_V": 4.2}),))
        before = dict(hub.versions)
        sent.clear()
        source._read_at = -math.inf   # the list read again too, as every 2 s
        source._versions_at = -math.inf   # a second later: the versions are read again
        hub._due.clear()              # every run looked at
        assert hub._poll()
        # the list, the meta of the runs lacking it (the queued), versions, changed cells
        assert len(sent) <= 4, sent
        assert [r for r in hub.versions if hub.versions[r] != before[r]] == ["r-07"]
        shown = json.loads(hub.encoded["r-07"])
        assert [(c["cell"], c["state"], c["voltage_V"]) for c in shown["cells"]] == \
            [("a", "completed", 4.2), ("b", "running", 3.5)]
        # a page's own request of one run is served as before
        overview = source.overview("r-07")
        assert [c.state for c in overview.cells] == ["completed", "running"]
    finally:
        source.close()
