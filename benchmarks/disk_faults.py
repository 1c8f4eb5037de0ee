"""Disk faults: the run directory on a tiny file system that fills up, or turned read-only mid-run.

    sudo python benchmarks/disk_faults.py        # mounts tmpfs file systems: needs root

For each fault, a dry run of the quickstart writes its run directory on a tmpfs file system:
one too small for the run (it fills up mid-run), one too small for even the store to be created
(then made larger: the resume starts the run from the beginning), one filled up after the run
(status still reads it; report and export exit 2 saying why, and work once there is room), one
whose store refuses writes from the 20th commit on (the kernel will not remount a file system
read-only while the store holds it open for writing, so the refusal is SQLite's
``query_only``: the same "attempt to write a readonly database" the store sees on a read-only
disk).
Expected: a clean stop (a StoreError with a message, no traceback), every output off, the store
intact (``PRAGMA integrity_check``) at its last commit; then, with space back (remounted larger)
or writable again, ``resume`` completes the run to exactly what an uninterrupted run gives.
Prints one line per fault with what happened.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sequencer.runner import resume_run, run_simulated
from simulators.instruments.channel import SimChannel
from store import RunStore, StoreError
from store import run_store as store_module

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "protocols" / "examples" / "quickstart.yaml"
SEED = 3


def mount(point: Path, options: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], check=True)


def remount(point: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(point)], check=True)


def columns(run_dir: Path) -> dict[str, np.ndarray]:
    store = RunStore.open(run_dir)
    try:
        origin = store.meta()["manifest"]["started_utc"]
        out = {}
        for cell in store.cells():
            for kind in ("series", "spectrum"):
                for name, col in store.read(cell, kind).items():
                    out[f"{cell}/{kind}/{name}"] = col - origin if name == "utc_s" else col
        return out
    finally:
        store.close()


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape and np.allclose(a[k], b[k], rtol=1e-12, atol=1e-15,
                                                 equal_nan=True) for k in a)


def trial(name: str, folder: Path, reference: dict[str, np.ndarray],
          break_it: Callable[[Path], None], fix_it: Callable[[Path], None]) -> str:
    run_dir = folder / "run"
    stops: list[str] = []
    original = SimChannel.stop

    def recording_stop(self: SimChannel) -> None:
        stops.append(self.name)
        original(self)

    SimChannel.stop = recording_stop   # type: ignore[method-assign]
    try:
        break_it(folder)
        run_simulated(QUICKSTART, run_dir, SEED)
        return f"{name}: the run completed (the fault came too late to matter)"
    except StoreError as exc:
        stopped = f"clean stop ({str(exc).split(':', 1)[-1].strip()[:70]}...)"
    finally:
        SimChannel.stop = original   # type: ignore[method-assign]
    fix_it(folder)
    check = sqlite3.connect(run_dir / "run.sqlite").execute("PRAGMA integrity_check").fetchone()
    outputs = "every output off" if len(set(stops)) >= 2 else f"stops seen: {sorted(set(stops))}"
    resume_run(run_dir)
    result = "resumed to the uninterrupted result" if same(columns(run_dir), reference) \
        else "resumed, but the data DIFFER from the uninterrupted run"
    return f"{name}: {stopped}; {outputs}; store {check[0]}; {result}"


def no_room_for_the_store(folder: Path, reference: dict[str, np.ndarray]) -> str:
    """A disk with room for the protocol copies and the manifest, not for the store."""
    run_dir = folder / "run"
    try:
        run_simulated(QUICKSTART, run_dir, SEED)
        return "no room for the store: the run completed (the disk was large enough)"
    except StoreError as exc:
        stopped = f"clean stop ({str(exc).split(':', 1)[-1].strip()[:50]}...)"
    left = sorted(p.name for p in run_dir.iterdir())
    remount(folder, "size=256m")
    resume_run(run_dir)
    result = "resumed from the beginning to the uninterrupted result" \
        if same(columns(run_dir), reference) else "resumed, but the data DIFFER"
    return f"no room for the store: {stopped}; left {left}; {result}"


def full_after_the_run(folder: Path) -> str:
    """The run completes, then the disk fills up: status, report and export."""
    from typer.testing import CliRunner

    from sequencer.cli import app

    run_dir = folder / "run"
    run_simulated(QUICKSTART, run_dir, SEED)
    filler = folder / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(bytes(1 << 20))
                out.flush()
        except OSError:
            pass
    runner = CliRunner()
    said = []
    for args in (["status", str(run_dir)], ["report", str(run_dir)], ["export", str(run_dir)]):
        result = runner.invoke(app, args)
        traceback = result.exception is not None and not isinstance(result.exception,
                                                                     SystemExit)
        said.append(f"{args[0]} exit {result.exit_code}"
                    + (" TRACEBACK" if traceback else "")
                    + (f" ({result.output.split(': ', 2)[-1].strip()[:40]}...)"
                       if result.exit_code else ""))
    filler.unlink()
    again = runner.invoke(app, ["report", str(run_dir)]).exit_code
    return f"disk full after the run: {'; '.join(said)}; with room again, report exit {again}"


def main() -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        print("mounting a tiny file system needs root (and mount); nothing run")
        return
    store_module.GROUP_COMMIT_S = 0.0   # commit every block, as on hardware
    with tempfile.TemporaryDirectory() as tmp:
        reference_dir = Path(tmp) / "reference"
        run_simulated(QUICKSTART, reference_dir, SEED)
        reference = columns(reference_dir)
        size = sum(f.stat().st_size for f in reference_dir.iterdir())
        lines = []

        full = Path(tmp) / "full"
        full.mkdir()
        mount(full, f"size={size // 3}")   # a third of what the run needs
        try:
            lines.append(trial("disk full", full, reference, lambda p: None,
                               lambda p: remount(p, "size=256m")))
        finally:
            subprocess.run(["umount", str(full)], check=False)

        tiny = Path(tmp) / "tiny"
        tiny.mkdir()
        mount(tiny, "size=24k")
        try:
            lines.append(no_room_for_the_store(tiny, reference))
        finally:
            subprocess.run(["umount", str(tiny)], check=False)

        after = Path(tmp) / "after"
        after.mkdir()
        mount(after, "size=64m")
        try:
            lines.append(full_after_the_run(after))
        finally:
            subprocess.run(["umount", str(after)], check=False)

        readonly = Path(tmp) / "readonly"
        readonly.mkdir()
        mount(readonly, "size=256m")
        commits = {"n": 0}
        before_commit = RunStore._before_commit

        def turn_read_only(self: RunStore) -> None:
            commits["n"] += 1
            if commits["n"] == 20:
                self._conn.execute("PRAGMA query_only = ON")
            before_commit(self)

        try:
            RunStore._before_commit = turn_read_only   # type: ignore[method-assign]
            lines.append(trial("read-only", readonly, reference, lambda p: None,
                               lambda p: None))
        finally:
            RunStore._before_commit = before_commit   # type: ignore[method-assign]
            subprocess.run(["umount", str(readonly)], check=False)
        for line in lines:
            print(line)
    sys.exit(0)


if __name__ == "__main__":
    main()
