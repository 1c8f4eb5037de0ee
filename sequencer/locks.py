"""Claims on instrument channels and run directories, so two runs never drive one channel.

A channel of an instrument with an address (a real one, or a wire simulator) is claimed by a
lock file in the lock folder (``CELLSEQ_LOCK_DIR``, default ``~/.cellseq/locks``), held for the
whole run through ``filelock`` (portable; released by the operating system if the process dies,
so a crash never leaves a stale claim). Beside each lock a small JSON file names the run that
holds it, for the message the second run gets. Instruments without an address (in-process
simulators) belong to their run alone and need no claim.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from drivers.errors import CellseqError
from sequencer.station import Station

RUN_LOCK = ".cellseq.lock"


class LockError(CellseqError):
    """A channel or run directory is held by another run."""


def lock_dir() -> Path:
    folder = Path(os.environ.get("CELLSEQ_LOCK_DIR") or Path.home() / ".cellseq" / "locks")
    folder.mkdir(parents=True, exist_ok=True)
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


def run_dir_in_use(run_dir: Path) -> bool:
    """Whether a process is working in the run directory now (it holds the lock)."""
    path = Path(run_dir) / RUN_LOCK
    if not path.exists():
        return False
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release()
    return False


@contextmanager
def _hold(lock_path: Path, info_path: Path | None, run_dir: Path, what: str) -> Iterator[None]:
    lock = FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise LockError(f"{what} is in use by {_holder(info_path, lock_path)}") from None
    try:
        if info_path is not None:
            info_path.write_text(json.dumps({"run": str(Path(run_dir).resolve()),
                                             "pid": os.getpid(), "since": time.time()}))
        yield
    finally:
        lock.release()


def _holder(info_path: Path | None, lock_path: Path) -> str:
    if info_path is None or not info_path.exists():
        return "another cellseq process"
    try:
        info = json.loads(info_path.read_text())
        return f"run {info['run']} (process {info['pid']})"
    except (OSError, ValueError, KeyError):
        return f"another run (see {lock_path})"
