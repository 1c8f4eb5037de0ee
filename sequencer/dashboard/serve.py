"""Serve the dashboard with uvicorn until Ctrl-C."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sequencer.dashboard.source import RunSource

#: The dashboard gives way to the runs it shows: where a run keeps every core busy (a dry run
#: as fast as it goes, a crowded lab PC), the scheduler serves the run's executor first.
NICENESS = 10


def is_loopback(host: str) -> bool:
    if host in ("localhost", "127.0.0.1", "::1", "[::1]"):   # without loading ipaddress
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port); OSError if it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock


def serve(source: RunSource, sock: socket.socket, host: str, token: str) -> None:
    """Serve ``source`` on ``sock`` (already listening, its address already printed: a
    browser that connected meanwhile waits in its queue) until Ctrl-C; controls need
    ``token``, and so does every page served beyond the loopback interface."""
    import uvicorn

    from sequencer.dashboard.app import Access, build_app

    access = Access(token, pages_need_token=not is_loopback(host))
    app = build_app(source, access)
    config = uvicorn.Config(app, log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=1, access_log=False)
    server = uvicorn.Server(config)
    if hasattr(os, "nice"):   # POSIX; on Linux this thread and those it starts (the serving)
        os.nice(NICENESS)
    try:
        server.run(sockets=[sock])
    finally:
        source.close()
