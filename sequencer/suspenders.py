"""Chamber suspenders: cells rest while their chamber is not what the protocol asked for.

Bluesky's suspenders pause a plan while a condition holds and resume it once the condition has
cleared; cellseq does the same for chambers. While a chamber holds a setpoint, a watchdog reads
it every ``WATCH_S`` (``SIMULATED_WATCH_S`` in dry runs). An alarm, a mode other than
constant, a temperature more than ``OUT_OF_TOLERANCE`` times the soak's tolerance away from the
setpoint, or no answer at all suspends the chamber: each of its cells polls what it has
recorded, turns its output off and waits. Once the chamber answers again, without an alarm,
the setpoint is set again and the soak runs as at a temperature step (tolerance, hold time,
timeout); then every cell carries on with its interrupted step under the step's resume
policy. A soak that times out faults the cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import trio

from drivers.clock import Clock
from drivers.errors import CellseqError
from drivers.interfaces import Chamber, ChamberMode, ChamberReading
from protocols.steps import SetTemperature
from protocols.units import kelvin_to_celsius
from sequencer.calls import caller_for
from sequencer.cell_context import CellContext
from sequencer.cell_run import CellFault
from sequencer.handlers.set_temperature import SoakTimeout, soak
from sequencer.journal import Journal
from sequencer.pause import PauseControl, Waker
from sequencer.plan import PlannedExperiment
from sequencer.shared_chamber import ChamberShare
from store import RunStore, StoreError

#: How often a chamber is read between temperature steps (s): every minute on hardware; a dry
#: run's simulated chambers, whose faults are injected on purpose, every half hour of virtual
#: time (reads would otherwise cost a dry run more than its cells do).
WATCH_S = 60.0
SIMULATED_WATCH_S = 1800.0
#: How far outside the soak's tolerance the air may stray before the cells are suspended.
OUT_OF_TOLERANCE = 2.0


@dataclass
class ChamberWatch:
    """What the executor knows of one chamber: the setpoint in force and whether its cells may
    run."""

    name: str
    step: SetTemperature | None = None   # the soak that set the setpoint in force
    soaking: bool = False                # a soak is reading the chamber itself
    reason: str | None = None            # why the cells are suspended
    failed: str | None = None            # the chamber did not come back
    air_C: float = math.nan              # the last reading
    ok: trio.Event = field(default_factory=trio.Event)
    scopes: set[Waker] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.ok.set()

    @property
    def suspended(self) -> bool:
        return not self.ok.is_set()

    def problem(self, reading: ChamberReading | None, error: str | None = None) -> str | None:
        """Why the cells should not run, or None."""
        if error is not None:
            return f"not answering ({error})"
        assert reading is not None and self.step is not None
        if reading.alarms:
            return f"alarm: {', '.join(reading.alarms)}"
        if reading.mode is not ChamberMode.CONSTANT:
            return f"mode {reading.mode.value}, not constant"
        target = kelvin_to_celsius(self.step.target)
        band = OUT_OF_TOLERANCE * self.step.tolerance
        if not math.isfinite(reading.temperature_C) or \
                abs(reading.temperature_C - target) > band:
            return (f"{reading.temperature_C:g} degC, more than {band:g} K from the setpoint"
                    f" {target:g} degC")
        return None

    def suspend(self, reason: str) -> None:
        """Stop the cells: every sleeping poll loop of this chamber wakes now."""
        self.reason = reason
        if self.ok.is_set():
            self.ok = trio.Event()
        for scope in list(self.scopes):
            scope.cancel()

    def release(self, failed: str | None = None) -> None:
        self.reason, self.failed = None, failed
        self.ok.set()


def next_watch_time(now: float, every_s: float) -> float:
    """Reads fall on multiples of the interval, so a resumed run reads when the first one
    did."""
    return (math.floor(now / every_s) + 1) * every_s


class Suspenders:
    """The chamber watchdogs and what they do to cells (a part of the executor). Owns one
    :class:`ChamberWatch` per chamber."""

    def __init__(self, chambers: dict[str, Chamber], store: RunStore, journal: Journal,
                 clock: Clock, pause: PauseControl, watch_s: float = WATCH_S) -> None:
        self._chambers, self._store, self._journal = chambers, store, journal
        self._clock, self._pause, self.watch_s = clock, pause, watch_s
        self._watches: dict[str, ChamberWatch] = {}

    def watch_of(self, exp: PlannedExperiment) -> ChamberWatch | None:
        """The watch of the experiment's chamber (made on first use); None without one."""
        if exp.chamber is None:
            return None
        if exp.chamber not in self._watches:
            self._watches[exp.chamber] = ChamberWatch(exp.chamber)
        return self._watches[exp.chamber]

    def air_C(self, chamber: str | None) -> float:
        """The chamber's last reading (NaN if it has not been read, or for no chamber): the
        temperature of a cell whose channel has no probe."""
        watch = self._watches.get(chamber or "")
        return watch.air_C if watch is not None else math.nan

    async def sleep(self, watch: ChamberWatch | None, wake: float, cell: str) -> bool:
        """Sleep until ``wake``; True if the chamber suspended the cell meanwhile. A stop of
        ``cell`` asked from outside wakes it too (False then: the caller takes the stop). One
        alarm of the clock serves the time, the chamber and the stop."""
        alarm = self._clock.alarm(wake)
        stop = Waker(alarm)
        holds = self._pause.holds
        holds.add_wake(cell, stop)
        try:
            if watch is None:
                await alarm.wait()
                return False
            if watch.suspended:
                return True
            chamber = Waker(alarm)
            watch.scopes.add(chamber)
            try:
                await alarm.wait()
            finally:
                watch.scopes.discard(chamber)
        finally:
            holds.discard_wake(cell, stop)
        return chamber.woke and not stop.woke

    async def wait_for_chamber(self, exp: PlannedExperiment, cell: CellContext) -> None:
        """A suspended chamber's cell rests (output off) until the chamber is back."""
        watch = self.watch_of(exp)
        if watch is None or not watch.suspended:
            return
        with self._store.transaction():
            cell.set_state("suspended")
        self._store.commit()
        while watch.suspended:
            await watch.ok.wait()
        if watch.failed:
            raise CellFault(f"{exp.name}: {watch.name} did not come back: {watch.failed}")
        with self._store.transaction():
            cell.set_state("running")

    async def watch_chamber(self, exp: PlannedExperiment,
                            share: ChamberShare | None = None) -> None:
        """Read the chamber between temperature steps; suspend its cells while it is wrong,
        bring them back after a fresh soak (:mod:`sequencer.suspenders`). A shared chamber is
        read by one sharer's watch at a time (``share.watcher()``), for all sharers: what it
        finds is journalled for each."""
        watch = self.watch_of(exp)
        assert watch is not None and exp.chamber is not None
        chamber = self._chambers[exp.chamber]
        call = caller_for(chamber)
        while True:
            await self._clock.sleep_until(next_watch_time(self._clock.now(), self.watch_s))
            # outputs are off while the cells are held: stop watching too, and let the held
            # cells see that nothing else is scheduled (a dry run's time then stops)
            if share is not None and share.watcher() is not exp:
                continue
            sharers = [exp] if share is None else list(share.active)
            if await self._pause.rest_while_held(
                    exp.cells if share is None else share.cells()):
                continue
            if watch.step is None or watch.soaking:
                continue
            try:
                reading = await call(chamber.read)
                watch.air_C = reading.temperature_C
                problem = watch.problem(reading)
            except CellseqError as exc:
                problem = watch.problem(None, str(exc))
            if problem is not None:
                if not watch.suspended:
                    watch.suspend(problem)
                    for e in sharers:
                        self._journal.event(None, "chamber_suspended", f"{watch.name}:"
                                            f" {problem}; its cells rest until it is back",
                                            experiment=e.name)
                continue
            if not watch.suspended:
                continue
            for e in sharers:
                self._journal.event(None, "chamber_recovering", f"{watch.name} answers"
                                    " normally again; soaking before the cells go on",
                                    experiment=e.name)
            watch.soaking = True
            try:
                result = await soak(chamber, watch.step, self._clock, call)
            except StoreError:
                raise
            except SoakTimeout as exc:
                watch.release(failed=str(exc))
                for e in sharers:
                    self._journal.event(None, "chamber_failed", f"{watch.name}: {exc}",
                                        experiment=e.name)
            except CellseqError as exc:
                watch.reason = f"not answering ({exc})"   # still out: keep the cells resting
            else:
                watch.release()
                for e in sharers:
                    self._journal.event(None, "chamber_resumed", f"{watch.name} stable at"
                                        f" {result.last.temperature_C:g} degC again; the cells"
                                        " go on", experiment=e.name)
            finally:
                watch.soaking = False
