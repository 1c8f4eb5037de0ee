"""A chamber shared by experiments whose temperature schedules agree (a part of the executor).

Each soak is a meeting point of every sharer still running, as a soak is of one experiment's
cells: the sharers arrive (their cells idle, outputs off), and once every one that has not
ended has arrived, one of them soaks the chamber for all their cells; then all go on. A
sharer whose cells have all faulted, or that has ended, leaves and is waited for no more. The
chamber is watched by one sharer at a time (the first still running), for all of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from sequencer.cell_context import CellContext
from sequencer.plan import PlannedExperiment

#: experiment name -> (the experiment, its cells that meet at the soak)
Arrivals = dict[str, tuple[PlannedExperiment, list[CellContext]]]


class ChamberShare:
    """The sharers of one chamber and their meetings, keyed by the soak's place in the
    (common) schedule."""

    def __init__(self, experiments: list[PlannedExperiment]) -> None:
        #: the sharers that have not ended, in file order
        self.active: list[PlannedExperiment] = list(experiments)
        self._arrived: dict[int, Arrivals] = {}
        self._claimed: set[int] = set()
        self._changed = trio.Event()

    def _poke(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def leave(self, exp: PlannedExperiment) -> None:
        """``exp`` has ended (or has no cell left): the meetings wait for it no more."""
        if exp in self.active:
            self.active.remove(exp)
            self._poke()

    def watcher(self) -> PlannedExperiment | None:
        """The sharer whose chamber watch reads the chamber for all."""
        return self.active[0] if self.active else None

    def cells(self) -> list[str]:
        """The cells of every sharer still running."""
        return [c for e in self.active for c in e.cells]

    async def meet(self, soak: int, exp: PlannedExperiment, cells: list[CellContext],
                   soak_all: Callable[[Arrivals], Awaitable[None]]) -> None:
        """Wait at the ``soak``-th soak until every running sharer is there; the last to
        complete the meeting soaks for all (``soak_all``), the others wait for it."""
        arrived = self._arrived.setdefault(soak, {})
        arrived[exp.name] = (exp, cells)
        self._poke()
        while True:
            if soak not in self._claimed and {e.name for e in self.active} <= arrived.keys():
                self._claimed.add(soak)
                try:
                    await soak_all(dict(arrived))
                finally:
                    arrived.clear()
                    self._poke()
                return
            if soak in self._claimed and not arrived:
                return   # soaked (``arrived`` is emptied once the soak has ended)
            await self._changed.wait()
