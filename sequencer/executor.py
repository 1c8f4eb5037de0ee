"""The executor: runs a plan's experiments on instruments and streams every point to the store.

Experiments run as the plan scheduled them: each starts when every earlier experiment sharing a
channel or chamber with it has ended. Within an experiment each cell runs its steps independently
on its own channel; a ``set_temperature`` step is a meeting point: every cell stops there, the
chamber soaks once, then all go on. Each poll's points and the cell's checkpoint commit in one
transaction. Whatever happens, every output is turned off before the executor returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio

from drivers.clock import Clock
from drivers.errors import CellseqError
from drivers.interfaces import Chamber, Channel, MultiChannelInstrument
from drivers.points import ChannelState, Points
from protocols.cells import Cell
from protocols.steps import Loop, SetTemperature, Step
from sequencer import safety
from sequencer.counters import Counters
from sequencer.handlers.set_temperature import SoakTimeout, soak
from sequencer.instruments import Instruments
from sequencer.journal import Journal
from sequencer.plan import Plan, PlannedExperiment
from sequencer.progress import NoProgress
from sequencer.store import Chunk, RunStore

#: Longest wait between polls. Hardware is polled every second; a simulated channel says when
#: its technique ends, so dry runs wake only then (or after an hour of virtual time at most).
HARDWARE_POLL_S = 1.0
SIMULATED_POLL_S = 3600.0
MIN_POLL_S = 1e-3


class CellFault(CellseqError):
    """A cell's run stops: a safety limit tripped or its instrument failed."""


@dataclass
class CellRun:
    """A cell's position in the campaign and its counters: what a checkpoint holds."""

    cell: Cell
    instrument: MultiChannelInstrument
    channel: Channel
    step_count: int = 0
    cycle: int = 0
    counters: Counters = field(default_factory=Counters)
    state: str = "pending"
    fault: str | None = None
    last: dict[str, float] = field(default_factory=dict)


