"""The run store: data, journal and per-cell checkpoints in one SQLite database (WAL mode).

Points are stored as column chunks, one row per poll batch with every column packed into one
float64 BLOB, which writes about ten times faster than a row per point. A chunk and the cell's
checkpoint commit in the same transaction, so what a crash leaves behind is always consistent:
resume never duplicates or loses a committed point.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import math
import operator
import os
import sqlite3
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from store import files as store_files
from store.rows import (
    StoreBroken,
    StoreDamaged,
    StoreError,
    chunk_crc,
    decode_chunk,
    decode_int,
    decode_json,
    decode_number,
    decode_optional_json,
    decode_text,
)
from store.scan import TableReader
from store.schema import (
    DB_NAME,
    META_KINDS,
    READABLE_SCHEMAS,
    REQUIRED_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    SERIES_COLUMNS,
    SPECTRUM_COLUMNS,
)

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("cellseq.store")
#: The fields of a cell's state besides the state itself and its time.
_STATE_FIELDS = ("experiment", "step_count", "step_index", "step_kind", "cycle",
                 "step_started_t", "step_estimate_s", "checkpoint", "last")
_STATE_FIELD_SET = frozenset(_STATE_FIELDS)
#: A dry run commits at most this often (wall time); see :meth:`RunStore.transaction`.
GROUP_COMMIT_S = 0.5
#: The page size of a dry run's store (SQLite's default, 4 KiB, for one that commits every
#: block). A dry run writes megabytes per grouped commit, mostly chunks of a few KiB: in
#: 64 KiB pages a chunk sits in its row instead of a chain of overflow pages, and SQLite
#: writes (to the log, then to the database) a sixteenth as many pages, which halves the
#: system time of its writes (the paper campaign's 0.85 s to 0.41 s) for a little more
#: copying inside SQLite. A store that commits every block keeps small pages, so that a
#: commit writes and syncs a few KiB, not a few 64 KiB pages.
GROUPED_PAGE_BYTES = 65536


@dataclass(frozen=True)
class Chunk:
    """A poll's points for the store: every column of :data:`SERIES_COLUMNS` (and of
    :data:`SPECTRUM_COLUMNS` for a spectrum) as an array, or, for a few points, as a list of
    floats."""

    cell: str
    step_count: int
    step_index: int
    cycle: int
    kind: str
    columns: dict[str, np.ndarray] | dict[str, list[float]]


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as read back: its step, cycle, point count and the columns asked for."""

    id: int
    step_count: int
    step_index: int
    cycle: int
    n: int
    columns: dict[str, np.ndarray]

    def column(self, name: str) -> np.ndarray:
        """A stored column, or the chunk's ``step_count``, ``step_index`` or ``cycle`` as one
        value per point."""
        if name in ("step_count", "step_index", "cycle"):
            import numpy as np

            return np.full(self.n, getattr(self, name), dtype=np.int64)
        return self.columns[name]


_R = TypeVar("_R")
#: A pending step's end columns (ended_t, end_reason, end_counters) before its end came.
_NOT_ENDED = (None, None, None)
_COUNTERS = ("charge_Ah", "discharge_Ah", "charge_Wh", "discharge_Wh")
_COUNTERS_JSON = ('{"charge_Ah": %r, "discharge_Ah": %r, "charge_Wh": %r,'
                  ' "discharge_Wh": %r}')


def _counters_json(counters: dict[str, float]) -> str:
    """``json.dumps(counters)``, the same text; the usual four finite floats written straight
    (a step's end writes them, and the encoder's set-up costs more than the text)."""
    values = tuple(counters.values())
    if tuple(counters) == _COUNTERS:
        a, b, c, d = values
        # finite floats all four (a sum of finite ones that overflows takes the long way)
        if type(a) is type(b) is type(c) is type(d) is float and math.isfinite(a + b + c + d):
            return _COUNTERS_JSON % values
    return json.dumps(counters)


def _reads(method: Callable[..., _R]) -> Callable[..., _R]:
    """A read of the store: the rows written so far that wait in memory go to SQLite first,
    so a read sees every write before it."""
    @functools.wraps(method)
    def read(self: RunStore, *args: Any, **kwargs: Any) -> _R:
        if not self._pending.empty and not self._broken:
            try:
                self._flush()
            except sqlite3.Error as exc:
                if self._in_tx:
                    raise   # transaction() rolls the block back and reports it
                raise self._failed(exc) from exc
        return method(self, *args, **kwargs)
    return read


@dataclass
class _Rows:
    """Pending rows taken out to be inserted: steps (their end merged in when it came before
    the insert), chunks, events, and the ends of steps already in SQLite."""

    steps: list[tuple[Any, ...]]
    chunks: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    ends: list[tuple[Any, ...]]


@dataclass
class _Pending:
    """Rows written inside transactions and not yet in SQLite, in the order written: each
    table's rows keep their order (the ids SQLite gives are the same as if each had been
    inserted at once), and a step's end goes into its row when the row is still here."""

    steps: list[tuple[Any, ...]] = field(default_factory=list)
    chunks: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    #: (ended_t, end_reason, end_counters JSON, step id)
    ends: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.steps or self.chunks or self.events or self.ends)

    def mark(self, next_step_id: int | None) -> tuple[int, int, int, int, int | None]:
        return len(self.steps), len(self.chunks), len(self.events), len(self.ends), next_step_id

    def undo(self, mark: tuple[int, int, int, int, int | None]) -> int | None:
        """Forget what was written after ``mark``; the next step id at the mark."""
        del self.steps[mark[0]:], self.chunks[mark[1]:], self.events[mark[2]:]
        del self.ends[mark[3]:]
        return mark[4]

    def take(self, mark: tuple[int, int, int, int, int | None] | None) -> _Rows:
        """Take out the rows written before ``mark`` (all when None)."""
        cut = mark if mark is not None else self.mark(None)
        steps, self.steps = self.steps[:cut[0]], self.steps[cut[0]:]
        chunks, self.chunks = self.chunks[:cut[1]], self.chunks[cut[1]:]
        events, self.events = self.events[:cut[2]], self.events[cut[2]:]
        ends, self.ends = self.ends[:cut[3]], self.ends[cut[3]:]
        rows = [row + _NOT_ENDED for row in steps]
        if not (steps and ends):
            return _Rows(rows, chunks, events, ends)
        # a step's row sits at its id's distance from the first (ids are given in order);
        # looked up by id where that does not hold
        first = steps[0][0]
        index: dict[int, int] | None = None
        updates = []
        for end in ends:
            k = end[3] - first
            if not (0 <= k < len(steps) and steps[k][0] == end[3]):
                if index is None:
                    index = {row[0]: j for j, row in enumerate(steps)}
                k = index.get(end[3], -1)
            if k < 0:
                updates.append(end)
            else:
                rows[k] = steps[k] + end[:3]
        return _Rows(rows, chunks, events, updates)


