"""Fixtures of the lab tests: one PostgreSQL for the whole session (from the pgserver wheel),
a fresh lab per test, station logins with passwords, station files and workers.

The server is started here, by the tests themselves: nothing outside the package registries.
Every role but ``postgres`` logs in with a SCRAM password, as on a real server.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from sequencer.lab import embedded
from sequencer.lab.schema import add_user, init_lab
from sequencer.lab.settings import LabDb, lab_db

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "protocols" / "examples" / "quickstart.yaml"
_labs = itertools.count(1)

#: A dry-run station with the instruments of every protocol the tests queue, and the
#: quickstart's cells (so a job may be bound to it).
STATION = """\
station: {name}
instruments:
  chamber-1: {{driver: sim.chamber}}
  vsp300-1: {{driver: sim.potentiostat, channels: 6}}
  cycler-1: {{driver: sim.cycler, channels: 16}}
cells:
  aiose-blocking-1: {{instrument: vsp300-1, channel: 0, chamber: chamber-1}}
  ncm811-1: {{instrument: cycler-1, channel: 0, chamber: chamber-1}}
  ncm-a: {{instrument: cycler-1, channel: 1}}
"""

#: Many cycles of one cell: a dry run of a few seconds, long enough to be cut or killed
#: (``LONG.format(count=...)``; about 250 points a cycle).
LONG = """\
campaign: lab-long
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


@pytest.fixture(scope="session")
def pg():
    """The session's PostgreSQL server (pgserver's handle). Its data is not under pytest's
    temporary folder: run as root, pgserver runs the server as a user of its own, which must
    reach the folder, and every pytest session resets its folder's mode to the owner's only."""
    folder = Path(tempfile.mkdtemp(prefix="cellseq-test-pg-"))
    server = embedded.start(folder / "data", keep=False)
    try:
        embedded.require_passwords(server)
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Lab:
    """A fresh lab on the session's server: its admin's URL and the logins made for it."""

    server: object
    name: str
    folder: Path
    passwords: dict[str, str] = field(default_factory=dict)
    workers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def admin_url(self) -> str:
        return self.server.get_uri()   # the superuser: trusted, no password

    def admin(self) -> LabDb:
        return lab_db(self.admin_url, self.name)

    def url(self, login: str) -> str:
        return self.admin_url.replace("postgres:@", f"{login}@")

    def sql(self, query: str, args: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.admin().conninfo, autocommit=True) as conn:
            cur = conn.execute(query, args)
            return cur.fetchall() if cur.description else []

    def login(self, name: str, role: str) -> str:
        """A login role of the lab; its password is in the lab's pgpass file."""
        pgpass = self.folder / "pgpass"
        with psycopg.connect(self.admin().conninfo, autocommit=True) as conn:
            add_user(conn, self.admin(), name, role, pgpass)
        self.passwords[name] = pgpass.read_text().splitlines()[-1].split(":")[-1]
        return name

    def env(self) -> dict[str, str]:
        """The environment of a station PC of this lab: the pgpass file, no lab URL."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("CELLSEQ_LAB_DB", "CELLSEQ_LAB_DB_FILE", "PGPASSWORD")}
        env.update(PGPASSFILE=str(self.folder / "pgpass"), CELLSEQ_LAB=self.name,
                   CELLSEQ_LOCK_DIR=str(self.folder / "locks"))
        return env

    def station_file(self, name: str, text: str = STATION) -> Path:
        path = self.folder / f"{name}.yaml"
        path.write_text(text.format(name=name), encoding="utf-8")
        return path

    def start_worker(self, station: str, login: str, text: str = STATION,
                     options: tuple[str, ...] = ()) -> subprocess.Popen:
        """``cellseq lab worker`` for ``station`` as ``login``, in a process of its own
        (``text``: its station file, ``{name}`` for its name; ``options``: more of the
        command's options)."""
        log = open(self.folder / f"worker-{station}.log", "ab")   # noqa: SIM115 -- kept open
        proc = subprocess.Popen(
            [sys.executable, "-m", "sequencer", "lab", "worker", "--station",
             str(self.station_file(station, text)), "--db", self.url(login), "--runs",
             str(self.folder / "runs" / station), *options],
            stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=self.folder,
            start_new_session=True)
        self.workers.append(proc)
        return proc

    def worker_log(self, station: str) -> str:
        return (self.folder / f"worker-{station}.log").read_text(errors="replace")

    def run_dir(self, station: str, run_id: str) -> Path:
        return self.folder / "runs" / station / run_id

    def run_pid(self, station: str, run_id: str) -> int:
        return int((self.folder / "runs" / station / ".lab" / run_id / "run.pid").read_text())

    def wait(self, what: Callable[[], object], timeout_s: float, why: str) -> object:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            time.sleep(0.2)
        logs = "\n".join(f"--- {p.name}:\n{p.read_text(errors='replace')[-3000:]}"
                         for p in self.folder.glob("worker-*.log"))
        raise AssertionError(f"timed out after {timeout_s} s waiting for {why}\n{logs}")

    def run(self, run_id: str) -> dict:
        cur_rows = self.sql("SELECT row_to_json(r)::text FROM runs r WHERE run_id = %s",
                            (run_id,))
        return json.loads(cur_rows[0][0]) if cur_rows else {}

    def points(self, run_id: str) -> int:
        return int(self.sql("SELECT coalesce(sum(n), 0) FROM run_chunks WHERE run_id = %s",
                            (run_id,))[0][0])

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def lab(pg, tmp_path: Path) -> Iterator[Lab]:
    """A fresh lab (its own schema and roles) on the session's server."""
    made = Lab(pg, f"t{next(_labs)}_{os.getpid() % 10000}", tmp_path)
    with psycopg.connect(made.admin().conninfo, autocommit=True) as conn:
        init_lab(conn, made.admin(), station_timeout_s=600)
    try:
        yield made
    finally:
        made.stop_workers()
