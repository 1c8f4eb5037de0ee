"""A cell's context in a run: where the cell is (its :class:`~sequencer.cell_run.CellRun`)
and the writes that record it.

Every change of a cell's state goes through :meth:`CellContext.set_state`, which writes the
state with the checkpoint a resumed run continues from (step count, cycle, counters, last
values, fault); the executor's parts share a cell only through its context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from drivers.clock import Clock
from drivers.errors import CellseqError
from sequencer.calls import caller_for
from sequencer.cell_run import CellRun
from sequencer.handlers.set_temperature import SoakProgress
from sequencer.journal import Journal
from store import RunStore


class CellContext:
    """One cell of a running campaign (see the module's docstring)."""

    def __init__(self, run: CellRun, store: RunStore, journal: Journal, clock: Clock) -> None:
        self.run = run
        self._store, self._journal, self._clock = store, journal, clock
        self._caller = caller_for(run.instrument)
        self._blocks = run.instrument.blocking_io

    @property
    def id(self) -> str:
        return self.run.cell.id

    def set_state(self, state: str, soak: SoakProgress | None = None, **fields: Any) -> None:
        """The cell's state and checkpoint, in the store (inside the caller's transaction);
        ``fields``: the step it runs (experiment, step index and kind, start, estimate)."""
        r = self.run
        r.state = state
        checkpoint: dict[str, Any] = {"counters": r.counters.as_dict(), "fault": r.fault}
        if soak is not None:
            checkpoint["soak"] = asdict(soak)
        if r.off is not None:
            checkpoint["off"] = r.off
        self._store.set_cell_state(
            r.cell.id, state, self._clock.now(), step_count=r.step_count, cycle=r.cycle,
            last=r.last, checkpoint=checkpoint, **fields)

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn``, a call to the cell's instrument or channel (in a worker thread when the
        instrument's I/O blocks)."""
        if not self._blocks:   # the caller would call it at once: spare its coroutine
            return fn()
        return await self._caller(fn)

    async def stop(self) -> bool:
        """Output off; a failure is journalled, not raised (the run goes on; the end of the
        run tries again, reconnecting). True if the output is known to be off."""
        try:
            await self.call(self.run.channel.stop)
            return True
        except CellseqError as exc:
            self._journal.note(self.id, "stop_failed", f"could not stop the output: {exc}")
            return False
