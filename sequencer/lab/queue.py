"""The lab's queue (procrastinate) and the commands that put work in it and take it out.

One procrastinate task, ``cellseq.run``, with one argument: the run's id. Everything else a
station needs (the protocol files, the seed, where the job may go) is in the lab record
(``runs``, ``run_files``), written at submission, so a job is as readable as the record.

Queues route jobs to stations:

- ``<lab>/s/<station>``: a job for that station alone (``--station``), and every job a station
  has started: a started job's cells are on that station's channels, so it never moves;
- ``<lab>/k/<class>``: a job that needs only kinds of instrument (``--needs``). A station's
  class is what its instruments can do (:func:`capability_class`); stations of one class
  place a job alike. At submission the job is placed on one station of each class (as the
  station will place it), and goes to the queue of every class that can run it: one
  procrastinate job per such class, all for the same run. The first station to start the run
  claims it, and the other jobs of the run are cancelled then. So a job is fetched only by
  stations that can run it, never by one that would fetch it again and again to pass it on;
- ``<lab>/w``: a ``--needs`` job no station of the lab can run yet (none has the kinds, or
  none can place it). No worker takes from it: it holds the job (so that ``cellseq lab
  status`` shows it, and ``cellseq lab cancel`` withdraws it) until a station that can run it
  joins. A worker routes the waiting ``--needs`` jobs it can run to its class's queue when it
  registers, and every half minute after (:func:`waiting_for`, :func:`route`): a class that joins
  after a job was submitted gets it, whether or not another class could run it then. The
  first station to start the run still takes it, and the others' jobs of it end;
- ``<lab>/n/<kinds>``: where earlier versions queued ``--needs`` jobs (kinds coded ``c``
  cycler, ``p`` potentiostat, ``t`` chamber); workers still take from them, so jobs queued
  before an upgrade run.

Queue names are short because PostgreSQL notifies each queue on a channel whose name is at
most 63 bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sequencer.lab.settings import LabDb, LabError, station_name

if TYPE_CHECKING:
    import procrastinate
    import psycopg

    from protocols import Campaign
    from sequencer.station import Station

TASK = "cellseq.run"
#: A station whose worker has not reported for this long (three of its reports) is not
#: running: a cancel says the stop cannot be confirmed.
SILENT_S = 15.0
KIND_CODES = {"cycler": "c", "potentiostat": "p", "chamber": "t"}
KINDS = tuple(KIND_CODES)
#: How the note of a job accepted to wait for a station that can run it begins.
WAITING_NOTE = "waiting: "


def station_queue(lab: str, station: str) -> str:
    return f"{lab}/s/{station}"


def needs_queue(lab: str, kinds: Iterable[str]) -> str:
    return f"{lab}/n/{''.join(sorted(KIND_CODES[k] for k in set(kinds)))}"


def class_queue(lab: str, capability: str) -> str:
    return f"{lab}/k/{capability}"


def waiting_queue(lab: str) -> str:
    """Where a ``--needs`` job waits while no station of the lab can run it."""
    return f"{lab}/w"


def capability_class(station: Station) -> str:
    """A station's class: what its instruments are and can do, as placement sees it: each
    one's driver, channel count and channel capabilities as its driver rates them from its
    options (an instrument without such a rating, a chamber: its options). Names, addresses,
    passwords, mounted cells and options that change no capability (a folder, a time-out) are
    left out: stations that differ only in them place a job alike."""
    import dataclasses

    parts = []
    for inst in station.instruments.values():
        caps = inst.spec.capabilities(inst.parsed_options()) if inst.spec.capabilities \
            else None
        parts.append(json.dumps(
            {"driver": inst.driver, "channels": inst.channel_count,
             "can": dataclasses.asdict(caps) if caps is not None else None,
             "options": inst.options if caps is None else None},
            sort_keys=True, default=lambda v: sorted(v)))   # frozensets of names
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:12]


def worker_queues(lab: str, station: str, kinds: Iterable[str], capability: str) -> list[str]:
    """The station's own queue, its class's queue, then (for jobs queued by earlier versions)
    one per combination of the kinds it has."""
    have = sorted(set(kinds))
    combos = [c for n in range(1, len(have) + 1) for c in itertools.combinations(have, n)]
    return [station_queue(lab, station), class_queue(lab, capability),
            *(needs_queue(lab, c) for c in combos)]


def parse_needs(text: str) -> tuple[str, ...]:
    kinds = tuple(sorted({k.strip() for k in text.split(",") if k.strip()}))
    unknown = [k for k in kinds if k not in KIND_CODES]
    if unknown or not kinds:
        raise LabError(f"--needs {text!r}: a comma-separated list of {', '.join(KINDS)}")
    return kinds


#: How long a task waits for one of the app's few connections before it counts as an outage:
#: the worker's own connections are never all busy for long, so only a database away waits.
POOL_WAIT_S = 10.0


def make_app(db: LabDb, *, max_connections: int = 3, application: str = "cellseq") -> \
        procrastinate.App:
    """The lab's procrastinate app: its tables are in the lab's schema (the connection's
    search_path), its connections few (a lab has many workers)."""
    import procrastinate

    # a connection is waited for POOL_WAIT_S, not psycopg_pool's 30 s: with the database away,
    # a stopping worker's last writes (each waits for a connection) would hold it minutes
    connector = procrastinate.PsycopgConnector(
        conninfo=db.with_options(application_name=application[:63]),
        min_size=1, max_size=max_connections, timeout=POOL_WAIT_S)
    return procrastinate.App(connector=connector)


def kinds_needed(campaign: Campaign) -> tuple[str, ...]:
    """The kinds of instrument a protocol needs: those of the simulated station ``--sim``
    would place it on (a potentiostat only for what a cycler cannot run)."""
    from sequencer.station import simulated_station

    station = simulated_station(campaign)
    used = {station.instruments[p.instrument].kind for p in station.cells.values()}
    used |= {station.instruments[p.chamber].kind for p in station.cells.values() if p.chamber}
    return tuple(sorted(used))


def submit(conn: psycopg.Connection, db: LabDb, protocol: Path, *, station: str | None,
           needs: tuple[str, ...] | None, seed: int, app: procrastinate.App | None = None
           ) -> tuple[int, str, list[str]]:
    """Validate ``protocol`` and queue it: for ``station`` alone, or for any station with the
    kinds of instrument ``needs`` (default: those the protocol needs). Returns the job id, the
    run id and notes for the user. Raises ProtocolError (the protocol is invalid) or LabError
    (no such station, none that can run it); nothing is queued then. ``app``: an open
    procrastinate app of the lab, to queue many jobs through one pool."""
    from protocols import load_campaign
    from sequencer.plan import build_plan
    from sequencer.station import simulated_station

    campaign = load_campaign(protocol)
    build_plan(campaign, simulated_station(campaign), protocol.name)   # the protocol itself
    notes: list[str] = []
    stations, classes = _stations(conn)
    if station is not None:
        station_name(station)
        if station not in stations:
            raise LabError(f"lab {db.lab!r} has no station {station!r}"
                           f" ({_listing(stations)}); a station joins when its worker starts")
        build_plan(campaign, stations[station], protocol.name)   # ProtocolError names it
        queues, needs = [station_queue(db.lab, station)], None
    else:
        required = kinds_needed(campaign)
        if needs is None:
            needs = required
        missing = sorted(set(required) - set(needs))
        if missing:
            raise LabError(f"{protocol.name} needs a {' and a '.join(missing)} (as --sim would"
                           f" place it), which --needs {','.join(needs)} leaves out")
        able: dict[str, list[str]] = {}   # class -> its stations that can run it
        unable = []
        verdicts: dict[str, str | None] = {}   # one placement per class
        for name, candidate in stations.items():
            if not set(needs) <= {i.kind for i in candidate.instruments.values()}:
                continue
            capability = classes[name]
            if capability not in verdicts:
                verdicts[capability] = cannot_run(campaign, candidate, protocol.name)
            if verdicts[capability] is None:
                able.setdefault(capability, []).append(name)
            else:
                unable.append(f"{name}: {verdicts[capability]}")
        if not able:   # accepted, to wait for a station that can: said loudly
            why = "; ".join(unable) if unable else \
                f"none has a {' and a '.join(needs)} ({_listing(stations)})"
            notes.append(f"{WAITING_NOTE}no station of lab {db.lab!r} can run {protocol.name} now"
                         f" ({why}). It is queued, and waits until a station that can run it"
                         " joins (its worker takes it then); cellseq lab status shows it"
                         " waiting, cellseq lab cancel withdraws it")
            queues = [waiting_queue(db.lab)]
        else:
            if unable:
                notes.append("stations that cannot run it (it is not queued for them): "
                             + "; ".join(unable))
            queues = [class_queue(db.lab, c) for c in sorted(able)]
    run_id = _run_id(campaign.campaign)
    with conn.transaction():
        conn.execute("INSERT INTO runs (run_id, campaign, protocol, seed, target_station, needs,"
                     " status) VALUES (%s, %s, %s, %s, %s, %s, 'queued')",
                     (run_id, campaign.campaign, protocol.name, seed, station,
                      list(needs) if needs else None))
        for f in campaign.files:
            conn.execute("INSERT INTO run_files VALUES (%s, %s, %s, %s)",
                         (run_id, f.name, f.data, hashlib.sha256(f.data).hexdigest()))
    jobs: list[int] = []
    try:
        if app is None:
            with make_app(db, application="cellseq lab submit").open() as own:
                jobs += [own.configure_task(TASK, queue=q).defer(run_id=run_id) for q in queues]
        else:
            jobs += [app.configure_task(TASK, queue=q).defer(run_id=run_id) for q in queues]
    except Exception as exc:
        for job in jobs:   # the jobs of the run queued before the failure go too
            conn.execute("UPDATE procrastinate_jobs SET status = 'cancelled' WHERE id = %s AND"
                         " status = 'todo'", (job,))
        with conn.transaction():
            conn.execute("UPDATE runs SET status = 'refused', message = %s, ended = now()"
                         " WHERE run_id = %s", (f"could not be queued: {exc}", run_id))
        raise LabError(f"{run_id} could not be queued: {exc}") from None
    job_id = jobs[0]
    with conn.transaction():
        conn.execute("UPDATE runs SET job_id = %s WHERE run_id = %s", (job_id, run_id))
    if len(jobs) > 1:
        notes.append(f"queued for {len(jobs)} classes of station that can run it (jobs"
                     f" {', '.join(map(str, jobs))}; the first station to start it takes it):"
                     + "; ".join(", ".join(names) for names in able.values()))
    return job_id, run_id, notes


def cannot_run(campaign: Campaign, station: Station, protocol_name: str) -> str | None:
    """Why ``station`` cannot run a ``--needs`` job (placed on it as its worker would place
    it), or None when it can."""
    from protocols.errors import ProtocolError
    from sequencer.lab.placement import place
    from sequencer.plan import build_plan

    try:
        build_plan(campaign, place(campaign, station), protocol_name)
    except (LabError, ProtocolError) as exc:
        return str(exc).splitlines()[0]
    return None


def waiting_for(conn: psycopg.Connection, kinds: Iterable[str], queue: str
                ) -> list[tuple[str, str, bool]]:
    """``--needs`` runs no station has started, whose kinds a station of ``kinds`` has, that
    still have a job in the queue and none in ``queue``: (run id, top protocol file, whether
    it waits for any station at all: queued for no class)."""
    waiting = waiting_queue(queue.rsplit("/k/", 1)[0])
    return [(str(r), str(p), bool(w)) for r, p, w in conn.execute(
        "SELECT r.run_id, r.protocol, NOT EXISTS (SELECT 1 FROM procrastinate_jobs j WHERE"
        "   j.task_name = %(task)s AND j.args->>'run_id' = r.run_id AND j.status = 'todo'"
        "   AND j.queue_name <> %(waiting)s)"
        " FROM runs r WHERE r.status = 'queued' AND r.station IS NULL"
        " AND r.started IS NULL AND r.needs IS NOT NULL AND r.needs <@ %(kinds)s::text[]"
        " AND EXISTS (SELECT 1 FROM procrastinate_jobs j WHERE j.task_name = %(task)s AND"
        "   j.args->>'run_id' = r.run_id AND j.status = 'todo' AND NOT j.abort_requested)"
        " AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j WHERE j.task_name = %(task)s AND"
        "   j.args->>'run_id' = r.run_id AND j.queue_name = %(queue)s AND j.status IN"
        "   ('todo', 'doing'))"
        " ORDER BY r.submitted",
        {"kinds": sorted(set(kinds)), "queue": queue, "task": TASK, "waiting": waiting})]


def route(conn: psycopg.Connection, run_id: str, queue: str) -> int | None:
    """Queue a job of a waiting ``--needs`` run in ``queue`` (a class's): the new job's id,
    or None when the run needs none there (started, withdrawn, or queued there already).
    Done by the record's ``cellseq_route_run``, which a station's login may call although it
    may not queue work of its own (:mod:`sequencer.lab.schema`)."""
    row = conn.execute("SELECT cellseq_route_run(%s, %s)", (run_id, queue)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def run_jobs(conn: psycopg.Connection, run_id: str) -> list[tuple[int, str]]:
    """Every queue job of a run that has not ended, as (id, status): a ``--needs`` run has
    one per class of station that can run it until one station starts it."""
    return [(int(i), str(st)) for i, st in conn.execute(
        "SELECT id, status::text FROM procrastinate_jobs WHERE task_name = %s AND"
        " args->>'run_id' = %s AND status IN ('todo', 'doing') ORDER BY id", (TASK, run_id))]


def cancel(conn: psycopg.Connection, db: LabDb, job: str) -> str:
    """Cancel a queued job, or ask its station to stop a running one (every output off); by
    job id or run id. Returns what happened."""
    row = _job_row(conn, db, job)
    job_id, run_id, status = row
    if status is None:
        raise LabError(f"job {job_id} of run {run_id} is not in the queue")
    app = make_app(db, application="cellseq lab cancel")
    with app.open():
        accepted = app.job_manager.cancel_job_by_id(job_id, abort=True)
        for other, other_status in run_jobs(conn, run_id):   # the run's other classes' jobs
            if other != job_id and other_status == "todo":
                app.job_manager.cancel_job_by_id(other)
    if not accepted:
        raise LabError(f"job {job_id} (run {run_id}) has already ended ({status})")
    if status == "todo":
        with conn.transaction():
            conn.execute("UPDATE runs SET status = 'cancelled', ended = now() WHERE run_id = %s",
                         (run_id,))
        return f"job {job_id} (run {run_id}) cancelled before it started"
    said = (f"job {job_id} (run {run_id}): its station was asked to stop the run; every"
            " output goes off, and cellseq lab status shows it cancelled once the station"
            " confirms")
    row = conn.execute("SELECT r.station, extract(epoch FROM now() - s.seen)::float8 FROM runs r"
                       " LEFT JOIN stations s ON s.name = r.station WHERE r.run_id = %s",
                       (run_id,)).fetchone()
    station, silent_s = row if row else (None, None)
    if station is not None and (silent_s is None or silent_s > SILENT_S):
        said += (f". But station {station} "
                 + ("is not registered in the lab" if silent_s is None else
                    f"has not reported for {silent_s:.0f} s")
                 + ": its worker is not running, so nothing confirms the run has stopped; the"
                 " job shows as cancelling until the station's worker starts again, stops the"
                 " run and ends the job cancelled")
    return said


#: A run's status once its job was cancelled while it ran and its station stayed silent for
#: the lab's station time-out after the cancel: the job has ended, the run's outputs are not
#: known to be off. The station's worker, when it starts again, stops the run and makes it
#: ``cancelled``.
STATION_LOST = "station_lost"


def end_lost_cancels(conn: psycopg.Connection) -> list[str]:
    """End the jobs cancelled while they ran whose station has not confirmed the stop, nor
    reported at all, for the lab's station time-out since the cancel: each job ends
    ``aborted``, its run ``station_lost`` (a run not started yet: ``cancelled``). Returns
    what was ended, as sentences. Any worker of the lab, ``cellseq lab cancel`` and
    ``cellseq lab status`` (with an operator's login) call it: a cancel ends even when its
    station never returns."""
    from procrastinate.sql import queries

    timeout_s = float(conn.execute("SELECT value FROM lab_settings WHERE key ="
                                   " 'station_timeout_s'").fetchone()[0])
    rows = conn.execute(
        "SELECT j.id, r.run_id, r.station, r.started IS NOT NULL,"
        " extract(epoch FROM now() - s.seen)::float8 FROM procrastinate_jobs j"
        " JOIN runs r ON r.job_id = j.id LEFT JOIN stations s ON s.name = r.station"
        " WHERE j.status = 'doing' AND j.abort_requested"
        " AND (s.seen IS NULL OR s.seen < now() - make_interval(secs => %(t)s))"
        " AND (SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id AND"
        "      e.type = 'abort_requested') < now() - make_interval(secs => %(t)s)",
        {"t": timeout_s}).fetchall()
    said = []
    for job_id, run_id, station, started, silent_s in rows:
        if started and station is not None:
            status = STATION_LOST
            silent = "never registered" if silent_s is None else \
                f"silent for {silent_s:.0f} s"
            message = (f"cancelled while it ran; station {station} did not confirm the stop"
                       f" within the lab's time-out ({timeout_s:g} s; it is {silent}): the"
                       " job has ended, nothing confirms the run's outputs are off. Check the"
                       " station; its worker stops the run when it starts again")
        else:
            status, message = "cancelled", "cancelled; its worker was lost before it started"
        with conn.transaction():
            ended = conn.execute("SELECT id FROM procrastinate_jobs WHERE id = %s AND status ="
                                 " 'doing' AND abort_requested FOR UPDATE", (job_id,)).fetchone()
            if ended is None:   # its station, or another sweep, ended it meanwhile
                continue
            conn.execute(queries["finish_job"], {"job_id": job_id, "status": "aborted",
                                                 "delete_job": False})
            conn.execute("UPDATE runs SET status = %s, message = %s, ended = now() WHERE"
                         " run_id = %s", (status, message, run_id))
            conn.execute("INSERT INTO lab_events (station, run_id, kind, message) VALUES"
                         " (%s, %s, %s, %s)", (station, run_id, status, message))
        said.append(f"job {job_id} (run {run_id}) ended {status}: {message}")
    return said


def _job_row(conn: psycopg.Connection, db: LabDb, job: str) -> tuple[int, str, str | None]:
    if re.fullmatch(r"[0-9]{1,18}", job):
        where, arg = "r.job_id = %s", int(job)
    else:
        where, arg = "r.run_id = %s", job
    row = conn.execute("SELECT r.job_id, r.run_id, j.status::text FROM runs r LEFT JOIN"
                       f" procrastinate_jobs j ON j.id = r.job_id WHERE {where}",
                       (arg,)).fetchone()
    if row is None or row[0] is None:
        raise LabError(f"lab {db.lab!r} has no job {job!r} (give a job id or a run id, as"
                       " cellseq lab status shows them)")
    return row[0], row[1], row[2]


def _stations(conn: psycopg.Connection) -> tuple[dict[str, Station], dict[str, str]]:
    """The lab's stations, as their workers registered them, and each one's class."""
    from sequencer.station import Station

    stations = {name: Station.model_validate(record) for name, record in
                conn.execute("SELECT name, station FROM stations ORDER BY name")}
    return stations, {name: capability_class(st) for name, st in stations.items()}


def _listing(stations: dict[str, Any]) -> str:
    return "stations: " + ", ".join(stations) if stations else "no station has joined yet"


def _run_id(campaign: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", campaign)[:40].strip("-.") or "run"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stem}-{stamp}-{secrets.token_hex(3)}"
