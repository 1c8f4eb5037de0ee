"""The run store: data, journal and per-cell checkpoints in one SQLite database (WAL mode).

Points are stored as column chunks, one row per poll batch with every column packed into one
float64 BLOB, which writes about ten times faster than a row per point. A chunk and the cell's
checkpoint commit in the same transaction, so what a crash leaves behind is always consistent:
resume never duplicates or loses a committed point.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drivers.errors import CellseqError

DB_NAME = "run.sqlite"
log = logging.getLogger("cellseq.store")
#: A dry run commits at most this often (wall time); see :meth:`RunStore.transaction`.
GROUP_COMMIT_S = 0.5
SCHEMA_VERSION = 2

SERIES_COLUMNS = ("test_time_s", "step_time_s", "utc_s", "voltage_V", "current_A",
                  "temperature_C", "charge_Ah", "discharge_Ah", "charge_Wh", "discharge_Wh")
SPECTRUM_COLUMNS = (*SERIES_COLUMNS, "frequency_Hz", "z_real_ohm", "z_imag_ohm")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY, cell TEXT NOT NULL, experiment TEXT NOT NULL,
    step_count INTEGER NOT NULL, step_index INTEGER NOT NULL, kind TEXT NOT NULL,
    cycle INTEGER NOT NULL, started_t REAL NOT NULL, ended_t REAL, end_reason TEXT,
    params TEXT NOT NULL DEFAULT '{}', end_counters TEXT);
CREATE INDEX IF NOT EXISTS steps_cell ON steps (cell, step_count);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, cell TEXT NOT NULL, step_id INTEGER NOT NULL,
    step_count INTEGER NOT NULL, step_index INTEGER NOT NULL, cycle INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('series', 'spectrum')), n INTEGER NOT NULL,
    t_first REAL NOT NULL, t_last REAL NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_cell ON chunks (cell, kind, id);
CREATE INDEX IF NOT EXISTS chunks_step ON chunks (step_id, id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, t REAL NOT NULL, utc REAL NOT NULL, cell TEXT,
    kind TEXT NOT NULL, message TEXT NOT NULL, data TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS cell_state (
    cell TEXT PRIMARY KEY, state TEXT NOT NULL, experiment TEXT, step_count INTEGER,
    step_index INTEGER, step_kind TEXT, cycle INTEGER, step_started_t REAL,
    step_estimate_s REAL, checkpoint TEXT NOT NULL DEFAULT '{}', last TEXT NOT NULL DEFAULT '{}',
    updated_t REAL NOT NULL);
"""


class StoreError(CellseqError):
    """The run store cannot be read, or written."""


class StoreBroken(StoreError):
    """A write after the store failed (the first failure says why)."""


@dataclass(frozen=True)
class Chunk:
    cell: str
    step_count: int
    step_index: int
    cycle: int
    kind: str
    columns: dict[str, np.ndarray]


