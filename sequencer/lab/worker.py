"""A station's worker: takes the lab's jobs for its station and runs them, one at a time.

``cellseq lab worker --station st.yaml`` registers the station in the lab (its name, the kinds
of instrument it has, its station file without passwords), then takes jobs from its own queue
and from its class's queue (jobs that any station able to run them may take;
:mod:`sequencer.lab.queue`), and runs each (:mod:`sequencer.lab.job`). One worker per
station: a second one on the same PC is refused (a lock file), and one on another PC is
refused while the first still reports in.

It reports every few seconds (``stations.seen``): ``cellseq lab status`` reports a station that
stayed silent longer than the lab's station time-out, with the jobs waiting for it; they are
never moved to another station.

When it starts, it takes back its station's jobs that an earlier worker left running (the PC
crashed, the worker was killed): they go back to the station's queue and their runs resume.
Jobs that a dead worker fetched but never started go back to their queue for any station.

When the database cannot be reached the running run goes on, its rows wait in its run store,
and the worker tries again every few seconds; it takes no new job until the database answers.
Ctrl-C (or SIGTERM) stops the worker: the running run stops with every output off, and its job
waits for this station's next worker, which resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from procrastinate.retry import BaseRetryStrategy, RetryDecision
from procrastinate.worker import Worker

from sequencer.lab.queue import TASK, capability_class, make_app, station_queue, worker_queues
from sequencer.lab.settings import LabDb, LabError, station_name

if TYPE_CHECKING:
    import psycopg

    from sequencer.station import Station

#: Seconds between two reports of the station to the record.
HEARTBEAT_S = 5.0
#: A worker whose procrastinate heartbeat is older than this is dead (its never-started jobs
#: are requeued).
STALLED_S = 30.0
#: Seconds between two looks for jobs a dead worker fetched and never started.
RESCUE_EVERY_S = 30.0
#: How long a stopping worker keeps trying to write to the record before it leaves.
STOP_PATIENCE_S = 10.0


class RecordLink:
    """The worker's own connection to the lab record (the queue has its pool): one call at a
    time, from a thread; a broken connection is dropped and made again at the next call."""

    def __init__(self, db: LabDb, application: str) -> None:
        self._conninfo = db.with_options(application_name=application[:63], keepalives=1,
                                         keepalives_idle=10, keepalives_interval=5,
                                         keepalives_count=3)
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        import psycopg

        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._conninfo, autocommit=True)
            try:
                return fn(self._conn, *args)
            except psycopg.Error:
                if self._conn.broken or self._conn.closed:
                    self._conn.close()
                    self._conn = None
                raise

    async def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(self.call, fn, *args)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class StationWorker:
    def __init__(self, db: LabDb, station_path: Path, station: Station, runs_root: Path,
                 say: Callable[[str], None] | None = None, speed: float | None = None
                 ) -> None:
        import procrastinate
        import psycopg
        import psycopg_pool

        self.db = db
        self.name = station_name(station.station)
        self.station_path = Path(station_path).resolve()
        self.station = station
        self.kinds = sorted({i.kind for i in station.instruments.values()})
        self.capability = capability_class(station)
        self.queues = worker_queues(db.lab, self.name, self.kinds, self.capability)
        #: the procrastinate app of the worker's session with the database
        self.app: Any = None
        self.runs_root = Path(runs_root).resolve()
        #: a station of in-process simulators: its dry runs paced at this many simulated
        #: seconds per wall second (None: as fast as they can, in virtual time)
        self.speed = speed
        self.link = RecordLink(db, f"cellseq station {self.name}")
        self.stopping = False
        self.db_errors: tuple[type[BaseException], ...] = (
            psycopg.Error, psycopg_pool.PoolTimeout, procrastinate.exceptions.ConnectorException,
            OSError)
        self._say = say or _print
        #: The job this worker runs now (procrastinate's id), if any.
        self.current_job: int | None = None
        self._down = False
        self._joined = False   # registered in the lab by this process
        #: waiting --needs runs this station cannot run (its file does not change while it
        #: runs): looked at once
        self._cannot: set[str] = set()
        self._worker: Any = None
        self._stopped = asyncio.Event()

    def say(self, message: str) -> None:
        self._say(message)

    async def record(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(conn, *args)`` on the record, tried again through a database outage until it
        goes through (a stopping worker gives up after ``STOP_PATIENCE_S``). For the writes a
        job cannot do without: each is idempotent, or harmless twice (a journal line)."""
        import psycopg

        pause, since = 0.5, time.monotonic()
        while True:
            try:
                result = await self.link(fn, *args)
            except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
                self.database_down(exc)
                if self.stopping and time.monotonic() - since > STOP_PATIENCE_S:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            self.database_up()
            return result

    # -- the database's health, as the worker reports it ----------------------------------------

    def database_down(self, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            self.say(f"lab database unreachable ({_short(exc)}): runs go on, their rows wait in"
                     " their run stores; trying again")

    def database_up(self, copied: int = 0) -> None:
        if self._down:
            self._down = False
            self.say("lab database reachable again" +
                     (f"; {copied} rows kept meanwhile copied" if copied else ""))

    # -- serving ------------------------------------------------------------------------------

    def stop(self) -> None:
        if not self.stopping:
            self.say("stopping: a running run stops with every output off, and its job waits"
                     f" for station {self.name}")
        self.stopping = True
        self._stopped.set()
        if self._worker is not None:
            self._worker.stop()

    async def serve(self) -> None:
        """Take and run jobs until :meth:`stop`; ride out database outages."""
        for name in ("procrastinate", "psycopg.pool"):   # the worker reports outages itself
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self._install_signals()
        self.runs_root.mkdir(parents=True, exist_ok=True)
        pause = 1.0
        while not self.stopping:
            try:
                await self._session(not self._joined)
                pause = 1.0
            except LabError:
                raise
            except self.db_errors as exc:
                self.database_down(exc)
            if not self.stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), pause)
                pause = min(pause * 2, 5.0)
        self.link.close()

    async def _session(self, first: bool) -> None:
        app = make_app(self.db, application=f"cellseq station {self.name}")
        app.task(name=TASK, pass_context=True, retry=_Retry())(_run_job)
        async with app.open_async():
            self.app = app
            await self.link(self._register, first)
            self._joined = True
            self.database_up()
            await self._take_back(app)
            await self._route_waiting()
            beat = asyncio.ensure_future(self._heartbeat(app))
            try:
                self._worker = _QueueWorker(
                    self, app, queues=self.queues, name=f"station {self.name}", concurrency=1,
                    install_signal_handlers=False, additional_context={"station": self},
                    update_heartbeat_interval=HEARTBEAT_S, stalled_worker_timeout=STALLED_S,
                    fetch_job_polling_interval=2.0, abort_job_polling_interval=1.0)
                if first:
                    self.say(f"station {self.name} ({', '.join(self.kinds)}) takes jobs of"
                             f" {self.db.where}; runs in {self.runs_root}")
                if not self.stopping:
                    await self._worker.run()
            finally:
                self._worker = None
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError, *self.db_errors):
                    await beat

    def station_record(self) -> dict[str, Any]:
        """The station as the lab record keeps it: its file as JSON, without passwords."""
        record = self.station.model_dump(mode="json", exclude_none=True)
        for inst in record["instruments"].values():
            inst.pop("password", None)
        return json.loads(json.dumps(record))

    def _register(self, conn: psycopg.Connection, first: bool) -> None:
        record = self.station_record()
        host, pid = socket.gethostname(), os.getpid()
        with conn.transaction():
            row = conn.execute("SELECT host, pid, now() - seen < make_interval(secs =>"
                               " (SELECT value::float8 FROM lab_settings WHERE key ="
                               " 'station_timeout_s')) FROM stations WHERE name = %s FOR UPDATE",
                               (self.name,)).fetchone()
            if first and row is not None and row[0] != host and row[2]:
                raise LabError(f"station {self.name} is served by a worker on {row[0]}"
                               f" (process {row[1]}), which reported in recently; a station has"
                               " one worker: stop that one first")
            conn.execute(
                "INSERT INTO stations (name, kinds, station, host, pid, started, seen) VALUES"
                " (%s, %s, %s, %s, %s, now(), now()) ON CONFLICT (name) DO UPDATE SET"
                " kinds = excluded.kinds, station = excluded.station, host = excluded.host,"
                " pid = excluded.pid, started = CASE WHEN %s THEN now() ELSE stations.started"
                " END, seen = now(), login = current_user",
                (self.name, self.kinds, json.dumps(record), host, pid, first))

    async def _take_back(self, app: Any) -> None:
        """Jobs an earlier worker of this station left running: back to this station's queue
        (their runs resume), or ended if they were cancelled meanwhile."""
        from procrastinate.jobs import Status

        from sequencer.lab.job import JobRun

        for (run_id,) in await self.link(_lost_here, self.name):
            # ended as its station lost while this station was away: its run may still run
            await JobRun(self, run_id).end_cancelled()
            self.say(f"run {run_id} had been cancelled, and ended as this station lost,"
                     " while no worker ran it: it is stopped now")
        rows = await self.link(_left_running, self.name)
        for job_id, abort, run_id in rows:
            if abort:
                await JobRun(self, run_id).end_cancelled()
                await app.job_manager.finish_job_by_id_async(job_id, Status.ABORTED, False)
                self.say(f"run {run_id} (job {job_id}) was cancelled while no worker ran it")
            else:
                await app.job_manager.retry_job_by_id_async(
                    job_id, _now(), queue=station_queue(self.db.lab, self.name))
                self.say(f"run {run_id} (job {job_id}) was left running by an earlier worker:"
                         " taking it back to resume it")

    async def _route_waiting(self) -> None:
        """``--needs`` jobs submitted before a station of this class could take them (none
        could run them, or only stations of other classes): queued for this station's class
        when it can run them. The run still starts once: the first station to start it
        takes it."""
        from sequencer.lab.queue import class_queue, route, waiting_for

        queue = class_queue(self.db.lab, self.capability)
        for run_id, top, unrouted in await self.link(waiting_for, self.kinds, queue):
            if run_id in self._cannot:
                continue
            files = await self.link(_fetch_files, run_id)
            try:
                why = await asyncio.to_thread(self._cannot_run, top, files)
            except Exception as exc:   # a bug placing it: said, and the worker goes on
                why = f"placing it here failed: {exc!r}"
            if why is not None:
                self._cannot.add(run_id)
                if unrouted:   # (one queued for other classes is in hand: not said)
                    self.say(f"run {run_id} waits for a station that can run it; this one"
                             f" cannot: {why}")
                continue
            job_id = await self.link(route, run_id, queue)
            if job_id is not None:
                self.say(f"run {run_id} was submitted before a station of this one's class"
                         f" joined: queued for it too (job {job_id})")

    def _cannot_run(self, top: str, files: list[tuple[str, bytes]]) -> str | None:
        """Why this station cannot run a waiting run's protocol (placed here as a job
        would be), or None."""
        import tempfile

        from protocols import load_campaign
        from protocols.errors import ProtocolError
        from sequencer.lab.job import _safe_relative
        from sequencer.lab.queue import cannot_run

        with tempfile.TemporaryDirectory(prefix="cellseq-route-") as folder:
            try:
                for name, data in files:
                    target = Path(folder) / _safe_relative(name)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                campaign = load_campaign(Path(folder) / _safe_relative(top))
            except (ProtocolError, LabError, OSError) as exc:
                return str(exc).splitlines()[0]
            return cannot_run(campaign, self.station, top)

    async def _heartbeat(self, app: Any) -> None:
        since_rescue = RESCUE_EVERY_S
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            since_rescue += HEARTBEAT_S
            try:
                await self.link(_seen, self.name)
                self.database_up()
                if since_rescue >= RESCUE_EVERY_S:
                    since_rescue = 0.0
                    for job_id, run_id, abort, stray in await self.link(_never_started,
                                                                        STALLED_S):
                        from procrastinate.jobs import Status

                        if stray:   # another class's job of the run started it
                            await app.job_manager.finish_job_by_id_async(
                                job_id, Status.ABORTED, False)
                            self.say(f"run {run_id} (job {job_id}): its worker died before"
                                     " starting it, and another station has taken the run;"
                                     " this job of it ends")
                            continue
                        if abort:   # cancelled meanwhile: it ends so, never retried
                            await self.link(_cancelled, run_id, "cancelled; its worker had"
                                            " died before starting it, nothing ran")
                            await app.job_manager.finish_job_by_id_async(
                                job_id, Status.ABORTED, False)
                            self.say(f"run {run_id} (job {job_id}): cancelled while its"
                                     " worker was dead; nothing ran")
                            continue
                        await app.job_manager.retry_job_by_id_async(job_id, _now())
                        self.say(f"run {run_id} (job {job_id}): its worker died before"
                                 " starting it; back in its queue")
                    await self._settle_ended(app)
                    await self._route_waiting()
                    from sequencer.lab.queue import end_lost_cancels

                    for line in await self.link(end_lost_cancels):
                        self.say(line)
            except self.db_errors as exc:
                self.database_down(exc)

    async def _settle_ended(self, app: Any) -> None:
        """End, in the queue, this station's jobs whose runs the record shows ended."""
        from procrastinate.jobs import Status

        from sequencer.lab.job import FINISHED

        for job_id, status in await self.link(_ended_still_doing, self.name, self.current_job,
                                              STALLED_S):
            ended = Status.SUCCEEDED if status in FINISHED else \
                Status.ABORTED if status == "cancelled" else Status.FAILED
            await app.job_manager.finish_job_by_id_async(job_id, ended, False)
            self.say(f"job {job_id}: its run ended {status}, which the queue had not heard"
                     f" (the connection dropped as it was told); the job ends {ended.value}")

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        if os.name == "nt" or threading.current_thread() is not threading.main_thread():
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, lambda *_: loop.call_soon_threadsafe(self.stop))
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)


