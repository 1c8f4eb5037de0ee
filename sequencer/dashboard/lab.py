"""The runs of a lab's shared database, for the dashboard (a :class:`RunSource`).

Every run of every station, as the lab record holds it (:mod:`sequencer.lab.schema`): the
record's ``run_*`` tables are the run store's tables with the run's id in front, every row
under the id the station's store gave it. So a lab run is read exactly as a local one is
(:class:`~sequencer.dashboard.local.LocalRuns`' reading, summaries and cycle counting): only
the store under it differs, :class:`_RecordStore`, which answers the few store calls the
dashboard makes from the record. The dashboard thus shows a lab run as the station's own
dashboard would, as far as the record has caught up (a station cut off from the database
shows what it had copied before).

Controls: a lab run is driven by its station's worker, on another PC. Stopping the whole run
is the lab's cancel (``cellseq lab cancel``: the station stops it with every output off, the
job ends cancelled); the lab has no way to pause a run or to stop one cell from afar, so
those are refused, saying so. The login needs the lab's operator role to cancel (a reader
login sees everything and controls nothing; the refusal says that too).

The record has no report: a lab run's results are its ``expected:`` values until someone
runs ``cellseq report --db`` on it.

Reading hundreds of runs: what every poll of the dashboard asks of each run (has it changed?
what are its cells doing?) is read for all the runs shown at once, in one statement
(:meth:`LabRuns.versions`, at most every ``VERSIONS_EVERY_S``), with the full cell states of
the runs that changed in a second; the runs' fixed meta (manifest, cells) is read for all the
runs lacking it in one statement when the list is read. A poll thus costs the database two or
three statements however many runs the lab has, not two or more per run
(``benchmarks/lab_dashboard.py`` measures it).
"""

from __future__ import annotations

import json
import math
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from sequencer.dashboard.local import _ByRun, _LocalRun
from sequencer.dashboard.source import (
    ControlReceipt,
    NotFound,
    Refused,
    Results,
    RunInfo,
    SourceError,
)
from store import SERIES_COLUMNS, SPECTRUM_COLUMNS

if TYPE_CHECKING:
    import psycopg

    from sequencer.controls import Action
    from sequencer.lab.settings import LabDb

#: How often the list of the lab's runs and their stations' last word is read again.
RUNS_EVERY_S = 2.0
#: The newest runs shown (a lab's record grows for years; the dashboard shows the latest).
MAX_RUNS = 200
#: How old the runs' versions (and the changed runs' cell states) read for a poll may be when
#: asked for again: the change watcher asks for each run in turn, once a second, and one read
#: of them all serves its whole look.
VERSIONS_EVERY_S = 0.5
#: A run's meta entries that never change once written, read for all the runs at once.
FIXED_META = ("manifest", "cells")
_CELL_STATE_COLUMNS = ("cell", "state", "experiment", "step_count", "step_index", "step_kind",
                       "cycle", "step_started_t", "step_estimate_s", "checkpoint", "last",
                       "updated_t")


