"""The lab's PostgreSQL schema: the queue's tables, the record's tables, the roles.

A lab is one schema, ``cellseq_<lab>``, holding procrastinate's tables (the queue) and the
record below. The record's ``run_*`` tables are the run store's tables (see
``store/schema.py``) with a ``run_id`` in front: every row keeps the id the station's store
gave it, and ``(run_id, id)`` is its key, which is what makes the copy exact (a row sent twice
is one row). JSON columns hold the store's JSON text as it was written (NaN included), so a
reader casts them (``params::jsonb``) where it needs to.

Roles (all ``NOLOGIN`` groups; ``cellseq lab user`` makes login roles in them):

- ``cellseq_<lab>_station``: a station's worker. Takes jobs, writes the runs it is given,
  registers itself; cannot delete anything, create anything, submit work, or read another lab;
- ``cellseq_<lab>_operator``: submits, cancels, reads everything of its lab;
- ``cellseq_<lab>_reader``: analysis and the dashboard: reads everything of its lab.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from sequencer.lab.settings import LabDb, LabError, role_name

if TYPE_CHECKING:
    import psycopg

#: Seconds without a word from a station after which its jobs are reported as waiting for a
#: station that is gone (``cellseq lab init --station-timeout``).
DEFAULT_STATION_TIMEOUT_S = 600.0
ROLES = ("station", "operator", "reader")

#: The record. Tables a dashboard reads: ``runs`` (one row per job), ``stations``,
#: ``run_cell_state`` (each cell's state and last values), ``run_steps``, ``run_chunks``
#: (points: ``data`` is the store's float64 block, columns as ``store.schema``
#: SERIES_COLUMNS / SPECTRUM_COLUMNS, ``n`` points each), ``run_events``, ``lab_events``.
RECORD = """
CREATE TABLE IF NOT EXISTS lab_settings (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS stations (
    name text PRIMARY KEY, kinds text[] NOT NULL, station jsonb NOT NULL,
    host text NOT NULL, pid integer NOT NULL, login text NOT NULL DEFAULT current_user,
    started timestamptz NOT NULL, seen timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id text PRIMARY KEY, job_id bigint UNIQUE, campaign text NOT NULL,
    protocol text NOT NULL, seed integer NOT NULL,
    target_station text, needs text[], station text, status text NOT NULL, message text,
    run_dir text, submitted timestamptz NOT NULL DEFAULT now(),
    submitted_by text NOT NULL DEFAULT current_user, started timestamptz, ended timestamptz,
    resumes integer NOT NULL DEFAULT 0, refused_by text[] NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS run_files (
    run_id text NOT NULL REFERENCES runs, name text NOT NULL, data bytea NOT NULL,
    sha256 text NOT NULL, PRIMARY KEY (run_id, name));
CREATE TABLE IF NOT EXISTS run_meta (
    run_id text NOT NULL REFERENCES runs, key text NOT NULL, value text NOT NULL,
    PRIMARY KEY (run_id, key));
CREATE TABLE IF NOT EXISTS run_steps (
    run_id text NOT NULL REFERENCES runs, id bigint NOT NULL, cell text NOT NULL,
    experiment text NOT NULL, step_count integer NOT NULL, step_index integer NOT NULL,
    kind text NOT NULL, cycle integer NOT NULL, started_t float8 NOT NULL, ended_t float8,
    end_reason text, params text NOT NULL, end_counters text, PRIMARY KEY (run_id, id));
CREATE TABLE IF NOT EXISTS run_chunks (
    run_id text NOT NULL REFERENCES runs, id bigint NOT NULL, cell text NOT NULL,
    step_id bigint NOT NULL, step_count integer NOT NULL, step_index integer NOT NULL,
    cycle integer NOT NULL, kind text NOT NULL, n integer NOT NULL, t_first float8 NOT NULL,
    t_last float8 NOT NULL, data bytea NOT NULL, PRIMARY KEY (run_id, id));
CREATE TABLE IF NOT EXISTS run_events (
    run_id text NOT NULL REFERENCES runs, id bigint NOT NULL, t float8 NOT NULL,
    utc float8 NOT NULL, cell text, kind text NOT NULL, message text NOT NULL,
    data text NOT NULL, PRIMARY KEY (run_id, id));
CREATE TABLE IF NOT EXISTS run_cell_state (
    run_id text NOT NULL REFERENCES runs, cell text NOT NULL, state text NOT NULL,
    experiment text, step_count integer, step_index integer, step_kind text, cycle integer,
    step_started_t float8, step_estimate_s float8, checkpoint text NOT NULL, last text NOT NULL,
    updated_t float8 NOT NULL, PRIMARY KEY (run_id, cell));
CREATE INDEX IF NOT EXISTS runs_submitted ON runs (submitted);
CREATE TABLE IF NOT EXISTS lab_events (
    id bigserial PRIMARY KEY, utc timestamptz NOT NULL DEFAULT now(), station text,
    run_id text, kind text NOT NULL, message text NOT NULL);
"""

#: How a station queues a job of a ``--needs`` run for its class when it joins after the run
#: was submitted (:func:`sequencer.lab.queue.route`). A station's login may not insert into
#: the queue (it submits nothing); this function, run with its owner's rights, queues only a
#: job of a run an operator submitted, which no station has started, which is not withdrawn
#: (it still has a job waiting), and only once per queue: the run's row is locked meanwhile, so
#: two stations of a class joining together queue one job.
ROUTE = """
CREATE OR REPLACE FUNCTION cellseq_route_run(_run_id text, _queue text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    _job bigint;
BEGIN
    IF _queue NOT LIKE '%/k/%' THEN
        RAISE EXCEPTION 'cellseq_route_run: % is not a class''s queue', _queue;
    END IF;
    PERFORM 1 FROM runs WHERE run_id = _run_id AND status = 'queued' AND station IS NULL
        AND started IS NULL AND needs IS NOT NULL FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE task_name = 'cellseq.run'
                   AND args->>'run_id' = _run_id AND status = 'todo'
                   AND NOT abort_requested)
       OR EXISTS (SELECT 1 FROM procrastinate_jobs WHERE task_name = 'cellseq.run'
                  AND args->>'run_id' = _run_id AND queue_name = _queue
                  AND status IN ('todo', 'doing')) THEN
        RETURN NULL;
    END IF;
    SELECT ids[1] INTO _job FROM procrastinate_defer_jobs_v1(ARRAY[ROW(_queue, 'cellseq.run',
        0, NULL, NULL, jsonb_build_object('run_id', _run_id),
        NULL)::procrastinate_job_to_defer_v1]) AS ids;
    RETURN _job;
END;
$$;
REVOKE ALL ON FUNCTION cellseq_route_run(text, text) FROM PUBLIC;
"""

_QUEUE_TABLES = ("procrastinate_jobs", "procrastinate_workers", "procrastinate_events",
                 "procrastinate_periodic_defers")
_RUN_TABLES = ("run_meta", "run_steps", "run_chunks", "run_events", "run_cell_state")
_ALL_RECORD = ("lab_settings", "stations", "runs", "run_files", *_RUN_TABLES, "lab_events")

#: What each role may do, as (privileges, tables). Column lists limit UPDATE to the columns
#: the role's commands write.
GRANTS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "station": (   # takes, retries and ends jobs; registers itself; submits nothing
        ("SELECT, UPDATE", ("procrastinate_jobs",)),
        ("SELECT, INSERT, UPDATE, DELETE", ("procrastinate_workers",)),
        ("SELECT, INSERT", ("procrastinate_events",)),
        ("SELECT", ("procrastinate_periodic_defers",)),
        ("SELECT", ("lab_settings", "runs", "run_files")),
        ("UPDATE (station, status, message, run_dir, started, ended, resumes, refused_by,"
         " job_id)", ("runs",)),
        ("SELECT, INSERT, UPDATE", ("stations", *_RUN_TABLES)),
        ("SELECT, INSERT", ("lab_events",)),
    ),
    "operator": (
        ("SELECT, INSERT, UPDATE", ("procrastinate_jobs", "procrastinate_events")),
        ("SELECT", ("procrastinate_workers", "procrastinate_periodic_defers")),
        ("SELECT", _ALL_RECORD),
        ("INSERT", ("runs", "run_files", "lab_events")),
        ("UPDATE (job_id, status, message, ended)", ("runs",)),
    ),
    "reader": (
        ("SELECT", (*_ALL_RECORD, *_QUEUE_TABLES)),
    ),
}


def group_role(lab: str, role: str) -> str:
    return f"cellseq_{lab}_{role}"


def init_lab(admin: psycopg.Connection, db: LabDb, station_timeout_s: float) -> list[str]:
    """Create (or bring up to date) the lab's schema, tables, roles and grants, in one
    transaction; returns what was done. ``admin`` must be allowed to create schemas and
    roles (a superuser, or the database owner with CREATEROLE)."""
    from procrastinate import __version__ as procrastinate_version
    from procrastinate.schema import SchemaManager
    from psycopg import sql

    done: list[str] = []
    schema = sql.Identifier(db.schema)
    with admin.transaction():
        admin.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        admin.execute(sql.SQL("SET LOCAL search_path = {}").format(schema))
        queue = admin.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        if queue is None or queue[0] is None:
            admin.execute(SchemaManager.get_schema())   # procrastinate's own schema, as is
            done.append(f"created the queue (procrastinate {procrastinate_version}) in"
                        f" schema {db.schema}")
        admin.execute(RECORD)
        admin.execute(ROUTE)
        for key, value in (("station_timeout_s", repr(float(station_timeout_s))),
                           ("procrastinate", procrastinate_version)):
            admin.execute("INSERT INTO lab_settings VALUES (%s, %s) ON CONFLICT (key) DO"
                          " UPDATE SET value = excluded.value", (key, value))
        for role in ROLES:
            name = group_role(db.lab, role)
            exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                   (name,)).fetchone()
            if exists is None:
                admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
                done.append(f"created role {name}")
            admin.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                schema, sql.Identifier(name)))
            for privileges, tables in GRANTS[role]:
                admin.execute(sql.SQL("GRANT " + privileges + " ON {} TO {}").format(
                    sql.SQL(", ").join(sql.Identifier(t) for t in tables),
                    sql.Identifier(name)))
            if role != "reader":   # a waiting --needs job, to a class that can run it
                admin.execute(sql.SQL("GRANT EXECUTE ON FUNCTION cellseq_route_run(text, text)"
                                      " TO {}").format(sql.Identifier(name)))
            if role != "reader":   # serial ids: procrastinate's jobs and events, lab_events
                admin.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO"
                                      " {}").format(schema, sql.Identifier(name)))
    done.append(f"{db.where}: ready (stations are reported gone after"
                f" {station_timeout_s:g} s without a word)")
    return done


def add_user(admin: psycopg.Connection, db: LabDb, name: str, role: str,
             pgpass: Path) -> str:
    """Create login role ``name`` in the lab's ``role`` group (or give it a new password),
    with a generated password appended to the pgpass file ``pgpass`` (created mode 0600).
    The server gets only the SCRAM verifier, so the password is in no statement or log."""
    from psycopg import sql

    role_name(name)
    if role not in ROLES:
        raise LabError(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
    group = group_role(db.lab, role)
    if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (group,)).fetchone() is None:
        raise LabError(f"{db.where} has no role {group}: run cellseq lab init first")
    password = secrets.token_urlsafe(24)
    verifier = admin.pgconn.encrypt_password(password.encode(), name.encode(),
                                             b"scram-sha-256").decode()
    _append_private(pgpass, f"*:*:*:{name}:{password}\n")
    with admin.transaction():
        exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        admin.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(verifier)))
        admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group),
                                                      sql.Identifier(name)))
    return f"{'updated' if exists else 'created'} login role {name} in {group}"


def _append_private(path: Path, line: str) -> None:
    """Append to a file only its owner can read (created so; refused if it is not)."""
    import os

    from sequencer.lab.settings import owner_only

    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        owner_only(path, os.fstat(fd).st_mode)
        os.write(fd, line.encode())
    finally:
        os.close(fd)
