"""Cells analysed while their run goes on, so that the report at the run's end has little
left to do.

A cell's analysis needs only its own data (:mod:`analysis.cell_cache`), and once every
experiment the cell is in has finished, its data will not change: a process beside the run
watches the store for experiments that finish and analyses each cell whose experiments have
all finished, keeping what it makes in ``report/cells`` under the cell's key. The report at
the run's end takes those, and analyses only the cells that finished last.

What it may cost the run: nothing it needs. The process reads the store read-only (SQLite
lets readers and the run's writer work at once, and it sees only committed rows), starts only
once the run has gone on for :data:`START_AFTER_S` (a run shorter than that is reported at
its end, as before), and runs at the lowest scheduling priority (``nice`` 19): it takes a
core nothing else wants, and on a busy machine the run (its polls of instruments, or a dry
run's steps) and then the report come first, so that it does less, never that they wait.
When the run has ended it finishes the cell it is on and takes no other: the report's process,
loading meanwhile, waits for it to end if it is on a cell (for at most :data:`FINISH_WAIT_S`,
then stops it and analyses that cell itself; if it is on none, it stops it at once) and
analyses the cells left on every core. (It stopped the process
at once before, and analysed again the cell it was on: on average half of one of the run's
longest cells, those that finish last.) If the run's process dies, it ends after its cell
(its standard input closes). What it could not analyse, or
analysed from data that changed after (a key that no longer matches), the report analyses
again: a cell's results never depend on whether this process ran.

Run as ``python -m analysis.while_running RUN_DIR`` by :class:`AnalysisBeside`; only where
processes fork (the cells are analysed in forked processes, as the report's are).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from analysis.forked import can_fork

#: A run shorter than this (wall time) gets no process beside it. (Started after 1 s, it
#: made the campaign's report after the run 0.6 s shorter and its dry run 0.6 s longer: on
#: the 2-core machine measured, a process beside the run slows it, however low its priority,
#: as the two share caches and memory.)
START_AFTER_S = 2.0
#: How often the process looks for experiments that finished (wall time): beside a dry run,
#: where an experiment finishes every few tenths of a second, and beside a run on
#: instruments, where one finishes every few hours or days.
POLL_S = 0.5
POLL_HARDWARE_S = 5.0
#: How long the report waits for the process to finish the cell it was on when the run ended,
#: before it stops it (at the lowest priority on a busy machine, a cell may take long).
FINISH_WAIT_S = 5.0
#: What the process says on its standard output as it begins a cell, and once it has finished
#: the cells it took: whether the report, at the run's end, has a cell to wait for.
BUSY, IDLE = b"busy", b"idle"
#: The journal's events that mean an experiment will add nothing more to its cells.
_FINISHED = frozenset({"experiment_finished", "experiment_skipped"})


class AnalysisBeside:
    """The run's end of it: starts the process once the run has gone on for
    ``start_after_s``; when the run has ended (:meth:`run_ended`) the process finishes the
    cell it is on, while the report's own process starts up, and the report waits for it
    (:meth:`finish`). Leaving the context stops it, whatever happened."""

    def __init__(self, run_dir: Path, start_after_s: float = START_AFTER_S) -> None:
        self.run_dir = Path(run_dir)
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._busy = False   # on a cell, as the process last said
        self._timer = threading.Timer(start_after_s, self._start)
        self._timer.daemon = True

    def __enter__(self) -> AnalysisBeside:
        if can_fork():
            self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def started(self) -> bool:
        return self._process is not None

    @property
    def on_a_cell(self) -> bool:
        """Whether the process is analysing a cell, as it last said."""
        return self._busy

    def _start(self) -> None:
        with self._lock:
            if self._stopped:
                return
            with contextlib.suppress(OSError):   # no process beside it: the report does all
                # a process group of its own, stopped with the processes it forks as one
                # (not a session of its own: where the kernel schedules sessions as groups,
                # its priority would count only within its session, against nothing)
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "analysis.while_running", str(self.run_dir)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL, process_group=0)
                threading.Thread(target=self._listen, args=(self._process.stdout,),
                                 daemon=True).start()

    def _listen(self, said: IO[bytes]) -> None:
        """Whether the process is on a cell, from what it says (read to its end, so that
        it never waits on a full pipe)."""
        with contextlib.suppress(OSError, ValueError):
            for line in said:
                word = line.strip()
                if word in (BUSY, IDLE):
                    self._busy = word == BUSY

    def _start_no_more(self, stopped: bool = False) -> subprocess.Popen[bytes] | None:
        """The process, if it was started; it will not be now (nor at all, ``stopped``)."""
        with self._lock:
            self._stopped = self._stopped or stopped
            self._timer.cancel()
            return self._process

    def run_ended(self) -> None:
        """The run has ended: the process finishes the cell it is on and takes no other (the
        report analyses the cells left; :meth:`finish` waits for it)."""
        process = self._start_no_more()
        if process is not None:
            with contextlib.suppress(OSError, ValueError):
                assert process.stdin is not None
                process.stdin.write(b"ended\n")
                process.stdin.flush()

    def finish(self, timeout_s: float = FINISH_WAIT_S) -> None:
        """The run having ended (:meth:`run_ended`): wait for the process to finish the cell
        it is on and end, then what it kept is all there and the report takes it; past
        ``timeout_s``, or if it is on no cell (still loading, or between cells), :meth:`stop`
        it at once."""
        process = self._start_no_more()
        if process is not None and self.on_a_cell:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout_s)
        self.stop()

    def stop(self) -> None:
        """Stop the process and the one it forked for the cell it is on, at once: the report
        analyses that cell itself (whatever the process had kept, it wrote whole)."""
        process = self._start_no_more(stopped=True)
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(OSError, ValueError):
            assert process.stdin is not None
            process.stdin.close()
        process.wait()


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


class _RunSide:
    """What the run's process says on this process's standard input: ``ended`` once its run
    has ended, and nothing more (end of file) once it has gone or stopped this process."""

    def __init__(self, stdin: IO[bytes]) -> None:
        self._stdin, self.ended = stdin, False

    def wait(self, timeout_s: float) -> bool:
        """Whether the run has ended (or its process has gone), waiting up to ``timeout_s``
        for it to say so."""
        if not self.ended:
            readable, _, _ = select.select([self._stdin], [], [], timeout_s)
            if readable:
                said = os.read(self._stdin.fileno(), 4096)
                self.ended = not said or b"ended" in said
        return self.ended

    def going_on(self) -> bool:
        """Whether the run is still going on (asked between cells: after it, none is begun)."""
        return not self.wait(0.0)


def main(run_dir: Path) -> None:
    """Watch the run in ``run_dir``; analyse and keep each cell once it has finished."""
    from analysis.cell_cache import CellCache
    from analysis.derive import analyse_and_keep, expected_cost
    from analysis.report import REPORT_DIR
    from analysis.run_data import RunData
    from core.errors import CellseqError
    from store import RunStore

    with contextlib.suppress(OSError):   # the run comes first, and the report after it
        os.nice(19)
    side = _RunSide(sys.stdin.buffer)
    meta: dict[str, Any] = {}
    while not meta.get("experiments"):   # a run on instruments may take a while to begin
        if side.wait(POLL_S):
            return
        with contextlib.suppress(CellseqError):
            store = RunStore.open(run_dir)
            try:
                meta = store.meta()
            finally:
                store.close()
    experiments = meta["experiments"]
    simulated = meta.get("manifest", {}).get("mode") == "simulated"
    poll_s = POLL_S if simulated else POLL_HARDWARE_S
    after_id, finished, done = 0, set[str](), set[str]()
    while not side.wait(poll_s):
        after_id, ready = _finished_cells(run_dir, after_id, finished, experiments)
        ready = [cell for cell in ready if cell not in done]
        if not ready:
            continue
        # no integrity check of the whole file here, every few seconds: the report makes it,
        # and takes nothing kept from a damaged store
        data = RunData(run_dir, integrity=False)
        if data.damage:
            return   # a damaged store's analyses are not kept: the report makes them
        kept = CellCache(data, run_dir / REPORT_DIR)
        with_points = set(data.cells_with_points())
        done.update(ready)
        keys = kept.keys([cell for cell in ready if cell in with_points])
        todo = [cell for cell, key in keys.items()   # not kept before (a resumed run's)
                if key is not None and kept.load(cell, key) is None]
        # in one process while it has not grown much (what it has measured of the figures'
        # texts it measures no more), the longest first, until the run ends: the report
        # takes what is left
        def next_cell() -> bool:   # asked before each cell: none is begun once the run ended
            if not side.going_on():
                return False
            _say(BUSY)
            return True

        analyse_and_keep(data, sorted(todo, key=lambda c: expected_cost(data, c)), kept,
                         more_cells=next_cell)
        _say(IDLE)


def _say(word: bytes) -> None:
    """Tell the run's process (:class:`AnalysisBeside`) ``word``."""
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.buffer.write(word + b"\n")
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        main(Path(sys.argv[1]))