class _Record:
    """One connection to the lab record, one statement at a time (the web layer calls from
    several threads); a dropped connection is made again at the next call."""

    def __init__(self, db: LabDb) -> None:
        self.db = db
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def rows(self, query: str, args: Any = ()) -> list[tuple[Any, ...]]:
        import psycopg

        from sequencer.lab.settings import LabError, connect

        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self.db, application="cellseq dashboard")
                return self._conn.execute(query, args).fetchall()
            except LabError as exc:
                raise SourceError(str(exc)) from None
            except psycopg.Error as exc:
                if self._conn is not None and (self._conn.broken or self._conn.closed):
                    self._conn.close()
                    self._conn = None
                raise SourceError(f"the lab database: {' '.join(str(exc).split())}") from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class _RecordStore:
    """One run of the record, answering the run store's reading calls the dashboard makes
    (same names, same answers as :class:`store.RunStore` gives for the station's store)."""

    def __init__(self, record: _Record, run_id: str, source: LabRuns | None = None) -> None:
        self.record = record
        self.run_id = run_id
        #: the source whose one read of every run serves this run's cell states and last ids
        #: (None: each asked of the record)
        self.source = source

    def meta_value(self, key: str) -> Any:
        rows = self.record.rows("SELECT value FROM run_meta WHERE run_id = %s AND key = %s",
                                (self.run_id, key))
        return json.loads(rows[0][0]) if rows else None

    def cell_states(self) -> list[dict[str, Any]]:
        if self.source is not None:
            read = self.source.cell_states_of(self.run_id)
            if read is not None:
                return read
        return [_cell_state(row) for row in self.record.rows(
            f"SELECT {', '.join(_CELL_STATE_COLUMNS)} FROM run_cell_state WHERE run_id = %s"
            " ORDER BY cell", (self.run_id,))]

    def last_ids(self) -> tuple[int, int]:
        if self.source is not None:
            read = self.source.last_ids_of(self.run_id)
            if read is not None:
                return read
        r = {"r": self.run_id}
        (row,) = self.record.rows(
            "SELECT (SELECT coalesce(max(id), 0) FROM run_chunks WHERE run_id = %(r)s),"
            " (SELECT coalesce(max(id), 0) FROM run_events WHERE run_id = %(r)s)", r)
        return int(row[0]), int(row[1])

    def events_after(self, after_id: int, limit: int, cell: str | None = None
                     ) -> list[dict[str, Any]]:
        where = "run_id = %(r)s" + (" AND (cell = %(c)s OR cell IS NULL)" if cell else "")
        args = {"r": self.run_id, "c": cell, "a": after_id, "n": limit}
        cols = "id, t, utc, cell, kind, message, data"
        if after_id < 0:
            sql = (f"SELECT * FROM (SELECT {cols} FROM run_events WHERE {where} ORDER BY id"
                   " DESC LIMIT %(n)s) newest ORDER BY id")
        else:
            sql = f"SELECT {cols} FROM run_events WHERE {where} AND id > %(a)s ORDER BY id" \
                  " LIMIT %(n)s"
        return [{"id": int(i), "t": t, "utc": u, "cell": c, "kind": k, "message": m,
                 "data": json.loads(d)} for i, t, u, c, k, m, d in self.record.rows(sql, args)]

    def chunk_columns(self, cell: str, kind: str, columns: tuple[str, ...], after_id: int = 0,
                      until_id: int | None = None, limit: int = 256
                      ) -> list[tuple[int, dict[str, np.ndarray]]]:
        """As the store's: only the named columns' bytes leave the server (each a slice of
        the chunk's block)."""
        names = SPECTRUM_COLUMNS if kind == "spectrum" else SERIES_COLUMNS
        with_step = "step_count" in columns
        wanted = [c for c in columns if c != "step_count"]
        slices = "".join(f", substring(data FROM {names.index(c)} * n * 8 + 1 FOR n * 8)"
                         for c in wanted)
        rows = self.record.rows(
            f"SELECT id, n, length(data), step_count{slices} FROM run_chunks WHERE run_id = %s"
            " AND cell = %s AND kind = %s AND id > %s AND id <= %s ORDER BY id LIMIT %s",
            (self.run_id, cell, kind, after_id, until_id if until_id is not None else 2 ** 62,
             limit))
        out = []
        for chunk_id, n, size, step_count, *parts in rows:
            if size != n * len(names) * 8:
                raise SourceError(f"run {self.run_id}: the record's chunk {chunk_id} holds"
                                  f" {size} bytes, not the {n * len(names) * 8} of its {n}"
                                  " points")
            cols = {c: np.frombuffer(bytes(p), dtype="<f8")
                    for c, p in zip(wanted, parts, strict=True)}
            if with_step:
                cols["step_count"] = np.full(n, int(step_count), dtype=np.int64)
            out.append((int(chunk_id), cols))
        return out

    def rows_after(self, table: str, after_id: int, limit: int) -> list[dict[str, Any]]:
        if table != "steps":
            raise ValueError(f"the dashboard reads steps this way, not {table!r}")
        cols = ("id", "cell", "experiment", "step_count")
        return [dict(zip(cols, row, strict=True)) for row in self.record.rows(
            "SELECT id, cell, experiment, step_count FROM run_steps WHERE run_id = %s AND"
            " id > %s ORDER BY id LIMIT %s", (self.run_id, after_id, limit))]

    def steps(self, cell: str | None = None) -> list[dict[str, Any]]:
        cols = ("id", "cell", "experiment", "step_count", "step_index", "kind", "cycle",
                "started_t", "ended_t", "end_reason", "params", "end_counters")
        out = []
        for row in self.record.rows(
                f"SELECT {', '.join(cols)} FROM run_steps WHERE run_id = %s"
                + (" AND cell = %s" if cell is not None else "") + " ORDER BY id",
                (self.run_id, cell) if cell is not None else (self.run_id,)):
            rec = dict(zip(cols, row, strict=True))
            rec["params"] = json.loads(rec["params"])
            rec["end_counters"] = json.loads(rec["end_counters"]) if rec["end_counters"] \
                else None
            out.append(rec)
        return out

    def point_count(self, cell: str | None = None, kind: str | None = None) -> int:
        where, args = "run_id = %s", [self.run_id]
        if cell is not None:
            where, args = where + " AND cell = %s", [*args, cell]
            if kind is not None:
                where, args = where + " AND kind = %s", [*args, kind]
        return int(self.record.rows(f"SELECT coalesce(sum(n), 0) FROM run_chunks WHERE"
                                    f" {where}", args)[0][0])

    def close(self) -> None:
        """Nothing to close: the connection is the source's."""


