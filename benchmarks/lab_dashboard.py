"""What the dashboard of a whole lab (``cellseq dashboard --db URL``) costs per poll, with
hundreds of runs in the lab record.

    python benchmarks/lab_dashboard.py [--runs 300] [--live 20] [--queued 20] [--polls 20]

One PostgreSQL (pgserver's, started here) holds a lab record of ``--runs`` runs, each a copy
of one finished dry run (made here, copied by the lab's own copy, as a station's worker copies
it) under its own run id; ``--live`` of them are running on stations that report in, and
between two polls each of those moves on (its cells' state changes, as a station's copy
changes it); ``--queued`` more are queued (submitted, no station has started them: nothing of
them is in the record yet). The dashboard's source of the lab
(:class:`sequencer.dashboard.lab.LabRuns`) and its change watcher
(:class:`sequencer.dashboard.app.Hub`, what every open page's event stream waits on) then run
here, in this process, and the script prints, per request or per poll:

- CPU of the dashboard (this process: ``time.process_time``), in ms;
- statements it sent to the database;
- CPU of the database server's process that served it (its backend, from ``/proc``; Linux),
  in ms.

Requests and polls:

- ``runs list``: ``GET /api/runs`` (the runs page), the list read again from the record;
- ``first poll``: the watcher's first look when a page opens: every run shown is read;
- ``poll``: each later look (one a second: live runs every poll, the others every 5 s), after
  the live runs moved on;
- ``overview``: ``GET /api/runs/RUN`` of one running run, on its own (nothing read for a poll
  just before).

CPU times, not wall times: the machine this runs on is shared. The server's CPU is read in
clock ticks (10 ms), so it is given over all the polls together too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sequencer.lab import embedded  # noqa: E402
from sequencer.lab.replicate import Replica  # noqa: E402
from sequencer.lab.schema import init_lab  # noqa: E402
from sequencer.lab.settings import lab_db  # noqa: E402
from sequencer.runner import run_simulated  # noqa: E402

PROTOCOL = """\
campaign: dash-{k}
cells:
  - id: ncm-a
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {{material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}}
    limits: {{max_voltage: 4.45 V, min_voltage: 2.5 V, max_current: 5 mA}}
  - id: ncm-b
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {{material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}}
    limits: {{max_voltage: 4.45 V, min_voltage: 2.5 V, max_current: 5 mA}}
experiments:
  - name: cycling
    cells: [ncm-a, ncm-b]
    steps:
      - kind: loop
        count: 10
        steps:
          - {{kind: constant_current, direction: charge, current: 1C, until_voltage: 4.3 V,
             record_every: 60 s}}
          - {{kind: constant_current, direction: discharge, current: 1C,
             until_voltage: 3.0 V, record_every: 60 s}}
