"""Pauses and stops: which cells are held, and the waiting that a hold means.

The whole run is held by Ctrl-C once (or a request from the dashboard) and released by Enter
(or a request); single cells are held and released by requests (:mod:`sequencer.controls`).
A hold takes effect at a pause point (between steps, with the channels idle), where the
executor asks :meth:`PauseControl.safe_point`; a stop of one cell turns its output off
mid-step first (the step driver asks :meth:`Holds.take_stop` after each poll, and a stop
request wakes the cell's sleep through :meth:`Holds.add_wake`), and the cell then waits at
a pause point too. While some cells are still on their way to a boundary, or run on, virtual
time must go on for them; once every task waits and nothing is scheduled, a dry run's time is
frozen (it would otherwise spin looking for the next deadline) until a hold is released.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import trio

from drivers.clock import Alarm, Clock
from sequencer.cell_context import CellContext
from sequencer.journal import Journal
from store import RunStore


class Waker:
    """Rings a sleep's alarm and remembers that it did: a sleep woken by a stop request and by
    its chamber at once tells which woke it (:meth:`Suspenders.sleep`)."""

    __slots__ = ("alarm", "woke")

    def __init__(self, alarm: Alarm) -> None:
        self.alarm, self.woke = alarm, False

    def cancel(self) -> None:
        self.woke = True
        self.alarm.ring()


class Holds:
    """Which cells are held (the whole run by Ctrl-C or a request, single cells by requests),
    which of them wait at a hold now, and which are running a block of steps.

    ``changed`` is set (and replaced) whenever any of this changes, so every waiter looks
    again; ``released`` only when a hold ends (a paused dry run's frozen clock waits for that
    alone)."""

    def __init__(self) -> None:
        self.run_held = False
        self.cells_held: set[str] = set()
        self.stopping: set[str] = set()     # cells whose output goes off at once
        self.waiting: set[str] = set()      # cells waiting at a hold now
        self.busy: set[str] = set()         # cells running a block of steps
        self.reasons: dict[str, str] = {}   # why a cell is held
        self.changed = trio.Event()
        self.released = trio.Event()
        self._wakes: dict[str, set[Waker]] = {}

    def notify(self, released: bool = False) -> None:
        self.changed.set()
        self.changed = trio.Event()
        if released:
            self.released.set()
            self.released = trio.Event()

    def holds(self, cell: str) -> bool:
        return self.run_held or cell in self.cells_held

    def holds_any(self, cells: Iterable[str]) -> bool:
        return any(self.holds(c) for c in cells)

    def hold_cell(self, cell: str, reason: str, stop_now: bool) -> None:
        self.cells_held.add(cell)
        self.reasons[cell] = reason
        if stop_now:
            self.stopping.add(cell)
            for scope in self._wakes.get(cell, ()):
                scope.cancel()
        self.notify()

    def release_cell(self, cell: str) -> None:
        self.cells_held.discard(cell)
        self.stopping.discard(cell)
        self.reasons.pop(cell, None)
        self.notify(released=True)

    def resting(self, cells: Iterable[str]) -> bool:
        """Whether a chamber watch of these cells may rest: the run is paused, or some of the
        cells wait at a hold and none of the others is running a step."""
        cells = set(cells)
        if self.run_held:
            return True
        return bool(cells & self.waiting) and (cells & self.busy) <= self.waiting

    @contextmanager
    def running(self, cell: str) -> Iterator[None]:
        self.busy.add(cell)
        try:
            yield
        finally:
            self.busy.discard(cell)
            self.notify()

    @contextmanager
    def at_hold(self, cells: list[str]) -> Iterator[None]:
        self.waiting.update(cells)
        self.notify()
        try:
            yield
        finally:
            self.waiting.difference_update(cells)

    def add_wake(self, cell: str, waker: Waker) -> None:
        """A stop request for ``cell`` cancels ``waker`` (at once if one is pending), until
        :meth:`discard_wake`."""
        self._wakes.setdefault(cell, set()).add(waker)
        if cell in self.stopping:
            waker.cancel()

    def discard_wake(self, cell: str, waker: Waker) -> None:
        self._wakes[cell].discard(waker)

    def take_stop(self, cell: str) -> str | None:
        """Why ``cell`` must turn its output off now (once), or None."""
        if cell not in self.stopping:
            return None
        self.stopping.discard(cell)
        return self.reasons.get(cell, "stopped")


class PauseControl:
    """The holds of a run and the pause points where they take effect (a part of the
    executor). Owns the :class:`Holds`; the controls (:mod:`sequencer.controls`) change them,
    the executor, the step driver and the chamber watch wait on them."""

    def __init__(self, store: RunStore, journal: Journal, clock: Clock) -> None:
        self._store, self._journal, self._clock = store, journal, clock
        #: pauses and stops, of the whole run (Ctrl-C) and of single cells (the controls)
        self.holds = Holds()

    def pause(self) -> None:
        """Hold every cell at its next step boundary (outputs are off between steps)."""
        if not self.holds.run_held:
            self.holds.run_held = True
            self.holds.notify()
            self._journal.event(None, "pause_requested", "cells stop at their next step"
                                " boundary; Ctrl-C again stops the run")

    def unpause(self) -> None:
        if self.holds.run_held:
            self.holds.run_held = False
            self.holds.notify(released=True)
            self._journal.event(None, "run_continued", "the run goes on")

    @property
    def paused(self) -> bool:
        return self.holds.run_held

    async def safe_point(self, cells: list[CellContext], announce: bool = True) -> None:
        """A pause point: between steps (or where a cell stopped from outside turned its
        output off), with the channels idle. A hold of any of ``cells`` takes effect here:
        they are ``paused`` until it is released. ``announce``: journal the pause (a cell
        stopped mid-step has already said why)."""
        ids = [c.id for c in cells]
        if not self.holds.holds_any(ids):
            return
        with self._store.transaction():
            for c in cells:
                c.set_state("paused")
            if announce:
                why = "" if self.paused else \
                    f" ({'; '.join(self.holds.reasons.get(c, '') for c in ids)})"
                self._journal.event(ids[0] if len(ids) == 1 else None, "paused",
                                    f"{', '.join(ids)} paused between steps{why}")
        self._store.commit()   # a dry run's grouped writes too: the pause may last
        with self.holds.at_hold(ids):
            await self._hold(ids)
        with self._store.transaction():
            for c in cells:
                c.set_state("running")

    async def _hold(self, cells: list[str]) -> None:
        """Wait until nothing holds these cells. Other cells may still be on their way to a
        step boundary, or run on; once nothing else is scheduled, virtual time stops (a dry
        run would otherwise spin looking for the next deadline) until a hold is released."""
        while self.holds.holds_any(cells):
            if self._clock.nothing_scheduled():
                released = self.holds.released
                with self._clock.frozen():
                    await released.wait()
            else:
                await self.holds.changed.wait()

    async def rest_while_held(self, cells: Iterable[str]) -> bool:
        """For a chamber watch of ``cells``: while they rest (see :meth:`Holds.resting`),
        wait, having told the holders that this task is quiet (so a dry run's time may stop).
        True if it waited."""
        if not self.holds.resting(cells):
            return False
        self.holds.notify()
        while self.holds.resting(cells):
            await self.holds.changed.wait()
        return True