def _cell_state(row: Any) -> dict[str, Any]:
    """A row of ``run_cell_state`` (its columns as ``_CELL_STATE_COLUMNS``) as the run store
    gives it."""
    rec = dict(zip(_CELL_STATE_COLUMNS, row, strict=True))
    rec["checkpoint"] = json.loads(rec["checkpoint"])
    rec["last"] = json.loads(rec["last"])
    return rec


class _LabRun(_LocalRun):
    """A run of the lab record, read as a local run is (see the module docstring)."""

    def __init__(self, source: LabRuns, run_id: str) -> None:
        from pathlib import PurePosixPath

        super().__init__(run_id, PurePosixPath("lab-record") / run_id)  # type: ignore[arg-type]
        self.source = source
        self._store = _RecordStore(source.record, run_id, source)  # type: ignore[assignment]

    def _open(self) -> Any:
        return self._store

    def _meta(self, key: str) -> Any:
        if key in FIXED_META:   # read for every run at once, with the list of runs
            self.source.row(self.id)
            return self._fixed.get(key)
        return super()._meta(key)

    def _alive(self) -> bool:
        return self.source.row(self.id).live

    def _status(self, store: Any) -> tuple[str, bool]:
        row = self.source.row(self.id)
        return row.shown_status, row.live

    def _info(self, store: Any) -> RunInfo:
        row = self.source.row(self.id)
        manifest = self._meta("manifest") or {}
        speed = manifest.get("speed")
        where = f"station {row.station}" if row.station else row.waiting_for
        return RunInfo(self.id, f"{row.campaign} · {where}", row.shown_status,
                       manifest.get("mode"), float(speed) if speed else None, row.live,
                       manifest.get("started_utc") or row.started_utc)

    def version(self) -> tuple[object, ...]:
        with self.lock:
            row = self.source.row(self.id)
            ids, states = self.source.versions(self.id)
            return (ids, states, row.shown_status, row.live, row.message)

    def results(self) -> Results:
        with self.lock:
            expected = list(self._meta("expected") or [])
        return Results(False, expected=expected, notes=[
            f"run {self.id} is in the lab record, which holds no report: cellseq report --db"
            f" URL {self.id} makes one"])

    def figure(self, name: str) -> bytes:
        raise NotFound(f"run {self.id} has no figure {name!r} (the lab record holds no"
                       " report)")

    def control(self, action: Action, cell: str | None, who: str,
                address: str) -> ControlReceipt:
        return self.source.cancel(self.id, action, cell, who, address)

    def close(self) -> None:
        """The connection is the source's."""


class _RunRow:
    """A run's line in the lab record, with its station's last word."""

    def __init__(self, row: dict[str, Any], silent_after_s: float) -> None:
        self.run_id: str = row["run_id"]
        self.job_id: int | None = row["job_id"]
        self.campaign: str = row["campaign"]
        self.status: str = row["status"]
        self.station: str | None = row["station"]
        self.message: str | None = row["message"]
        self.job: str | None = row["job"]
        self.abort_requested = bool(row["abort_requested"])
        self.started_utc: float | None = row["started"].timestamp() if row["started"] else None
        silent = row["silent_s"]
        target = row["target_station"]
        self.waiting_for = f"for station {target}" if target else \
            f"for any station with {', '.join(row['needs'] or [])}"
        heard = silent is not None and silent <= silent_after_s
        #: a worker runs it now and answers: it takes the lab's cancel
        self.live = self.status == "running" and self.job == "doing" and heard \
            and not self.abort_requested
        shown = self.status
        if self.job == "doing" and self.abort_requested:
            shown = "cancelling"
        if self.status == "running" and not heard:
            shown = "station silent"
        self.shown_status = shown


