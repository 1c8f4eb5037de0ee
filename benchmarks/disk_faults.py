"""Disk faults: the run directory on a tiny file system that fills up, or turned read-only mid-run.

    sudo python benchmarks/disk_faults.py        # mounts tmpfs file systems: needs root

For each fault, a dry run of the quickstart writes its run directory on a tmpfs file system:
one too small for the run (it fills up mid-run), one whose store refuses writes from the 20th
commit on (the kernel will not remount a file system read-only while the store holds it open
for writing, so the refusal is SQLite's ``query_only``: the same "attempt to write a readonly
database" the store sees on a read-only disk).
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

from sequencer import store as store_module
from sequencer.runner import resume_run, run_simulated
from sequencer.store import RunStore, StoreError
from simulators.instruments.channel import SimChannel

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