"""
STATIONS = 10
TICK_S = 1.0   # the watcher's tick (sequencer.dashboard.app.TICK_S)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--live", type=int, default=20)
    ap.add_argument("--queued", type=int, default=20)
    ap.add_argument("--polls", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=20, help="requests of each kind")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cellseq-lab-dashboard-"))
    server = embedded.start(work / "pg", keep=False)
    try:
        db = lab_db(server.get_uri(), "dash")
        fill(db, work, args.runs, args.live, args.queued)
        measure(db, args)
    finally:
        server.cleanup()


def fill(db, work: Path, runs: int, live: int, queued: int) -> None:
    """The lab record: ``runs`` copies of one dry run, the newest ``live`` of them running;
    then ``queued`` runs waiting for a station."""
    source = work / "run"
    (work / "p.yaml").write_text(PROTOCOL.format(k=0), encoding="utf-8")
    run_simulated(work / "p.yaml", source, seed=1)
    t = time.perf_counter()
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        init_lab(conn, db, station_timeout_s=600)
        for k in range(STATIONS):
            conn.execute("INSERT INTO stations (name, kinds, station, host, pid, started, seen)"
                         " VALUES (%s, %s, '{}', 'pc', 1, now(), now())",
                         (f"st-{k:02d}", ["cycler"]))
        for k in range(runs):
            run_id = f"dash-{k:04d}"
            running = k >= runs - live
            job = conn.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status) VALUES"
                " ('dash/k/x', 'cellseq.run', %s, 'todo') RETURNING id",
                (json.dumps({"run_id": run_id}),)).fetchone()[0]
            conn.execute("UPDATE procrastinate_jobs SET status = %s WHERE id = %s",
                         ("doing" if running else "succeeded", job))
            conn.execute(
                "INSERT INTO runs (run_id, job_id, campaign, protocol, seed, needs, station,"
                " status, submitted, started, ended) VALUES (%s, %s, 'dash', 'p.yaml', 1,"
                " '{cycler}', %s, %s, now() - make_interval(secs => %s), now(), %s)",
                (run_id, job, f"st-{k % STATIONS:02d}", "running" if running else
                 "completed", runs - k, None if running else "now"))
            replica = Replica(run_id, source)
            replica.sync(conn)
            replica.close()
            if running:
                conn.execute("UPDATE run_meta SET value = '\"running\"' WHERE run_id = %s AND"
                             " key = 'status'", (run_id,))
        for k in range(queued):
            run_id = f"dash-queued-{k:04d}"
            job = conn.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status) VALUES"
                " ('dash/k/x', 'cellseq.run', %s, 'todo') RETURNING id",
                (json.dumps({"run_id": run_id}),)).fetchone()[0]
            conn.execute(
                "INSERT INTO runs (run_id, job_id, campaign, protocol, seed, needs, status)"
                " VALUES (%s, %s, 'dash', 'p.yaml', 1, '{cycler}', 'queued')", (run_id, job))
        points = conn.execute("SELECT sum(n) FROM run_chunks").fetchone()[0]
        conn.execute("VACUUM ANALYZE")
    print(f"lab record: {runs + queued} runs ({live} running on {STATIONS} stations,"
          f" {queued} queued), {points:,}"
          f" points, filled in {time.perf_counter() - t:.0f} s", flush=True)


class Counted:
    """The statements the dashboard sends (its source's one connection), and the CPU of the
    server process that answers them."""

    def __init__(self, source) -> None:
        from sequencer.dashboard import lab

        self.statements = 0
        rows = lab._Record.rows

        def counting(record, query, args=()):
            self.statements += 1
            return rows(record, query, args)

        lab._Record.rows = counting
        self.pid = int(source.record.rows("SELECT pg_backend_pid()")[0][0])
        self.tick_s = 1.0 / os.sysconf("SC_CLK_TCK")

    def server_cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * self.tick_s


def measure(db, args: argparse.Namespace) -> None:
    from sequencer.dashboard.app import Hub
    from sequencer.dashboard.lab import LabRuns

    with psycopg.connect(db.conninfo, autocommit=True) as admin:   # the stations report in
        admin.execute("UPDATE stations SET seen = now()")
    cpu0 = time.process_time()
    source = LabRuns(db)
    opened_ms = (time.process_time() - cpu0) * 1e3
    counted = Counted(source)
    shown = list(source._rows)
    with psycopg.connect(db.conninfo, autocommit=True) as admin:
        print(f"{len(shown)} runs shown (the newest); source opened in {opened_ms:.0f} ms of"
              " CPU", flush=True)
        first = counted.statements
        c0 = time.process_time()
        source._read_at = -math.inf
        source.runs()
        print(f"runs list, the first: {(time.process_time() - c0) * 1e3:.1f} ms of CPU,"
              f" {counted.statements - first} statements", flush=True)

        def sample(what, repeat: int, before=None) -> None:
            cpu, stmts, server = [], [], []
            for _ in range(repeat):
                if before is not None:
                    before()
                s0, b0 = counted.statements, counted.server_cpu_s()
                c0 = time.process_time()
                what()
                cpu.append((time.process_time() - c0) * 1e3)
                stmts.append(counted.statements - s0)
                server.append((counted.server_cpu_s() - b0) * 1e3)
            name = what.__name__.replace("_", " ")
            print(f"{name}: dashboard CPU mean {statistics.mean(cpu):.1f} ms (median"
                  f" {statistics.median(cpu):.1f}, max {max(cpu):.1f}); statements mean"
                  f" {statistics.mean(stmts):.1f} (median {statistics.median(stmts):.0f}, max"
                  f" {max(stmts)}); server CPU mean {sum(server) / repeat:.1f} ms"
                  f" ({sum(server):.0f} ms over {repeat})", flush=True)

        def runs_list() -> None:
            source._read_at = -math.inf   # read again from the record, as every 2 s
            source.runs()

        hub = Hub(source)

        def stale() -> None:   # what the source read for earlier looks is old now
            source._read_at = -math.inf
            if hasattr(source, "_versions_at"):   # (the source reads every run at once)
                source._versions_at = -math.inf

        def first_poll() -> None:
            hub.versions.clear()
            hub._due.clear()
            hub._poll()

        live = admin.execute("SELECT run_id FROM runs WHERE status = 'running'").fetchall()

        def move_on() -> None:   # the live runs' stations copy their cells' new state
            time.sleep(TICK_S)
            admin.execute("UPDATE stations SET seen = now()")
            admin.execute("UPDATE run_cell_state SET updated_t = updated_t + 1 WHERE run_id ="
                          " ANY(%s)", ([r[0] for r in live],))

        def poll() -> None:
            hub._poll()

        live_ids = [r[0] for r in live]

        def overview() -> None:
            source.overview(live_ids[-1] if live_ids else shown[-1])

        sample(runs_list, args.repeat)
        sample(first_poll, 3, before=stale)
        first_poll()
        sample(poll, args.polls, before=move_on)
        sample(overview, args.repeat, before=stale)
    source.close()


if __name__ == "__main__":
    main()
