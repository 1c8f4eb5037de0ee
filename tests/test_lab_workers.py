"""Station workers in processes of their own, on one PostgreSQL: sharing a queue, a station
PC that crashes mid-run, the database cut mid-run, a cancel. Each worker logs in with its own
station role and password; every run is a dry run of a few seconds."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from sequencer.cli import app
from store import RunStore

from .lab_server import LONG, QUICKSTART

runner = CliRunner()
pytestmark = pytest.mark.skipif(os.name == "nt", reason="the tests stop workers with SIGINT")


def operator(lab) -> dict[str, str]:
    """Run ``cellseq`` as the lab's operator (its password from the environment)."""
    name = f"{lab.name}_op"
    if name not in lab.passwords:
        lab.login(name, "operator")
    env = {"PGPASSWORD": lab.passwords[name], "CELLSEQ_LAB": lab.name,
           "CELLSEQ_LAB_DB": lab.url(name)}

    def cellseq(*args: object):
        result = runner.invoke(app, [str(a) for a in args], env=env)
        return result
    return cellseq


def submitted(result) -> tuple[int, str]:
    assert result.exit_code == 0, result.output
    words = result.output.split()
    return int(words[1].rstrip(":")), words[3]


def stations_up(lab, *names: str) -> bool:
    rows = lab.sql("SELECT name FROM stations")
    return {r[0] for r in rows} >= set(names)


def local_points(run_dir) -> int:
    store = RunStore.open(run_dir)
    try:
        return store.point_count()
    finally:
        store.close()


def no_point_twice(lab, run_id: str, tmp_path) -> None:
    """The record holds each point once: no (step, test time) of a cell twice, and every
    step's points in time order, in the run rebuilt from the record."""
    from sequencer.lab.record import rebuild

    with psycopg.connect(lab.admin().conninfo, autocommit=True) as conn:
        rebuild(conn, lab.admin(), run_id, tmp_path / f"copy-{run_id}")
    store = RunStore.open(tmp_path / f"copy-{run_id}")
    try:
        for cell in store.cells():
            data = store.read(cell)
            keys = set(zip(data["step_count"].tolist(), data["test_time_s"].tolist(),
                           strict=True))
            assert len(keys) == len(data["test_time_s"]), f"{cell}: a point twice"
            for step in np.unique(data["step_count"]):
                t = data["test_time_s"][data["step_count"] == step]
                assert np.all(np.diff(t) > 0), f"{cell} step {step}: points out of order"
    finally:
        store.close()


def test_two_workers_take_jobs_from_one_queue(lab, tmp_path):
    cellseq = operator(lab)
    for station in ("st-1", "st-2"):
        lab.start_worker(station, lab.login(f"{lab.name}_{station[-1]}", "station"))
    lab.wait(lambda: stations_up(lab, "st-1", "st-2"), 60, "both stations to join")
    jobs = [submitted(cellseq("lab", "submit", QUICKSTART, "--seed", str(seed)))
            for seed in (1, 2)]

    def done() -> bool:
        return all(lab.run(run)["status"] == "completed" for _, run in jobs)
    lab.wait(done, 90, "both runs to complete")
    ran_on = {lab.run(run)["station"] for _, run in jobs}
    assert ran_on == {"st-1", "st-2"}, "each worker took one of the two jobs"
    st = json.loads(cellseq("lab", "status", "--json").output)
    shown = {r["run_id"]: r for r in st["runs"]}
    for _, run in jobs:
        assert shown[run]["job"] == "succeeded" and shown[run]["status"] == "completed"
        station = lab.run(run)["station"]
        assert shown[run]["points"] == local_points(lab.run_dir(station, run)) > 0
        result = cellseq("report", run, "--lab", lab.name, "--copy-dir", tmp_path / run)
        assert result.exit_code == 0, result.output
        summary = json.loads((tmp_path / run / "report" / "summary.json").read_text())
        assert summary["run"]["status"] == "completed"
        assert any(r["quantity"] == "ionic_conductivity" for r in summary["results"])
    assert st["problems"] == []

    # no password reaches a run directory, the job's folder or the lab record
    secrets = [p.encode() for p in lab.passwords.values()]
    for path in (lab.folder / "runs").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s in data for s in secrets), f"a password in {path}"
    tables = [r[0] for r in lab.sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        (f"cellseq_{lab.name}",))]
    assert "run_chunks" in tables and "procrastinate_jobs" in tables
    for table in tables:
        for (text,) in lab.sql(f"SELECT t::text FROM {table} t"):
            assert not any(s.decode() in text for s in secrets), f"a password in {table}"

    # the station validates again: a job its own station file cannot run is refused there
    lab.sql("UPDATE stations SET station = jsonb_set(station, '{cells,ncm-z}',"
            " '{\"instrument\": \"cycler-1\", \"channel\": 5}') WHERE name = 'st-2'")
    (tmp_path / "z.yaml").write_text(LONG.format(count=3).replace("ncm-a", "ncm-z"))
    job, run = submitted(cellseq("lab", "submit", tmp_path / "z.yaml", "--station", "st-2"))
    lab.wait(lambda: lab.run(run)["status"] == "refused", 30, "the station to refuse it")
    assert "does not validate on station st-2" in lab.run(run)["message"]
    assert "ncm-z" in lab.run(run)["message"]
    assert not lab.run_dir("st-2", run).exists()   # nothing ran
    assert lab.sql("SELECT status::text FROM procrastinate_jobs WHERE id = %s", (job,)) == \
        [("failed",)]