class RunStore:
    """Open with :meth:`create` (a new run) or :meth:`open` (read, or resume)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, durable: bool = True) -> None:
        self._conn = conn
        self.path = path
        self.durable = durable
        self._in_tx = False
        self._broken = False
        self._last_commit = time.monotonic()
        #: called inside every transaction just before it commits: a dry run writes its
        #: simulators' snapshot there, so the snapshot always matches the committed data
        self.before_commit: Callable[[], None] | None = None

    @classmethod
    def create(cls, run_dir: Path, durable: bool = True) -> RunStore:
        """``durable`` syncs every commit to disk (hardware runs: a power cut loses nothing
        committed); dry runs may skip it."""
        path = Path(run_dir) / DB_NAME
        if path.exists():
            raise StoreError(f"{path} already exists; a run directory holds one run")
        # Build the schema under another name and rename: a reader (cellseq status) never
        # finds a run.sqlite without its tables.
        fresh = path.with_name(path.name + ".new")
        conn = _connect(fresh, readonly=False, durable=durable)
        conn.executescript(_SCHEMA)
        conn.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                     (json.dumps(SCHEMA_VERSION),))
        conn.close()
        os.replace(fresh, path)
        return cls(_connect(path, readonly=False, durable=durable), path, durable)

    @classmethod
    def open(cls, run_dir: Path, readonly: bool = True, durable: bool = True) -> RunStore:
        path = Path(run_dir) / DB_NAME
        if not path.is_file():
            raise StoreError(f"{run_dir} is not a cellseq run directory (no {DB_NAME})")
        try:
            conn = _connect(path, readonly=readonly, durable=durable)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} cannot be read as a run store: {exc}") from None
        version = json.loads(row[0]) if row else None
        if version != SCHEMA_VERSION:
            conn.close()
            raise StoreError(f"{path} has run store schema {version}; this cellseq reads"
                             f" schema {SCHEMA_VERSION}")
        return cls(conn, path, durable)

    def close(self) -> None:
        """Commit what is pending (without the pre-commit hook) and close; never raises."""
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK" if self._broken else "COMMIT")
        except sqlite3.Error:
            self._undo(grouped=False)
        finally:
            self._conn.close()

    # -- writing ---------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything written inside commits together or not at all.

        A durable store commits every block (hardware runs: a power cut loses nothing that was
        committed). A dry-run store groups blocks, each under its own savepoint, into one
        commit every ``GROUP_COMMIT_S`` of wall time: a crash loses at most that much and never
        part of a block, and a dry run writes far faster.
        """
        if self._in_tx:
            yield
            return
        if self._broken:
            raise StoreBroken(f"the run store {self.path} failed earlier; nothing more is"
                              " written to it")
        self._in_tx = True
        grouped = not self.durable
        try:
            if grouped:
                if not self._conn.in_transaction:
                    self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute("SAVEPOINT block")
            else:
                self._conn.execute("BEGIN IMMEDIATE")
            yield
            if grouped:
                self._conn.execute("RELEASE block")
                if time.monotonic() - self._last_commit >= GROUP_COMMIT_S:
                    self.commit()
            else:
                self._before_commit()
                self._conn.execute("COMMIT")
        except BaseException as exc:
            self._undo(grouped)
            if isinstance(exc, sqlite3.Error):
                raise self._failed(exc) from exc
            raise
        finally:
            self._in_tx = False

    def _undo(self, grouped: bool) -> None:
        """Roll back the block (or, if that cannot be done, the whole uncommitted group)."""
        try:
            if self._conn.in_transaction and grouped:
                try:
                    self._conn.execute("ROLLBACK TO block")
                    self._conn.execute("RELEASE block")
                except sqlite3.Error:
                    self._conn.execute("ROLLBACK")
            elif self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:   # the connection is gone: nothing uncommitted survives it
            log.debug("rollback of %s failed: %s", self.path, exc)

    def _failed(self, exc: sqlite3.Error) -> StoreError:
        # From now on nothing more is written, and what is not committed is dropped at close:
        # the store stays exactly at its last commit, as after a crash, so a resume is exact
        # (the run's memory has moved past what was rolled back).
        self._broken = True
        return StoreError(f"cannot write the run store {self.path}: {exc}. Everything"
                          " committed before is kept; once the disk has space (or is writable)"
                          " again, the run can be resumed")

    def commit(self) -> None:
        """Commit what grouped blocks have written so far."""
        if self._broken:
            raise StoreBroken(f"the run store {self.path} failed earlier; nothing is committed")
        if self._conn.in_transaction:
            try:
                self._before_commit()
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._undo(grouped=False)
                raise self._failed(exc) from exc
        self._last_commit = time.monotonic()

    def _before_commit(self) -> None:
        if self.before_commit is not None:
            self.before_commit()

    def _write(self, sql: str, args: tuple[Any, ...]) -> sqlite3.Cursor:
        if self._broken:
            raise StoreBroken(f"the run store {self.path} failed earlier; nothing more is"
                              " written to it")
        try:
            return self._conn.execute(sql, args)
        except sqlite3.Error as exc:
            if self._in_tx:
                raise   # transaction() rolls the block back and reports it
            raise self._failed(exc) from exc

    def set_meta(self, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def begin_step(self, cell: str, experiment: str, step_count: int, step_index: int, kind: str,
                   cycle: int, started_t: float, params: dict[str, Any]) -> int:
        cur = self._write(
            "INSERT INTO steps (cell, experiment, step_count, step_index, kind, cycle, started_t,"
            " params) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (cell, experiment, step_count, step_index, kind, cycle, started_t,
             json.dumps(params)))
        return int(cur.lastrowid)

    def set_attachment(self, step_id: int, attachment: dict[str, str]) -> None:
        """What the instrument calls the technique running for this step (see
        ``Channel.attachment``)."""
        self._write("UPDATE steps SET params = json_set(params, '$.attachment', json(?))"
                    " WHERE id = ?", (json.dumps(attachment), step_id))

    def end_step(self, step_id: int, ended_t: float, end_reason: str,
                 counters: dict[str, float] | None = None) -> None:
        """``counters``: the cell's Ah/Wh counters at the end, which a resumed run replays."""
        self._write(
            "UPDATE steps SET ended_t = ?, end_reason = ?, end_counters = ? WHERE id = ?",
            (ended_t, end_reason, json.dumps(counters) if counters is not None else None,
             step_id))

    def append(self, step_id: int, chunk: Chunk) -> None:
        names = SPECTRUM_COLUMNS if chunk.kind == "spectrum" else SERIES_COLUMNS
        n = len(chunk.columns["test_time_s"])
        if n == 0:
            return
        block = np.empty((len(names), n), dtype="<f8")
        for i, name in enumerate(names):
            block[i] = chunk.columns[name]
        t = chunk.columns["test_time_s"]
        self._write(
            "INSERT INTO chunks (cell, step_id, step_count, step_index, cycle, kind, n, t_first,"
            " t_last, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (chunk.cell, step_id, chunk.step_count, chunk.step_index, chunk.cycle, chunk.kind, n,
             float(t[0]), float(t[-1]), block.tobytes()))

    def event(self, t: float, utc: float, cell: str | None, kind: str, message: str,
              data: dict[str, Any] | None = None) -> None:
        self._write(
            "INSERT INTO events (t, utc, cell, kind, message, data) VALUES (?, ?, ?, ?, ?, ?)",
            (t, utc, cell, kind, message, json.dumps(data or {})))

    def set_cell_state(self, cell: str, state: str, t: float, **fields: Any) -> None:
        row = {"cell": cell, "state": state, "updated_t": t}
        for key in ("experiment", "step_count", "step_index", "step_kind", "cycle",
                    "step_started_t", "step_estimate_s"):
            if key in fields:
                row[key] = fields[key]
        for key in ("checkpoint", "last"):
            if key in fields:
                row[key] = json.dumps(fields[key])
        cols = ", ".join(row)
        updates = ", ".join(f"{k} = excluded.{k}" for k in row if k != "cell")
        self._write(
            f"INSERT INTO cell_state ({cols}) VALUES ({', '.join('?' * len(row))})"
            f" ON CONFLICT(cell) DO UPDATE SET {updates}", tuple(row.values()))

    # -- reading ---------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self._conn.execute("SELECT key, value FROM meta")}

    def cells(self) -> list[str]:
        rows = self._conn.execute("SELECT cell FROM cell_state ORDER BY cell").fetchall()
        return [r[0] for r in rows]

    def cell_states(self) -> list[dict[str, Any]]:
        cur = self._conn.execute("SELECT * FROM cell_state ORDER BY cell")
        names = [d[0] for d in cur.description]
        out = []
        for row in cur.fetchall():
            rec = dict(zip(names, row, strict=True))
            rec["checkpoint"] = json.loads(rec["checkpoint"])
            rec["last"] = json.loads(rec["last"])
            out.append(rec)
        return out

    def steps(self, cell: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM steps", ()
        if cell is not None:
            sql, args = sql + " WHERE cell = ?", (cell,)
        cur = self._conn.execute(sql + " ORDER BY id", args)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        for r in rows:
            r["params"] = json.loads(r["params"])
            r["end_counters"] = json.loads(r["end_counters"]) if r["end_counters"] else None
        return rows

    def latest_steps(self) -> dict[str, dict[str, Any]]:
        """Each cell's most recent step: its kind, start, end and end reason (ended_t None
        while it runs)."""
        rows = self._conn.execute(
            "SELECT cell, kind, started_t, ended_t, end_reason FROM steps WHERE id IN"
            " (SELECT MAX(id) FROM steps GROUP BY cell)").fetchall()
        return {cell: {"kind": kind, "started_t": started, "ended_t": ended,
                       "end_reason": reason} for cell, kind, started, ended, reason in rows}

    def last_point(self, step_id: int) -> dict[str, float] | None:
        """The last committed point of a step (series columns), or None: where a resumed
        step carries on from."""
        row = self._conn.execute(
            "SELECT kind, n, data FROM chunks WHERE step_id = ? ORDER BY id DESC LIMIT 1",
            (step_id,)).fetchone()
        if row is None:
            return None
        kind, n, data = row
        names = SPECTRUM_COLUMNS if kind == "spectrum" else SERIES_COLUMNS
        block = np.frombuffer(data, dtype="<f8").reshape(len(names), n)
        return {name: float(block[i, -1]) for i, name in enumerate(names)}

    def rows_after(self, table: str, after_id: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` rows of ``steps``, ``chunks`` or ``events`` with an id above
        ``after_id``, in id order, as stored (JSON as its text, a chunk's data as bytes): what
        a copy of the store (the lab record) reads, and keys by the same ids."""
        if table not in ("steps", "chunks", "events"):
            raise ValueError(f"rows_after reads steps, chunks or events, not {table!r}")
        cur = self._conn.execute(f"SELECT * FROM {table} WHERE id > ? ORDER BY id LIMIT ?",
                                 (after_id, limit))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def events(self, cell: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT t, utc, cell, kind, message, data FROM events", ()
        if cell is not None:
            sql, args = sql + " WHERE cell = ?", (cell,)
        rows = self._conn.execute(sql + " ORDER BY id", args).fetchall()
        return [{"t": t, "utc": u, "cell": c, "kind": k, "message": m, "data": json.loads(d)}
                for t, u, c, k, m, d in rows]

    def point_count(self, cell: str | None = None) -> int:
        sql, args = "SELECT COALESCE(SUM(n), 0) FROM chunks", ()
        if cell is not None:
            sql, args = sql + " WHERE cell = ?", (cell,)
        return int(self._conn.execute(sql, args).fetchone()[0])

    def read(self, cell: str, kind: str = "series") -> dict[str, np.ndarray]:
        """All points of one cell and kind as columns, with step_count/step_index/cycle."""
        names = SPECTRUM_COLUMNS if kind == "spectrum" else SERIES_COLUMNS
        rows = self._conn.execute(
            "SELECT step_count, step_index, cycle, n, data FROM chunks"
            " WHERE cell = ? AND kind = ? ORDER BY id", (cell, kind)).fetchall()
        parts: dict[str, list[np.ndarray]] = {n: [] for n in (*names, "step_count",
                                                                "step_index", "cycle")}
        for step_count, step_index, cycle, n, data in rows:
            block = np.frombuffer(data, dtype="<f8").reshape(len(names), n)
            for i, name in enumerate(names):
                parts[name].append(block[i])
            parts["step_count"].append(np.full(n, step_count, dtype=np.int64))
            parts["step_index"].append(np.full(n, step_index, dtype=np.int64))
            parts["cycle"].append(np.full(n, cycle, dtype=np.int64))
        return {k: (np.concatenate(v) if v else np.empty(0)) for k, v in parts.items()}


def _connect(path: Path, readonly: bool, durable: bool = True) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path.as_posix()}?mode=ro", uri=True,
                               isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn
