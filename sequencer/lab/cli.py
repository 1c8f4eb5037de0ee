"""``cellseq lab``: a lab of many stations sharing one queue and one record (PostgreSQL).

Importing this module imports neither psycopg nor procrastinate: each command loads them.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from drivers.errors import CellseqError

if TYPE_CHECKING:
    import psycopg

lab_app = typer.Typer(no_args_is_help=True, help="A lab of many stations: one queue and one"
                      " record on PostgreSQL.")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

DbOpt = Annotated[str | None, typer.Option(
    "--db", help="The lab database's URL, without a password (give that in PGPASSWORD or a"
    " pgpass file) [default: $CELLSEQ_LAB_DB, or the file named by $CELLSEQ_LAB_DB_FILE].",
    show_default=False)]
LabOpt = Annotated[str | None, typer.Option(
    "--lab", help="Which lab of the database [default: $CELLSEQ_LAB, or 'lab'].",
    show_default=False)]


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(2)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """A lab command's errors as the user sees them: a message and exit 2, no traceback."""
    import psycopg

    try:
        yield
    except CellseqError as exc:
        fail(str(exc))
    except psycopg.Error as exc:
        fail(f"the lab database refused: {' '.join(str(exc).split())}")


def _db(db: str | None, lab: str | None, application: str):
    from sequencer.lab.settings import lab_db

    return lab_db(db, lab, application=application)


@lab_app.command("init")
def init(
    db: DbOpt = None,
    lab: LabOpt = None,
    station_timeout: Annotated[str, typer.Option(
        help="Report a station's jobs when it has been silent this long.")] = "10 min",
) -> None:
    """Create the lab in the database (schema, queue, record, roles); run it again to bring
    them up to date. Needs a login that may create schemas and roles."""
    from protocols.units import UnitError, parse_quantity
    from sequencer.lab.schema import init_lab
    from sequencer.lab.settings import connect

    try:
        timeout_s = parse_quantity(_spaced(station_timeout), "time")
    except UnitError as exc:
        fail(f"--station-timeout: {exc}")
    if not timeout_s > 0:
        fail("--station-timeout must be positive")
    with user_errors():
        target = _db(db, lab, "cellseq lab init")
        with connect(target, require_lab=False) as conn:
            for line in init_lab(conn, target, timeout_s):
                out.print(line)


@lab_app.command("user")
def user(
    name: Annotated[str, typer.Argument(help="Login role to create (or give a new password).",
                                        show_default=False)],
    role: Annotated[str, typer.Option(help="station (a station's worker), operator (submit,"
                                      " cancel) or reader (analysis, dashboard).")],
    pgpass: Annotated[Path, typer.Option(help="pgpass file the password is appended to"
                                         " (created mode 0600).")],
    db: DbOpt = None,
    lab: LabOpt = None,
) -> None:
    """Make a login role with only what its work needs; its password goes to a pgpass file
    (give that file to the PC that logs in as PGPASSFILE), never to the screen."""
    from sequencer.lab.schema import add_user
    from sequencer.lab.settings import connect

    with user_errors():
        target = _db(db, lab, "cellseq lab user")
        with connect(target) as conn:
            out.print(add_user(conn, target, name, role, pgpass))
        out.print(f"its password is in {pgpass} (mode 0600)")