async def _run_job(context: Any, run_id: str) -> str:
    """The procrastinate task: one job, on the station of the worker that fetched it."""
    from sequencer.lab.job import JobRun

    worker: StationWorker = context.additional_context["station"]
    worker.current_job = context.job.id
    try:
        return await JobRun(worker, run_id, context.job.id).run()
    except TakenElsewhere as exc:   # another class's job of the run started it first
        worker.say(f"run {run_id} (job {context.job.id}): {exc}")
        return str(exc)
    except (LabError, asyncio.CancelledError, *_passing()):
        raise
    except Exception as exc:   # a bug: say it where the station's operator sees it
        import traceback

        worker.say(f"run {run_id}: the worker failed:\n{traceback.format_exc()}")
        with contextlib.suppress(*worker.db_errors):
            await worker.record(_failed, run_id, f"the station's worker failed: {exc!r}")
        raise
    finally:
        worker.current_job = None


class _QueueWorker(Worker):
    """procrastinate's worker, whose telling the queue that a job ended rides out a database
    outage as the station's other writes do.

    procrastinate tells the queue in the job's own task, which nothing awaits: a database
    that dropped just then left the job ``doing`` and the error in that task, reported only
    as "Task exception was never retrieved" with a traceback when the task was collected.
    Here the end is tried again until the database answers (and once the queue holds it,
    not again: the first try may have gone through before the connection broke)."""

    def __init__(self, station: StationWorker, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.station = station

    async def _persist_job_status(self, job: Any, status: Any, retry_decision: Any,
                                  context: Any, job_result: Any) -> None:
        station, pause, since = self.station, 0.5, time.monotonic()
        while True:
            try:
                await super()._persist_job_status(job=job, status=status,
                                                  retry_decision=retry_decision,
                                                  context=context, job_result=job_result)
                station.database_up()
                return
            except station.db_errors as exc:
                station.database_down(exc)
            with contextlib.suppress(*station.db_errors):
                if await station.link(_job_status, job.id) != "doing":
                    return   # it went through before the connection broke
            if station.stopping and time.monotonic() - since > STOP_PATIENCE_S:
                station.say(f"job {job.id}: its end ({status.value}) has not reached the"
                            " queue; the station's next worker ends it as the record says")
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)


