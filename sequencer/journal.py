"""The run journal: every event goes to the store and, as a plain line, to ``run.log``."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store import RunStore, StoreError

if TYPE_CHECKING:
    from drivers.clock import Clock

LOG_NAME = "run.log"
#: A dry run's routine lines go out to ``run.log`` this often (wall time), as its store commits
#: (a crash loses about as much of either); events, and every line of a run on hardware, at once.
FLUSH_S = 0.5
log = logging.getLogger("cellseq.journal")


class Journal:
    def __init__(self, store: RunStore, run_dir: Path, clock: Clock) -> None:
        self._store, self._clock = store, clock
        self._log = (Path(run_dir) / LOG_NAME).open("a", encoding="utf-8")
        self._log_failed = False
        self._flushed = time.monotonic()
        self._stamp_day, self._stamp_date = -1, ""

    def event(self, cell: str | None, kind: str, message: str, **data: Any) -> None:
        """A notable event: into the store's journal and the text log (written out at once)."""
        t = self._clock.now()
        self._store.event(t, self._clock.utc(t), cell, kind, message, data)
        self._line(t, cell, kind, message, flush=True)

    def log(self, cell: str | None, kind: str, message: str) -> None:
        """Routine progress (steps starting and ending): the text log only; the store's
        ``steps`` table already holds it."""
        self._line(self._clock.now(), cell, kind, message)

    def note(self, cell: str | None, kind: str, message: str) -> None:
        """An event while shutting down: a failing store must not stop the next output going
        off (run.log still gets the line)."""
        try:
            self.event(cell, kind, message)
        except StoreError:
            self.log(cell, kind, message)

    def _line(self, t: float, cell: str | None, kind: str, message: str,
              flush: bool = False) -> None:
        """A line of ``run.log``; routine lines of a dry run are written out every
        ``FLUSH_S`` of wall time, with its store's commits."""
        stamp = self._stamp(self._clock.utc(t))
        who = f" [{cell}]" if cell else ""
        try:
            self._log.write(f"{stamp} t={t:.1f}s {kind}{who}: {message}\n")
            if flush or self._store.durable or time.monotonic() - self._flushed >= FLUSH_S:
                self._log.flush()
                self._flushed = time.monotonic()
        except OSError as exc:   # the text log is a convenience; the store holds the journal
            if not self._log_failed:
                log.warning("run.log cannot be written (%s); the run store keeps the journal",
                            exc)
            self._log_failed = True

    def _stamp(self, utc: float) -> str:
        """The line's UTC time to the second, as ``datetime.isoformat`` writes it. The date is
        worked out once a day and the time of day by arithmetic (a dry run writes thousands
        of lines a second, each steps on a new second)."""
        second = math.floor(utc)
        # within a microsecond of the next second, datetime rounds up: work it out in full
        if utc - second >= 0.999999:
            return dt.datetime.fromtimestamp(utc, dt.UTC).isoformat(timespec="seconds")
        day, in_day = divmod(second, 86400)
        if day != self._stamp_day:
            date = dt.datetime.fromtimestamp(day * 86400, dt.UTC).date().isoformat()
            self._stamp_day, self._stamp_date = day, date
        hour, in_hour = divmod(in_day, 3600)
        minute, sec = divmod(in_hour, 60)
        return f"{self._stamp_date}T{hour:02d}:{minute:02d}:{sec:02d}+00:00"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._log.close()

