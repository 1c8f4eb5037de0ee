"""Reading the lab record: the lab's status, and a run's store rebuilt from it.

``cellseq report --db`` and ``cellseq export --db`` do not read PostgreSQL themselves: the run
is rebuilt from the record into a local run directory of the run store's own schema, through
the store's own writing API (:func:`rebuild`), and the ordinary report and export read that.
The analysis thus reads one kind of store, wherever the run ran. The copy holds the run store
only (no protocol copy, no manifest file): it is for reading, and ``cellseq resume`` refuses it.
A marker file says where it came from; only a folder with that marker is ever replaced.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sequencer.lab.settings import LabDb, LabError
from store import DB_NAME

if TYPE_CHECKING:
    import psycopg

#: The file that marks a folder as a copy rebuilt from the lab record.
COPY_MARK = "lab-copy.json"
#: Run statuses of runs a station still works on, or may.
ACTIVE = ("queued", "running", "interrupted")


def lab_status(conn: psycopg.Connection, db: LabDb, limit: int = 50) -> dict[str, Any]:
    """Stations, jobs and the problems a person must act on (a station gone silent for
    longer than the lab's time-out with jobs waiting for it; work nobody can take)."""
    timeout_s = float(conn.execute("SELECT value FROM lab_settings WHERE key ="
                                   " 'station_timeout_s'").fetchone()[0])
    from sequencer.lab.queue import STATION_LOST, TASK, waiting_queue

    cur = conn.execute(
        "SELECT name, kinds, host, login, extract(epoch FROM now() - seen)::float8 AS silent_s,"
        " started, station FROM stations ORDER BY name")
    stations = [dict(zip([d.name for d in cur.description], row, strict=True))
                for row in cur.fetchall()]
    for s in stations:
        s["gone"] = s["silent_s"] > timeout_s
        s["started"] = s["started"].isoformat()
        s["queue"] = _queue_of(db.lab, s.pop("station"))
    cur = conn.execute(
        "SELECT r.job_id, r.run_id, r.campaign, j.status::text AS job, j.abort_requested,"
        " r.status, r.station, r.target_station, r.needs, r.refused_by, r.resumes, r.message,"
        " r.submitted, r.started, r.ended,"
        " extract(epoch FROM r.started - r.submitted)::float8 AS wait_s,"
        " (SELECT coalesce(sum(n), 0) FROM run_chunks c WHERE c.run_id = r.run_id) AS points"
        " FROM runs r LEFT JOIN procrastinate_jobs j ON j.id = r.job_id"
        " ORDER BY r.submitted DESC LIMIT %s", (limit,))
    runs = [dict(zip([d.name for d in cur.description], row, strict=True))
            for row in cur.fetchall()]
    runs.reverse()
    for r in runs:
        for key in ("submitted", "started", "ended"):
            r[key] = r[key].isoformat() if r[key] else None
        r["points"] = int(r["points"])
    by_name = {s["name"]: s for s in stations}
    queued: dict[str, set[str]] = {}   # run -> the queues its unfinished jobs wait in
    for run_id, queue in conn.execute(
            "SELECT args->>'run_id', queue_name FROM procrastinate_jobs WHERE task_name = %s"
            " AND status = 'todo'", (TASK,)):
        queued.setdefault(run_id, set()).add(queue)
    problems = []
    for r in runs:
        r["refused_by"] = list(r["refused_by"] or [])
        r["state"] = r["status"]
        if r["status"] == STATION_LOST:
            r["state"] = "cancelled (station lost)"
            problems.append(
                f"job {r['job_id']} (run {r['run_id']}) was cancelled and ended without its"
                f" station {r['station']} confirming the stop: nothing confirms its outputs are"
                " off; check the station (its worker stops the run when it starts again)")
        if r["job"] not in ("todo", "doing"):
            continue
        if r["abort_requested"]:
            r["state"] = "cancelling"   # asked to stop; the station has not confirmed yet
        bound = r["station"] or r["target_station"]
        if bound is not None:
            s = by_name.get(bound)
            if s is None or s["gone"]:
                r["state"] += " (station gone)"
                silent = "is not registered in the lab (it never reported, or was removed)" \
                    if s is None else f"has been silent for {_ago(s['silent_s'])}"
                ask = f"{bound} {silent} (the lab's time-out is {_ago(timeout_s)})"
                if r["abort_requested"]:
                    problems.append(
                        f"job {r['job_id']} (run {r['run_id']}) was cancelled, and station {ask}:"
                        " the cancel has not reached the station, so nothing confirms its"
                        " outputs are off; check the station, and restart its worker, which"
                        " stops the run and ends the job cancelled. Unconfirmed"
                        f" {_ago(timeout_s)} after the cancel, the job ends as station lost")
                    continue
                what = "resume" if r["station"] else "start"
                problems.append(
                    f"job {r['job_id']} (run {r['run_id']}) waits for station {bound} to"
                    f" {what} it, and {ask}; it is not moved to another station: restart the"
                    f" station's worker, or cancel the job (cellseq lab cancel {r['job_id']})")
        elif r["job"] == "todo" and not r["abort_requested"]:
            live = [s for s in stations if not s["gone"] and set(r["needs"]) <= set(s["kinds"])]
            queues = queued.get(r["run_id"], set())
            if queues == {waiting_queue(db.lab)}:   # accepted before any station could run it
                problems.append(
                    f"job {r['job_id']} (run {r['run_id']}) waits for a station that can run it"
                    f" to join (it needs a {' and a '.join(r['needs'])}, placed and validated as"
                    " at submission): no station of the lab can now; the first worker that"
                    " joins and can takes it. Or cancel it (cellseq lab cancel"
                    f" {r['job_id']})")
                continue
            if any("/k/" in q for q in queues):   # queued for the classes that can run it
                classes = [s for s in stations if s["queue"] in queues]
                if not any(not s["gone"] for s in classes):
                    which = ", ".join(f"{s['name']} ({'silent for ' + _ago(s['silent_s'])})"
                                      for s in classes) or "none is registered any more"
                    problems.append(
                        f"job {r['job_id']} (run {r['run_id']}) waits for a station that can"
                        f" run it, and none of those is live: {which}; start one of their"
                        f" workers, or cancel the job (cellseq lab cancel {r['job_id']})")
                continue
            able = [s["name"] for s in live if s["name"] not in r["refused_by"]]
            if not live:
                problems.append(
                    f"job {r['job_id']} (run {r['run_id']}) needs a {' and a '.join(r['needs'])}"
                    " and no live station has them")
            elif not able:
                problems.append(
                    f"job {r['job_id']} (run {r['run_id']}) waits for a station that can place"
                    f" it: every live station with a {' and a '.join(r['needs'])}"
                    f" ({', '.join(s['name'] for s in live)}) has passed it on")
    return {"lab": db.lab, "where": db.where, "station_timeout_s": timeout_s,
            "stations": stations, "runs": runs, "problems": problems}


def _queue_of(lab: str, record: dict[str, Any]) -> str | None:
    """The queue of a station's class, from its record; None for a record this PC cannot read
    as a station (a driver it does not have): its jobs are then not judged here."""
    from pydantic import ValidationError

    from drivers.errors import CellseqError
    from sequencer.lab.queue import capability_class, class_queue
    from sequencer.station import Station

    try:
        return class_queue(lab, capability_class(Station.model_validate(record)))
    except (ValidationError, CellseqError):
        return None


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def rebuild(conn: psycopg.Connection, db: LabDb, run_id: str, folder: Path) -> str:
    """Rebuild run ``run_id``'s store from the record into ``folder`` (replacing an earlier
    copy there, and nothing else); returns the run's status in the lab."""
    from psycopg import IsolationLevel

    from store import SERIES_COLUMNS, SPECTRUM_COLUMNS, Chunk, RunStore

    row = conn.execute("SELECT status, station, run_dir, started FROM runs WHERE run_id = %s",
                       (run_id,)).fetchone()
    if row is None:
        raise LabError(f"lab {db.lab!r} has no run {run_id!r} (cellseq lab status lists them)")
    status, station, run_dir, started = row
    if started is None:
        raise LabError(f"run {run_id} has not started ({status}): there is no data yet")
    _clear_copy(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COPY_MARK).write_text(json.dumps({
        "lab": db.lab, "run_id": run_id, "status": status, "station": station,
        "station_run_dir": run_dir, "rebuilt_utc": dt.datetime.now(dt.UTC).isoformat(),
        "note": "rebuilt from the lab record for reading; the run itself is on its station"},
        indent=2), encoding="utf-8")
    store = RunStore.create(folder, durable=False)
    conn.isolation_level = IsolationLevel.REPEATABLE_READ   # one snapshot of the record
    try:
        with conn.transaction(), store.transaction():
            r = {"r": run_id}
            for key, value in conn.execute("SELECT key, value FROM run_meta WHERE run_id = %(r)s"
                                           " ORDER BY key", r):
                if key != "schema_version":
                    store.set_meta(key, json.loads(value))
            steps: dict[int, int] = {}
            for (sid, cell, experiment, step_count, step_index, kind, cycle, started_t, ended_t,
                 end_reason, params, end_counters) in conn.execute(
                    "SELECT id, cell, experiment, step_count, step_index, kind, cycle,"
                    " started_t, ended_t, end_reason, params, end_counters FROM run_steps"
                    " WHERE run_id = %(r)s ORDER BY id", r):
                new = store.begin_step(cell, experiment, step_count, step_index, kind, cycle,
                                       started_t, json.loads(params))
                if ended_t is not None:
                    store.end_step(new, ended_t, end_reason,
                                   json.loads(end_counters) if end_counters else None)
                steps[sid] = new
            with conn.cursor(name="chunks") as chunks:
                chunks.itersize = 500
                chunks.execute("SELECT cell, step_id, step_count, step_index, cycle, kind, n,"
                               " data FROM run_chunks WHERE run_id = %(r)s ORDER BY id", r)
                for cell, step_id, step_count, step_index, cycle, kind, n, data in chunks:
                    if step_id not in steps:
                        raise LabError(f"run {run_id}: the record holds points of step"
                                       f" {step_id}, which it does not hold")
                    names = SPECTRUM_COLUMNS if kind == "spectrum" else SERIES_COLUMNS
                    block = np.frombuffer(data, dtype="<f8").reshape(len(names), n)
                    store.append(steps[step_id], Chunk(cell, step_count, step_index, cycle, kind,
                                                       dict(zip(names, block, strict=True))))
            for t, utc, cell, kind, message, data in conn.execute(
                    "SELECT t, utc, cell, kind, message, data FROM run_events WHERE"
                    " run_id = %(r)s ORDER BY id", r):
                store.event(t, utc, cell, kind, message, json.loads(data))
            cur = conn.execute("SELECT * FROM run_cell_state WHERE run_id = %(r)s ORDER BY cell",
                               r)
            names = [d.name for d in cur.description]
            for values in cur.fetchall():
                s = dict(zip(names, values, strict=True))
                fields = {k: s[k] for k in ("experiment", "step_count", "step_index",
                                            "step_kind", "cycle", "step_started_t",
                                            "step_estimate_s")}
                store.set_cell_state(s["cell"], s["state"], s["updated_t"], **fields,
                                     checkpoint=json.loads(s["checkpoint"]),
                                     last=json.loads(s["last"]))
        store.commit()
    finally:
        conn.isolation_level = None
        store.close()
    return status


def _clear_copy(folder: Path) -> None:
    """Remove an earlier copy's store (its report and exports are written again by the
    command that asked for the copy); refuse a folder that is not such a copy."""
    if not folder.exists():
        return
    if not folder.is_dir() or (any(folder.iterdir()) and not (folder / COPY_MARK).is_file()):
        raise LabError(f"{folder} exists and is not a copy rebuilt from the lab record; choose"
                       " another folder")
    for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}.new", COPY_MARK):
        (folder / name).unlink(missing_ok=True)