def test_a_crashed_station_resumes_its_job_and_no_other_station_takes_it(lab, tmp_path):
    cellseq = operator(lab)
    logins = {s: lab.login(f"{lab.name}_{s[-1]}", "station") for s in ("st-1", "st-2")}
    # st-1 paces its dry runs (about 14 s for this one), so the run is still going when the
    # station is killed, however fast an unpaced dry run gets: a run that had ended before the
    # kill would have nothing to resume (the restarted worker keeps the same pace)
    first = lab.start_worker("st-1", logins["st-1"], options=("--speed", "5e4"))
    lab.start_worker("st-2", logins["st-2"])
    lab.wait(lambda: stations_up(lab, "st-1", "st-2"), 60, "both stations to join")
    (tmp_path / "long.yaml").write_text(LONG.format(count=100))
    job, run = submitted(cellseq("lab", "submit", tmp_path / "long.yaml", "--station", "st-1"))
    lab.wait(lambda: lab.points(run) > 0, 60, "the first points in the record")
    # the station PC crashes: its worker and the run die, without a word. Two kills are not
    # one crash: the worker dies first (and is reaped), so that it never sees its run die.
    # Killed the other way round, a live worker may see the run's process die in between and
    # resume it (as it should: test_a_worker_with_speed_paces_its_dry_runs_and_their_resumes),
    # counting a resume and starting a process the test does not know of
    pid = lab.run_pid("st-1", run)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    os.kill(pid, signal.SIGKILL)
    from sequencer.lab.job import _alive
    from sequencer.locks import run_dir_in_use
    from sequencer.status import run_status

    # a signal is delivered when the kernel gets to it, and a process's threads end one by
    # one: its main thread may already be a zombie (not alive) while another, still ending,
    # holds the run directory's lock a moment longer. Nothing else can take the lock (the
    # worker is dead), so both are waited for
    lab.wait(lambda: not _alive(pid) and not run_dir_in_use(lab.run_dir("st-1", run)), 30,
             "the killed run's process to be gone and its lock released")

    output = lab.folder / "runs" / "st-1" / ".lab" / run / "output.log"
    assert run_status(lab.run_dir("st-1", run))["status"] == "interrupted", \
        "a process still works in the run: the run ended before the station was killed, or" \
        f" the killed worker had started another (process {pid} was killed; run.pid says" \
        f" {lab.run_pid('st-1', run)})\n{lab.worker_log('st-1')}\n{output.read_text()[-3000:]}"
    assert "resuming" not in lab.worker_log("st-1"), "the killed worker had resumed the run"
    assert lab.run(run)["resumes"] == 0
    assert lab.run(run)["status"] == "running"
    assert lab.sql("SELECT status::text FROM procrastinate_jobs WHERE id = %s", (job,)) == \
        [("doing",)]
    lab.start_worker("st-1", logins["st-1"], options=("--speed", "5e4"))
    lab.wait(lambda: lab.run(run)["status"] == "completed", 90, "the run to complete")
    record = lab.run(run)
    assert record["station"] == "st-1" and record["resumes"] == 1
    assert "taking it back to resume it" in lab.worker_log("st-1")
    assert run not in lab.worker_log("st-2")
    assert not lab.run_dir("st-2", run).exists()
    run_dir = lab.run_dir("st-1", run)
    store = RunStore.open(run_dir)
    kinds = [e["kind"] for e in store.events()]
    store.close()
    assert "run_resumed" in kinds
    assert lab.points(run) == local_points(run_dir)
    no_point_twice(lab, run, tmp_path)


