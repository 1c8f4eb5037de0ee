"""A PostgreSQL server from the ``pgserver`` wheel, for trying a lab out on one machine.

``pgserver`` ships a real PostgreSQL (16) in a Python wheel: nothing to install beyond the
package registry. Its server listens on a Unix socket in its data folder (or on 127.0.0.1 on
Windows) and, as pgserver sets it up, trusts every local login. :func:`require_passwords`
changes that for every role but the superuser ``postgres``, so the lab's own roles log in with
their passwords as on a real server (tests do this).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


def start(folder: Path, *, keep: bool = True) -> Any:
    """Start (or reach) the server whose data is in ``folder``; returns pgserver's handle
    (``get_uri()``: the superuser's URL; ``cleanup()``: stop it, and with ``keep=False``
    delete the folder)."""
    with warnings.catch_warnings():   # platformdirs' note that XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pgserver

        return pgserver.get_server(folder, cleanup_mode="stop" if keep else "delete")


def require_passwords(server: Any) -> None:
    """Every role but ``postgres`` logs in with a SCRAM password from now on."""
    import psycopg

    hba = Path(server.pgdata) / "pg_hba.conf"
    hba.write_text("local all postgres trust\n"
                   "host all postgres 127.0.0.1/32 trust\n"
                   "local all all scram-sha-256\n"
                   "host all all 127.0.0.1/32 scram-sha-256\n"
                   "host all all ::1/128 scram-sha-256\n", encoding="utf-8")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")


def set_max_connections(server: Any, count: int) -> None:
    """Allow ``count`` connections (the default, 100, is too few for 50 stations' workers);
    restarts the server."""
    import psycopg
    from pgserver._commands import pg_ctl

    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET max_connections = {int(count)}")
    pg_ctl(["-w", "restart"], pgdata=server.pgdata, user=server.system_user)