class _Transaction:
    """:meth:`RunStore.transaction` (one object per store: a dry run opens a block per poll,
    and a generator-made context manager costs more than the block's own work)."""

    __slots__ = ("_depth", "_store")

    def __init__(self, store: RunStore) -> None:
        self._store, self._depth = store, 0

    def __enter__(self) -> None:
        if self._depth or self._store._in_tx:
            self._depth += 1   # inside another block: part of it
            return
        self._store._begin_block()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> bool:
        if self._depth:
            self._depth -= 1
            return False
        error = self._store._end_block(exc)
        if error is None or error is exc:
            return False   # kept; or undone, and the block's own exception goes on as it is
        raise error from exc


class RunStore:
    """Open with :meth:`create` (a new run) or :meth:`open` (read, or resume)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, durable: bool = True,
                 tables: dict[str, set[str]] | None = None,
                 cleanup: Callable[[], None] | None = None) -> None:
        self._conn = conn
        self.path = path
        self.durable = durable
        self._in_tx = False
        self._broken = False
        self._last_commit = time.monotonic()
        self._tables = tables if tables is not None else store_files.list_tables(conn)
        self._crc = "crc" in self._tables.get("chunks", set())
        self._cleanup = cleanup
        self._scan = TableReader(conn, self._tables, path)
        #: What :meth:`open` found wrong with the store (salvage mode; empty when intact).
        self.damage: list[str] = []
        #: called inside every transaction just before it commits: a dry run writes its
        #: simulators' snapshot there, so the snapshot always matches the committed data
        self.before_commit: Callable[[], None] | None = None
        #: cell states set inside transactions, written (JSON-encoded) when they commit: a
        #: cell's state changes at every poll, and only the last one of a commit is kept
        self._states: dict[str, dict[str, Any]] = {}
        #: what the current grouped block changed in ``_states``, to undo it with the block
        self._states_undo: dict[str, dict[str, Any] | None] = {}
        #: rows written inside transactions, inserted together just before the commit (or a
        #: read): a step's row waits there with its end, so a step is one INSERT, and a
        #: block is undone by forgetting its rows (see :class:`_Pending`)
        self._pending = _Pending()
        #: the pending lengths when the current block began (its undo), and whether a read or
        #: a rare write inside the block put its rows into SQLite under a savepoint
        self._block_mark: tuple[int, int, int, int, int | None] | None = None
        self._savepoint = False
        self._transaction = _Transaction(self)
        #: the id the next step gets (None: read from the table when needed)
        self._next_step_id: int | None = None

    @classmethod
    def create(cls, run_dir: Path, durable: bool = True,
               meta: dict[str, Any] | None = None) -> RunStore:
        """A new store holding ``meta`` from the start.

        The schema and ``meta`` (the run's manifest, cells, experiments) are written and synced
        under another name, then renamed into place: a store a reader or a resume finds always
        has its tables and the run's metadata, whenever the process was killed. ``durable``
        syncs every later commit to disk too (hardware runs: a power cut loses nothing
        committed); dry runs may skip it, and their store gets larger pages
        (:data:`GROUPED_PAGE_BYTES`)."""
        path = Path(run_dir) / DB_NAME
        if path.exists():
            raise StoreError(f"{path} already exists; a run directory holds one run")
        fresh = path.with_name(path.name + ".new")
        store_files.remove_store_files(fresh)   # what a process killed while creating it left
        try:
            conn = store_files.connect(fresh, readonly=False, durable=True,
                                       page_bytes=None if durable else GROUPED_PAGE_BYTES)
            try:
                conn.executescript("BEGIN IMMEDIATE;" + SCHEMA)
                rows = [("schema_version", SCHEMA_VERSION), *(meta or {}).items()]
                conn.executemany("INSERT INTO meta VALUES (?, ?)",
                                 [(k, json.dumps(v)) for k, v in rows])
                conn.execute("COMMIT")
            finally:
                conn.close()
            os.replace(fresh, path)
            store_files.sync_dir(path.parent)
            return cls(store_files.connect(path, readonly=False, durable=durable), path, durable)
        except (sqlite3.Error, OSError) as exc:
            store_files.remove_store_files(fresh)
            raise StoreError(f"cannot create the run store {path}:"
                             f" {store_files.reason(exc)}") from None

    @classmethod
    def open(cls, run_dir: Path, readonly: bool = True, durable: bool = True, *,
             integrity: bool = False, salvage: bool = False) -> RunStore:
        """Open a run's store once it proves to be one: its tables and columns are all there,
        and with ``integrity`` SQLite's ``quick_check`` finds no damaged page (a read of the
        whole file: for commands that read it all anyway, or are about to write to it).

        A damaged store raises :class:`StoreDamaged` naming what is wrong, unless
        ``salvage``: then it opens for what can still be read, with :attr:`damage` listing
        what cannot (and reads given a ``damage`` list skip damaged rows, listing them)."""
        run_dir = Path(run_dir)
        path = run_dir / DB_NAME
        if not run_dir.is_dir():
            raise StoreError(f"{run_dir} is not a cellseq run directory (no such directory)")
        if not path.exists():
            raise StoreError(f"{run_dir} is not a cellseq run directory (no {DB_NAME})")
        if not path.is_file():
            raise StoreDamaged(f"{path} is not a file; the run store is damaged")
        cleanup = None
        try:
            if readonly:
                conn, cleanup = store_files.connect_readonly(path)
            else:
                conn = store_files.connect(path, readonly=False, durable=durable)
            tables = store_files.list_tables(conn)
            store = cls(conn, path, durable, tables, cleanup)
        except (sqlite3.Error, OSError) as exc:
            if cleanup is not None:
                cleanup()
            raise StoreDamaged(f"{path} cannot be read as a run store: {store_files.reason(exc)}"
                               ) from None
        try:
            store._check(integrity, salvage)
        except BaseException:
            store.close()
            raise
        return store

    def _check(self, integrity: bool, salvage: bool) -> None:
        damage = []
        for table, columns in REQUIRED_COLUMNS.items():
            have = self._tables.get(table)
            if have is None:
                damage.append(f"table {table} is missing")
            elif columns - have:
                damage.append(f"table {table} lacks the columns"
                              f" {', '.join(sorted(columns - have))}")
        if "meta" in self._tables:
            try:
                row = self._conn.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            except sqlite3.DatabaseError as exc:
                raise StoreDamaged(f"{self.path} cannot be read as a run store:"
                                   f" {store_files.reason(exc)}") from None
            try:
                if row is None:
                    raise StoreDamaged("meta lacks the store's schema version")
                version = decode_json(row[0], "meta 'schema_version'")
            except StoreDamaged as exc:   # read it as this cellseq's, as far as it goes
                damage.append(str(exc))
                version = SCHEMA_VERSION
            if version not in READABLE_SCHEMAS:
                raise StoreError(f"{self.path} has run store schema {version}; this cellseq"
                                 f" reads schemas {', '.join(map(str, READABLE_SCHEMAS))}")
        if integrity:
            try:
                found = [r[0] for r in self._conn.execute("PRAGMA quick_check(20)")]
            except sqlite3.DatabaseError as exc:
                found = [store_files.reason(exc)]
            if found != ["ok"]:
                damage.append("damaged pages (SQLite quick_check: " + "; ".join(
                    str(f) for f in found[:3]) + ("; ..." if len(found) > 3 else "") + ")")
        self.damage = damage
        if damage and not salvage:
            raise StoreDamaged(f"the run store {self.path} is damaged: {'; '.join(damage)}")

    def close(self) -> None:
        """Commit what is pending (without the pre-commit hook) and close; never raises."""
        try:
            if self._conn.in_transaction:
                if not self._broken:
                    self._flush()
                    self._write_states()
                self._conn.execute("ROLLBACK" if self._broken else "COMMIT")
        except sqlite3.Error:
            self._undo(grouped=False)
        finally:
            self._conn.close()
            if self._cleanup is not None:
                self._cleanup()
                self._cleanup = None

    # -- writing ---------------------------------------------------------------------------

    def transaction(self) -> AbstractContextManager[None]:
        """Everything written inside commits together or not at all.

        A durable store commits every block (hardware runs: a power cut loses nothing that was
        committed). A dry-run store groups blocks into one commit every ``GROUP_COMMIT_S`` of
        wall time: a crash loses at most that much and never part of a block, and a dry run
        writes far faster. A block's rows wait in memory until the commit (see
        :class:`_Pending`), so undoing a block is forgetting them; a block that reads, or
        writes what cannot wait, puts its rows into SQLite under a savepoint. A block inside
        another is part of it.
        """
        return self._transaction

    def _begin_block(self) -> None:
        if self._broken:
            raise StoreBroken(f"the run store {self.path} failed earlier; nothing more is"
                              " written to it")
        self._in_tx = True
        try:
            if not self._conn.in_transaction:
                self._conn.execute("BEGIN IMMEDIATE")
            self._block_mark = self._pending.mark(self._next_step_id)
        except BaseException as exc:
            error = self._end_block(exc)
            if error is exc:
                raise
            raise error from exc

    def _end_block(self, exc: BaseException | None) -> BaseException | None:
        """Close the block: keep it (and commit when it is time), or, on ``exc`` or a failure
        of the commit, undo it. Returns the error to raise (an SQLite error becomes the
        store's failure), None if the block was kept."""
        grouped = not self.durable
        try:
            if exc is None:
                try:
                    self._block_mark = None
                    if grouped:
                        if self._savepoint:
                            self._savepoint = False
                            self._conn.execute("RELEASE block")
                        self._states_undo.clear()
                        if time.monotonic() - self._last_commit >= GROUP_COMMIT_S:
                            self.commit()
                    else:
                        self._flush()
                        self._before_commit()
                        self._write_states()
                        self._conn.execute("COMMIT")
                    return None
                except BaseException as failure:
                    exc = failure
            self._undo(grouped)
            return self._failed(exc) if isinstance(exc, sqlite3.Error) else exc
        finally:
            self._in_tx = False
            self._block_mark = None

    def _undo(self, grouped: bool) -> None:
        """Roll back the block (or, if that cannot be done, the whole uncommitted group)."""
        undo, self._states_undo = self._states_undo, {}
        mark, self._block_mark = self._block_mark, None
        savepoint, self._savepoint = self._savepoint, False
        try:
            if self._conn.in_transaction and grouped and mark is not None:
                try:
                    if savepoint:
                        self._conn.execute("ROLLBACK TO block")
                        self._conn.execute("RELEASE block")
                    self._next_step_id = self._pending.undo(mark)
                except sqlite3.Error:
                    self._forget()
                    self._conn.execute("ROLLBACK")
                else:
                    for cell, before in undo.items():
                        if before is None:
                            self._states.pop(cell, None)
                        else:
                            self._states[cell] = before
            else:
                self._forget()
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:   # the connection is gone: nothing uncommitted survives it
            self._forget()
            log.debug("rollback of %s failed: %s", self.path, exc)

    def _forget(self) -> None:
        """Drop everything not committed that waits in memory (the whole group rolls back)."""
        self._states.clear()
        self._pending = _Pending()
        self._next_step_id = None

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
                self._flush()
                self._before_commit()
                self._write_states()
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
            self._flush()
            if self._block_mark is not None and not self.durable and not self._savepoint:
                self._conn.execute("SAVEPOINT block")
                self._savepoint = True
            return self._conn.execute(sql, args)
        except sqlite3.Error as exc:
            if self._in_tx:
                raise   # transaction() rolls the block back and reports it
            raise self._failed(exc) from exc

    def _flush(self) -> None:
        """Insert the rows waiting in memory (in the order written, table by table), so SQLite
        holds everything written so far; inside a grouped block, under its savepoint."""
        pending = self._pending
        if pending.empty:
            return
        if self._block_mark is not None and not self.durable and not self._savepoint \
                and pending.mark(None)[:4] != self._block_mark[:4]:
            # rows of the block under way: a savepoint undoes them if the block fails
            self._flush_to(self._block_mark)
            self._conn.execute("SAVEPOINT block")
            self._savepoint = True
        self._flush_to(None)

    def _flush_to(self, mark: tuple[int, int, int, int, int | None] | None) -> None:
        """Insert the pending rows written before ``mark`` (all of them when None)."""
        rows = self._pending.take(mark)
        if self._block_mark is not None:   # what is left of the pending rows is the block's
            self._block_mark = (0, 0, 0, 0, self._block_mark[4])
        if rows.steps:
            self._conn.executemany(
                "INSERT INTO steps (id, cell, experiment, step_count, step_index, kind, cycle,"
                " started_t, params, ended_t, end_reason, end_counters)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows.steps)
        if rows.chunks:
            self._conn.executemany(
                "INSERT INTO chunks (cell, step_id, step_count, step_index, cycle, kind, n,"
                " t_first, t_last, data, crc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows.chunks)
        if rows.events:
            self._conn.executemany(
                "INSERT INTO events (t, utc, cell, kind, message, data)"
                " VALUES (?, ?, ?, ?, ?, ?)", rows.events)
        if rows.ends:
            self._conn.executemany(
                "UPDATE steps SET ended_t = ?, end_reason = ?, end_counters = ? WHERE id = ?",
                rows.ends)

    def _queue_ok(self) -> bool:
        """Whether a row may wait in memory: inside a transaction of a store still working."""
        if self._broken:
            raise StoreBroken(f"the run store {self.path} failed earlier; nothing more is"
                              " written to it")
        return self._in_tx

    def set_meta(self, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def begin_step(self, cell: str, experiment: str, step_count: int, step_index: int, kind: str,
                   cycle: int, started_t: float, params: dict[str, Any] | str) -> int:
        """A new step's row; its id is the one SQLite gives it (the largest so far plus one),
        so the row is the same whether it waits for its end in memory or not. ``params``: a
        dict, or its JSON text already written (a loop's steps repeat theirs)."""
        row = (cell, experiment, step_count, step_index, kind, cycle, started_t,
               params if isinstance(params, str) else json.dumps(params))
        if not self._queue_ok():
            cur = self._write(
                "INSERT INTO steps (cell, experiment, step_count, step_index, kind, cycle,"
                " started_t, params) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
            self._next_step_id = None
            return int(cur.lastrowid)
        if self._next_step_id is None:
            (top,) = self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM steps").fetchone()
            self._next_step_id = int(top) + 1
        step_id, self._next_step_id = self._next_step_id, self._next_step_id + 1
        self._pending.steps.append((step_id, *row))
        return step_id

    def set_attachment(self, step_id: int, attachment: dict[str, str]) -> None:
        """What the instrument calls the technique running for this step (see
        ``Channel.attachment``)."""
        self._write("UPDATE steps SET params = json_set(params, '$.attachment', json(?))"
                    " WHERE id = ?", (json.dumps(attachment), step_id))

    def end_step(self, step_id: int, ended_t: float, end_reason: str,
                 counters: dict[str, float] | None = None) -> None:
        """``counters``: the cell's Ah/Wh counters at the end, which a resumed run replays."""
        end = (ended_t, end_reason, _counters_json(counters) if counters is not None else None)
        if not self._queue_ok():
            self._write("UPDATE steps SET ended_t = ?, end_reason = ?, end_counters = ?"
                        " WHERE id = ?", (*end, step_id))
            return
        self._pending.ends.append((*end, step_id))

    def append(self, step_id: int, chunk: Chunk) -> None:
        """A chunk of points: its columns are arrays, or (a few points) lists of floats."""
        names = SPECTRUM_COLUMNS if chunk.kind == "spectrum" else SERIES_COLUMNS
        t = chunk.columns["test_time_s"]
        n = len(t)
        if n == 0:
            return
        if isinstance(t, list):   # packed as numpy would: little-endian float64, by column
            columns = chunk.columns
            data = struct.pack(f"<{n * len(names)}d",
                               *itertools.chain.from_iterable([columns[name] for name in names]))
            t_first, t_last = float(t[0]), float(t[-1])
        else:
            import numpy as np  # imported with the first points: status and the like need none

            block = np.empty((len(names), n), dtype="<f8")
            for i, name in enumerate(names):
                block[i] = chunk.columns[name]
            data = block.tobytes()
            t_first, t_last = float(t[0]), float(t[-1])
        if not self._crc:   # a schema-2 store, resumed: its new chunks get checksums
            self._write("ALTER TABLE chunks ADD COLUMN crc INTEGER", ())
            self._write("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                        (json.dumps(SCHEMA_VERSION),))
            self._crc = True
        row = (chunk.cell, step_id, chunk.step_count, chunk.step_index, chunk.cycle, chunk.kind,
               n, t_first, t_last, data, chunk_crc(data))
        if self._queue_ok():
            self._pending.chunks.append(row)
            return
        self._write(
            "INSERT INTO chunks (cell, step_id, step_count, step_index, cycle, kind, n, t_first,"
            " t_last, data, crc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)

    def event(self, t: float, utc: float, cell: str | None, kind: str, message: str,
              data: dict[str, Any] | None = None) -> None:
        row = (t, utc, cell, kind, message, json.dumps(data or {}))
        if self._queue_ok():
            self._pending.events.append(row)
            return
        self._write(
            "INSERT INTO events (t, utc, cell, kind, message, data) VALUES (?, ?, ?, ?, ?, ?)",
            row)

    def set_cell_state(self, cell: str, state: str, t: float, **fields: Any) -> None:
        """A cell's state and checkpoint (``checkpoint`` and ``last``: dicts the caller no
        longer changes). Inside a transaction it is written when the transaction commits,
        merged with the cell's other states set since (the last value of each field stands):
        a poll sets it every time and only the state at the commit is ever seen."""
        if not _STATE_FIELD_SET.issuperset(fields):
            raise TypeError(f"a cell state has no field {sorted(set(fields) - _STATE_FIELD_SET)}")
        row = {"state": state, "updated_t": t, **fields}
        if not self._in_tx:
            self._write_state(cell, row)
            return
        if self._broken:
            raise StoreBroken(f"the run store {self.path} failed earlier; nothing more is"
                              " written to it")
        pending = self._states.get(cell)
        if cell not in self._states_undo:
            self._states_undo[cell] = dict(pending) if pending is not None else None
        if pending is None:
            self._states[cell] = row
        else:
            pending.update(row)

    def _write_states(self) -> None:
        """Write the cell states set in the transaction about to commit."""
        states, self._states = self._states, {}
        self._states_undo.clear()
        for cell, row in states.items():
            self._write_state(cell, row)

    def _write_state(self, cell: str, fields: dict[str, Any]) -> None:
        row = {"cell": cell, **fields}
        for key in ("checkpoint", "last"):
            if key in row:
                row[key] = json.dumps(row[key])
        cols = ", ".join(row)
        updates = ", ".join(f"{k} = excluded.{k}" for k in row if k != "cell")
        self._write(
            f"INSERT INTO cell_state ({cols}) VALUES ({', '.join('?' * len(row))})"
            f" ON CONFLICT(cell) DO UPDATE SET {updates}", tuple(row.values()))

    # -- reading ---------------------------------------------------------------------------
    #
    # Every read decodes its rows through store.rows, so a damaged row raises StoreDamaged
    # naming it. Given a ``damage`` list, a read skips what is damaged instead and lists it
    # there (salvage): a damaged page that stops a table scan makes it read the table one
    # row at a time, keeping every row that can still be read.

    @_reads
    def meta(self, damage: list[str] | None = None) -> dict[str, Any]:
        out = {}
        for key, value in self._scan.rows("meta", "key, value", damage=damage):
            try:
                name = decode_text(key, "a meta key")
                out[name] = decode_json(value, f"meta {key!r}", META_KINDS.get(name))
            except StoreDamaged as exc:
                self._scan.damaged(exc, damage)
        return out

    def cells(self, damage: list[str] | None = None) -> list[str]:
        """The cells with a state (every cell of the run, once it has started)."""
        return [s["cell"] for s in self.cell_states(damage)]

    @_reads
    def chunk_cells(self, damage: list[str] | None = None) -> list[str]:
        """The cells with stored points, from the chunks themselves."""
        rows = self._scan.rows("chunks", "cell", order="cell", damage=damage, distinct=True)
        out = set()
        for (cell,) in rows:
            try:
                out.add(decode_text(cell, f"a chunk's cell {cell!r}"))
            except StoreDamaged as exc:
                self._scan.damaged(exc, damage)
        return sorted(out)

    @_reads
    def cell_states(self, damage: list[str] | None = None) -> list[dict[str, Any]]:
        cols = ("cell", "state", "experiment", "step_count", "step_index", "step_kind", "cycle",
                "step_started_t", "step_estimate_s", "checkpoint", "last", "updated_t")
        out = []
        for row in self._scan.rows("cell_state", ", ".join(cols), order="cell", damage=damage):
            rec = dict(zip(cols, row, strict=True))
            where = f"cell_state of {rec['cell']!r}"
            try:
                decode_text(rec["cell"], f"{where}: cell")
                decode_text(rec["state"], f"{where}: state")
                for key in ("experiment", "step_kind"):
                    decode_text(rec[key], f"{where}: {key}", optional=True)
                for key in ("step_count", "step_index", "cycle"):
                    decode_int(rec[key], f"{where}: {key}", optional=True)
                for key in ("step_started_t", "step_estimate_s"):
                    decode_number(rec[key], f"{where}: {key}", optional=True)
                decode_number(rec["updated_t"], f"{where}: updated_t")
                rec["checkpoint"] = decode_json(rec["checkpoint"], f"{where}: checkpoint", dict)
                rec["last"] = decode_json(rec["last"], f"{where}: last values", dict)
            except StoreDamaged as exc:
                self._scan.damaged(exc, damage)
                continue
            out.append(rec)
        if self._states:   # states set in the transaction under way, not yet written
            by_cell = {rec["cell"]: rec for rec in out}
            for cell, fields in self._states.items():
                by_cell.setdefault(cell, dict.fromkeys(cols, None) | {"cell": cell}
                                   ).update(fields)
            out = sorted(by_cell.values(), key=lambda rec: rec["cell"])
        return out

    @_reads
    def steps(self, cell: str | None = None, damage: list[str] | None = None,
              counts: tuple[int, int] | None = None) -> list[dict[str, Any]]:
        """The steps' rows in the order stored, of one ``cell`` or all; ``counts``: only the
        cell's steps whose step count lies in this closed range (a resumed run reads its
        replay this way, a stretch at a time)."""
        where, args = ("cell = ?", (cell,)) if cell is not None else ("", ())
        if counts is not None:
            if cell is None:
                raise ValueError("a range of step counts is one cell's")
            where, args = f"{where} AND step_count BETWEEN ? AND ?", (*args, *counts)
        return self._step_rows(where, args, damage)

    @_reads
    def unfinished_steps(self) -> list[dict[str, Any]]:
        """The rows of steps that have not ended (running when the run stopped)."""
        return self._step_rows("ended_t IS NULL", ())

    @_reads
    def last_steps_of_experiments(self) -> list[dict[str, Any]]:
        """Each cell's last stored step in each experiment it ran in."""
        return self._step_rows("id IN (SELECT MAX(id) FROM steps GROUP BY cell, experiment)",
                               ())

    @_reads
    def top_step_counts(self) -> dict[str, int]:
        """Each cell's highest stored step count."""
        with self._scan.reading("steps"):
            rows = self._conn.execute(
                "SELECT cell, MAX(step_count) FROM steps GROUP BY cell").fetchall()
        for cell, top in rows:
            decode_int(top, f"the steps of {cell!r}: step_count")
        return dict(rows)

    @_reads
    def cell_digest(self, cell: str) -> str | None:
        """A digest of everything the store holds of ``cell``'s data: its step rows in full
        and its chunks by id, step, kind, length and checksum (a chunk's CRC-32 covers its
        points). Equal digests, equal data, as far as CRC-32 tells: what an analysis made of
        the cell before still holds. None where a chunk has no checksum (a schema-2 store):
        nothing then says its points are the same."""
        digest = hashlib.blake2b(digest_size=16)
        with self._scan.reading("steps"):
            for row in self._conn.execute(
                    "SELECT id, experiment, step_count, step_index, kind, cycle, started_t,"
                    " ended_t, end_reason, params, end_counters FROM steps WHERE cell = ?"
                    " ORDER BY id", (cell,)):
                digest.update(repr(row).encode())
        with self._scan.reading("chunks"):
            chunks = self._conn.execute(
                "SELECT id, step_id, kind, n, crc FROM chunks WHERE cell = ? ORDER BY id",
                (cell,)).fetchall()
        if any(crc is None for *_, crc in chunks):
            return None
        digest.update(repr(chunks).encode())
        return digest.hexdigest()

    def _step_rows(self, where: str, args: tuple[Any, ...], damage: list[str] | None = None
                   ) -> list[dict[str, Any]]:
        cols = ("id", "cell", "experiment", "step_count", "step_index", "kind", "cycle",
                "started_t", "ended_t", "end_reason", "params", "end_counters")
        out = []
        for row in self._scan.rows("steps", ", ".join(cols), where, args, damage=damage):
            r = dict(zip(cols, row, strict=True))
            at = f"steps row {r['id']}"
            try:
                for key in ("cell", "experiment", "kind"):
                    decode_text(r[key], f"{at}: {key}")
                decode_text(r["end_reason"], f"{at}: end_reason", optional=True)
                for key in ("id", "step_count", "step_index", "cycle"):
                    decode_int(r[key], f"{at}: {key}")
                decode_number(r["started_t"], f"{at}: started_t")
                decode_number(r["ended_t"], f"{at}: ended_t", optional=True)
                r["params"] = decode_json(r["params"], f"{at}: params", dict)
                r["end_counters"] = decode_optional_json(r["end_counters"],
                                                         f"{at}: end counters", dict)
            except StoreDamaged as exc:
                self._scan.damaged(exc, damage)
                continue
            out.append(r)
        return out

    @_reads
    def step_owners(self, damage: list[str] | None = None) -> list[tuple[str, str]]:
        """Each step's (cell, experiment), in the order stored: which cell ran in which
        experiment, without reading the steps whole."""
        out = []
        for cell, experiment in self._scan.rows("steps", "cell, experiment", damage=damage):
            try:
                out.append((decode_text(cell, "a step's cell"),
                            decode_text(experiment, f"a step's experiment of {cell!r}")))
            except StoreDamaged as exc:
                self._scan.damaged(exc, damage)
        return out

    @_reads
    def latest_steps(self) -> dict[str, dict[str, Any]]:
        """Each cell's most recent step: its kind, start, end and end reason (ended_t None
        while it runs)."""
        rows = self._conn.execute(
            "SELECT cell, kind, started_t, ended_t, end_reason FROM steps WHERE id IN"
            " (SELECT MAX(id) FROM steps GROUP BY cell)").fetchall()
        return {cell: {"kind": kind, "started_t": started, "ended_t": ended,
                       "end_reason": reason} for cell, kind, started, ended, reason in rows}

    @_reads
    def last_point(self, step_id: int) -> dict[str, float] | None:
        """The last committed point of a step (series columns), or None: where a resumed
        step carries on from."""
        with self._scan.reading("chunks"):
            row = self._conn.execute(
                f"SELECT id, cell, kind, n, data, {self._crc_column} FROM chunks"
                " WHERE step_id = ? ORDER BY id DESC LIMIT 1", (step_id,)).fetchone()
        if row is None:
            return None
        chunk_id, cell, kind, n, data, crc = row
        names = SPECTRUM_COLUMNS if kind == "spectrum" else SERIES_COLUMNS
        block = decode_chunk(data, n, names, crc, f"{self.path}: chunk {chunk_id} of {cell!r}")
        return {name: float(block[i, -1]) for i, name in enumerate(names)}

    @_reads
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

    @_reads
    def events(self, cell: str | None = None, damage: list[str] | None = None
               ) -> list[dict[str, Any]]:
        where, args = ("cell = ?", (cell,)) if cell is not None else ("", ())
        out = []
        rows = self._scan.rows("events", "id, t, utc, cell, kind, message, data", where, args,
                               damage=damage)
        for i, t, u, c, k, m, d in rows:
            at = f"events row {i}"
            try:
                out.append({"t": decode_number(t, f"{at}: t"),
                            "utc": decode_number(u, f"{at}: utc"),
                            "cell": decode_text(c, f"{at}: cell", optional=True),
                            "kind": decode_text(k, f"{at}: kind"),
                            "message": decode_text(m, f"{at}: message"),
                            "data": decode_json(d, f"{at}: data", dict)})
            except StoreDamaged as exc:
                self._scan.damaged(exc, damage)
        return out

    @_reads
    def check_chunks(self) -> None:
        """Every chunk's blob has the size its point count says and matches its checksum
        (one pass over the data: about 0.2 s per 200 MB); raises StoreDamaged naming the
        first few that do not."""
        bad = []
        with self._scan.reading("chunks"):
            cur = self._conn.execute(f"SELECT id, cell, kind, n, data, {self._crc_column}"
                                     " FROM chunks")
            for chunk_id, cell, kind, n, data, crc in cur:
                names = SPECTRUM_COLUMNS if kind == "spectrum" else SERIES_COLUMNS
                try:
                    decode_chunk(data, n, names, crc, f"chunk {chunk_id} of {cell!r}")
                except StoreDamaged as exc:
                    bad.append(str(exc))
        if bad:
            raise StoreDamaged(f"the run store {self.path} is damaged: {'; '.join(bad[:3])}"
                               + (f"; and {len(bad) - 3} more chunks" if len(bad) > 3 else ""))

    @_reads
    def point_count(self, cell: str | None = None, kind: str | None = None) -> int:
        sql, args = "SELECT COALESCE(SUM(n), 0) FROM chunks", ()
        if cell is not None:
            sql, args = sql + " WHERE cell = ?", (cell,)
            if kind is not None:
                sql, args = sql + " AND kind = ?", (cell, kind)
        with self._scan.reading("chunks"):
            value = self._conn.execute(sql, args).fetchone()[0]
        return int(decode_int(value, f"{self.path}: the point count of {cell or 'the run'}"))

    def read(self, cell: str, kind: str = "series", damage: list[str] | None = None,
             columns: tuple[str, ...] | None = None, step_counts: set[int] | None = None
             ) -> dict[str, np.ndarray]:
        """Points of one cell and kind as columns, with step_count/step_index/cycle: all of
        them, or only ``columns`` of the chunks of ``step_counts``. In memory whole: a caller
        that can fold chunk by chunk reads :meth:`chunks` instead."""
        import numpy as np

        names = SPECTRUM_COLUMNS if kind == "spectrum" else SERIES_COLUMNS
        wanted = (*(names if columns is None else [c for c in names if c in columns]),
                  "step_count", "step_index", "cycle")
        parts: dict[str, list[np.ndarray]] = {n: [] for n in wanted}
        for chunk in self.chunks(cell, kind, damage, columns, step_counts):
            for name in wanted:
                parts[name].append(chunk.column(name))
        return {k: (np.concatenate(v) if v else np.empty(0)) for k, v in parts.items()}

    @_reads
    def chunks(self, cell: str, kind: str = "series", damage: list[str] | None = None,
               columns: tuple[str, ...] | None = None, step_counts: set[int] | None = None
               ) -> Iterator[StoredChunk]:
        """One cell's chunks of one kind in the order they were stored, one at a time (memory
        follows one chunk, however long the run): each checked against its checksum, with
        only ``columns`` kept (all when None), of the steps in ``step_counts`` (all when
        None). Damaged chunks raise, or, given ``damage``, are skipped and listed there."""
        names = SPECTRUM_COLUMNS if kind == "spectrum" else SERIES_COLUMNS
        keep = [(i, c) for i, c in enumerate(names) if columns is None or c in columns]
        for chunk_id, step_count, step_index, cycle, block in self.chunk_blocks(
                cell, kind, damage, step_counts):
            yield StoredChunk(chunk_id, step_count, step_index, cycle, block.shape[1],
                              {c: block[i] for i, c in keep})

    def chunk_blocks(self, cell: str, kind: str = "series", damage: list[str] | None = None,
                     step_counts: set[int] | None = None
                     ) -> Iterator[tuple[int, int, int, int, np.ndarray]]:
        """:meth:`chunks` as ``(id, step_count, step_index, cycle, block)``, ``block`` the
        chunk's columns (``SERIES_COLUMNS`` or ``SPECTRUM_COLUMNS``) as the rows of one
        read-only array: for a reader of every point (an export) that gathers many chunks
        at once, without a dict per chunk.

        The chunks come from one query, streamed (a query per chunk costs five times the
        decoding), ``step_counts`` chosen in it (their list passed as one JSON array, so a
        skipped step's blobs are not read); a chunk whose step count is no whole number is
        kept, and named as damage below. Once a damaged page stops that query, the chunks
        are listed and each blob read on its own (a damaged one is named, the others still
        read)."""
        names = SPECTRUM_COLUMNS if kind == "spectrum" else SERIES_COLUMNS
        last = 0
        if "chunks" in self._tables:
            sql = (f"SELECT id, step_count, step_index, cycle, n, data, {self._crc_column}"
                   " FROM chunks WHERE cell = ? AND kind = ?")
            args: tuple[object, ...] = (cell, kind)
            if step_counts is not None:
                sql += (" AND (typeof(step_count) != 'integer'"
                        " OR step_count IN (SELECT value FROM json_each(?)))")
                args += (json.dumps(sorted(operator.index(c) for c in step_counts)),)
            try:
                rows = self._conn.execute(sql + " ORDER BY id", args)
                import numpy as np

                width = len(names)
                f8 = np.dtype("<f8")
                for chunk_id, step_count, step_index, cycle, n, data, crc in rows:
                    last = chunk_id
                    # an intact chunk, checked in line (whole numbers, a blob of the size
                    # its count says and of its checksum); any other is decoded below,
                    # which names what is wrong
                    if type(step_count) is type(step_index) is type(cycle) is type(n) is int \
                            and type(data) is bytes and n > 0 and len(data) == 8 * width * n \
                            and (crc is None or (type(crc) is int and chunk_crc(data) == crc)):
                        # one call, not frombuffer and reshape: a run has tens of
                        # thousands of chunks (read-only, as the blob is)
                        yield (chunk_id, step_count, step_index, cycle,
                               np.ndarray((width, n), f8, data))
                        continue
                    decoded = self._decoded(cell, chunk_id, (step_count, step_index, cycle),
                                            n, (data, crc), names, damage)
                    if decoded is not None:
                        yield decoded
                return
            except sqlite3.DatabaseError as exc:
                # a damaged page: the rest is read chunk by chunk, which names the damage
                log.debug("a scan of %s's chunks in %s stopped: %s", cell, self.path, exc)
        rows = self._scan.chunk_rows(cell, kind, "id, step_count, step_index, cycle, n",
                                     damage)
        for chunk_id, step_count, step_index, cycle, n in rows:
            if chunk_id <= last:
                continue   # read before the scan stopped
            if step_counts is not None and step_count not in step_counts and \
                    isinstance(step_count, int) and not isinstance(step_count, bool):
                continue   # another step's (a count that is no number is damage, below)
            decoded = self._decoded(cell, chunk_id, (step_count, step_index, cycle), n, None,
                                    names, damage)
            if decoded is not None:
                yield decoded

    def _decoded(self, cell: str, chunk_id: int, counts: tuple[object, object, object],
                 n: object, found: tuple[object, object] | None, names: tuple[str, ...],
                 damage: list[str] | None) -> tuple[int, int, int, int, np.ndarray] | None:
        """A chunk's row checked and its blob decoded (``found``: its data and checksum, or
        None to read them now); None when damaged (listed in ``damage``, or raised) or gone
        since it was listed (the reader of a growing run)."""
        at = f"chunk {chunk_id} of {cell!r}"
        try:
            if not all(type(v) is int for v in counts):   # the common case checked at once
                for k, v in zip(("step_count", "step_index", "cycle"), counts, strict=True):
                    decode_int(v, f"{at}: {k}")
            step_count, step_index, cycle = counts
            if found is None:
                try:
                    found = self._conn.execute(
                        f"SELECT data, {self._crc_column} FROM chunks WHERE id = ?",
                        (chunk_id,)).fetchone()
                except sqlite3.DatabaseError as exc:
                    raise StoreDamaged(f"{at}: {store_files.reason(exc)}") from None
                if found is None:
                    return None
            block = decode_chunk(found[0], n, names, found[1], at)
        except StoreDamaged as exc:
            self._scan.damaged(exc, damage)
            return None
        return chunk_id, step_count, step_index, cycle, block

    @property
    def _crc_column(self) -> str:
        return "crc" if self._crc else "NULL"

    # -- reading a run as it grows (the dashboard tails a store another process writes) ----

    @_reads
    def meta_value(self, key: str) -> Any:
        """One meta entry (None if absent), without reading the others (a dry run's simulator
        snapshot among them)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    @_reads
    def last_ids(self) -> tuple[int, int]:
        """The newest chunk's and event's ids (0 when none): they grow with every commit."""
        row = self._conn.execute("SELECT (SELECT COALESCE(MAX(id), 0) FROM chunks),"
                                 " (SELECT COALESCE(MAX(id), 0) FROM events)").fetchone()
        return int(row[0]), int(row[1])

    @_reads
    def events_after(self, after_id: int, limit: int, cell: str | None = None
                     ) -> list[dict[str, Any]]:
        """Up to ``limit`` journal events with ids after ``after_id``, oldest first, with
        their ids; ``after_id`` < 0 gives the newest ``limit``. With ``cell``: that cell's
        events and the run's own (those of no cell)."""
        where, args = ("(cell = ? OR cell IS NULL)", [cell]) if cell is not None else ("1", [])
        if after_id < 0:
            sql = (f"SELECT * FROM (SELECT id, t, utc, cell, kind, message, data FROM events"
                   f" WHERE {where} ORDER BY id DESC LIMIT ?) ORDER BY id")
            rows = self._conn.execute(sql, (*args, limit)).fetchall()
        else:
            rows = self._conn.execute(
                f"SELECT id, t, utc, cell, kind, message, data FROM events WHERE {where}"
                " AND id > ? ORDER BY id LIMIT ?", (*args, after_id, limit)).fetchall()
        return [{"id": i, "t": t, "utc": u, "cell": c, "kind": k, "message": m,
                 "data": json.loads(d)} for i, t, u, c, k, m, d in rows]

    @_reads
    def chunk_columns(self, cell: str, kind: str, columns: tuple[str, ...], after_id: int = 0,
                      until_id: int | None = None, limit: int = 256
                      ) -> list[tuple[int, dict[str, np.ndarray]]]:
        """``(chunk id, {column: values})`` of up to ``limit`` of a cell's chunks of ``kind``
        with ids in (``after_id``, ``until_id``], oldest first. Only the named columns are
        read from a large chunk's blob (a tenth of the bytes for one column), so a view of
        millions of points reads what it draws (``step_count`` is the chunk's step, one value
        per point); the blob's size is checked, its checksum
        (which needs every byte) is not: this is for views, the analysis reads :meth:`read`."""
        import numpy as np

        names = SPECTRUM_COLUMNS if kind == "spectrum" else SERIES_COLUMNS
        with_step = "step_count" in columns
        columns = tuple(c for c in columns if c != "step_count")
        index = [names.index(c) for c in columns]
        rows = self._conn.execute(
            "SELECT id, n, length(data), CASE WHEN n <= 64 THEN data END, step_count"
            " FROM chunks"
            " WHERE cell = ? AND kind = ? AND id > ? AND id <= ? ORDER BY id LIMIT ?",
            (cell, kind, after_id, until_id if until_id is not None else 2 ** 62,
             limit)).fetchall()
        out = []
        for chunk_id, n, size, small, step_count in rows:
            if size != n * len(names) * 8:
                raise StoreError(f"{self.path}: chunk {chunk_id} holds {size} bytes, not the"
                                 f" {n * len(names) * 8} of its {n} points; the store is"
                                 " damaged")
            if small is not None:
                block = np.frombuffer(small, dtype="<f8").reshape(len(names), n)
                cols = {c: block[i].copy() for c, i in zip(columns, index, strict=True)}
                if with_step:
                    cols["step_count"] = np.full(n, int(step_count), dtype=np.int64)
                out.append((chunk_id, cols))
                continue
            cols = {}
            if with_step:
                cols["step_count"] = np.full(n, int(step_count), dtype=np.int64)
            with self._conn.blobopen("chunks", "data", chunk_id, readonly=True) as blob:
                for c, i in zip(columns, index, strict=True):
                    blob.seek(i * n * 8)
                    cols[c] = np.frombuffer(blob.read(n * 8), dtype="<f8")
            out.append((chunk_id, cols))
        return out
