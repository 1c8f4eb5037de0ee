"""One job on a station: its run directory, the run, and the run's copy to the lab record.

The run is an ordinary ``cellseq run`` (or ``cellseq resume``) in a process of its own, into a
run directory on the station's disk (``<runs>/<run_id>``); beside it, ``<runs>/.lab/<run_id>``
keeps what the job brought (the protocol files as submitted, the station it was placed on) and
what the run printed (``output.log``). The run needs no database: it keeps running through a
network or database outage, and the copy to the record (:mod:`sequencer.lab.replicate`)
catches up when the database answers again.

How a job ends:

- the run finished (completed, or with faulted cells): its status goes to the record, and the
  job succeeds;
- the station refused it (the protocol does not validate on this station, the run directory
  of a started run is missing): the job fails with the reason, nothing ran; a job that only
  needs kinds of instrument and cannot be placed here after all (it is queued only for
  classes of station that can place it, so this is a station whose file changed since) is
  passed on to another station; a job whose run another class's job started first ends
  having run nothing;
- the run stopped on an error that is not a cell's (``aborted``: an instrument unreachable at
  the start): the job fails with the run's message; the run can be resumed by hand;
- the run's process died under a live worker: resumed at once, at most ``MAX_RESUMES`` times;
- the worker was asked to stop: the run stops (every output off) and the job goes back to this
  station's queue, to be resumed when its worker starts again;
- the job was cancelled: the run stops the same way and the job ends ``cancelled``.

A worker that dies (the station PC crashes) leaves its job ``doing``; the station's next worker
requeues it for itself and resumes the run (:mod:`sequencer.lab.worker`). If the run's process
outlived the worker, the new worker waits for it to end, copying its rows meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml

from sequencer.lab.placement import NotPlaceable, place
from sequencer.lab.replicate import Replica, ReplicaConflict
from sequencer.lab.settings import SECRET_ENV, LabError
from store import DB_NAME

if TYPE_CHECKING:
    from sequencer.lab.worker import StationWorker

#: Wall seconds between two copies of a running run's new rows.
REPLICATE_EVERY_S = 0.5
#: Resumes of a run whose process died while its worker lived, before the job fails.
MAX_RESUMES = 3
#: How long a stopping worker keeps trying to copy the last rows before leaving them for the
#: next start (they are kept in the run store either way).
STOP_SYNC_S = 10.0
WORK = ".lab"


class JobRefused(LabError):
    """The station will not run this job; nothing ran (or nothing more runs)."""


class PassOn(LabError):
    """This station cannot place the job; another one with the same kinds may."""


class StationStopping(Exception):
    """The worker is stopping: the job goes back to its station's queue."""

    def __init__(self, queue: str) -> None:
        super().__init__(f"the station's worker stopped; the job waits in {queue}")
        self.queue = queue