class TakenElsewhere(LabError):
    """The run of this job was started by another station (through its class's job)."""


def _passing() -> tuple[type[BaseException], ...]:
    from sequencer.lab.job import StationStopping

    return (StationStopping,)


class _Retry(BaseRetryStrategy):
    """procrastinate's retry strategy for the lab: a stopping worker's job goes back to its
    station's queue; a job this station cannot place goes back to its queue for another;
    nothing else is retried (a run is never started twice by accident)."""

    def get_retry_decision(self, *, exception: BaseException, job: Any) -> RetryDecision | None:
        from sequencer.lab.job import PassOn, StationStopping

        if isinstance(exception, StationStopping):
            return RetryDecision(retry_at=_now(), queue=exception.queue)
        if isinstance(exception, PassOn):
            return RetryDecision(retry_in={"seconds": 5})
        return None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _print(message: str) -> None:
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    print(f"{stamp} {message}", flush=True, file=sys.stdout)


# -- the record (each runs in the worker's record link) ----------------------------------------

def _fetch_files(conn: Any, run_id: str) -> list[tuple[str, bytes]]:
    from sequencer.lab.job import _fetch_files as fetch

    return fetch(conn, run_id)


def _left_running(conn: Any, station: str) -> list[tuple[int, bool, str]]:
    return conn.execute("SELECT j.id, j.abort_requested, r.run_id FROM procrastinate_jobs j"
                        " JOIN runs r ON r.job_id = j.id WHERE j.status = 'doing' AND"
                        " r.station = %s ORDER BY j.id", (station,)).fetchall()


