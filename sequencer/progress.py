"""Progress of a run, one bar per experiment against its planned duration.

Shown only on a terminal (:class:`TerminalProgress`); elsewhere (CI, pipes, logs) the run stays
quiet (:class:`NoProgress`). Bars advance in run time, so a dry run's bars move at virtual speed.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from drivers.clock import Clock
    from sequencer.plan import PlannedExperiment

#: Redraw at most this often (wall time): a dry run polls tens of thousands of times.
REFRESH_S = 0.1


class NoProgress:
    def started(self, name: str, total_s: float) -> None:
        """An experiment began; it is planned to last ``total_s`` of run time."""

    def advanced(self, name: str, done_s: float) -> None:
        """``done_s`` of run time have passed since the experiment began."""

    def finished(self, name: str, done_s: float) -> None:
        """The experiment ended after ``done_s`` of run time."""

    def __enter__(self) -> NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to tear down."""


class TerminalProgress(NoProgress):
    def __init__(self, console: Console) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._bars = Progress(TextColumn("{task.description:<36}"), BarColumn(),
                              TextColumn("{task.fields[hours]:>9} h"), TimeElapsedColumn(),
                              console=console, transient=False)
        self._tasks: dict[str, int] = {}
        self._last = 0.0

    def started(self, name: str, total_s: float) -> None:
        self._tasks[name] = self._bars.add_task(name[:36], total=max(total_s, 1.0), hours="0")

    def advanced(self, name: str, done_s: float) -> None:
        now = time.monotonic()
        if now - self._last < REFRESH_S or name not in self._tasks:
            return
        self._last = now
        self._bars.update(self._tasks[name], completed=done_s, hours=f"{done_s / 3600:.0f}")

    def finished(self, name: str, done_s: float) -> None:
        if name in self._tasks:
            task = self._bars.tasks[self._tasks[name]]
            self._bars.update(self._tasks[name], completed=task.total,
                              hours=f"{done_s / 3600:.0f}")

    def __enter__(self) -> TerminalProgress:
        self._bars.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._bars.stop()


class ExperimentProgress:
    """The bars of a run's experiments, fed with run time since each began (a part of the
    executor; it owns when each experiment began)."""

    def __init__(self, bars: NoProgress, clock: Clock) -> None:
        self._bars, self._clock = bars, clock
        self._began: dict[str, float] = {}

    def started(self, exp: PlannedExperiment) -> None:
        self._began[exp.name] = self._clock.now()
        self._bars.started(exp.name, exp.estimate_s)

    def advanced(self, exp: PlannedExperiment) -> None:
        self._bars.advanced(exp.name, self._clock.now() - self._began[exp.name])

    def finished(self, exp: PlannedExperiment) -> None:
        self._bars.finished(exp.name, self._clock.now() - self._began[exp.name])