class JobRun:
    """One job, from fetching to its end, on ``worker``'s station."""

    def __init__(self, worker: StationWorker, run_id: str, job_id: int | None = None) -> None:
        self.worker = worker
        self.run_id = run_id
        #: the queue job this run is taken under (None: ending a job left behind)
        self.job_id = job_id
        self.run_dir = worker.runs_root / run_id
        self.work = worker.runs_root / WORK / run_id
        self.replica = Replica(run_id, self.run_dir)
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping_run = False
        self._conflict: ReplicaConflict | None = None
        self._ctrl_c: asyncio.Future[None] | None = None

    # -- the job ---------------------------------------------------------------------------

    async def run(self) -> str:
        me = self.worker.name
        record = await self.worker.record(_fetch_run, self.run_id)
        if record is None:
            raise JobRefused(f"run {self.run_id} is not in the lab record")
        if record["station"] not in (None, me):
            if self.job_id is not None and record["job_id"] != self.job_id:
                raise self._taken(record["station"])
            raise JobRefused(f"run {self.run_id} started on station {record['station']}; it"
                             " resumes only there")
        try:
            if self.run_dir.exists() or self._earlier_process() is not None:
                await self._settled()   # an earlier worker's run may still be going: wait
            continuing = (self.run_dir / DB_NAME).exists()
            if record["started"] is not None and not continuing:
                # started, and no store: the station died before the run made it (nothing ran
                # and nothing was recorded: start afresh), or the store is gone (refuse)
                if await self.worker.record(_has_record, self.run_id):
                    await self._finish("lost", f"its run directory {self.run_dir} is missing on"
                                       f" station {me}; it cannot be resumed")
                    raise JobRefused(f"run {self.run_id}: run directory {self.run_dir} missing")
                if self.run_dir.exists():
                    shutil.rmtree(self.run_dir)
            station_file = self.work / "station.yaml" if record["needs"] else \
                self.worker.station_path
            if not continuing:
                protocol = await self._prepare(record)
                await self._start(record)
                command = ["run", str(protocol), "--station", str(station_file), "--out",
                           str(self.run_dir), "--seed", str(record["seed"])]
                if self.worker.speed is not None:   # a resume keeps the pace (its manifest)
                    command += ["--sim", "--speed", repr(self.worker.speed)]
            resumes = 0
            while True:
                if continuing:
                    status = await self._settled()
                    if status in FINISHED:
                        break
                    resumes += 1
                    if resumes > MAX_RESUMES:
                        await self._finish(status or "interrupted", f"its process died"
                                           f" {MAX_RESUMES} times on resume; see"
                                           f" {self.work / 'output.log'}")
                        raise JobRefused(f"run {self.run_id} failed {MAX_RESUMES} resumes")
                    await self.worker.record(_note_resume, self.run_id, me)
                    self.worker.say(f"run {self.run_id}: resuming where its store ends")
                    command = ["resume", str(self.run_dir), "--station", str(station_file)]
                code = await self._supervise(command)
                status = await self._status()
                if self.worker.stopping and status not in FINISHED:
                    await self._sync_until(STOP_SYNC_S)
                    await self.worker.record(_set_status, self.run_id, "interrupted",
                               f"station {me}'s worker stopped; the run resumes when it starts"
                               " again")
                    raise StationStopping(self.worker.queues[0])
                if status is None:   # refused before a run began (the run validates again)
                    message = _tail(self.work / "output.log") or f"exit code {code}"
                    await self._finish("refused", message)
                    raise JobRefused(f"run {self.run_id} refused: {message}")
                if status in FINISHED:
                    break
                if status == "aborted":
                    message = _tail(self.work / "output.log") or "aborted"
                    await self._sync_until(None)
                    await self._finish("aborted", f"{message} (resume it on station {me}"
                                       f" with: cellseq resume {self.run_dir})")
                    raise JobRefused(f"run {self.run_id} aborted: {message}")
                continuing = True   # interrupted: its process died under us
            await self._sync_until(None)
            return await self._finished(status)
        except asyncio.CancelledError:
            # the job was cancelled (procrastinate cancels an async task when asked to abort)
            await self._stop_run()
            await self._sync_until(STOP_SYNC_S)
            with contextlib.suppress(*self.worker.db_errors):
                await self._finish("cancelled", "cancelled while it ran; every output was"
                                   " turned off")
            raise
        finally:
            self.replica.close()

    async def end_cancelled(self) -> None:
        """A job cancelled while no worker of its station ran (the worker was killed, the PC
        crashed): a run whose process outlived the worker is stopped (every output off), the
        rows its store holds are copied, and the run ends ``cancelled`` in the record."""
        from sequencer.locks import run_dir_in_use

        try:
            still = self.run_dir.exists() and run_dir_in_use(self.run_dir)
            if still:
                self.worker.say(f"run {self.run_id}: cancelled while no worker ran it, and its"
                                " process still runs: stopping it (every output off)")
                await self._stop_run()
            copied = True
            if (self.run_dir / DB_NAME).exists():
                copied = await self._sync_until(STOP_SYNC_S)
            how = "its run was stopped with every output off" if still else \
                "its run's process had already ended with the station's worker"
            message = f"cancelled while no worker ran it; {how}"
            if not copied:
                message += ("; rows its store holds are not all in the record yet (they stay"
                            f" in {self.run_dir})")
            await self._finish("cancelled", message)
        finally:
            self.replica.close()

    async def _prepare(self, record: dict[str, Any]) -> Path:
        """Write the submitted files, place the job (``--needs``), validate it on this
        station; JobRefused (or PassOn) with the reason, before anything runs."""
        from protocols.errors import ProtocolError
        from sequencer.plan import build_plan

        files = await self.worker.record(_fetch_files, self.run_id)
        folder = self.work / "protocol"
        for name, data in files:
            target = folder / _safe_relative(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        protocol = folder / _safe_relative(record["protocol"])

        def check() -> None:
            from protocols import load_campaign

            campaign = load_campaign(protocol)
            station = self.worker.station
            if record["needs"]:
                station = place(campaign, station)
                (self.work / "station.yaml").write_text(
                    yaml.safe_dump(station.model_dump(mode="json", exclude_none=True),
                                   sort_keys=False), encoding="utf-8")
            build_plan(campaign, station, protocol.name)

        try:
            await asyncio.to_thread(check)
        except NotPlaceable as exc:
            everyone = await self.worker.record(_refused_by, self.run_id, self.worker.name,
                                              record["needs"])
            if everyone:
                await self._finish("refused", f"no station can place it: {exc}")
                raise JobRefused(str(exc)) from None
            if self.worker.name not in (record["refused_by"] or []):   # said once a job
                self.worker.say(f"run {self.run_id}: {exc}; passed on to another station")
            raise PassOn(str(exc)) from None
        except ProtocolError as exc:
            message = f"does not validate on station {self.worker.name}: {exc}"
            await self._finish("refused", message)
            raise JobRefused(f"run {self.run_id} {message}") from None
        return protocol

    async def _start(self, record: dict[str, Any]) -> None:
        claimed = await self.worker.record(_claim, self.run_id, self.worker.name,
                                         str(self.run_dir.resolve()), self.job_id)
        if claimed is not None:
            raise self._taken(claimed)
        job = self.job_id if self.job_id is not None else record["job_id"]
        self.worker.say(f"run {self.run_id} (job {job}): starting")
        if self.job_id is not None and self.worker.app is not None:
            from sequencer.lab.queue import run_jobs

            for other, status in await self.worker.record(run_jobs, self.run_id):
                if other != self.job_id and status == "todo":   # its other classes' jobs
                    await self.worker.app.job_manager.cancel_job_by_id_async(other)

    def _taken(self, station: str) -> LabError:
        """Another class's job of this run started it on ``station``: this job ends, having
        run nothing (the files it wrote for the run go)."""
        from sequencer.lab.worker import TakenElsewhere

        if not self.run_dir.exists():
            shutil.rmtree(self.work, ignore_errors=True)
        return TakenElsewhere(f"station {station} took the run first; nothing ran here")

    # -- the run's process -----------------------------------------------------------------

    async def _supervise(self, command: list[str]) -> int:
        """Run ``cellseq COMMAND`` in its own process (group), copying its rows as it goes;
        returns its exit code."""
        self.work.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
        with open(self.work / "output.log", "ab") as output:
            options: dict[str, Any] = {"start_new_session": True} if os.name != "nt" else \
                {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sequencer", *command, "--no-report",
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env,
                **options)
        (self.work / "run.pid").write_text(str(self._proc.pid), encoding="utf-8")
        waiting = asyncio.ensure_future(self._proc.wait())
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=REPLICATE_EVERY_S)
            if self.worker.stopping and not self._stopping_run:
                self._interrupt()
            await self._sync_once()
        return waiting.result()

    async def _settled(self) -> str | None:
        """The status of a run found on disk, once no process works in it: a run whose
        process outlived its worker is waited for (and copied meanwhile)."""
        from sequencer.locks import run_dir_in_use

        def in_use() -> bool:
            # a process an earlier worker started moments before it died may not hold the
            # run directory yet (it is starting up): a second run or resume started beside it
            # would race it for the directory
            return bool(run_dir_in_use(self.run_dir)) or self._earlier_process() is not None

        if in_use():
            self.worker.say(f"run {self.run_id}: still running in a process of an earlier"
                            " worker; waiting for it")
            while in_use():
                if self.worker.stopping and not self._stopping_run:
                    self._interrupt()
                await self._sync_once()
                await asyncio.sleep(REPLICATE_EVERY_S)
        return await self._status()

    async def _status(self) -> str | None:
        if not (self.run_dir / DB_NAME).exists():
            return None
        from sequencer.status import run_status

        return (await asyncio.to_thread(run_status, self.run_dir))["status"]

    def _interrupt(self) -> None:
        """Ctrl-C twice to the run: pause at once, then stop with every output off."""
        self._stopping_run = True
        self.worker.say(f"run {self.run_id}: stopping it (every output off)")
        self._ctrl_c = asyncio.ensure_future(self._ctrl_c_twice())

    async def _ctrl_c_twice(self) -> None:
        """Two, a second apart (signals sent together may arrive as one); never a third,
        which would land in the run's own shutdown."""
        pid = self._run_pid()
        for wait_s in (0.0, 1.0):
            await asyncio.sleep(wait_s)
            if pid is None or not _alive(pid):
                return
            _send_ctrl_c(pid)

    def _earlier_process(self) -> int | None:
        """The process of this run an earlier worker started, if it still runs (this JobRun's
        own process is waited for by :meth:`_supervise`, not here)."""
        if self._proc is not None:
            return None
        pid = self._run_pid()
        return pid if pid is not None and _runs_in(pid, self.run_dir) else None

    def _run_pid(self) -> int | None:
        if self._proc is not None:
            return self._proc.pid
        try:
            return int((self.work / "run.pid").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    async def _stop_run(self) -> None:
        if not self._stopping_run:
            self._interrupt()
        if self._proc is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proc.wait(), 60)
            return
        deadline = time.monotonic() + 60
        pid = self._run_pid()
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)

    # -- the copy ----------------------------------------------------------------------------

    async def _sync_once(self) -> bool:
        if self._conflict is not None:
            return False
        try:
            copied = await self.worker.link(self.replica.sync)
        except ReplicaConflict as exc:
            self._conflict = exc
            self.worker.say(f"error: {exc}")
            with contextlib.suppress(*self.worker.db_errors):
                await self.worker.record(_lab_event, self.worker.name, self.run_id,
                                       "record_conflict", str(exc))
            return False
        except self.worker.db_errors as exc:
            self.worker.database_down(exc)
            return False
        self.worker.database_up(copied)
        return True

    async def _sync_until(self, limit_s: float | None) -> bool:
        """Copy until the record holds everything (``limit_s``: give up after that long; the
        rows stay in the run store for the next worker)."""
        deadline = None if limit_s is None else time.monotonic() + limit_s
        pause = 0.5
        while not await self._sync_once():
            if self._conflict is not None:
                return False
            if deadline is not None and time.monotonic() > deadline:
                if limit_s is None:   # the worker stops while the database is away
                    raise StationStopping(self.worker.queues[0])
                return False
            if deadline is None and self.worker.stopping:
                # the rows stay in the run store: the station's next worker copies them and
                # ends the job; a worker asked to stop does not wait for the database
                deadline = time.monotonic() + STOP_SYNC_S
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)
        return True

    async def _finished(self, status: str) -> str:
        from sequencer.status import run_status

        st = await asyncio.to_thread(run_status, self.run_dir)
        faulted = ", ".join(st["faulted"])
        counts = await self.worker.record(_counts, self.run_id)
        local = await asyncio.to_thread(_local_counts, self.run_dir)
        message = f"{counts['points']} points in the record" + \
            (f"; cells that faulted: {faulted}" if faulted else "")
        if self._conflict is not None:
            message += f"; the record is incomplete: {self._conflict}"
        elif counts != local:
            message += (f"; the record differs from the station's store (record {counts},"
                        f" store {local})")
            await self.worker.record(_lab_event, self.worker.name, self.run_id,
                                   "record_mismatch", message)
        await self._finish(status, message)
        self.worker.say(f"run {self.run_id}: {status}; {message}")
        return status

    async def _finish(self, status: str, message: str) -> None:
        await self.worker.record(_end, self.run_id, status, message)
        await self.worker.record(_lab_event, self.worker.name, self.run_id, status, message)