def _lost_here(conn: Any, station: str) -> list[tuple[str]]:
    from sequencer.lab.queue import STATION_LOST

    return conn.execute("SELECT run_id FROM runs WHERE station = %s AND status = %s ORDER BY"
                        " run_id", (station, STATION_LOST)).fetchall()


def _never_started(conn: Any, stalled_s: float) -> list[tuple[int, str, bool, bool]]:
    """Jobs a dead worker fetched and never started: (job, run, cancelled, stray), stray
    when another class's job of the run started it (this one is of no use any more)."""
    return conn.execute(
        "SELECT j.id, r.run_id, j.abort_requested, r.started IS NOT NULL"
        " FROM procrastinate_jobs j JOIN runs r ON r.run_id = j.args->>'run_id'"
        " LEFT JOIN procrastinate_workers w ON w.id = j.worker_id WHERE j.status = 'doing'"
        " AND j.task_name = %(task)s"
        " AND (r.started IS NULL OR r.job_id IS DISTINCT FROM j.id)"
        " AND (w.id IS NULL OR w.last_heartbeat < now() - make_interval(secs => %(s)s))"
        " AND NOT EXISTS (SELECT 1 FROM procrastinate_events e"
        " WHERE e.job_id = j.id AND e.type = 'started' AND e.at > now() -"
        " make_interval(secs => %(s)s))", {"s": stalled_s, "task": TASK}).fetchall()
    # (a job fetched moments ago is being started: its worker's heartbeat may be late, or
    # its worker's row pruned by another worker after a dropped connection)


