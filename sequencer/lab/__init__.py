"""A lab of many stations: one queue of work and one record of all runs, on PostgreSQL.

Each station PC runs ``cellseq lab worker``; it takes jobs from the lab's queue (procrastinate,
on the lab's PostgreSQL), runs each with the ordinary executor into a run directory on its own
disk (the SQLite run store stays the crash-safe record), and copies every committed row of that
store to the lab record in PostgreSQL, exactly once, keyed by the store's own ids. The modules:

- ``settings``: where the lab database is and how cellseq logs in (never a password from the
  command line, a protocol or a run directory);
- ``schema``: the lab's PostgreSQL schema (the queue's tables, the record's tables), its roles
  and their grants (``cellseq lab init``, ``cellseq lab user``);
- ``queue``: the procrastinate app, queue names, submitting and cancelling jobs;
- ``placement``: putting a job that names only kinds of instrument on a station's channels;
- ``replicate``: the copy of a run store into the record;
- ``worker`` and ``job``: the station's worker and one job's run under it;
- ``record``: reading the record (``cellseq lab status``) and rebuilding a run's store from it
  (``cellseq report --db``, ``cellseq export --db``).

Nothing here is imported by single-station commands: psycopg and procrastinate load only when
a ``lab`` command or a ``--db`` option is used.
"""
