"""A lab of many stations on one PostgreSQL: one campaign spread over them, with station PCs
crashing and database connections dropped at random.

    python benchmarks/lab_scale.py [--stations 50] [--jobs 100] [--crashes 8] [--drops 8]
                                   [--speed 40000]
    python benchmarks/lab_scale.py --stations 6 --jobs 12 --crashes 2 --drops 2   # quick

One PostgreSQL (pgserver's, started here); ``--stations`` workers (``cellseq lab worker``, a
process each, each with its own station login and password); a campaign of ``--jobs`` jobs
(cycling protocols of 60 to 300 cycles, and quickstarts with impedance and a chamber), most
submitted for any station with the instruments they need, one in ten bound to one station.
While it runs, ``--crashes`` times a random station PC crashes mid-run: its worker and its
run are SIGKILLed, and its worker starts again a few seconds later, as after a reboot. A crash
must cut a run, so it aims at a run whose store says ``running`` (never one crashed before:
its resume, starting, finds the store still saying so), freezes the run's process (SIGSTOP)
and reads its store again: only a run whose store still says ``running`` is killed (a hit); one
that has just finished is let go (an attempt that missed), and another is tried later.
``--drops`` times the database drops connections (one station's, or every station's at once,
with ``pg_terminate_backend``).

The dry runs are paced (``cellseq lab worker --speed``, ``--speed`` simulated seconds per wall
second; 0: as fast as they can, in virtual time): unpaced, a dry run of 60-300 cycles lasts a
second or two of a job's fifteen or more (the run's process starting, and summing the run up
after it ended; the copy), so a crash aimed at a run whose process still ran mostly landed after
the run had ended, and left nothing to resume (1 resume for 8 crashes, in an earlier version of
this benchmark that did not check). Paced,
a run lasts tens of seconds, as the runs of a real lab last hours; the points it writes are the
same (the run compares each crashed run with an uninterrupted one). Ingest then measures the
pace; the record's own ingest (below) measures what the database takes.

The stations are in-process simulated ones (a dry run per job), not served
labs (``cellseq sim serve``): a served lab is a process of about 150 MB with a server thread per
instrument, and 50 of them beside 50 workers and 50 running runs (about 90 and 130 MB each)
would need some 18 GB and far more than two cores; the benchmark would then measure the
machine's starvation, not the lab. The workers, the queue, the copy to the record and the
failures are the real ones.

It prints:

- ingest: points the record took per second of the campaign (first start to last end);
- queue latency: submit to start, for jobs queued while a station was free (the first
  ``--stations``) and for all;
- duplicated points: points the record holds twice (chunks of a step whose times overlap);
- lost points: points a station's run store holds and the record does not;
- for every crashed run, its points against the same protocol run uninterrupted (a dry run
  resumed gives what an uninterrupted one gives);
- crash attempts against crashes that landed mid-run, and the jobs resumed, as the lab counts
  them (``runs.resumes``) and as the runs' own stores say (their ``run_resumed`` events): each
  crash that landed mid-run must be one resume of its run, by both counts;
- whether every job completed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sequencer.lab import embedded  # noqa: E402
from sequencer.lab.queue import make_app, submit  # noqa: E402
from sequencer.lab.replicate import Replica  # noqa: E402
from sequencer.lab.schema import add_user, init_lab  # noqa: E402
from sequencer.lab.settings import lab_db  # noqa: E402
from sequencer.runner import run_simulated  # noqa: E402
from store import RunStore  # noqa: E402

QUICKSTART = ROOT / "protocols" / "examples" / "quickstart.yaml"
STATION = """\
station: {name}
instruments:
  chamber-1: {{driver: sim.chamber}}
  vsp300-1: {{driver: sim.potentiostat, channels: 6}}
  cycler-1: {{driver: sim.cycler, channels: 16}}
cells:
  ncm-a: {{instrument: cycler-1, channel: 0}}
"""
CYCLING = """\
campaign: cycling-{k}
cells:
  - id: ncm-a
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {{material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}}
    limits: {{max_voltage: 4.45 V, min_voltage: 2.5 V, max_current: 5 mA}}