def _ended_still_doing(conn: Any, station: str, current: int | None, settle_s: float
                       ) -> list[tuple[int, str]]:
    """This station's jobs whose runs ended a while ago (the record says so) and which the
    queue still has running: the end of the job did not reach the queue (the connection
    dropped as the worker reported it). The job this worker runs now is not one."""
    return conn.execute(
        "SELECT j.id, r.status FROM procrastinate_jobs j JOIN runs r ON r.job_id = j.id"
        " WHERE j.status = 'doing' AND r.station = %s AND r.ended IS NOT NULL AND r.ended <"
        " now() - make_interval(secs => %s) AND j.id IS DISTINCT FROM %s",
        (station, settle_s, current)).fetchall()


def _job_status(conn: Any, job_id: int) -> str | None:
    row = conn.execute("SELECT status::text FROM procrastinate_jobs WHERE id = %s",
                       (job_id,)).fetchone()
    return None if row is None else str(row[0])


def _seen(conn: Any, station: str) -> None:
    conn.execute("UPDATE stations SET seen = now() WHERE name = %s", (station,))


def _cancelled(conn: Any, run_id: str, message: str) -> None:
    conn.execute("UPDATE runs SET status = 'cancelled', ended = now(), message = %s WHERE"
                 " run_id = %s", (message, run_id))


def _failed(conn: Any, run_id: str, message: str) -> None:
    conn.execute("UPDATE runs SET status = 'failed', ended = now(), message = %s WHERE"
                 " run_id = %s", (message, run_id))
