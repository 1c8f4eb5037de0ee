"""Station workers on one PostgreSQL, the less travelled paths: a job that needs only kinds of
instrument going only to the stations that can run it (two workers with different instruments
each run only what they can), and a job cancelled while its station's worker is gone, or gone
for good. A cancelled or orphaned job shows as such in ``cellseq lab status``, never as
completed."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from sequencer.status import run_status

from .lab_server import LONG
from .test_lab_workers import local_points, operator, stations_up, submitted

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the tests stop workers with SIGINT")

#: A station with a cycler that stops at 4.0 V: it has the kind of instrument LONG needs, and
#: cannot place LONG's cell (charged to 4.3 V, limited at 4.45 V).
LOW = """\
station: {name}
instruments:
  cycler-1: {{driver: sim.cycler, channels: 4, options: {{max_voltage_V: 4.0}}}}
cells:
  other: {{instrument: cycler-1, channel: 3}}
"""


def submitted_line(result) -> tuple[int, str]:
    """The job id and run id ``cellseq lab submit`` printed (after its notes)."""
    assert result.exit_code == 0, result.output
    words = next(line for line in result.output.splitlines() if line.startswith("job ")).split()
    return int(words[1].rstrip(":")), words[3]


def _alive(pid: int) -> bool:
    from sequencer.lab.job import _alive as alive  # a zombie is not alive

    return alive(pid)


def _job(lab, job: int) -> str:
    return lab.sql("SELECT status::text FROM procrastinate_jobs WHERE id = %s", (job,))[0][0]


#: LONG within the low station's reach: charged to 3.9 V, limited at 3.95 V.
GENTLE = LONG.replace("max_voltage: 4.45 V", "max_voltage: 3.95 V").replace(
    "until_voltage: 4.3 V", "until_voltage: 3.9 V").replace("lab-long", "lab-gentle")


def _jobs_of(lab, run: str) -> dict[int, tuple[str, str]]:
    """Every queue job of a run: id -> (queue, status)."""
    return {i: (q, st) for i, q, st in lab.sql(
        "SELECT id, queue_name, status::text FROM procrastinate_jobs WHERE args->>'run_id' = %s",
        (run,))}


def test_a_needs_job_goes_only_to_stations_that_can_run_it(lab, tmp_path):
    cellseq = operator(lab)
    logins = {s: lab.login(f"{lab.name}_{k}", "station") for k, s in enumerate(("low", "st-2"))}
    lab.start_worker("low", logins["low"], LOW)
    lab.start_worker("st-2", logins["st-2"])
    lab.wait(lambda: stations_up(lab, "low", "st-2"), 60, "both stations to join")
    # long enough that st-2 is still busy with it when the gentle job comes
    (tmp_path / "long.yaml").write_text(LONG.format(count=1500))
    (tmp_path / "gentle.yaml").write_text(GENTLE.format(count=3))

    # both have a cycler; only st-2 reaches 4.3 V: the job is queued for st-2's class alone
    result = cellseq("lab", "submit", tmp_path / "long.yaml")
    job, run = submitted_line(result)
    said = " ".join(result.output.split())
    assert "stations that cannot run it (it is not queued for them): low" in said
    (queue, _), = _jobs_of(lab, run).values()
    assert queue.startswith(f"{lab.name}/k/")
    lab.wait(lambda: lab.run(run)["status"] == "running", 60, "st-2 to start it")
    assert lab.run(run)["station"] == "st-2"

    # a job both can run is queued for both classes; st-2 is busy, so low runs it, once
    result = cellseq("lab", "submit", tmp_path / "gentle.yaml")
    gentle_job, gentle = submitted_line(result)
    assert "queued for 2 classes of station" in " ".join(result.output.split())
    assert len(_jobs_of(lab, gentle)) == 2 and gentle_job in _jobs_of(lab, gentle)
    lab.wait(lambda: lab.run(gentle)["status"] == "completed", 90, "low to run the gentle one")
    record = lab.run(gentle)
    assert record["station"] == "low" and record["refused_by"] == []
    jobs = _jobs_of(lab, gentle)
    assert jobs[record["job_id"]][1] == "succeeded"   # the job that ran it is the run's job
    assert [st for i, (_, st) in jobs.items() if i != record["job_id"]] == ["cancelled"]
    assert not lab.run_dir("st-2", gentle).exists() and not (
        lab.folder / "runs" / "st-2" / ".lab" / gentle).exists()

    lab.wait(lambda: lab.run(run)["status"] == "completed", 120, "st-2 to end the long one")
    # and again, with low idle: still only st-2 runs it
    job2, run2 = submitted_line(cellseq("lab", "submit", tmp_path / "long.yaml"))
    lab.wait(lambda: lab.run(run2)["status"] == "completed", 120, "st-2 to run it")
    for r in (run, run2):
        assert lab.run(r)["station"] == "st-2" and lab.run(r)["refused_by"] == []
        assert r not in lab.worker_log("low"), "low never fetched it"
        assert lab.points(r) == local_points(lab.run_dir("st-2", r)) > 0
    assert "passed on" not in lab.worker_log("low")
    assert _job(lab, job) == _job(lab, job2) == "succeeded"

    # every station that can run it is gone: the job waits, and lab status says so
    lab.stop_workers()
    lab.start_worker("low", logins["low"], LOW)
    job3, run3 = submitted_line(cellseq("lab", "submit", tmp_path / "long.yaml"))
    lab.sql("UPDATE stations SET seen = now() - interval '1 hour' WHERE name = 'st-2'")
    time.sleep(3)   # low polls its queues: it must not take it
    assert lab.run(run3)["status"] == "queued" and _job(lab, job3) == "todo"
    assert run3 not in lab.worker_log("low")
    st = json.loads(cellseq("lab", "status", "--json").output)
    assert any(f"job {job3} " in p and "none of those is live: st-2 (silent for 60 min)" in p
               for p in st["problems"]), st["problems"]


def _station_gone_mid_run(lab, tmp_path):
    """st-1 starts a long run, then its worker dies (the station PC drops off the network);
    the run's process, a session of its own, goes on. Returns the operator's command, the
    station's login, the job, the run and the run's pid."""
    cellseq = operator(lab)
    login = lab.login(f"{lab.name}_1", "station")
    worker = lab.start_worker("st-1", login)
    lab.wait(lambda: stations_up(lab, "st-1"), 60, "the station to join")
    # a run far longer than the test: it must still be going when its station comes back
    (tmp_path / "long.yaml").write_text(LONG.format(count=25000))
    job, run = submitted(cellseq("lab", "submit", tmp_path / "long.yaml", "--station", "st-1"))
    lab.wait(lambda: lab.points(run) > 0, 60, "the first points in the record")
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    return cellseq, login, job, run, lab.run_pid("st-1", run)


def test_a_job_cancelled_while_its_station_is_gone_shows_so_and_stops_when_it_returns(
        lab, tmp_path):
    cellseq, login, job, run, pid = _station_gone_mid_run(lab, tmp_path)
    assert _alive(pid)
    lab.sql("UPDATE stations SET seen = now() - interval '1 hour' WHERE name = 'st-1'")

    result = cellseq("lab", "cancel", str(job))
    said = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert re.search(r"station st-1 has not reported for 36[0-9][0-9] s", said), said
    assert "nothing confirms the run has stopped" in said and "cancelling" in said
    st = json.loads(cellseq("lab", "status", "--json").output)
    shown = {r["run_id"]: r for r in st["runs"]}[run]
    assert shown["state"] == "cancelling (station gone)" and shown["job"] == "doing"
    assert [p for p in st["problems"] if f"job {job} " in p and "was cancelled" in p
            and "nothing confirms its outputs are off" in p]
    text = " ".join(cellseq("lab", "status").output.split())
    assert f"job {job} {run} cancelling (station gone) on st-1" in text
    assert "completed" not in text
    lab.sql("DELETE FROM stations WHERE name = 'st-1'")   # and taken out of the lab
    st = json.loads(cellseq("lab", "status", "--json").output)
    assert any("station st-1 is not registered in the lab" in p for p in st["problems"])
    assert _alive(pid), "nothing stops a run while no worker of its station runs"

    # the station's worker starts again: it stops the run, copies its rows, ends the job
    lab.start_worker("st-1", login)
    lab.wait(lambda: lab.run(run)["status"] == "cancelled", 90, "the run to be cancelled")
    assert "its run was stopped with every output off" in lab.run(run)["message"]
    assert not _alive(pid)
    assert run_status(lab.run_dir("st-1", run))["status"] == "interrupted"
    # the record says cancelled first, then the queue is told
    lab.wait(lambda: _job(lab, job) == "aborted", 30, "the job to end aborted")
    assert lab.points(run) == local_points(lab.run_dir("st-1", run))
    assert "was cancelled while no worker ran it" in lab.worker_log("st-1")
    shown = {r["run_id"]: r for r in json.loads(cellseq("lab", "status", "--json").output)
             ["runs"]}[run]
    assert shown["state"] == "cancelled"

    # a run that ended while a dropped connection kept its job's end from the queue: the
    # station's worker ends the job as the record says the run ended
    (lost_job,) = lab.sql("INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)"
                          " VALUES (%s, 'cellseq.run', '{}', 'doing') RETURNING id",
                          (f"{lab.name}/s/st-1",))[0]
    lab.sql("INSERT INTO runs (run_id, job_id, campaign, protocol, seed, station, status,"
            " started, ended) VALUES ('unheard', %s, 'c', 'p.yaml', 0, 'st-1', 'completed',"
            " now() - interval '2 min', now() - interval '1 min')", (lost_job,))
    lab.wait(lambda: _job(lab, lost_job) == "succeeded", 60, "the worker to end the job")
    assert "which the queue had not heard" in lab.worker_log("st-1")


def test_a_cancel_whose_station_never_answers_ends_as_station_lost_after_the_lab_s_time_out(
        lab, tmp_path):
    cellseq, login, job, run, pid = _station_gone_mid_run(lab, tmp_path)
    lab.sql("UPDATE lab_settings SET value = '3.0' WHERE key = 'station_timeout_s'")
    lab.sql("UPDATE stations SET seen = now() - interval '1 hour' WHERE name = 'st-1'")

    assert cellseq("lab", "cancel", str(job)).exit_code == 0
    st = json.loads(cellseq("lab", "status", "--json").output)
    assert st["ended_now"] == []   # the station has the lab's time-out to confirm
    assert {r["run_id"]: r for r in st["runs"]}[run]["state"] == "cancelling (station gone)"
    assert any(f"job {job} " in p and "the job ends as station lost" in p
               for p in st["problems"]), st["problems"]
    time.sleep(3.5)
    st = json.loads(cellseq("lab", "status", "--json").output)   # an operator's status ends it
    assert [line.split(":")[0] for line in st["ended_now"]] == \
        [f"job {job} (run {run}) ended station_lost"]
    shown = {r["run_id"]: r for r in st["runs"]}[run]
    assert shown["state"] == "cancelled (station lost)" and shown["job"] == "aborted"
    assert "nothing confirms the run's outputs are off" in shown["message"]
    assert any(f"job {job} " in p and "without its station st-1 confirming" in p
               for p in st["problems"])
    assert _job(lab, job) == "aborted" and lab.run(run)["ended"] is not None
    text = " ".join(cellseq("lab", "status").output.split())
    assert f"job {job} {run} cancelled (station lost) on st-1" in text
    assert json.loads(cellseq("lab", "status", "--json").output)["ended_now"] == []  # once

    # the station comes back after all: its worker stops the run it had left going
    assert _alive(pid)
    lab.start_worker("st-1", login)
    lab.wait(lambda: lab.run(run)["status"] == "cancelled", 90, "the worker to stop it")
    assert not _alive(pid)
    assert run_status(lab.run_dir("st-1", run))["status"] == "interrupted"
    assert "it is stopped now" in lab.worker_log("st-1")
    st = json.loads(cellseq("lab", "status", "--json").output)
    assert not [p for p in st["problems"] if f"job {job} " in p]


def test_a_worker_stopped_while_the_database_is_away_leaves_and_its_next_one_finishes(
        lab, tmp_path):
    cellseq = operator(lab)
    login = lab.login(f"{lab.name}_1", "station")
    worker = lab.start_worker("st-1", login)
    lab.wait(lambda: stations_up(lab, "st-1"), 60, "the station to join")
    # long enough (a few seconds of dry run) that it is still going once the database has
    # been taken away: 40 cycles could end, and be copied, in between
    (tmp_path / "long.yaml").write_text(LONG.format(count=2000))
    job, run = submitted(cellseq("lab", "submit", tmp_path / "long.yaml", "--station", "st-1"))
    lab.wait(lambda: lab.points(run) > 0, 60, "the first points in the record")
    lab.sql(f"ALTER ROLE {login} NOLOGIN")
    lab.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
            (login,))
    run_dir = lab.run_dir("st-1", run)
    lab.wait(lambda: run_status(run_dir)["status"] == "completed", 90, "the run to end")
    worker.send_signal(signal.SIGINT)   # Ctrl-C, the database still away
    worker.wait(timeout=90)   # it leaves: the copy's last word waits in the run store
    assert lab.run(run)["status"] == "running"
    lab.sql(f"ALTER ROLE {login} LOGIN")
    lab.start_worker("st-1", login)
    lab.wait(lambda: lab.run(run)["status"] == "completed", 90, "the next worker to end it")
    assert lab.points(run) == local_points(run_dir)
    lab.wait(lambda: _job(lab, job) == "succeeded", 60, "the job to succeed")


def test_a_job_submitted_before_a_station_that_can_run_it_joins_runs_once_when_two_join(
        lab, tmp_path):
    """Submitted while only a station that cannot place it is up: accepted, waiting. Two
    stations of a class that can run it then join at once: the run is queued once for their
    class and runs once, on one of them; the station that cannot place it runs nothing."""
    cellseq = operator(lab)
    logins = {s: lab.login(f"{lab.name}_{k}", "station")
              for k, s in enumerate(("low", "st-2", "st-3"))}
    lab.start_worker("low", logins["low"], LOW)
    lab.wait(lambda: stations_up(lab, "low"), 60, "low to join")
    (tmp_path / "long.yaml").write_text(LONG.format(count=3))
    result = cellseq("lab", "submit", tmp_path / "long.yaml")
    job, run = submitted_line(result)
    said = " ".join(result.output.split())
    assert "warning: no station of lab" in said and "low: " in said, said
    assert lab.run(run)["status"] == "queued"
    lab.wait(lambda: f"run {run} waits for a station that can run it; this one cannot:" in
             lab.worker_log("low"), 60,
             "low to look at the waiting job")
    for station in ("st-2", "st-3"):
        lab.start_worker(station, logins[station])
    lab.wait(lambda: lab.run(run)["status"] == "completed", 120, "a joining station to run it")
    ran_on = lab.run(run)["station"]
    assert ran_on in ("st-2", "st-3")
    jobs = _jobs_of(lab, run)
    assert jobs[job] == (f"{lab.name}/w", "cancelled")   # the waiting job ends with the start
    routed = {i: v for i, v in jobs.items() if i != job}
    assert len(routed) == 1, jobs   # one job for the class, however many of it joined
    (routed_job, (queue, status)), = routed.items()
    assert queue.startswith(f"{lab.name}/k/") and status == "succeeded"
    assert lab.run(run)["job_id"] == routed_job
    assert lab.points(run) == local_points(lab.run_dir(ran_on, run)) > 0
    other = "st-3" if ran_on == "st-2" else "st-2"
    assert not lab.run_dir(other, run).exists() and not lab.run_dir("low", run).exists()
    assert f"run {run} (job " in lab.worker_log(ran_on)


@pytest.mark.skipif(not os.path.exists("/proc/self/cmdline"), reason="reads /proc")
def test_a_run_process_an_earlier_worker_started_is_waited_for_before_it_holds_its_folder(
        tmp_path):
    """A worker killed just after starting a run's process leaves that process starting up,
    not yet holding the run directory's lock: the next worker waits for it rather than
    start a second run or resume beside it. A pid in run.pid now given to another program
    is not waited for."""
    import asyncio
    import subprocess
    import sys
    import types

    from sequencer.lab.job import WORK, JobRun

    said: list[str] = []

    async def link(fn, *args):
        return 0

    worker = types.SimpleNamespace(runs_root=tmp_path, say=said.append, link=link,
                                   db_errors=(OSError,), stopping=False,
                                   database_up=lambda copied=0: None,
                                   database_down=lambda exc: None)
    job = JobRun(worker, "r1")
    job.work.mkdir(parents=True)
    assert job.work == tmp_path / WORK / "r1"
    # an earlier worker's `cellseq resume <run_dir>`, still importing (no lock, no folder)
    starting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)",
                                 str(job.run_dir)])
    try:
        (job.work / "run.pid").write_text(str(starting.pid))
        assert job._earlier_process() == starting.pid
        asyncio.run(job._settled())
        assert starting.poll() is not None, "a second process would have raced it"
        assert any("still running in a process of an earlier worker" in s for s in said)
    finally:
        starting.kill()
        starting.wait()
    assert job._earlier_process() is None   # ended
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (job.work / "run.pid").write_text(str(other.pid))   # the pid reused by another program
        assert job._earlier_process() is None
    finally:
        other.kill()
        other.wait()