@lab_app.command("submit")
def submit(
    protocol: Annotated[Path, typer.Argument(help="Protocol file (YAML).", show_default=False)],
    station: Annotated[str | None, typer.Option(
        "--station", help="Run on this station only (its cells are mounted there).")] = None,
    needs: Annotated[str | None, typer.Option(
        "--needs", help="Any station with these kinds of instrument may run it, e.g."
        " 'potentiostat,chamber' [default: what the protocol needs].", show_default=False)
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of simulated instruments' noise.", min=0)] = 0,
    db: DbOpt = None,
    lab: LabOpt = None,
) -> None:
    """Validate a protocol and queue it, for one station or for any with the instruments it
    needs. Nothing is queued that does not validate (on the named station, or on at least one
    station with those instruments); the station validates it again before it runs."""
    from sequencer.lab.queue import parse_needs
    from sequencer.lab.queue import submit as submit_job
    from sequencer.lab.settings import connect

    if station is not None and needs is not None:
        fail("give --station or --needs, not both")
    with user_errors():
        kinds = parse_needs(needs) if needs is not None else None
        target = _db(db, lab, "cellseq lab submit")
        with connect(target) as conn:
            job_id, run_id, notes = submit_job(conn, target, protocol, station=station,
                                               needs=kinds, seed=seed)
    from sequencer.lab.queue import WAITING_NOTE

    waiting = False
    for note in notes:
        if note.startswith(WAITING_NOTE):
            waiting = True
            err.print(f"[bold yellow]warning:[/] {note.removeprefix(WAITING_NOTE)}",
                      markup=True, soft_wrap=True)
        else:
            err.print(f"[yellow]note:[/] {note}", markup=True, soft_wrap=True)
    where = f"station {station}" if station else "any station with the instruments it needs"
    if waiting:
        where += " (none can run it yet: it waits for one to join)"
    out.print(f"job {job_id}: run {run_id} queued for {where}")


@lab_app.command("worker")
def worker(
    station: Annotated[Path, typer.Option("--station", help="This station's file.")],
    db: DbOpt = None,
    lab: LabOpt = None,
    runs: Annotated[Path | None, typer.Option(
        help="Where the runs go [default: runs/lab-<lab>].", show_default=False)] = None,
    speed: Annotated[float | None, typer.Option(
        "--speed", help="A station of in-process simulators (sim.* drivers) only: pace its dry"
        " runs, this many simulated seconds per wall second, instead of running each as fast"
        " as it can (to watch a simulated lab live, or to give crash tests runs that last).",
        min=1e-3, max=1e6, show_default=False)] = None,
) -> None:
    """Take the lab's jobs for this station and run them, one at a time, until Ctrl-C (which
    stops a running run with every output off; its job waits for this station)."""
    import asyncio

    from sequencer.lab.settings import connect
    from sequencer.lab.worker import StationWorker
    from sequencer.locks import LockError, lock_dir
    from sequencer.station import load_station

    with user_errors():
        bench = load_station(station)
        inline = [n for n, i in bench.instruments.items() if i.password is not None]
        if inline:
            fail(f"{station}: instruments {', '.join(inline)} hold a password in the file; a"
                 " lab station takes it from the environment (password_env)")
        if speed is not None and not bench.simulated:
            fail(f"--speed paces dry runs: {station} addresses instruments, which run at their"
                 " own speed (a served lab's is set by cellseq sim serve --speed)")
        target = _db(db, lab, f"cellseq station {bench.station}")
        connect(target).close()   # reachable, and the lab is there: say so now, not later
        from filelock import FileLock, Timeout

        from sequencer.lab.settings import station_name

        station_name(bench.station)
        guard = FileLock(lock_dir() / f"lab-{target.lab}-{bench.station}.lock", timeout=0)
        try:
            guard.acquire()
        except Timeout:
            raise LockError(f"a worker for station {bench.station} of lab {target.lab!r}"
                            " already runs on this PC") from None
        try:
            folder = runs or Path("runs") / f"lab-{target.lab}"
            asyncio.run(StationWorker(target, station, bench, folder, speed=speed).serve())
        finally:
            guard.release()


@lab_app.command("status")
def status(
    db: DbOpt = None,
    lab: LabOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    limit: Annotated[int, typer.Option(help="Show the latest jobs, this many.", min=1)] = 50,
) -> None:
    """The lab's stations and jobs, and what needs a person: jobs waiting for a station that
    has gone silent, work no station can take."""
    from sequencer.lab.record import lab_status
    from sequencer.lab.settings import connect

    with user_errors():
        target = _db(db, lab, "cellseq lab status")
        with connect(target) as conn:
            ended = _end_lost_cancels(conn)
            st = lab_status(conn, target, limit)
    if as_json:
        out.print_json(json.dumps({**st, "ended_now": ended}))
        return
    for line in ended:
        err.print(f"[bold red]ended:[/] {line}", markup=True, soft_wrap=True)
    out.print(f"{st['where']}: {len(st['stations'])} stations, {len(st['runs'])} jobs shown")
    stations = Table("station", "kinds", "host", "last word", box=box.SIMPLE_HEAD)
    for s in st["stations"]:
        word = f"{s['silent_s']:.0f} s ago" + (" [bold red](gone)[/]" if s["gone"] else "")
        stations.add_row(s["name"], ", ".join(s["kinds"]), s["host"], word)
    out.print(stations)
    for r in st["runs"]:   # two lines a job: run ids are long, and stay whole
        wanted = f"station {r['target_station']}" if r["target_station"] else \
            f"any station with {', '.join(r['needs'] or [])}"
        waited = f", waited {r['wait_s']:.1f} s" if r["wait_s"] is not None else ""
        on = f" on {r['station']}" if r["station"] else ""
        passed = f"; passed on by {', '.join(r['refused_by'])}" if r["refused_by"] and \
            r["job"] == "todo" else ""
        out.print(f"job {r['job_id']}  {r['run_id']}\n    {r['state']}{on} (for {wanted});"
                  f" queue: {r['job'] or '-'}{waited}; {r['points']} points{passed}",
                  markup=False)
    for r in st["runs"]:
        if r["message"] and r["status"] not in ("completed",):
            out.print(f"job {r['job_id']} ({r['status']}): {r['message']}", markup=False)
    for problem in st["problems"]:
        err.print(f"[bold red]attention:[/] {problem}", markup=True, soft_wrap=True)


@lab_app.command("cancel")
def cancel(
    job: Annotated[str, typer.Argument(help="Job id or run id.", show_default=False)],
    db: DbOpt = None,
    lab: LabOpt = None,
) -> None:
    """Cancel a queued job, or stop a running one (every output off)."""
    from sequencer.lab.queue import cancel as cancel_job
    from sequencer.lab.settings import connect

    with user_errors():
        target = _db(db, lab, "cellseq lab cancel")
        with connect(target) as conn:
            ended = _end_lost_cancels(conn)
            out.print(cancel_job(conn, target, job))
    for line in ended:
        err.print(f"[bold red]ended:[/] {line}", markup=True, soft_wrap=True)


@lab_app.command("db")
def embedded_db(
    folder: Annotated[Path, typer.Argument(help="Data folder of the server (created if"
                                           " new).", show_default=False)],
) -> None:
    """Run a PostgreSQL server from the pgserver package until Ctrl-C, to try a lab on one
    machine; prints its URL. It trusts every local login: not for a real lab."""
    from sequencer.lab.embedded import start

    folder = folder.resolve()
    if not folder.parent.is_dir():
        fail(f"{folder.parent} is not a folder")
    try:
        server = start(folder)
    except (OSError, RuntimeError) as exc:
        fail(f"the embedded server did not start: {exc}")
    out.print(f"PostgreSQL at {server.get_uri()}\nCtrl-C stops it")

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)   # stopped as a service: stop the server too
    try:
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    finally:
        server.cleanup()


