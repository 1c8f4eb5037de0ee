"""Opening a run store's file: by name, read-only on any disk, and knowing its tables.

A read-only connection is an SQLite URI, so the path is quoted into it (a run directory may be
called ``run#1?x%``); a writing one is opened by file name, never as a URI.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

#: How much write-ahead log a writer lets grow before copying it into the database: SQLite's
#: default, 1000 pages of its default 4 KiB.
WAL_CHECKPOINT_BYTES = 1000 * 4096


def reason(exc: BaseException) -> str:
    """What went wrong, in a few words (an OSError's text without its number)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return str(exc) or type(exc).__name__


def list_tables(conn: sqlite3.Connection) -> dict[str, set[str]]:
    """The store's tables and their columns."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {name: {r[1] for r in conn.execute(f"PRAGMA table_info({_quoted(name)})")}
            for name in names if isinstance(name, str)}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect(path: Path, readonly: bool, durable: bool = True,
            page_bytes: int | None = None) -> sqlite3.Connection:
    """A connection by file name (never an SQLite URI, so '#', '?' and '%' in the path are
    just characters). ``page_bytes``: the page size of a database not yet written (SQLite
    fixes it with the first table, and cannot change it in WAL mode, which is set here)."""
    if readonly:
        return connect_readonly(path)[0]
    conn = sqlite3.connect(os.fspath(path), isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        if page_bytes is not None:
            conn.execute(f"PRAGMA page_size = {int(page_bytes)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        # the log is copied into the database after as many bytes as SQLite's default does
        # with its default pages, whatever the store's page size: large pages keep the log
        # as short as small ones (SQLite counts the threshold in pages)
        (page,) = conn.execute("PRAGMA page_size").fetchone()
        conn.execute(f"PRAGMA wal_autocheckpoint = {max(1, WAL_CHECKPOINT_BYTES // page)}")
    except BaseException:
        conn.close()
        raise
    return conn


def connect_readonly(path: Path) -> tuple[sqlite3.Connection, Callable[[], None] | None]:
    """A read-only connection, with what to do after closing it.

    A read-only connection is an SQLite URI: the path is quoted into it. A store in WAL mode
    needs its shared-memory file beside it, which a reader cannot create on a read-only disk
    (or in a folder it may not write). Then, since no process can be writing the store (a
    writer keeps that file), it is read as immutable; or, if its write-ahead log holds
    commits not yet in the main file, from a copy of both in a temporary folder."""
    uri = path.resolve().as_uri()
    try:
        return _ro(uri + "?mode=ro"), None
    except sqlite3.OperationalError:
        shm, wal = Path(f"{path}-shm"), Path(f"{path}-wal")
        if shm.exists() or os.access(path.parent, os.W_OK):
            raise
    if not wal.exists() or wal.stat().st_size == 0:
        return _ro(uri + "?immutable=1"), None
    scratch = Path(tempfile.mkdtemp(prefix="cellseq-store-"))
    try:
        shutil.copyfile(path, scratch / path.name)
        shutil.copyfile(wal, scratch / f"{path.name}-wal")
        return _ro((scratch / path.name).as_uri() + "?mode=ro"), \
            lambda: shutil.rmtree(scratch, ignore_errors=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _ro(uri: str) -> sqlite3.Connection:
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()   # opens the file now
    except BaseException:
        conn.close()
        raise
    return conn


def remove_store_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def sync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; elsewhere the rename is what there is)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