class Executor:
    def __init__(self, plan: Plan, instruments: Instruments, store: RunStore, journal: Journal,
                 clock: Clock, poll_s: float, progress: NoProgress | None = None) -> None:
        self.plan, self.instruments, self.store = plan, instruments, store
        self.journal, self.clock, self.poll_s = journal, clock, poll_s
        self.progress = progress or NoProgress()
        self._began: dict[str, float] = {}
        self._go: trio.Event | None = None   # cleared while paused
        self.interrupted = False
        self.runs: dict[str, CellRun] = {}
        for cell_id, placement in plan.station.cells.items():
            if any(cell_id in e.cells for e in plan.experiments):
                inst = instruments.channels[placement.instrument]
                self.runs[cell_id] = CellRun(plan.campaign.cell(cell_id), inst,
                                             inst.channel(placement.channel))

    # -- pause ---------------------------------------------------------------------------

    def pause(self) -> None:
        """Hold every cell at its next step boundary (outputs are off between steps)."""
        if self._go is not None and self._go.is_set():
            self._go = trio.Event()
            self.journal.event(None, "pause_requested", "cells stop at their next step"
                               " boundary; Ctrl-C again stops the run")

    def unpause(self) -> None:
        if self._go is not None and not self._go.is_set():
            self._go.set()
            self.journal.event(None, "run_continued", "the run goes on")

    @property
    def paused(self) -> bool:
        return self._go is not None and not self._go.is_set()

    async def _safe_point(self, runs: list[CellRun]) -> None:
        """Where a pause takes effect: between steps, with the channels idle."""
        if self._go is None or self._go.is_set():
            return
        with self.store.transaction():
            for r in runs:
                self._set_state(r, "paused")
            self.journal.event(runs[0].cell.id if len(runs) == 1 else None, "paused",
                               f"{', '.join(r.cell.id for r in runs)} paused between steps")
        self.store.commit()   # a dry run's grouped writes too: the pause may last
        await self._hold()
        with self.store.transaction():
            for r in runs:
                self._set_state(r, "running")

    async def _hold(self) -> None:
        """Wait for the pause to end. Other cells may still be on their way to a step
        boundary; once nothing else is scheduled, virtual time stops (a dry run would
        otherwise spin looking for the next deadline)."""
        assert self._go is not None
        self._arrived.set()
        self._arrived = trio.Event()
        while not self._go.is_set():
            stats = trio.lowlevel.current_statistics()
            if stats.tasks_runnable == 0 and stats.seconds_to_next_deadline == math.inf:
                with self.clock.frozen():
                    await self._go.wait()
            else:
                arrived = self._arrived
                async with trio.open_nursery() as nursery:
                    async def _either(event: trio.Event) -> None:
                        await event.wait()
                        nursery.cancel_scope.cancel()
                    nursery.start_soon(_either, arrived)
                    nursery.start_soon(_either, self._go)

    async def run(self) -> None:
        """Run every experiment; outputs off and chambers to standby however it ends."""
        self._arrived = trio.Event()
        self._go = trio.Event()
        self._go.set()
        try:
            await self._open_all()
            with self.store.transaction():
                for r in self.runs.values():
                    self._set_state(r, "pending")
            self.journal.event(None, "run_started", f"{len(self.plan.experiments)} experiments,"
                               f" {len(self.runs)} cells")
            finished = {e.index: trio.Event() for e in self.plan.experiments}
            async with trio.open_nursery() as nursery:
                for exp in self.plan.experiments:
                    nursery.start_soon(self._run_when_free, exp, finished)
            for r in self.runs.values():
                if r.state != "faulted":
                    with self.store.transaction():
                        self._set_state(r, "completed")
            self.journal.event(None, "run_completed", "all experiments done")
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                interrupted = self.interrupted or isinstance(exc, KeyboardInterrupt) or (
                    isinstance(exc, BaseExceptionGroup)
                    and exc.subgroup(KeyboardInterrupt) is not None)
                reason = "interrupted by the user (Ctrl-C)" if interrupted else f"aborted: {exc!r}"
                with self.store.transaction():
                    for r in self.runs.values():
                        if r.state in ("running", "pending", "paused"):
                            self._set_state(r, "aborted")
                    self.journal.event(None, "run_aborted", reason)
            raise
        finally:
            with trio.CancelScope(shield=True):
                await self._all_outputs_off()

    # -- experiments -----------------------------------------------------------------------

    async def _run_when_free(self, exp: PlannedExperiment,
                             finished: dict[int, trio.Event]) -> None:
        """Start once every earlier experiment sharing a channel or chamber has ended."""
        for index in exp.after:
            await finished[index].wait()
        try:
            await self._run_experiment(exp)
        finally:
            finished[exp.index].set()

    async def _run_experiment(self, exp: PlannedExperiment) -> None:
        runs = [self.runs[c] for c in exp.cells if self.runs[c].state != "faulted"]
        skipped = [c for c in exp.cells if self.runs[c].state == "faulted"]
        for cid in skipped:
            self.journal.event(cid, "experiment_skipped",
                               f"{exp.name}: cell faulted earlier ({self.runs[cid].fault})")
        self.journal.event(None, "experiment_started", exp.name, cells=list(exp.cells))
        self._began[exp.name] = self.clock.now()
        self.progress.started(exp.name, exp.estimate_s)
        for segment in _segments(exp.steps):
            runs = [r for r in runs if r.state != "faulted"]
            if not runs:
                break
            if isinstance(segment, SetTemperature):
                await self._soak(exp, segment, runs)
            else:
                async with trio.open_nursery() as nursery:
                    for r in runs:
                        nursery.start_soon(self._run_cell, exp, segment, r)
        self.progress.finished(exp.name, self.clock.now() - self._began[exp.name])
        self.journal.event(None, "experiment_finished", exp.name)

    async def _soak(self, exp: PlannedExperiment, step: SetTemperature,
                    runs: list[CellRun]) -> None:
        assert exp.chamber is not None
        await self._safe_point(runs)
        chamber = self.instruments.chambers[exp.chamber]
        k = exp.index_of(step)
        ids = {}
        with self.store.transaction():
            for r in runs:
                r.step_count += 1
                ids[r.cell.id] = self.store.begin_step(
                    r.cell.id, exp.name, r.step_count, k, step.kind, r.cycle, self.clock.now(),
                    {"target_K": step.target, "tolerance_K": step.tolerance})
                self._set_state(r, "running", experiment=exp.name, step_index=k,
                                step_kind=step.kind, step_started_t=self.clock.now(),
                                step_estimate_s=step.timeout)
            self.journal.event(None, "soak_started", f"{exp.chamber} to"
                               f" {step.target - 273.15:g} degC", experiment=exp.name)
        try:
            result = await soak(chamber, step, self.clock, self._caller(chamber))
            reason, fault = "settled", None
        except (SoakTimeout, CellseqError) as exc:
            reason, fault = "failed", str(exc)
        with self.store.transaction():
            for r in runs:
                self.store.end_step(ids[r.cell.id], self.clock.now(), reason)
                if fault:
                    r.fault = f"{exp.name}: {fault}"
                    self._set_state(r, "faulted")
            if fault:
                self.journal.event(None, "soak_failed", fault, experiment=exp.name)
            else:
                self.journal.event(None, "soak_settled",
                                   f"{exp.chamber} stable at {result.last.temperature_C:g} degC"
                                   f" after {result.settled_after_s / 60:.1f} min")

    async def _run_cell(self, exp: PlannedExperiment, steps: list[Step], r: CellRun) -> None:
        try:
            await self._run_steps(exp, steps, r)
        except CellFault as exc:
            with self.store.transaction():
                r.fault = str(exc)
                self._set_state(r, "faulted")
                self.journal.event(r.cell.id, "cell_faulted", str(exc), experiment=exp.name)

    async def _run_steps(self, exp: PlannedExperiment, steps: list[Step], r: CellRun,
                         iteration: int | None = None, breaks: frozenset[str] = frozenset()
                         ) -> set[str]:
        """Run ``steps``; return the end reasons seen. A reason in ``breaks`` (a short circuit
        inside a loop that ends on one) leaves the block at once."""
        seen: set[str] = set()
        for step in steps:
            if step.every is not None and iteration is not None and \
                    (iteration - 1) % step.every:
                continue
            if isinstance(step, Loop):
                seen |= await self._run_loop(exp, step, r, breaks)
            else:
                seen.add(await self._run_channel_step(exp, step, r))
            if seen & breaks:
                break
        return seen

    async def _run_loop(self, exp: PlannedExperiment, loop: Loop, r: CellRun,
                        breaks: frozenset[str]) -> set[str]:
        until = loop.until
        if until is not None and until.short_circuit:
            breaks = breaks | {"short"}
        counts = loop.count_cycles and not any(isinstance(s, Loop) for s in loop.steps)
        seen: set[str] = set()
        first_capacity: float | None = None
        for iteration in range(1, loop.count + 1):
            if counts:
                r.cycle += 1
            before = r.counters.discharge_Ah
            got = await self._run_steps(exp, loop.steps, r, iteration, breaks)
            seen |= got
            why = None
            if got & breaks:
                why = "a short circuit"
            elif until is not None and until.voltage_limit and "voltage" in got:
                why = "a step reached its voltage limit"
            elif until is not None and until.capacity_retention_below is not None:
                capacity = r.counters.discharge_Ah - before
                first_capacity = first_capacity or (capacity if capacity > 0 else None)
                if first_capacity and capacity / first_capacity < until.capacity_retention_below:
                    why = (f"capacity retention {100 * capacity / first_capacity:.1f} % fell"
                           f" below {100 * until.capacity_retention_below:g} %")
            if why:
                self.journal.event(r.cell.id, "loop_ended", f"{exp.name} step"
                                   f" {exp.index_of(loop)}: loop ended after iteration"
                                   f" {iteration} of {loop.count}: {why}")
                break
        return seen

    # -- one step on one channel -----------------------------------------------------------

    async def _run_channel_step(self, exp: PlannedExperiment, step: Step, r: CellRun) -> str:
        """Run one primitive step to its end; return the end reason."""
        await self._safe_point([r])
        k = exp.index_of(step)
        technique = exp.techniques[(r.cell.id, id(step))]
        call = self._caller(r.instrument)
        r.step_count += 1
        started = self.clock.now()
        with self.store.transaction():
            step_id = self.store.begin_step(r.cell.id, exp.name, r.step_count, k, step.kind,
                                            r.cycle, started,
                                            {**_params(technique),
                                             "written_kind": exp.written_kind(step)})
            self._set_state(r, "running", experiment=exp.name, step_index=k,
                            step_kind=step.kind, step_started_t=started,
                            step_estimate_s=getattr(technique, "duration_s", None))
            self.journal.log(r.cell.id, "step_started", f"{exp.name} step {k} {step.kind}"
                             f" (cycle {r.cycle}, step count {r.step_count})")
        try:
            await call(lambda: r.channel.start(technique))
        except CellseqError as exc:
            raise CellFault(f"{exp.name} step {k} ({step.kind}) refused: {exc}") from exc
        previous: tuple[float, float, float] | None = None
        while True:
            try:
                readout = await call(r.channel.poll)
            except CellseqError as exc:
                await call(r.channel.stop)
                raise CellFault(f"{exp.name} step {k}: instrument failed: {exc}") from exc
            trip = safety.check(r.cell.limits, readout.points)
            points = readout.points
            if trip is not None:
                await call(r.channel.stop)
                points = points.select(points.time_s <= trip.time_s)
            with self.store.transaction():
                previous = self._store_points(r, step_id, k, started, points, previous)
                if trip is not None:
                    self.store.end_step(step_id, self.clock.now(), "safety_limit")
                    self.journal.event(r.cell.id, "safety_trip", str(trip),
                                       quantity=trip.quantity, value=trip.value,
                                       limit=trip.limit)
                elif readout.state in (ChannelState.DONE, ChannelState.FAULT):
                    self.store.end_step(step_id, self.clock.now(), readout.end_reason or "done")
                    self.journal.log(r.cell.id, "step_ended", f"{exp.name} step {k}"
                                     f" {step.kind}: {readout.end_reason}")
            self.progress.advanced(exp.name, self.clock.now() - self._began[exp.name])
            if trip is not None:
                raise CellFault(f"safety limit: {trip}")
            if readout.state is ChannelState.FAULT:
                raise CellFault(f"{exp.name} step {k}: channel fault ({readout.end_reason})")
            if readout.state is ChannelState.DONE:
                return readout.end_reason or "done"
            now = self.clock.now()
            wake = now + self.poll_s
            if readout.next_event_s is not None:
                # never wait for a moment already past: that would poll without time moving
                wake = min(wake, max(readout.next_event_s, now + MIN_POLL_S))
            await self.clock.sleep_until(wake)

    def _store_points(self, r: CellRun, step_id: int, step_index: int, started: float,
                      points: Points, previous: tuple[float, float, float] | None
                      ) -> tuple[float, float, float] | None:
        if len(points) == 0:
            return previous
        test_time = started + points.time_s
        if points.frequency_Hz is None:
            counters = r.counters.accumulate(test_time, points.voltage_V, points.current_A,
                                             previous)
        else:  # an impedance sweep moves no net charge: the counters stand still
            counters = {k: np.full(len(points), v) for k, v in r.counters.as_dict().items()}
        temperature = points.temperature_C
        if temperature is None:
            temperature = np.full(len(points), np.nan)
        columns = {
            "test_time_s": test_time, "step_time_s": points.time_s,
            "utc_s": self.clock.origin_utc + test_time, "voltage_V": points.voltage_V,
            "current_A": points.current_A, "temperature_C": temperature, **counters,
        }
        kind = "series"
        if points.frequency_Hz is not None:
            kind = "spectrum"
            columns.update(frequency_Hz=points.frequency_Hz, z_real_ohm=points.z_real_ohm,
                           z_imag_ohm=points.z_imag_ohm)
        self.store.append(step_id, Chunk(r.cell.id, r.step_count, step_index, r.cycle, kind,
                                         columns))
        r.last = {"t": float(test_time[-1]), "voltage_V": float(points.voltage_V[-1]),
                  "current_A": float(points.current_A[-1]),
                  "temperature_C": float(temperature[-1])}
        self._set_state(r, "running")
        return float(test_time[-1]), float(points.voltage_V[-1]), float(points.current_A[-1])

    # -- helpers ---------------------------------------------------------------------------

    def _set_state(self, r: CellRun, state: str, **fields: Any) -> None:
        r.state = state
        self.store.set_cell_state(
            r.cell.id, state, self.clock.now(), step_count=r.step_count, cycle=r.cycle,
            last=r.last, checkpoint={"counters": r.counters.as_dict(), "fault": r.fault},
            **fields)

    def _caller(self, instrument: MultiChannelInstrument | Chamber) -> Callable[..., Any]:
        if instrument.blocking_io:
            async def in_thread(fn: Callable[[], Any]) -> Any:
                return await trio.to_thread.run_sync(fn)
            return in_thread

        async def direct(fn: Callable[[], Any]) -> Any:
            return fn()
        return direct

    async def _open_all(self) -> None:
        for inst in self.instruments.all():
            await self._caller(inst)(inst.open)

    async def _all_outputs_off(self) -> None:
        """Stop every channel and put chambers in standby; one failure does not stop the rest."""
        for r in self.runs.values():
            try:
                await self._caller(r.instrument)(r.channel.stop)
            except CellseqError as exc:
                self.journal.event(r.cell.id, "stop_failed", f"could not stop the output: {exc}")
        for name, chamber in self.instruments.chambers.items():
            try:
                await self._caller(chamber)(chamber.standby)
            except CellseqError as exc:
                self.journal.event(None, "standby_failed", f"{name}: {exc}")
        for inst in self.instruments.all():
            try:
                await self._caller(inst)(inst.close)
            except CellseqError as exc:
                self.journal.event(None, "close_failed", f"{type(inst).__name__}: {exc}")


def _segments(steps: tuple[Step, ...]) -> list[SetTemperature | list[Step]]:
    """Split top-level steps at set_temperature steps, which all cells pass together."""
    out: list[SetTemperature | list[Step]] = []
    for step in steps:
        if isinstance(step, SetTemperature):
            out.append(step)
        elif out and isinstance(out[-1], list):
            out[-1].append(step)
        else:
            out.append([step])
    return out


def _params(technique: object) -> dict[str, Any]:
    return {"technique": type(technique).__name__,
            **{k: v for k, v in vars(technique).items()
               if isinstance(v, int | float) and math.isfinite(v)}}
