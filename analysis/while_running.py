"""Cells analysed while their run goes on, so that the report at the run's end has little
left to do.

A cell's analysis needs only its own data (:mod:`analysis.cell_cache`), and once every
experiment the cell is in has finished, its data will not change: a process beside the run
watches the store for experiments that finish and analyses each cell whose experiments have
all finished, keeping what it makes in ``report/cells`` under the cell's key. The report at
the run's end takes those, and analyses only the cells that finished last.

What it may cost the run: nothing it needs. The process reads the store read-only (SQLite
lets readers and the run's writer work at once, and it sees only committed rows), and starts
only once the run has gone on for :data:`START_AFTER_S` (a run shorter than that is reported
at its end, as before). Beside a run on instruments it runs at the lowest scheduling priority
(``nice`` 19): on a busy machine the run's polling comes first. Beside a dry run, which waits
on nothing real, it runs at the run's own priority: at the lowest, a busy machine would leave
it nothing (a dry run keeps a core busy all along). It ends when the run closes its standard
input (or the run's process dies), after the cell it is analysing. What it could not
analyse, or analysed from data that changed after (a key that no longer matches), the report
analyses again: a cell's results never depend on whether this process ran.

Run as ``python -m analysis.while_running RUN_DIR`` by :class:`AnalysisBeside`; only where
processes fork (the cells are analysed in forked processes, as the report's are).
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from analysis.forked import can_fork

#: A run shorter than this (wall time) gets no process beside it.
START_AFTER_S = 2.0
#: How often the process looks for experiments that finished (wall time): beside a dry run,
#: where an experiment finishes every few tenths of a second, and beside a run on
#: instruments, where one finishes every few hours or days.
POLL_S = 0.5
POLL_HARDWARE_S = 5.0
#: The journal's events that mean an experiment will add nothing more to its cells.
_FINISHED = frozenset({"experiment_finished", "experiment_skipped"})


class AnalysisBeside:
    """The run's end of it: starts the process once the run has gone on for
    ``start_after_s``; when the run has ended (:meth:`run_ended`), the process takes every
    cell left while the report's own process starts up, until the report takes over
    (:meth:`settle`, then :meth:`join`). Leaving the context stops it, whatever happened."""

    def __init__(self, run_dir: Path, start_after_s: float = START_AFTER_S) -> None:
        self.run_dir = Path(run_dir)
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._busy: set[str] = set()   # the cells the process is analysing now
        self._timer = threading.Timer(start_after_s, self._start)
        self._timer.daemon = True

    def __enter__(self) -> AnalysisBeside:
        if can_fork():
            self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.settle()
        self.join()

    @property
    def started(self) -> bool:
        return self._process is not None

    def _start(self) -> None:
        with self._lock:
            if self._stopped:
                return
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "analysis.while_running", str(self.run_dir)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            except OSError:   # no process beside the run: the report analyses every cell
                return
        threading.Thread(target=self._follow, args=(self._process,), daemon=True).start()

    def _follow(self, process: subprocess.Popen[bytes]) -> None:
        """Which cell the process is on, from what it says (``analysing CELL``, ``done
        CELL``)."""
        assert process.stdout is not None
        for line in process.stdout:
            what, _, cell = line.decode(errors="replace").strip().partition(" ")
            with self._lock:
                if what == "analysing":
                    self._busy.add(cell)
                elif what == "done":
                    self._busy.discard(cell)

    def run_ended(self) -> None:
        """The run has ended: every cell is ready, and the process takes them one after
        another until :meth:`settle` (it looks at once, not at its next poll)."""
        with self._lock:
            self._timer.cancel()
            process = self._process
        if process is not None:
            with contextlib.suppress(OSError, ValueError):
                assert process.stdin is not None
                process.stdin.write(b"ended\n")
                process.stdin.flush()

    def settle(self) -> set[str]:
        """The process takes no more cells (it finishes the one it is on and ends); returns
        the cells it is still analysing, which :meth:`join` waits for."""
        with self._lock:
            self._stopped = True
            self._timer.cancel()
            process, busy = self._process, set(self._busy)
        if process is not None:
            with contextlib.suppress(OSError, ValueError):
                assert process.stdin is not None
                process.stdin.close()
        return busy

    def join(self) -> None:
        """Wait for the process to end (after :meth:`settle`)."""
        if self._process is not None:
            self._process.wait()


def _finished_cells(run_dir: Path, after_id: int, finished: set[str],
                    experiments: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """The events after ``after_id``: the experiments they finish join ``finished``; returns
    the last event's id and the cells whose experiments have now all finished."""
    from store import RunStore

    store = RunStore.open(run_dir)
    try:
        while True:
            events = store.events_after(after_id, 1000)
            if not events:
                break
            after_id = events[-1]["id"]
            finished.update(e["message"] for e in events if e["kind"] in _FINISHED)
    finally:
        store.close()
    cells: dict[str, bool] = {}
    for exp in experiments:
        for cell in exp.get("cells", ()):
            cells[cell] = cells.get(cell, True) and exp.get("name") in finished
    return after_id, [cell for cell, done in cells.items() if done]


def _ended(stdin: IO[bytes], timeout_s: float) -> bool:
    """Whether the run has ended (its end of the pipe closed), waiting up to ``timeout_s``."""
    readable, _, _ = select.select([stdin], [], [], timeout_s)
    return bool(readable) and not os.read(stdin.fileno(), 4096)


def _say(line: str) -> None:
    """Tell the run which cell this process is on (:class:`AnalysisBeside` follows it)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(run_dir: Path) -> None:
    """Watch the run in ``run_dir``; analyse and keep each cell once it has finished."""
    from analysis.cell_cache import CellCache
    from analysis.derive import analyse_and_keep, expected_cost
    from analysis.report import REPORT_DIR
    from analysis.run_data import RunData
    from store import RunStore

    store = RunStore.open(run_dir)
    try:
        meta = store.meta()
    finally:
        store.close()
    experiments = meta.get("experiments") or []
    poll_s = POLL_S
    if meta.get("manifest", {}).get("mode") != "simulated":   # instruments' polls come first
        poll_s = POLL_HARDWARE_S
        with contextlib.suppress(OSError):
            os.nice(19)
    after_id, finished, done = 0, set[str](), set[str]()
    while not _ended(sys.stdin.buffer, poll_s):
        after_id, ready = _finished_cells(run_dir, after_id, finished, experiments)
        ready = [cell for cell in ready if cell not in done]
        if not ready:
            continue
        # no integrity check of the whole file here, every few seconds: the report makes it,
        # and takes nothing kept from a damaged store
        data = RunData(run_dir, integrity=False)
        if data.damage:
            return   # a damaged store's analyses are not kept: the report makes them
        kept = CellCache(run_dir, run_dir / REPORT_DIR, data.cells, data.experiments)
        with_points = set(data.cells_with_points())
        # the longest first: at the run's end, the report takes what is left
        for cell in sorted(ready, key=lambda c: expected_cost(data, c)):
            done.add(cell)
            key = kept.key(cell) if cell in with_points else None
            if key is not None and kept.load(cell, key) is None:   # not kept before (a
                _say(f"analysing {cell}")                          # resumed run's cells)
                analyse_and_keep(data, cell, kept)
                _say(f"done {cell}")
            if _ended(sys.stdin.buffer, 0.0):
                return


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        main(Path(sys.argv[1]))
