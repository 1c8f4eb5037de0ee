"""Starting ``cellseq dashboard`` on local run directories, the quick way when it can.

Why a quick way: the first paint of a run's page counts from the command's start, and the full
command line (typer, rich: a tenth of a second or more of imports) is not needed to read
``cellseq dashboard RUN_DIR --port N``. :func:`quick` reads the command's usual forms with the
standard library, binds the socket and prints the address before the web stack loads (a
browser that connects meanwhile waits in the socket's queue, and gets the page once the server
runs). Anything else (``--help``, ``--db``, an option it does not know, a directory that holds
no run, a port that is taken, the extra packages missing) goes to the full command line, which
says what is wrong exactly as it always did: the quick way never reports an error itself.

Both ways serve through :func:`serve_local_runs`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socket

#: The options :func:`quick` reads (the full command line also has --db, --lab, --help).
_VALUED = ("--runs", "--host", "--port")


@dataclass(frozen=True)
class LocalArgs:
    run_dirs: list[Path]
    runs: Path | None
    host: str
    port: int


def parse_quick(argv: Sequence[str]) -> LocalArgs | None:
    """``cellseq dashboard``'s arguments (after the command's name) when they are of the
    usual forms and show local runs; None for anything else, which the full command line
    reads (it alone says what is wrong)."""
    values: dict[str, str] = {}
    run_dirs: list[Path] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if name in _VALUED:
            if not eq:
                if not args:
                    return None
                value = args.pop(0)
            if name in values:   # given twice: the full command line's rule decides
                return None
            values[name] = value
        elif arg.startswith("-") or not arg:
            return None   # --help, --db, --lab, "--", a mistake
        else:
            run_dirs.append(Path(arg))
    port_text = values.get("--port", "8765")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        return None
    runs = Path(values["--runs"]) if "--runs" in values else None
    if not run_dirs and runs is None:
        return None
    return LocalArgs(run_dirs, runs, values.get("--host", "127.0.0.1"), int(port_text))


def quick(argv: Sequence[str]) -> bool:
    """Serve local runs as ``cellseq dashboard`` would, if the arguments are of the usual
    forms and everything they name is there: then until Ctrl-C, and True. False at once
    (nothing printed, nothing bound) for anything the full command line must read or
    refuse."""
    import contextlib
    from importlib.util import find_spec

    args = parse_quick(argv)
    if args is None or find_spec("starlette") is None or find_spec("uvicorn") is None:
        return False
    from sequencer.dashboard.run_dirs import check_run_dirs
    from sequencer.dashboard.serve import listen
    from sequencer.dashboard.source import SourceError

    try:
        check_run_dirs(args.run_dirs, args.runs)
        sock = listen(args.host, args.port)
    except (SourceError, OSError):
        return False

    def note(text: str) -> None:
        print(f"note: {text}", file=sys.stderr, flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        serve_local_runs(args.run_dirs, args.runs, args.host, sock, note)
    return True


def serve_local_runs(run_dirs: Sequence[Path], runs: Path | None, host: str,
                     sock: socket.socket, note: Callable[[str], None]) -> None:
    """Print the address and serve the runs until Ctrl-C. The address comes first: the web
    stack and the runs' source (numpy, the stores) load after it, the source in a thread
    (:mod:`~sequencer.dashboard.loading`) while the server starts and sends the page."""
    import secrets

    from sequencer.dashboard.loading import LoadingSource
    from sequencer.dashboard.run_dirs import found_under
    from sequencer.dashboard.serve import serve

    found = {d.resolve() for d in run_dirs}
    if runs is not None:
        found |= {d.resolve() for d in found_under(runs)}

    def local_runs():   # -> RunSource
        from sequencer.dashboard.local import LocalRuns  # numpy, the store: meanwhile

        return LocalRuns(run_dirs, runs)

    token = secrets.token_urlsafe(18)
    announce(len(found), host, sock, token, note)
    source = LoadingSource(local_runs)
    source.start()   # its thread keeps the runs' priority; the serving yields (serve.NICENESS)
    serve(source, sock, host, token)


def announce(count: int, host: str, sock: socket.socket, token: str,
             note: Callable[[str], None]) -> None:
    """Say where the dashboard serves ``count`` runs, and the token its controls need."""
    from core.text import counted
    from sequencer.dashboard.serve import is_loopback

    shown = f"[{host.strip('[]')}]" if ":" in host else host
    port = sock.getsockname()[1]
    print(f"cellseq dashboard: {counted(count, 'run')} at"
          f" http://{shown}:{port}/?token={token}", flush=True)
    print(f"token: {token} (pause, continue and stop need it"
          f"{'' if is_loopback(host) else '; so does every page'})", flush=True)
    if not is_loopback(host):
        note(f"serving on {host}, beyond this machine: anyone who reaches it with the token"
             " can pause and stop runs, and the traffic is not encrypted (an SSH tunnel to"
             " 127.0.0.1 is safer)")
    print("Ctrl-C stops the dashboard; the runs go on", flush=True)
