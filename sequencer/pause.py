"""Pause control: Ctrl-C once holds every cell at its next step boundary, Enter lets them go.

A pause takes effect at a pause point (between steps, with the channels idle); the executor
asks :meth:`PauseControl.hold` there. While some cells are still on their way to a boundary,
virtual time must go on for them; once every task waits and nothing is scheduled, a dry run's
time is frozen (it would otherwise spin looking for the next deadline). Tasks that reach a
quiet point say so with :meth:`PauseControl.arrived`, so the holders look again.
"""

from __future__ import annotations

import math

import trio

from drivers.clock import Clock
from sequencer.journal import Journal


class PauseControl:
    """Whether the run may go on, and the waiting that a pause means. Owns its two events:
    ``go`` (set while the run goes on) and ``arrived`` (set, then replaced, each time a task
    reaches a quiet point)."""

    def __init__(self, journal: Journal, clock: Clock) -> None:
        self._journal, self._clock = journal, clock
        self._go: trio.Event | None = None        # cleared while paused; None before start
        self._arrived: trio.Event | None = None

    def start(self) -> None:
        """The run begins, not paused (inside trio)."""
        self._go, self._arrived = trio.Event(), trio.Event()
        self._go.set()

    def pause(self) -> None:
        """Hold every cell at its next step boundary (outputs are off between steps)."""
        if self._go is not None and self._go.is_set():
            self._go = trio.Event()
            self._journal.event(None, "pause_requested", "cells stop at their next step"
                                " boundary; Ctrl-C again stops the run")

    def unpause(self) -> None:
        if self._go is not None and not self._go.is_set():
            self._go.set()
            self._journal.event(None, "run_continued", "the run goes on")

    @property
    def paused(self) -> bool:
        return self._go is not None and not self._go.is_set()

    def arrived(self) -> None:
        """A task reached a quiet point: holders look again whether anything else runs."""
        assert self._arrived is not None
        self._arrived.set()
        self._arrived = trio.Event()

    async def until_go(self) -> None:
        """Wait until the run is not paused."""
        assert self._go is not None
        await self._go.wait()

    async def hold(self) -> None:
        """Wait for the pause to end. Other cells may still be on their way to a step
        boundary; once nothing else is scheduled, virtual time stops."""
        assert self._go is not None
        self.arrived()
        while not self._go.is_set():
            stats = trio.lowlevel.current_statistics()
            if stats.tasks_runnable == 0 and stats.seconds_to_next_deadline == math.inf:
                with self._clock.frozen():
                    await self._go.wait()
            else:
                arrived = self._arrived
                assert arrived is not None
                async with trio.open_nursery() as nursery:
                    async def _either(event: trio.Event) -> None:
                        await event.wait()
                        nursery.cancel_scope.cancel()
                    nursery.start_soon(_either, arrived)
                    nursery.start_soon(_either, self._go)