class LabRuns(_ByRun):
    """Every run of a lab's record (the newest ``MAX_RUNS``), for the dashboard."""

    def __init__(self, db: LabDb) -> None:
        from sequencer.lab.queue import SILENT_S

        self.db = db
        self.record = _Record(db)
        self._silent_after_s = SILENT_S
        self._runs: dict[str, _LabRun] = {}
        self._rows: dict[str, _RunRow] = {}
        self._read_at = -math.inf
        self._lock = threading.Lock()
        #: every shown run's (last ids, cell states' version), read at once, and when
        self._versions: dict[str, tuple[tuple[int, int], tuple[tuple[Any, ...], ...]]] = {}
        self._versions_at = -math.inf
        #: the full cell states of runs, with their cells' version as read with them
        self._states: dict[str, tuple[object, list[dict[str, Any]]]] = {}
        self._versions_lock = threading.Lock()
        self._refresh(force=True)   # reachable, and the lab is there: say so at start

    # -- which runs ------------------------------------------------------------------------

    def _refresh(self, force: bool = False) -> None:
        with self._lock:
            if not force and time.monotonic() - self._read_at < RUNS_EVERY_S:
                return
            cols = ("run_id", "job_id", "campaign", "status", "station", "target_station",
                    "needs", "message", "started", "job", "abort_requested", "silent_s")
            rows = self.record.rows(
                "SELECT r.run_id, r.job_id, r.campaign, r.status, r.station, r.target_station,"
                " r.needs, r.message, r.started, j.status::text, j.abort_requested,"
                " extract(epoch FROM now() - s.seen)::float8 FROM runs r"
                " LEFT JOIN procrastinate_jobs j ON j.id = r.job_id"
                " LEFT JOIN stations s ON s.name = r.station"
                " ORDER BY r.submitted DESC LIMIT %s", (MAX_RUNS,))
            rows.reverse()
            self._rows = {r[0]: _RunRow(dict(zip(cols, r, strict=True)),
                                        self._silent_after_s) for r in rows}
            for run_id in self._rows:
                if run_id not in self._runs:
                    self._runs[run_id] = _LabRun(self, run_id)
            self._read_fixed_meta()
            self._read_at = time.monotonic()

    def _read_fixed_meta(self) -> None:
        """The manifests and cells of the runs shown that lack them (runs just started), in
        one statement."""
        lacking = [r for r, row in self._rows.items() if row.started_utc is not None and any(
            self._runs[r]._fixed.get(k) is None for k in FIXED_META)]   # (not started: none)
        if not lacking:
            return
        for run_id, key, value in self.record.rows(
                "SELECT run_id, key, value FROM run_meta WHERE run_id = ANY(%s) AND key ="
                " ANY(%s)", (lacking, list(FIXED_META))):
            self._runs[run_id]._fixed[key] = json.loads(value)

    def versions(self, run_id: str) -> tuple[tuple[int, int], tuple[tuple[Any, ...], ...]]:
        """A run's last chunk and event ids and its cells' (cell, state, updated_t, step
        count): read for every run shown at once, at most ``VERSIONS_EVERY_S`` ago."""
        with self._versions_lock:
            if time.monotonic() - self._versions_at > VERSIONS_EVERY_S or \
                    run_id not in self._versions:
                self._read_versions(run_id)
            return self._versions.get(run_id, ((0, 0), ()))

    def last_ids_of(self, run_id: str) -> tuple[int, int] | None:
        """A run's last chunk and event ids as read with the current versions (None: they
        are older than ``VERSIONS_EVERY_S``: a page's own request reads its run alone)."""
        with self._versions_lock:
            now = self._versions.get(run_id)
            if now is None or time.monotonic() - self._versions_at > VERSIONS_EVERY_S:
                return None
            return now[0]

    def cell_states_of(self, run_id: str) -> list[dict[str, Any]] | None:
        """A run's full cell states as read with the current versions (None: not read)."""
        with self._versions_lock:
            kept = self._states.get(run_id)
            now = self._versions.get(run_id)
            if now is not None and now[1] == () and \
                    time.monotonic() - self._versions_at <= VERSIONS_EVERY_S:
                return []   # no cell of it in the record yet (a run not started)
            if kept is None or now is None or kept[0] != now[1] or \
                    time.monotonic() - self._versions_at > VERSIONS_EVERY_S:
                return None
            return [dict(s) for s in kept[1]]

    def _read_versions(self, asked: str) -> None:
        shown = list(dict.fromkeys([*self._rows, asked]))
        versions = {}
        for run_id, chunk, event, cells, states, updated, counts in self.record.rows(
                "SELECT r.run_id, ch.id, ev.id, st.cells, st.states, st.updated, st.counts"
                " FROM unnest(%s::text[]) AS r(run_id)"
                " CROSS JOIN LATERAL (SELECT coalesce(max(id), 0) AS id FROM run_chunks c"
                "   WHERE c.run_id = r.run_id) ch"
                " CROSS JOIN LATERAL (SELECT coalesce(max(id), 0) AS id FROM run_events e"
                "   WHERE e.run_id = r.run_id) ev"
                " CROSS JOIN LATERAL (SELECT array_agg(cell ORDER BY cell) AS cells,"
                "   array_agg(state ORDER BY cell) AS states, array_agg(updated_t ORDER BY"
                "   cell) AS updated, array_agg(step_count ORDER BY cell) AS counts"
                "   FROM run_cell_state s WHERE s.run_id = r.run_id) st", (shown,)):
            versions[run_id] = ((int(chunk), int(event)), tuple(zip(
                cells or [], states or [], updated or [], counts or [], strict=True)))
        self._versions, self._versions_at = versions, time.monotonic()
        # the full cell states of the runs whose cells changed since they were last read: a
        # poll shows exactly these (its overviews), from this one read
        changed = [r for r, v in versions.items() if v[1] and (
            r not in self._states or self._states[r][0] != v[1])]
        if not changed:
            return
        full: dict[str, list[dict[str, Any]]] = {r: [] for r in changed}
        for run_id, *row in self.record.rows(
                f"SELECT run_id, {', '.join(_CELL_STATE_COLUMNS)} FROM run_cell_state WHERE"
                " run_id = ANY(%s) ORDER BY run_id, cell", (changed,)):
            full[run_id].append(_cell_state(row))
        for run_id, states in full.items():
            # kept only if read as the versions were (a cell copied in between: read again)
            same = tuple((s["cell"], s["state"], s["updated_t"], s["step_count"])
                         for s in states) == versions[run_id][1]
            if same:
                self._states[run_id] = (versions[run_id][1], states)
            else:
                self._states.pop(run_id, None)

    def row(self, run_id: str) -> _RunRow:
        self._refresh()
        row = self._rows.get(run_id)
        if row is None:
            raise NotFound(f"no run {run_id!r} among the lab's latest {MAX_RUNS}")
        return row

    def _run(self, run_id: str) -> _LabRun:
        self.row(run_id)
        return self._runs[run_id]

    def runs(self) -> list[RunInfo]:
        self._refresh()
        return [self._runs[r].info() for r in list(self._rows)]

    def cancel(self, run_id: str, action: Action, cell: str | None, who: str,
               address: str) -> ControlReceipt:
        """The lab's cancel for a whole-run stop; anything else refused, saying why."""
        import procrastinate
        import psycopg

        from sequencer.lab.queue import cancel
        from sequencer.lab.settings import LabError, connect

        if action != "stop" or cell is not None:
            what = f"{action} cell {cell}" if cell else f"{action} the run"
            raise Refused(f"{what}: a lab run is driven by its station's worker, which takes"
                          " no pause, continue or one-cell stop from afar; stop the whole run"
                          f" (the lab's cancel), or use the station's own dashboard")
        row = self.row(run_id)
        if row.job_id is None or row.job not in ("todo", "doing"):
            raise Refused(f"run {run_id} is {row.shown_status}: there is nothing to stop")
        may = self.record.rows("SELECT has_table_privilege('procrastinate_jobs', 'UPDATE')"
                               " AND has_table_privilege('lab_events', 'INSERT')")[0][0]
        if not may:
            raise Refused(f"stop run {run_id}: this dashboard's login may not cancel lab jobs"
                          " (it needs the lab's operator role; a reader login only watches)")
        try:
            with connect(self.db, application="cellseq dashboard") as conn:
                said = cancel(conn, self.db, str(row.job_id))
                conn.execute("INSERT INTO lab_events (station, run_id, kind, message) VALUES"
                             " (%s, %s, 'cancel_requested', %s)",
                             (row.station, run_id, f"cancelled by {who} ({address}) from the"
                              " dashboard"))
        except LabError as exc:
            raise Refused(f"stop run {run_id}: {exc}") from None
        except (psycopg.Error, procrastinate.exceptions.ConnectorException) as exc:
            raise SourceError(f"stop run {run_id}: the lab database:"
                              f" {' '.join(str(exc).split())}") from None
        self._read_at = -math.inf
        return ControlReceipt(f"lab-cancel-{row.job_id}", said)

    def close(self) -> None:
        self.record.close()