def lab_copy(db: str | None, lab: str | None, run_id: str, folder: Path | None
             ) -> tuple[Path, str]:
    """``cellseq report --db`` and ``export --db``: the run rebuilt from the lab record into a
    local folder; returns the folder and the run's status in the lab."""
    from sequencer.lab.record import rebuild
    from sequencer.lab.settings import connect

    with user_errors():
        target = _db(db, lab, "cellseq report")
        folder = folder or Path("runs") / f"lab-{target.lab}-record" / run_id
        with connect(target) as conn:
            status = rebuild(conn, target, run_id, folder)
    err.print(f"run {run_id} ({status} in {target.where}) rebuilt from the lab record in"
              f" {folder}")
    from sequencer.status import FINISHED, RESUMABLE

    # the run's status in a run store's words: a run stopped by the lab (cancelled, failed,
    # lost with its station) reads as interrupted, as a run stopped by Ctrl-C does
    return folder, status if status in (*FINISHED, *RESUMABLE, "running") else "interrupted"


def _end_lost_cancels(conn: psycopg.Connection) -> list[str]:
    """Cancels whose station never confirmed within the lab's time-out end now, when this
    login may end jobs (an operator's; a reader's sees them pending in the status)."""
    from sequencer.lab.queue import end_lost_cancels

    may = conn.execute("SELECT has_table_privilege('procrastinate_jobs', 'UPDATE') AND"
                       " has_column_privilege('runs', 'status', 'UPDATE')").fetchone()
    return end_lost_cancels(conn) if may and may[0] else []


def _spaced(text: str) -> str:
    import re

    return re.sub(r"^([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)[ \t]*", r"\1 ", text.strip(),
                  flags=re.ASCII)