FINISHED = ("completed", "completed_with_faults", "faulted")


def _safe_relative(name: str) -> PurePosixPath:
    """A submitted file's name as a path inside the job's folder (names come from the
    database: refuse anything that would climb out)."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts or ":" in name:
        raise JobRefused(f"submitted file name {name!r} is not a relative path")
    return path


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:] if line.strip())


def _alive(pid: int) -> bool:
    """Whether a process (an earlier worker's run) still exists; one that has ended and
    waits to be reaped (a zombie: its parent, the earlier worker, is gone) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # not ours to signal, but there
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    return True


def _runs_in(pid: int, run_dir: Path) -> bool:
    """Whether ``pid`` is alive and is a ``cellseq`` run or resume of ``run_dir`` (the pid a
    run.pid file names may since have been given to another program, after a reboot). Where
    a process's command line cannot be read (no /proc), False: the run directory's lock is
    all there is to go by."""
    if not _alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return os.fsencode(str(run_dir)) in argv


def _send_ctrl_c(pid: int) -> None:
    """Ctrl-C to the run's process. On Windows a process in its own group gets Ctrl-Break,
    which ends it as a crash would (its outputs are left as a crash leaves them)."""
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        os.kill(pid, signal.CTRL_BREAK_EVENT if os.name == "nt" else signal.SIGINT)


def _local_counts(run_dir: Path) -> dict[str, int]:
    from store import RunStore

    store = RunStore.open(run_dir)
    try:
        return {"points": store.point_count(), "steps": len(store.steps()),
                "events": len(store.events())}
    finally:
        store.close()


# -- the record, as the worker writes it (each runs in the worker's record link) -------------

def _fetch_run(conn: Any, run_id: str) -> dict[str, Any] | None:
    cur = conn.execute("SELECT run_id, job_id, protocol, seed, target_station, needs, station,"
                       " status, started, refused_by FROM runs WHERE run_id = %s", (run_id,))
    row = cur.fetchone()
    return None if row is None else dict(zip([d.name for d in cur.description], row,
                                             strict=True))


def _fetch_files(conn: Any, run_id: str) -> list[tuple[str, bytes]]:
    return [(name, bytes(data)) for name, data in conn.execute(
        "SELECT name, data FROM run_files WHERE run_id = %s ORDER BY name", (run_id,))]


def _claim(conn: Any, run_id: str, station: str, run_dir: str, job_id: int | None
           ) -> str | None:
    """The run is this station's from now on, under ``job_id`` (the job of its class that
    started it); returns None, or the station that took it first."""
    with conn.transaction():
        row = conn.execute("UPDATE runs SET station = %s, status = 'running',"
                           " started = coalesce(started, now()), run_dir = %s,"
                           " job_id = coalesce(%s::bigint, job_id) WHERE run_id = %s AND"
                           " (station IS NULL OR station = %s) RETURNING run_id",
                           (station, run_dir, job_id, run_id, station)).fetchone()
        if row is not None:
            return None
        taken = conn.execute("SELECT station FROM runs WHERE run_id = %s",
                             (run_id,)).fetchone()
    return str(taken[0]) if taken and taken[0] else "another"


def _note_resume(conn: Any, run_id: str, station: str) -> None:
    conn.execute("UPDATE runs SET status = 'running', resumes = resumes + 1 WHERE run_id = %s",
                 (run_id,))
    _lab_event(conn, station, run_id, "resumed", f"resumed on station {station}")


def _set_status(conn: Any, run_id: str, status: str, message: str) -> None:
    conn.execute("UPDATE runs SET status = %s, message = %s WHERE run_id = %s",
                 (status, message, run_id))


def _end(conn: Any, run_id: str, status: str, message: str) -> None:
    conn.execute("UPDATE runs SET status = %s, message = %s, ended = now() WHERE run_id = %s",
                 (status, message, run_id))


def _lab_event(conn: Any, station: str, run_id: str | None, kind: str, message: str) -> None:
    conn.execute("INSERT INTO lab_events (station, run_id, kind, message) VALUES"
                 " (%s, %s, %s, %s)", (station, run_id, kind, message))


def _refused_by(conn: Any, run_id: str, station: str, needs: list[str]) -> bool:
    """Note that ``station`` cannot place the run; True when every station with the kinds
    it needs has said so."""
    row = conn.execute("UPDATE runs SET refused_by = array_append(refused_by, %s) WHERE"
                       " run_id = %s AND NOT %s = ANY(refused_by) RETURNING refused_by",
                       (station, run_id, station)).fetchone()
    refused = set(row[0]) if row else {station}
    able = {name for name, kinds in conn.execute("SELECT name, kinds FROM stations")
            if set(needs) <= set(kinds)}
    return able <= refused


def _has_record(conn: Any, run_id: str) -> bool:
    """Whether the record holds anything of the run's store."""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM run_meta WHERE run_id = %(r)s) OR EXISTS"
                       " (SELECT 1 FROM run_events WHERE run_id = %(r)s)", {"r": run_id})
    return bool(row.fetchone()[0])


def _counts(conn: Any, run_id: str) -> dict[str, int]:
    row = conn.execute(
        "SELECT (SELECT coalesce(sum(n), 0) FROM run_chunks WHERE run_id = %(r)s),"
        " (SELECT count(*) FROM run_steps WHERE run_id = %(r)s),"
        " (SELECT count(*) FROM run_events WHERE run_id = %(r)s)", {"r": run_id}).fetchone()
    return {"points": int(row[0]), "steps": int(row[1]), "events": int(row[2])}