experiments:
  - name: cycling
    cells: [ncm-a]
    steps:
      - kind: loop
        count: {count}
        steps:
          - {{kind: constant_current, direction: charge, current: 1C, until_voltage: 4.3 V,
             record_every: 20 s}}
          - {{kind: constant_current, direction: discharge, current: 1C,
             until_voltage: 3.0 V, record_every: 20 s}}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stations", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--crashes", type=int, default=8)
    ap.add_argument("--drops", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--speed", type=float, default=40000.0,
                    help="simulated seconds per wall second of the stations' dry runs (0: as"
                         " fast as they can, in virtual time)")
    ap.add_argument("--timeout", type=float, default=3000, help="give up after (s)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="cellseq-lab-scale-"))
    print(f"working in {work}", flush=True)
    server = embedded.start(work / "pg", keep=False)
    try:
        embedded.set_max_connections(server, 100 + 6 * args.stations)
        embedded.require_passwords(server)
        Bench(server, work, args, rng).run()
    finally:
        server.cleanup()


class Bench:
    def __init__(self, server, work: Path, args: argparse.Namespace, rng: random.Random):
        self.server, self.work, self.args, self.rng = server, work, args, rng
        self.admin = lab_db(server.get_uri(), "scale")
        self.names = [f"st-{k:02d}" for k in range(1, args.stations + 1)]
        self.workers: dict[str, subprocess.Popen] = {}
        self.crashed: list[str] = []   # run ids of runs killed mid-run with their station
        self.attempts = 0              # crashes tried (a hit, or a run found finished)

    def sql(self, query: str, args: tuple = ()) -> list[tuple]:
        """The benchmark's own look at the record (a server busy with 50 stations may keep
        a new connection waiting past its time-out: tried again)."""
        for attempt in range(5):
            try:
                with psycopg.connect(self.admin.conninfo, autocommit=True,
                                     connect_timeout=30) as conn:
                    cur = conn.execute(query, args)
                    return cur.fetchall() if cur.description else []
            except psycopg.OperationalError:
                if attempt == 4:
                    raise
                time.sleep(2.0)
        return []

    def url(self, login: str) -> str:
        return self.server.get_uri().replace("postgres:@", f"{login}@")

    def run(self) -> None:
        with psycopg.connect(self.admin.conninfo, autocommit=True) as conn:
            init_lab(conn, self.admin, station_timeout_s=120)
            for name in ["op", *self.names]:
                add_user(conn, self.admin, _login(name), "operator" if name == "op" else
                         "station", self.work / "pgpass")
        for name in self.names:
            (self.work / f"{name}.yaml").write_text(STATION.format(name=name))
        t0 = time.perf_counter()
        for name in self.names:
            self.start(name)
        self.wait(lambda: len(self.sql("SELECT name FROM stations")) == len(self.names),
                  300, "every station to join")
        print(f"{len(self.names)} workers up in {time.perf_counter() - t0:.1f} s", flush=True)
        protocols = self.campaign()
        t_submit = time.perf_counter()
        os.environ.update(PGPASSFILE=str(self.work / "pgpass"))
        operator = lab_db(self.url(_login("op")), "scale")
        with psycopg.connect(operator.conninfo, autocommit=True) as conn, \
                make_app(operator).open() as app:
            for path, station, seed in protocols:
                submit(conn, operator, path, station=station, needs=None, seed=seed, app=app)
        print(f"{len(protocols)} jobs submitted in {time.perf_counter() - t_submit:.1f} s",
              flush=True)
        self.chaos()
        done = self.wait(self.finished, self.args.timeout, "every job to end", fail=False)
        self.report(done)
        for proc in self.workers.values():
            proc.send_signal(signal.SIGINT)
        for proc in self.workers.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()

    def campaign(self) -> list[tuple[Path, str | None, int]]:
        folder = self.work / "campaign"
        folder.mkdir()
        out = []
        for k in range(self.args.jobs):
            if k % 5 == 4:
                path = QUICKSTART
            else:
                path = folder / f"cycling-{k}.yaml"
                path.write_text(CYCLING.format(k=k, count=self.rng.randint(60, 300)))
            station = self.rng.choice(self.names) if k % 10 == 9 and path != QUICKSTART \
                else None
            out.append((path, station, k))
        return out

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CELLSEQ_LAB", "PG"))}
        env.update(PGPASSFILE=str(self.work / "pgpass"), CELLSEQ_LAB="scale",
                   CELLSEQ_LOCK_DIR=str(self.work / "locks"))
        return env

    def start(self, name: str) -> None:
        log = open(self.work / f"worker-{name}.log", "ab")   # noqa: SIM115 -- the worker's
        self.workers[name] = subprocess.Popen(
            [sys.executable, "-m", "sequencer", "lab", "worker", "--station",
             str(self.work / f"{name}.yaml"), "--db", self.url(_login(name)), "--runs",
             str(self.work / "runs" / name),
             *(["--speed", repr(self.args.speed)] if self.args.speed > 0 else [])],
            stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True)

    def chaos(self) -> None:
        """Crashes and dropped connections at random moments while jobs run."""
        events = ["crash"] * self.args.crashes + ["drop"] * self.args.drops
        self.rng.shuffle(events)
        restarts: list[tuple[float, str]] = []
        tries = 4 * self.args.crashes   # crash attempts, hits and misses, at most
        while events:
            event = events.pop(0)
            time.sleep(self.rng.uniform(2.0, 8.0))
            for when, name in [r for r in restarts if r[0] <= time.monotonic()]:
                restarts.remove((when, name))
                self.start(name)
            if self.finished():
                break
            if event == "crash":
                # a run that has copied points: the crash then has something to resume
                running = self.sql("SELECT run_id, station FROM runs r WHERE status ="
                                   " 'running' AND station IS NOT NULL AND EXISTS (SELECT 1"
                                   " FROM run_chunks c WHERE c.run_id = r.run_id)")
                # each crash cuts a run that has not been crashed yet: a run crashed before
                # is resumed by a process that, starting, finds its store still saying
                # "running" from the crash, and a crash then would cut the resume's start,
                # not a run (the lab counts the resume; the store never saw it begin)
                running = [r for r in running if r[1] not in {n for _, n in restarts}
                           and r[0] not in self.crashed and self.run_alive(r[1], r[0])
                           and self.store_says(r[1], r[0]) == "running"]
                hit = False
                if running and self.attempts < tries:
                    run_id, name = self.rng.choice(running)
                    hit = self.crash(name, run_id)
                if hit:
                    restarts.append((time.monotonic() + self.rng.uniform(2.0, 6.0), name))
                elif self.attempts < tries:   # no run to cut: tried again later
                    events.insert(self.rng.randint(0, len(events)), "crash")
            elif self.rng.random() < 0.5:
                name = self.rng.choice(self.names)
                n = self.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                             " WHERE usename = %s", (_login(name),))[0][0]
                print(f"dropped {n} connections of {name}", flush=True)
            else:
                n = self.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                             " WHERE usename LIKE 'scale_st%%'")[0][0]
                print(f"dropped {n} connections of every station", flush=True)
        for _, name in restarts:
            time.sleep(1.0)
            self.start(name)

    def run_alive(self, name: str, run_id: str) -> bool:
        """Whether the run's own process still runs: a crash then cuts a run, not only its
        worker's copy of a run that has ended."""
        from sequencer.lab.job import _alive  # a run that has ended, not yet reaped, is not

        pid_file = self.work / "runs" / name / ".lab" / run_id / "run.pid"
        try:
            return _alive(int(pid_file.read_text()))
        except (OSError, ValueError):
            return False

    def store_says(self, name: str, run_id: str) -> str | None:
        """The run's status as its own store says it (the record's lags: the run's process
        outlives its run by seconds, and its worker notes the end after the last copy)."""
        store = RunStore.open(self.work / "runs" / name / run_id)
        try:
            return store.meta_value("status")
        finally:
            store.close()

    def crash(self, name: str, run_id: str) -> bool:
        """The station PC dies mid-run: its worker and its run, at once, without a word.
        The run is frozen first and its store read: a run that has already finished (its
        process was closing) is let go, and the attempt counts as a miss (False)."""
        from sequencer.status import FINISHED

        self.attempts += 1
        pid = int((self.work / "runs" / name / ".lab" / run_id / "run.pid").read_text())
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            print(f"crash attempt on {name}: the process of {run_id} had ended", flush=True)
            return False
        status = self.store_says(name, run_id)
        if status in FINISHED:
            os.kill(pid, signal.SIGCONT)
            print(f"crash attempt on {name}: {run_id} had finished ({status}); let go",
                  flush=True)
            return False
        for victim in (pid, self.workers[name].pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        self.workers[name].wait()
        self.crashed.append(run_id)
        print(f"crashed {name} mid-run (its store said {status}): {run_id}", flush=True)
        return True

    def finished(self) -> bool:
        left = self.sql("SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo',"
                        " 'doing')")[0][0]
        return left == 0

    def wait(self, what, timeout_s: float, why: str, fail: bool = True) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if what():
                return True
            time.sleep(1.0)
        if fail:
            raise SystemExit(f"timed out waiting for {why}")
        return False

    def report(self, done: bool) -> None:
        runs = self.sql(
            "SELECT r.run_id, r.station, r.status, j.status::text, r.resumes,"
            " extract(epoch FROM r.started - r.submitted), r.started, r.ended,"
            " (SELECT coalesce(sum(n), 0) FROM run_chunks c WHERE c.run_id = r.run_id)"
            " FROM runs r JOIN procrastinate_jobs j ON j.id = r.job_id ORDER BY r.submitted")
        points = sum(int(r[8]) for r in runs)
        starts = [r[6] for r in runs if r[6]]
        ends = [r[7] for r in runs if r[7]]
        span = (max(ends) - min(starts)).total_seconds() if starts and ends else float("nan")
        waits = [float(r[5]) for r in runs if r[5] is not None]
        first = waits[:len(self.names)]
        duplicated = int(self.sql(
            "SELECT coalesce(sum(n), 0) FROM (SELECT n, t_first, lag(t_last) OVER"
            " (PARTITION BY run_id, cell, kind, step_id ORDER BY id) AS before FROM run_chunks)"
            " c WHERE t_first <= before")[0][0])
        lost, compared, differing = 0, 0, []
        for run_id, station, *_ in runs:
            run_dir = self.work / "runs" / str(station) / run_id
            if station is None or not (run_dir / "run.sqlite").exists():
                continue
            in_record = {int(i): int(n) for i, n in self.sql(
                "SELECT id, n FROM run_chunks WHERE run_id = %s", (run_id,))}
            store = RunStore.open(run_dir)
            try:
                local = store.rows_after("chunks", 0, 10**9)
            finally:
                store.close()
            lost += sum(r["n"] for r in local if r["id"] not in in_record)
        for run_id in dict.fromkeys(self.crashed):
            row = next(r for r in runs if r[0] == run_id)
            protocol = self.work / "runs" / row[1] / ".lab" / run_id / "protocol"
            seed = int(self.sql("SELECT seed FROM runs WHERE run_id = %s", (run_id,))[0][0])
            top = self.sql("SELECT protocol FROM runs WHERE run_id = %s", (run_id,))[0][0]
            reference = self.work / "reference" / run_id
            run_simulated(protocol / top, reference, seed,
                          self.work / "runs" / row[1] / ".lab" / run_id / "station.yaml"
                          if (self.work / "runs" / row[1] / ".lab" / run_id /
                              "station.yaml").exists() else self.work / f"{row[1]}.yaml")
            store = RunStore.open(reference)
            expected = store.point_count()
            store.close()
            compared += 1
            if expected != int(row[8]):
                differing.append(f"{run_id}: {row[8]} in the record, {expected} uninterrupted")
        capacity = self.capacity(runs)
        completed = sum(1 for r in runs if r[2] == "completed" and r[3] == "succeeded")
        resumed = sum(1 for r in runs if r[4])
        # each crash hit a run mid-run: each is one resume, as the lab counts them
        # (runs.resumes) and as the run's own store says (its run_resumed events)
        hits = {run_id: self.crashed.count(run_id) for run_id in dict.fromkeys(self.crashed)}
        counted = {r[0]: int(r[4]) for r in runs if r[4]}
        events = {str(k): int(n) for k, n in self.sql(
            "SELECT run_id, count(*) FROM run_events WHERE kind = 'run_resumed' AND run_id ="
            " ANY(%s) GROUP BY run_id", ([r[0] for r in runs],))}   # (not the capacity copy)
        print(json.dumps({"stations": len(self.names), "jobs": len(runs),
                          "crashes": len(self.crashed), "crash_attempts": self.attempts,
                          "drops": self.args.drops, "speed": self.args.speed or None}))
        print(f"ingest: {points} points in {span:.1f} s of campaign:"
              f" {points / span:,.0f} points/s")
        print(f"queue latency (submit to start): first {len(first)} jobs median"
              f" {statistics.median(first):.2f} s, max {max(first):.2f} s; all jobs median"
              f" {statistics.median(waits):.1f} s, max {max(waits):.1f} s (jobs wait for a free"
              " station)")
        print(f"the record's own ingest (one station's finished run copied again, alone):"
              f" {capacity}")
        print(f"duplicated points: {duplicated}")
        print(f"lost points: {lost}")
        print(f"crashed runs against an uninterrupted run: {compared - len(differing)} of"
              f" {compared} hold the same number of points" +
              ("".join(f"\n  {d}" for d in differing)))
        print(f"crashes: {self.attempts} attempts, {len(self.crashed)} landed mid-run (the"
              f" run's store said running), {self.attempts - len(self.crashed)} found the run"
              " finished")
        print(f"jobs resumed: {resumed} ({sum(counted.values())} resumes counted by the lab,"
              f" {sum(events.values())} run_resumed events in the record)")
        same = hits == counted == events
        print(f"crashes landed mid-run == jobs resumed: {'yes' if same else 'NO'}"
              f" ({len(self.crashed)} crashes on {len(hits)} runs, {resumed} resumed)")
        for run_id in sorted(set(hits) | set(counted) | set(events)):
            if not hits.get(run_id) == counted.get(run_id) == events.get(run_id):
                print(f"  {run_id}: crashed {hits.get(run_id, 0)}, resumes counted"
                      f" {counted.get(run_id, 0)}, run_resumed events {events.get(run_id, 0)}")
        print(f"jobs completed: {completed} of {len(runs)} ({resumed} resumed after a crash"
              f" or a stop){'' if done else ' -- timed out before every job ended'}")
        for r in runs:
            if not (r[2] == "completed" and r[3] == "succeeded"):
                print(f"  not completed: {r[0]} on {r[1]}: {r[2]} ({r[3]})")
        print(f"every job completed: {'yes' if completed == len(runs) else 'NO'}")


    def capacity(self, runs: list[tuple]) -> str:
        """How fast one copy writes the record when nothing else runs: the largest run
        copied again under a new id."""
        run_id, station, *_ = max(runs, key=lambda r: int(r[8]))
        run_dir = self.work / "runs" / str(station) / run_id
        self.sql("INSERT INTO runs (run_id, campaign, protocol, seed, status) VALUES"
                 " ('capacity', 'c', 'p', 0, 'completed')")
        replica = Replica("capacity", run_dir)
        with psycopg.connect(self.admin.conninfo, autocommit=True) as conn:
            t = time.perf_counter()
            replica.sync(conn)
            wall = time.perf_counter() - t
        replica.close()
        return (f"{replica.points_inserted:,} points ({replica.inserted} rows) in {wall:.2f} s:"
                f" {replica.points_inserted / wall:,.0f} points/s")


def _login(name: str) -> str:
    return "scale_op" if name == "op" else "scale_st" + name.split("-")[1]


if __name__ == "__main__":
    main()