def test_the_database_cut_mid_run_loses_and_doubles_nothing(lab, tmp_path):
    cellseq = operator(lab)
    login = lab.login(f"{lab.name}_1", "station")
    # paced (about 14 s for the first run), so the outage and the cancel land mid-run however
    # fast an unpaced dry run has become
    lab.start_worker("st-1", login, options=("--speed", "5e4"))
    lab.wait(lambda: stations_up(lab, "st-1"), 60, "the station to join")
    (tmp_path / "long.yaml").write_text(LONG.format(count=100))
    job, run = submitted(cellseq("lab", "submit", tmp_path / "long.yaml"))
    lab.wait(lambda: lab.points(run) > 0, 60, "the first points in the record")
    # the database goes away for the station: every connection dropped, logins refused
    lab.sql(f"ALTER ROLE {login} NOLOGIN")
    lab.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
            (login,))
    in_record = lab.points(run)
    run_dir = lab.run_dir("st-1", run)
    lab.wait(lambda: local_points(run_dir) > in_record + 5000, 60, "the run to go on")
    assert lab.points(run) == in_record, "nothing reaches the record during the outage"
    lab.wait(lambda: "lab database unreachable" in lab.worker_log("st-1"), 30,
             "the worker to say so")
    lab.sql(f"ALTER ROLE {login} LOGIN")
    lab.wait(lambda: lab.run(run)["status"] == "completed", 120, "the run to complete")
    assert lab.points(run) == local_points(run_dir)
    for table in ("steps", "events"):
        assert lab.sql(f"SELECT count(*) FROM run_{table} WHERE run_id = %s", (run,))[0][0] == \
            len(getattr(RunStore.open(run_dir), table)())
    no_point_twice(lab, run, tmp_path)
    assert "lab database reachable again" in lab.worker_log("st-1")
    lab.wait(lambda: lab.sql("SELECT status::text FROM procrastinate_jobs WHERE id = %s",
                             (job,)) == [("succeeded",)], 60, "the job to succeed")

    # and a cancel stops a running run with every output off
    (tmp_path / "longer.yaml").write_text(LONG.format(count=3000))
    job, run = submitted(cellseq("lab", "submit", tmp_path / "longer.yaml"))
    lab.wait(lambda: lab.points(run) > 0, 60, "the second run's first points")
    result = cellseq("lab", "cancel", str(job))
    assert result.exit_code == 0 and "asked to stop the run" in result.output
    lab.wait(lambda: lab.run(run)["status"] == "cancelled", 60, "the run to be cancelled")
    from sequencer.status import run_status

    st = run_status(lab.run_dir("st-1", run))
    assert st["status"] == "interrupted"
    assert lab.sql("SELECT status::text FROM procrastinate_jobs WHERE id = %s", (job,)) == \
        [("aborted",)]
    assert lab.points(run) == local_points(lab.run_dir("st-1", run))


