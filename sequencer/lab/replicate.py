"""The copy of a station's run store into the lab record: every committed row, exactly once.

The run store is the crash-safe record and the only thing the executor writes; this copy
reads it (read-only, beside the writing run, as ``cellseq status`` does) and writes the lab
record. Each row keeps the id the store gave it, and the record's key is ``(run_id, id)``:

- ``chunks`` and ``events`` never change once committed: they are copied in id order, each
  batch in one PostgreSQL transaction, so the record always holds an unbroken prefix of them
  and knows where to go on from (the highest id it holds);
- ``steps`` are copied the same way, and a step still running is read again until its end
  (``ended_t``, end reason, counters) is copied too;
- ``cell_state`` (each cell's checkpoint and last values) and ``meta`` are copied whenever
  they change (``meta`` without the simulators' snapshot, which only the station's own resume
  uses).

A row sent twice (the connection dropped before the commit was acknowledged, or the worker
died after a commit) is one row, and the copy checks that it is the same row: a store whose
committed rows changed after they were copied (rewritten, salvaged to an earlier state) stops
the copy of that run with :class:`ReplicaConflict` rather than leaving two versions of the
truth. While the database cannot be reached the run goes on; its store is the buffer, and the
next :meth:`Replica.sync` copies what the record lacks.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sequencer.lab.settings import LabError
from store import DB_NAME, RunStore, StoreError

if TYPE_CHECKING:
    import psycopg

#: Rows of each table per transaction.
BATCH = 400
#: ``meta`` keys that stay on the station.
STATION_ONLY_META = ("sim_snapshot",)

_STEP_COLUMNS = ("id", "cell", "experiment", "step_count", "step_index", "kind", "cycle",
                 "started_t", "ended_t", "end_reason", "params", "end_counters")
_CHUNK_COLUMNS = ("id", "cell", "step_id", "step_count", "step_index", "cycle", "kind", "n",
                  "t_first", "t_last", "data")
_EVENT_COLUMNS = ("id", "t", "utc", "cell", "kind", "message", "data")
_CELL_COLUMNS = ("cell", "state", "experiment", "step_count", "step_index", "step_kind",
                 "cycle", "step_started_t", "step_estimate_s", "checkpoint", "last",
                 "updated_t")
_TYPES = {"id": "bigint", "step_id": "bigint", "step_count": "int", "step_index": "int",
          "cycle": "int", "n": "int", "started_t": "float8", "ended_t": "float8",
          "t_first": "float8", "t_last": "float8", "t": "float8", "utc": "float8",
          "step_started_t": "float8", "step_estimate_s": "float8", "updated_t": "float8"}


class ReplicaConflict(LabError):
    """The record holds a row under an id the store now gives to other data."""


def _insert(table: str, columns: tuple[str, ...], key: str, update: str, same: str,
            types: dict[str, str] | None = None) -> str:
    """One statement for a whole batch: arrays unnested into rows. A row already there is
    kept if it is the same row (``same``), updated with ``update``, and returned either way;
    one that differs is not returned, which the caller reports."""
    types = {**_TYPES, **(types or {})}
    arrays = ", ".join(f"%s::{types.get(c, 'text')}[]" for c in columns)
    return (f"INSERT INTO {table} (run_id, {', '.join(columns)})"
            f" SELECT %s, * FROM unnest({arrays})"
            f" ON CONFLICT (run_id, {key}) DO UPDATE SET {update} WHERE {same}"
            f" RETURNING {key}, (xmax = 0) AS inserted")


_SQL = {
    "steps": _insert(
        "run_steps", _STEP_COLUMNS, "id",
        "ended_t = excluded.ended_t, end_reason = excluded.end_reason,"
        " params = excluded.params, end_counters = excluded.end_counters",
        "run_steps.cell = excluded.cell AND run_steps.step_count = excluded.step_count"
        " AND run_steps.started_t = excluded.started_t"),
    "chunks": _insert(
        "run_chunks", _CHUNK_COLUMNS, "id", "n = excluded.n",
        "run_chunks.cell = excluded.cell AND run_chunks.n = excluded.n"
        " AND run_chunks.t_first = excluded.t_first AND run_chunks.t_last = excluded.t_last"
        " AND run_chunks.step_id = excluded.step_id", {"data": "bytea"}),
    "events": _insert(
        "run_events", _EVENT_COLUMNS, "id", "t = excluded.t",
        "run_events.t = excluded.t AND run_events.kind = excluded.kind"
        " AND run_events.message = excluded.message"),
    "cell_state": _insert(
        "run_cell_state", _CELL_COLUMNS, "cell",
        ", ".join(f"{c} = excluded.{c}" for c in _CELL_COLUMNS if c != "cell"), "true"),
    "meta": _insert("run_meta", ("key", "value"), "key", "value = excluded.value", "true"),
}


class Replica:
    """The copy of one run: where it stands (from the record, the first time and after any
    failure) and what it has copied. Thread-safe: one :meth:`sync` at a time."""

    def __init__(self, run_id: str, run_dir: Path, batch: int = BATCH) -> None:
        self.run_id = run_id
        self.run_dir = Path(run_dir)
        self.batch = batch
        #: rows the record took as new, and rows sent again that it already held
        self.inserted = 0
        self.resent = 0
        self.points_inserted = 0
        self._marks: dict[str, int] | None = None
        self._open_steps: dict[int, tuple[Any, ...]] = {}
        self._meta: dict[str, str] = {}
        self._cells: dict[str, tuple[Any, ...]] = {}
        self._store: RunStore | None = None
        self._lock = threading.Lock()

    def sync(self, conn: psycopg.Connection) -> int:
        """Copy what the store has committed and the record lacks; returns the rows the record
        took as new. A database error propagates (call again later: nothing is lost, the next
        call starts from what the record holds)."""
        with self._lock:
            try:
                return self._sync(conn)
            except BaseException:
                self._marks = None
                raise

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def _open(self) -> RunStore | None:
        if self._store is None:
            if not (self.run_dir / DB_NAME).is_file():
                return None   # the run has not created its store yet
            try:
                self._store = RunStore.open(self.run_dir, readonly=True)
            except StoreError:
                return None   # being created: the schema is not there yet
        return self._store

    def _load_marks(self, conn: psycopg.Connection) -> dict[str, int]:
        r = {"r": self.run_id}
        row = conn.execute(
            "SELECT (SELECT coalesce(max(id), 0) FROM run_steps WHERE run_id = %(r)s),"
            " (SELECT coalesce(max(id), 0) FROM run_chunks WHERE run_id = %(r)s),"
            " (SELECT coalesce(max(id), 0) FROM run_events WHERE run_id = %(r)s)", r).fetchone()
        assert row is not None
        marks = {"steps": int(row[0]), "chunks": int(row[1]), "events": int(row[2])}
        self._open_steps = {
            int(sid): () for (sid,) in conn.execute(
                "SELECT id FROM run_steps WHERE run_id = %(r)s AND ended_t IS NULL", r)}
        self._meta = dict(conn.execute("SELECT key, value FROM run_meta WHERE run_id = %(r)s",
                                       r).fetchall())
        self._cells = {row[0]: tuple(row) for row in conn.execute(
            f"SELECT {', '.join(_CELL_COLUMNS)} FROM run_cell_state WHERE run_id = %(r)s", r)}
        return marks

    def _sync(self, conn: psycopg.Connection) -> int:
        store = self._open()
        if store is None:
            return 0
        if self._marks is None:
            self._marks = self._load_marks(conn)
        marks = self._marks
        total = 0
        while True:
            # chunks and events first: the steps read after them include every step they
            # belong to, so the record never holds a chunk without its step
            batch: dict[str, list[tuple[Any, ...]]] = {
                "chunks": [_row(r, _CHUNK_COLUMNS)
                           for r in store.rows_after("chunks", marks["chunks"], self.batch)],
                "events": [_row(r, _EVENT_COLUMNS)
                           for r in store.rows_after("events", marks["events"], self.batch)],
            }
            needed = max((r[_CHUNK_COLUMNS.index("step_id")] for r in batch["chunks"]),
                         default=0)
            batch["steps"] = [_row(r, _STEP_COLUMNS) for r in store.rows_after(
                "steps", marks["steps"], max(self.batch, needed - marks["steps"]))]
            full = any(len(rows) >= self.batch for rows in batch.values())
            for sid, sent in list(self._open_steps.items()):   # running steps: ended yet?
                if sid <= marks["steps"]:
                    now = [_row(r, _STEP_COLUMNS) for r in store.rows_after("steps", sid - 1, 1)]
                    if now and now[0][0] == sid and now[0] != sent:
                        batch["steps"].append(now[0])
            cells = [_cell_row(s) for s in store.cell_states()]
            batch["cell_state"] = [c for c in cells if self._cells.get(c[0]) != c]
            meta = {k: json.dumps(v) for k, v in store.meta().items()
                    if k not in STATION_ONLY_META}
            batch["meta"] = [(k, v) for k, v in meta.items() if self._meta.get(k) != v]
            if not any(batch.values()):
                return total
            with conn.transaction():
                for table, rows in batch.items():
                    if rows:
                        total += self._write(conn, table, rows)
            # committed: move the marks
            for table in ("steps", "chunks", "events"):
                ids = [r[0] for r in batch[table]]
                if ids:
                    marks[table] = max(marks[table], max(ids))
            for r in batch["steps"]:
                if r[_STEP_COLUMNS.index("ended_t")] is None:
                    self._open_steps[r[0]] = r
                else:
                    self._open_steps.pop(r[0], None)
            self._cells.update({c[0]: c for c in batch["cell_state"]})
            self._meta.update(batch["meta"])
            if not full:
                return total

    def _write(self, conn: psycopg.Connection, table: str, rows: list[tuple[Any, ...]]) -> int:
        columns = list(zip(*rows, strict=True))
        cur = conn.execute(_SQL[table], (self.run_id, *[list(c) for c in columns]))
        returned = cur.fetchall()
        if len(returned) != len(rows):
            kept = {r[0] for r in returned}
            differing = [r[0] for r in rows if r[0] not in kept]
            raise ReplicaConflict(
                f"run {self.run_id}: the lab record holds {table} {differing[:5]} with other"
                f" data than the station's store {self.run_dir} now has under the same ids"
                " (the store was changed after it was copied); the copy of this run stops"
                " here. Compare the two before going on")
        inserted = sum(1 for _, new in returned if new)
        self.inserted += inserted
        self.resent += len(rows) - inserted
        if table == "chunks":
            new = {r[0] for r in returned if r[1]}
            self.points_inserted += sum(r[_CHUNK_COLUMNS.index("n")] for r in rows
                                        if r[0] in new)
        return inserted


def _row(record: dict[str, Any], columns: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(record[c] for c in columns)


def _cell_row(state: dict[str, Any]) -> tuple[Any, ...]:
    """A cell's state as the store wrote it (JSON columns back to their text)."""
    return tuple(json.dumps(state[c]) if c in ("checkpoint", "last") else state[c]
                 for c in _CELL_COLUMNS)
