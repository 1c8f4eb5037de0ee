"""Where a lab's database is, which lab in it, and how cellseq logs in.

The database is named by a URL (``postgresql://user@host:5432/dbname``) from ``--db``, or from
the environment: ``CELLSEQ_LAB_DB`` holds the URL, or ``CELLSEQ_LAB_DB_FILE`` names a file that
holds it. The password never comes from the command line (every user of the PC sees a command
line in the process list), nor from a protocol, a station file or a run directory. It comes
from, in libpq's order:

- the URL in ``CELLSEQ_LAB_DB`` or in the ``CELLSEQ_LAB_DB_FILE`` file;
- ``PGPASSWORD`` in the environment;
- a pgpass file (``PGPASSFILE``, or ``~/.pgpass``; libpq's format ``host:port:db:user:password``).

Files that hold a password must be readable by their owner only (mode 0600 or 0400): cellseq
refuses one that is not, rather than letting libpq skip it with a warning nobody reads. (On
Windows, where files have no such mode, keep them in the user's profile.)

Several labs may share one server: each lab is a schema ``cellseq_<lab>`` with its own roles
(:mod:`sequencer.lab.schema`); ``--lab`` or ``CELLSEQ_LAB`` names it (default ``lab``).
"""

from __future__ import annotations

import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.errors import CellseqError

if TYPE_CHECKING:
    import psycopg

DB_ENV = "CELLSEQ_LAB_DB"
DB_FILE_ENV = "CELLSEQ_LAB_DB_FILE"
LAB_ENV = "CELLSEQ_LAB"
DEFAULT_LAB = "lab"
#: Environment variables that carry a credential: kept out of the runs a worker starts.
SECRET_ENV = (DB_ENV, DB_FILE_ENV, "PGPASSWORD", "PGPASSFILE")
#: Seconds to wait for the server to answer a connection attempt.
CONNECT_TIMEOUT_S = 5
_LAB_NAME = re.compile(r"^[a-z][a-z0-9_]{0,11}$")
_STATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,23}$")
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class LabError(CellseqError):
    """The lab database cannot be used as asked (a user error: exit 2 on the command line)."""


class LabUnreachable(LabError):
    """The lab database does not answer, or refuses the login."""


def lab_name(text: str) -> str:
    """A lab's name: it becomes the schema ``cellseq_<lab>`` and the roles' prefix."""
    if not _LAB_NAME.match(text):
        raise LabError(f"lab name {text!r}: 1 to 12 characters, lower-case letters, digits and"
                       " '_', starting with a letter")
    return text


def station_name(text: str) -> str:
    """A station's name in a lab (its station file's ``station``): it names the station's
    queue, whose notification channel PostgreSQL limits to 63 bytes."""
    if not _STATION_NAME.match(text):
        raise LabError(f"station name {text!r}: 1 to 24 characters, letters, digits, '_', '.'"
                       " and '-', starting with a letter or digit")
    return text


def role_name(text: str) -> str:
    if not _ROLE_NAME.match(text):
        raise LabError(f"role name {text!r}: lower-case letters, digits and '_', at most 63")
    return text


@dataclass(frozen=True)
class LabDb:
    """A lab in a database: what to connect with, and how to name it in messages."""

    lab: str
    #: libpq connection string, with the lab's schema as search_path; may hold a password:
    #: never print it (print :attr:`where`)
    conninfo: str

    @property
    def schema(self) -> str:
        return f"cellseq_{self.lab}"

    @property
    def where(self) -> str:
        """The database as messages name it: user, host, port, database; no password."""
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(self.conninfo)
        host = params.get("host") or "localhost"
        port = f":{params['port']}" if params.get("port") else ""
        user = f"{params['user']}@" if params.get("user") else ""
        return f"lab {self.lab!r} at {user}{host}{port}/{params.get('dbname', '')}"

    def with_options(self, **params: object) -> str:
        """The connection string with more libpq parameters (``application_name`` ...)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(self.conninfo, **params)


def lab_db(db: str | None, lab: str | None = None, *, application: str = "cellseq") -> LabDb:
    """The lab database from ``--db`` (``db``) or the environment; :class:`LabError` saying
    what to give when nothing, or a password on the command line, is given."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = lab_name(lab or os.environ.get(LAB_ENV) or DEFAULT_LAB)
    source = "--db"
    if db is None:
        if os.environ.get(DB_ENV):
            db, source = os.environ[DB_ENV], DB_ENV
        elif os.environ.get(DB_FILE_ENV):
            path = Path(os.environ[DB_FILE_ENV])
            db, source = _read_private(path), str(path)
        else:
            raise LabError(f"no lab database given: use --db URL, or set {DB_ENV} (a URL) or"
                           f" {DB_FILE_ENV} (a file holding it, mode 0600)")
    try:
        params = conninfo_to_dict(db.strip())
    except ProgrammingError as exc:
        raise LabError(f"{source}: not a PostgreSQL URL or connection string: {exc}") from None
    if source == "--db" and params.get("password"):
        raise LabError("--db: a password on the command line is visible to every user of the"
                       " PC; give it in PGPASSWORD, a pgpass file (mode 0600), or the URL in"
                       f" {DB_ENV} or in a file named by {DB_FILE_ENV}")
    if "options" in params:
        raise LabError(f"{source}: 'options' is set by cellseq (the lab's schema); leave it out")
    _check_pgpass()
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    params.setdefault("application_name", application[:63])
    params["options"] = f"-c search_path=cellseq_{name}"
    return LabDb(name, make_conninfo("", **params))


def _read_private(path: Path) -> str:
    """A file that holds a credential: it must be a regular file only its owner can read."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise LabError(f"{path}: not a regular file")
        owner_only(path, info.st_mode)
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise LabError(f"{path}: cannot be read: {exc.strerror or exc}") from None


def owner_only(path: Path, mode: int) -> None:
    """Refuse a file that holds a credential and that others can read."""
    if sys.platform != "win32" and mode & 0o077:
        raise LabError(f"{path} holds a database password and is readable by others (mode"
                       f" {stat.S_IMODE(mode):04o}); run: chmod 600 {path}")


def _check_pgpass() -> None:
    """Refuse a pgpass file that libpq would silently ignore for its mode."""
    path = Path(os.environ.get("PGPASSFILE") or Path.home() / ".pgpass")
    try:
        info = path.stat()
    except OSError:
        return
    if stat.S_ISREG(info.st_mode):
        owner_only(path, info.st_mode)


def connect(db: LabDb, *, application: str | None = None,
            require_lab: bool = True) -> psycopg.Connection:
    """A connection to the lab (autocommit; ``conn.transaction()`` groups statements);
    :class:`LabUnreachable` saying where and why when there is none to be had, LabError when
    the lab is not there (``require_lab``)."""
    import psycopg

    conninfo = db.conninfo if application is None else \
        db.with_options(application_name=application[:63])
    try:
        conn = psycopg.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
        raise LabUnreachable(f"cannot reach {db.where}: {reason}") from None
    if not require_lab:
        return conn
    try:
        found = conn.execute("SELECT to_regclass('lab_settings') IS NOT NULL").fetchone()
    except psycopg.Error as exc:
        conn.close()
        raise LabError(f"{db.where}: {exc}") from None
    if not found or not found[0]:
        conn.close()
        raise LabError(f"{db.where} has no lab {db.lab!r} that this login can use (no schema"
                       f" {db.schema}, or no rights on it): run cellseq lab init, or check"
                       " --lab and the login's role")
    return conn