def test_the_database_dropped_as_a_job_ends_leaves_a_clean_log_and_the_job_ended(lab, tmp_path):
    cellseq = operator(lab)
    login = lab.login(f"{lab.name}_1", "station")
    lab.start_worker("st-1", login)
    lab.wait(lambda: stations_up(lab, "st-1"), 60, "the station to join")
    (tmp_path / "short.yaml").write_text(LONG.format(count=10))
    job, run = submitted(cellseq("lab", "submit", tmp_path / "short.yaml"))
    lab.wait(lambda: lab.run(run)["status"] == "running", 60, "the run to start")
    # the queue's row of the job held, so that telling the queue the job ended waits; then the
    # database drops the station's connections just then, and refuses it a while
    with psycopg.connect(lab.admin().conninfo) as hold:
        hold.execute("SELECT id FROM procrastinate_jobs WHERE id = %s FOR UPDATE", (job,))
        lab.wait(lambda: lab.run(run)["status"] == "completed", 60, "the run to end")
        time.sleep(1.0)
        lab.sql(f"ALTER ROLE {login} NOLOGIN")
        lab.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (login,))
        hold.rollback()
    lab.wait(lambda: "lab database unreachable" in lab.worker_log("st-1"), 30,
             "the worker to say the database is away")
    time.sleep(2.0)
    lab.sql(f"ALTER ROLE {login} LOGIN")
    lab.wait(lambda: lab.sql("SELECT status::text FROM procrastinate_jobs WHERE id = %s",
                             (job,)) == [("succeeded",)], 30, "the job's end to reach the queue")
    lab.stop_workers()   # a task nobody awaited reports its error when it is collected
    log = lab.worker_log("st-1")
    assert "Task exception was never retrieved" not in log and "Traceback" not in log, log
    assert "lab database reachable again" in log
    assert lab.run(run)["resumes"] == 0 and log.count(f"run {run}: completed") == 1


def test_a_worker_with_speed_paces_its_dry_runs_and_their_resumes(lab, tmp_path):
    """``lab worker --speed X``: the station's dry runs (and a run resumed after its process
    died) go at X simulated seconds per wall second, as ``run --sim --speed`` does."""
    cellseq = operator(lab)
    lab.start_worker("st-1", lab.login(f"{lab.name}_1", "station"), options=("--speed", "5e4"))
    lab.wait(lambda: stations_up(lab, "st-1"), 60, "the station to join")
    (tmp_path / "long.yaml").write_text(LONG.format(count=80))   # about 500 000 s: 10 s
    _, run = submitted(cellseq("lab", "submit", tmp_path / "long.yaml"))
    lab.wait(lambda: lab.points(run) > 0, 60, "the first points in the record")
    pid = lab.run_pid("st-1", run)
    os.kill(pid, signal.SIGSTOP)   # frozen: its store says where it is
    store = RunStore.open(lab.run_dir("st-1", run))
    try:
        status = store.meta_value("status")
    finally:
        store.close()
    assert status == "running", "the run had ended before it was killed: it was not paced"
    os.kill(pid, signal.SIGKILL)   # the run's process dies under its live worker
    lab.wait(lambda: lab.run(run)["status"] == "completed", 120, "the run to complete")
    run_dir = lab.run_dir("st-1", run)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["speed"] == 5e4 and manifest["mode"] == "simulated"
    assert lab.run(run)["resumes"] == 1
    store = RunStore.open(run_dir)
    try:
        kinds = [e["kind"] for e in store.events()]
        last_t = max(s["last"]["t"] for s in store.cell_states())
    finally:
        store.close()
    assert "run_resumed" in kinds
    # paced: the run took about its simulated time over the speed (at least that)
    started = dt.datetime.fromisoformat(lab.run(run)["started"])
    ended = dt.datetime.fromisoformat(lab.run(run)["ended"])
    assert (ended - started).total_seconds() >= last_t / 5e4 * 0.9
    assert lab.points(run) == local_points(run_dir)


def test_speed_is_refused_for_a_station_of_instruments(tmp_path):
    station = tmp_path / "bench.yaml"
    station.write_text("station: bench\ninstruments:\n  smu: {driver: keithley2450, address:"
                       ' "TCPIP0::192.0.2.9::inst0::INSTR"}\ncells:\n  ncm-1: {instrument: smu,'
                       " channel: 0}\n")
    result = runner.invoke(app, ["lab", "worker", "--station", str(station), "--db",
                                 "postgresql://st@db.example/lab", "--speed", "100"])
    assert result.exit_code == 2
    assert "--speed paces dry runs" in " ".join(result.output.split())
