"""Reading a run store's tables row by row where a damaged page stops a scan.

A table scan that hits a damaged page raises for the whole query. Salvaging (given a
``damage`` list) reads the table again one row id at a time, keeping every row that can
still be read and listing what cannot.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from store.files import reason
from store.rows import StoreDamaged

#: Rows probed one at a time after a damaged page stops a table scan give up after this many
#: missing row ids in a row (when the table's largest row id cannot be read either).
PROBE_MISSES = 10_000


class TableReader:
    """Queries of a store's tables, which report damage as StoreDamaged, or salvage."""

    def __init__(self, conn: sqlite3.Connection, tables: dict[str, set[str]], path: Path
                 ) -> None:
        self.conn, self.tables, self.path = conn, tables, path
        self._ids: dict[tuple[str, str], list[int]] | None = None   # chunk ids, salvaging

    def damaged(self, exc: StoreDamaged, damage: list[str] | None) -> None:
        """Raise the damage, or, salvaging, list it."""
        if damage is None:
            raise StoreDamaged(f"the run store {self.path} is damaged: {exc}") from None
        damage.append(str(exc))

    @contextmanager
    def reading(self, table: str) -> Iterator[None]:
        """A query of ``table`` of which any failure is damage."""
        if table not in self.tables:
            raise StoreDamaged(f"the run store {self.path} is damaged: table {table} is"
                               " missing")
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise StoreDamaged(f"the run store {self.path} is damaged: table {table}:"
                               f" {reason(exc)}") from None

    def rows(self, table: str, columns: str, where: str = "", args: tuple[Any, ...] = (),
             order: str = "rowid", damage: list[str] | None = None, distinct: bool = False
             ) -> list[tuple[Any, ...]]:
        """Rows of a table; on a damaged page, with ``damage`` given, the rows that can
        still be read one by one (``distinct`` rows then may repeat)."""
        if table not in self.tables:
            self.damaged(StoreDamaged(f"table {table} is missing"), damage)
            return []
        sql = f"SELECT {'DISTINCT ' if distinct else ''}{columns} FROM {table}" + \
            (f" WHERE {where}" if where else "") + f" ORDER BY {order}"
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            self.damaged(StoreDamaged(f"table {table}: {reason(exc)}"), damage)
        assert damage is not None
        return self._probe(table, columns, where, args, damage)

    def chunk_rows(self, cell: str, kind: str, columns: str, damage: list[str] | None
                   ) -> list[tuple[Any, ...]]:
        """One cell's chunks of one kind, in the order they were stored. Salvaging a chunks
        table that a damaged page stops, which chunk is whose is found once, by row id, and
        kept for the reads of the other cells."""
        where = "cell = ? AND kind = ?"
        if "chunks" not in self.tables:
            return self.rows("chunks", columns, where, (cell, kind), damage=damage)
        try:
            return self.conn.execute(f"SELECT {columns} FROM chunks WHERE {where}"
                                     " ORDER BY rowid", (cell, kind)).fetchall()
        except sqlite3.DatabaseError as exc:
            self.damaged(StoreDamaged(f"table chunks: {reason(exc)}"), damage)
        assert damage is not None
        if self._ids is None:
            self._ids = {}
            for rowid, owner, what in self._probe("chunks", "rowid, cell, kind", "", (),
                                                  damage):
                self._ids.setdefault((owner, what), []).append(rowid)
        rows = []
        for rowid in self._ids.get((cell, kind), []):
            try:
                row = self.conn.execute(f"SELECT {columns} FROM chunks WHERE rowid = ?",
                                        (rowid,)).fetchone()
            except sqlite3.DatabaseError as exc:
                damage.append(f"chunk {rowid}: {reason(exc)}")
                continue
            if row is not None:
                rows.append(row)
        return rows

    def _probe(self, table: str, columns: str, where: str, args: tuple[Any, ...],
               damage: list[str]) -> list[tuple[Any, ...]]:
        """Read a table whose scan hit a damaged page one row id at a time."""
        sql = f"SELECT {columns} FROM {table} WHERE rowid = ?" + \
            (f" AND ({where})" if where else "")
        rows, lost = [], 0
        for rowid in self._row_ids(table):
            try:
                row = self.conn.execute(sql, (rowid, *args)).fetchone()
            except sqlite3.DatabaseError:
                lost += 1
                continue
            if row is not None:
                rows.append(row)
        if lost:
            damage.append(f"table {table}: {lost} rows cannot be read")
        return rows

    def _row_ids(self, table: str) -> Iterator[int]:
        """Every row id a damaged table may hold: up to its largest, or, when even that
        cannot be read, until many ids in a row are missing."""
        try:
            top = self.conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0]
        except sqlite3.DatabaseError:
            top = None
        if isinstance(top, int):
            yield from range(1, top + 1)
            return
        rowid, misses = 0, 0
        while misses < PROBE_MISSES:
            rowid += 1
            try:
                found = self.conn.execute(f"SELECT 1 FROM {table} WHERE rowid = ?",
                                           (rowid,)).fetchone() is not None
            except sqlite3.DatabaseError:
                found = False
            misses = 0 if found else misses + 1
            yield rowid
