"""Claims on instrument channels and run directories, so two runs never drive one channel.

A channel of an instrument with an address (a real one, or a wire simulator) is claimed by a
lock file in the lock folder (``CELLSEQ_LOCK_DIR``, default ``~/.cellseq/locks``), held for the
whole run through ``filelock`` (portable; released by the operating system if the process dies,
so a crash never leaves a stale claim). Beside each lock a small JSON file names the run that
holds it, for the message the second run gets. Instruments without an address (in-process
simulators) belong to their run alone and need no claim.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from drivers.errors import CellseqError

if TYPE_CHECKING:
    from sequencer.station import Station

RUN_LOCK = ".cellseq.lock"


class LockError(CellseqError):
    """A channel or run directory is held by another run."""


def lock_dir() -> Path:
    given = os.environ.get("CELLSEQ_LOCK_DIR")
    folder = Path(given or Path.home() / ".cellseq" / "locks")
    where = f"CELLSEQ_LOCK_DIR={given}" if given else str(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise LockError(f"the lock folder {where} is not a folder (a file is in its"
                        " place); set CELLSEQ_LOCK_DIR to a folder") from None
    except OSError as exc:
        raise LockError(f"the lock folder {where} cannot be created: {_why(exc)}") from None
    if not folder.is_dir():
        raise LockError(f"the lock folder {where} is not a folder; set CELLSEQ_LOCK_DIR to"
                        " a folder")
    return folder


def claimed_channels(station: Station) -> list[tuple[str, str, int]]:
    """(instrument name, address, channel) of every channel the run would drive that has an
    address, in a stable order."""
    out = []
    for placement in station.cells.values():
        config = station.instruments[placement.instrument]
        if config.address:
            out.append((placement.instrument, config.address, placement.channel))
    return sorted(set(out))


@contextmanager
def claim_channels(station: Station, run_dir: Path) -> Iterator[None]:
    """Hold every addressed channel of the station for the duration of the block."""
    with ExitStack() as stack:
        for name, address, channel in claimed_channels(station):
            key = hashlib.sha256(f"{address}|{channel}".encode()).hexdigest()[:24]
            stack.enter_context(_hold(lock_dir() / f"{key}.lock", lock_dir() / f"{key}.json",
                                      run_dir, f"{name} channel {channel} ({address})"))
        yield


@contextmanager
def hold_run_dir(run_dir: Path) -> Iterator[None]:
    """One process at a time works in a run directory (a run, later a resume)."""
    with _hold(Path(run_dir) / RUN_LOCK, None, run_dir, f"run directory {run_dir}"):
        yield


def run_dir_in_use(run_dir: Path) -> bool | None:
    """Whether a process is working in the run directory now (it holds the lock); None when
    that cannot be told (the lock file cannot be opened, e.g. another user's run)."""
    path = Path(run_dir) / RUN_LOCK
    if not path.exists() and not path.is_symlink():
        return False
    if not path.is_file():
        raise LockError(f"{path} is not a lock file (a {_kind(path)} is in its place); it"
                        " cannot say whether a process works in the run. Remove it once no"
                        " cellseq process uses the run")
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    except OSError as exc:
        if exc.errno == errno.EROFS:   # nobody writes on a read-only disk
            return False
        return None
    lock.release()
    return False


@contextmanager
def _hold(lock_path: Path, info_path: Path | None, run_dir: Path, what: str) -> Iterator[None]:
    if lock_path.exists() and not lock_path.is_file():
        raise LockError(f"{what} cannot be locked: {lock_path} is a {_kind(lock_path)}, not a"
                        " lock file. Remove it once no cellseq process uses it")
    lock = FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise LockError(f"{what} is in use by {_holder(info_path, lock_path)}") from None
    except OSError as exc:
        raise LockError(f"{what} cannot be locked: {lock_path}: {_why(exc)}") from None
    try:
        if info_path is not None:
            try:
                info_path.write_text(json.dumps({"run": str(Path(run_dir).resolve()),
                                                 "pid": os.getpid(), "since": time.time()}))
            except OSError as exc:
                raise LockError(f"{what}: {info_path} cannot be written: {_why(exc)}"
                                ) from None
        yield
    finally:
        lock.release()


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _kind(path: Path) -> str:
    return "folder" if path.is_dir() else "special file" if path.exists() else "broken link"


def _holder(info_path: Path | None, lock_path: Path) -> str:
    if info_path is None or not info_path.exists():
        return "another cellseq process"
    try:
        info = json.loads(info_path.read_text())
        return f"run {info['run']} (process {info['pid']})"
    except (OSError, ValueError, KeyError):
        return f"another run (see {lock_path})"
