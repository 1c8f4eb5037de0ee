"""The executor: runs a plan's experiments on instruments and streams every point to the store.

Experiments run as the plan scheduled them: each starts when every earlier experiment sharing a
channel or chamber with it has ended. Within an experiment each cell runs its steps independently
on its own channel; a ``set_temperature`` step is a meeting point: every cell stops there, the
chamber soaks once, then all go on. Each poll's points and the cell's checkpoint commit in one
transaction. Whatever happens, every output is turned off before the executor returns.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import trio

from drivers.clock import Clock
from drivers.errors import CellseqError
from drivers.interfaces import Chamber, MultiChannelInstrument, SafetyLimits
from drivers.points import ChannelState, Points, Readout
from drivers.techniques import Technique
from protocols.steps import Loop, SetTemperature, Step
from sequencer import safety
from sequencer.cell_run import CellFault, CellRun, Mark
from sequencer.controls import Holds
from sequencer.counters import Counters
from sequencer.handlers.set_temperature import SoakProgress, SoakTimeout, soak
from sequencer.instruments import Instruments
from sequencer.journal import Journal
from sequencer.plan import Plan, PlannedExperiment
from sequencer.progress import NoProgress
from sequencer.resume import ResumeState, Resumption
from sequencer.status import run_outcome
from sequencer.store import Chunk, RunStore, StoreError
from sequencer.suspenders import WATCH_S, ChamberWatch, Suspenders

#: Longest wait between polls. Hardware is polled every second; a simulated channel says when
#: its technique ends, so dry runs wake only then (or after an hour of virtual time at most).
HARDWARE_POLL_S = 1.0
#: Polls of a running step tried before an instrument that answers wrongly faults the cell.
POLL_ATTEMPTS = 3
SIMULATED_POLL_S = 3600.0
MIN_POLL_S = 1e-3
#: Among the end reasons a loop passes up: the loop's end on a break (a short) was journalled.
_BREAK_REPORTED = "<loop end journalled>"


class Executor(Resumption, Suspenders):
    """Runs a plan; resuming (:class:`~sequencer.resume.Resumption`) and the chamber
    suspenders (:class:`~sequencer.suspenders.Suspenders`) live beside it."""

    def __init__(self, plan: Plan, instruments: Instruments, store: RunStore, journal: Journal,
                 clock: Clock, poll_s: float, progress: NoProgress | None = None,
                 resume: ResumeState | None = None, watch_s: float = WATCH_S,
                 on_start: Callable[[], None] | None = None) -> None:
        self.plan, self.instruments, self.store = plan, instruments, store
        self.resume, self.watch_s = resume, watch_s
        #: called once the checks before a run have passed, before it writes anything
        self.on_start = on_start
        self._restate: dict[Chamber, SetTemperature] = {}   # see _restate_chamber
        self._watches: dict[str, ChamberWatch] = {}           # see _watch_chamber
        self.journal, self.clock, self.poll_s = journal, clock, poll_s
        self.progress = progress or NoProgress()
        self._began: dict[str, float] = {}
        #: pauses and stops, of the whole run (Ctrl-C) and of single cells (sequencer.controls)
        self.holds = Holds()
        self.interrupted = False
        #: what the journal gives as the reason when the run is interrupted
        self.stop_reason = "interrupted by the user (Ctrl-C)"
        self.runs: dict[str, CellRun] = {}
        for cell_id, placement in plan.station.cells.items():
            if any(cell_id in e.cells for e in plan.experiments):
                inst = instruments.channels[placement.instrument]
                self.runs[cell_id] = CellRun(plan.campaign.cell(cell_id), inst,
                                             placement.channel)
        if resume is not None:
            for cell_id, r in self.runs.items():
                hist = resume.cells.get(cell_id)
                if hist is not None:
                    r.last = dict(hist.last)
                if hist is not None and hist.state == "faulted":
                    r.state, r.fault = "faulted", hist.fault

    # -- pause ---------------------------------------------------------------------------

    def pause(self) -> None:
        """Hold every cell at its next step boundary (outputs are off between steps)."""
        if not self.holds.run_held:
            self.holds.run_held = True
            self.holds.notify()
            self.journal.event(None, "pause_requested", "cells stop at their next step"
                               " boundary; Ctrl-C again stops the run")

    def unpause(self) -> None:
        if self.holds.run_held:
            self.holds.run_held = False
            self.holds.notify(released=True)
            self.journal.event(None, "run_continued", "the run goes on")

    @property
    def paused(self) -> bool:
        return self.holds.run_held

    async def _safe_point(self, runs: list[CellRun], announce: bool = True) -> None:
        """Where a pause takes effect: between steps (or where a cell stopped from outside
        turned its output off), with the channels idle."""
        cells = [r.cell.id for r in runs]
        if not self.holds.holds_any(cells):
            return
        with self.store.transaction():
            for r in runs:
                self._set_state(r, "paused")
            if announce:
                why = "" if self.paused else \
                    f" ({'; '.join(self.holds.reasons.get(c, '') for c in cells)})"
                self.journal.event(cells[0] if len(runs) == 1 else None, "paused",
                                   f"{', '.join(cells)} paused between steps{why}")
        self.store.commit()   # a dry run's grouped writes too: the pause may last
        with self.holds.at_hold(cells):
            await self._hold(cells)
        with self.store.transaction():
            for r in runs:
                self._set_state(r, "running")

    async def _hold(self, cells: list[str]) -> None:
        """Wait until nothing holds these cells. Other cells may still be on their way to a
        step boundary, or run on; once nothing else is scheduled, virtual time stops (a dry
        run would otherwise spin looking for the next deadline) until a hold is released."""
        while self.holds.holds_any(cells):
            stats = trio.lowlevel.current_statistics()
            if stats.tasks_runnable == 0 and stats.seconds_to_next_deadline == math.inf:
                released = self.holds.released
                with self.clock.frozen():
                    await released.wait()
            else:
                await self.holds.changed.wait()

    async def run(self) -> None:
        """Run every experiment; outputs off and chambers to standby however it ends."""
        try:
            await self._open_all()
            if self.resume is not None:
                await self._check_cells_present()
            if self.on_start is not None:
                self.on_start()
            await self._limits_to_instruments()
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._all_outputs_off()
            raise
        try:
            if self.resume is None:   # a resume keeps each cell's checkpoint until it moves on
                with self.store.transaction():
                    for r in self.runs.values():
                        if r.state != "faulted":
                            self._set_state(r, "pending")
                self.journal.event(None, "run_started", f"{len(self.plan.experiments)}"
                                   f" experiments, {len(self.runs)} cells")
            finished = {e.index: trio.Event() for e in self.plan.experiments}
            async with trio.open_nursery() as nursery:
                for exp in self.plan.experiments:
                    nursery.start_soon(self._run_when_free, exp, finished)
            for r in self.runs.values():
                if r.state != "faulted":
                    with self.store.transaction():
                        self._set_state(r, "completed")
            outcome = run_outcome(r.state for r in self.runs.values())
            faulted = [c for c, r in self.runs.items() if r.state == "faulted"]
            self.journal.event(None, f"run_{outcome}", "all experiments done" + (
                f"; {len(faulted)} of {len(self.runs)} cells faulted: {', '.join(faulted)}"
                if faulted else ""), status=outcome, faulted=faulted)
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                interrupted = self.interrupted or isinstance(exc, KeyboardInterrupt) or (
                    isinstance(exc, BaseExceptionGroup)
                    and exc.subgroup(KeyboardInterrupt) is not None)
                reason = self.stop_reason if interrupted else f"aborted: {_describe(exc)}"
                try:
                    with self.store.transaction():
                        for r in self.runs.values():
                            if r.state in ("running", "pending", "paused", "suspended"):
                                self._set_state(r, "aborted")
                        self.journal.event(None, "run_aborted", reason)
                except StoreError:   # the store is what failed: its last commit stands
                    self.journal.log(None, "run_aborted", f"{reason}; the run store keeps its"
                                     " last commit, from which the run can be resumed")
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
        if self.resume is not None and exp.name in self.resume.finished_experiments:
            self._fast_forward(exp)
            return
        runs = [self.runs[c] for c in exp.cells if self.runs[c].state != "faulted"]
        skipped = [c for c in exp.cells if self.runs[c].state == "faulted"]
        for cid in skipped:
            self._event_once(cid, "experiment_skipped",
                             f"{exp.name}: cell faulted earlier ({self.runs[cid].fault})")
        self._event_once(None, "experiment_started", exp.name, cells=list(exp.cells))
        self._began[exp.name] = self.clock.now()
        self.progress.started(exp.name, exp.estimate_s)
        async with trio.open_nursery() as watching:
            if exp.chamber is not None:
                watching.start_soon(self._watch_chamber, exp)
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
            watching.cancel_scope.cancel()
        self.progress.finished(exp.name, self.clock.now() - self._began[exp.name])
        self._event_once(None, "experiment_finished", exp.name)

    async def _soak(self, exp: PlannedExperiment, step: SetTemperature,
                    runs: list[CellRun]) -> None:
        assert exp.chamber is not None
        await self._safe_point(runs)
        chamber = self.instruments.chambers[exp.chamber]
        k = exp.index_of(step)
        for r in runs:
            r.step_count += 1
        carried: SoakProgress | None = None
        ids: dict[str, int] = {}
        if self.resume is not None:
            replayed = self._soak_replayed(chamber, step, runs)
            if replayed is True:
                return
            if replayed:
                ids, carried = replayed
        if not ids:
            with self.store.transaction():
                for r in runs:
                    ids[r.cell.id] = self.store.begin_step(
                        r.cell.id, exp.name, r.step_count, k, step.kind, r.cycle,
                        self.clock.now(), {"target_K": step.target, "tolerance_K": step.tolerance})
                    self._set_state(r, "running", experiment=exp.name, step_index=k,
                                    step_kind=step.kind, step_started_t=self.clock.now(),
                                    step_estimate_s=step.timeout)
                self.journal.event(None, "soak_started", f"{exp.chamber} to"
                                   f" {step.target - 273.15:g} degC", experiment=exp.name)

        def checkpoint(progress: SoakProgress) -> None:
            with self.store.transaction():
                for r in runs:
                    self._set_state(r, "running", soak=progress)

        watch = self._watch_of(exp)
        assert watch is not None
        watch.soaking = True
        try:
            result = await soak(chamber, step, self.clock, self._caller(chamber), carried,
                                checkpoint)
            reason, fault = "settled", None
            watch.step, watch.air_C = step, result.last.temperature_C
            watch.release()
        except StoreError:
            raise   # the store failed, not the chamber: the run stops
        except (SoakTimeout, CellseqError) as exc:
            reason, fault = "failed", str(exc)
        finally:
            watch.soaking = False
        with self.store.transaction():
            for r in runs:
                self.store.end_step(ids[r.cell.id], self.clock.now(), reason,
                                    r.counters.as_dict())
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
            with self.holds.running(r.cell.id):
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
                # a short ends every loop around it; the innermost one, where it happened,
                # says so (a ramp's level and the ramp are one step as written)
                if _BREAK_REPORTED not in got:
                    self._event_once(r.cell.id, "loop_ended", f"{exp.name} step"
                                     f" {exp.index_of(loop)}: loop ended after iteration"
                                     f" {iteration} of {loop.count}: {why}")
                if got & breaks:
                    seen.add(_BREAK_REPORTED)
                break
        return seen

    # -- one step on one channel -----------------------------------------------------------

    async def _run_channel_step(self, exp: PlannedExperiment, step: Step, r: CellRun) -> str:
        """Run one primitive step to its end; return the end reason."""
        await self._safe_point([r])
        technique = exp.techniques[(r.cell.id, id(step))]
        r.step_count += 1
        if self.resume is not None and r.cell.id in self.resume.cells:
            hist = self.resume.cells[r.cell.id]
            done = hist.done.get(r.step_count)
            if done is not None:
                if done["end_counters"]:
                    r.counters = Counters(**done["end_counters"])
                return done["end_reason"]
            row = hist.open.pop(r.step_count, None)
            if row is not None:
                resumed = await self._resume_step(exp, step, r, technique, row)
                if isinstance(resumed, str):
                    return resumed
                return await self._start_step(exp, step, r, technique, after_t=resumed)
        return await self._start_step(exp, step, r, technique)

    async def _start_step(self, exp: PlannedExperiment, step: Step, r: CellRun,
                          technique: Technique, after_t: float | None = None) -> str:
        """Start a step afresh; ``after_t``: a restarted step keeps no point from before the
        last one its interrupted attempt stored."""
        if self._restate:
            await self._restate_chamber(exp)
        await self._wait_for_chamber(exp, r)
        k = exp.index_of(step)
        call = self._caller(r.instrument)
        started = self.clock.now()
        params = {**_params(technique), "written_kind": exp.written_kind(step), "tag": step.tag}
        with self.store.transaction():
            step_id = self.store.begin_step(r.cell.id, exp.name, r.step_count, k, step.kind,
                                            r.cycle, started, params)
            self._set_state(r, "running", experiment=exp.name, step_index=k,
                            step_kind=step.kind, step_started_t=started,
                            step_estimate_s=getattr(technique, "duration_s", None))
            self.journal.log(r.cell.id, "step_started", f"{exp.name} step {k} {step.kind}"
                             f" (cycle {r.cycle}, step count {r.step_count})")
        try:
            await call(lambda: r.channel.start(technique))
            attachment = await call(r.channel.attachment)
        except CellseqError as exc:
            raise CellFault(f"{exp.name} step {k} ({step.kind}) refused: {exc}") from exc
        await self._keep_attachment(r, step_id, attachment)
        mark = None if after_t is None else Mark(after_t, -math.inf)
        return await self._follow(exp, step, r, technique, step_id, started, 0.0, None, mark)

    async def _keep_attachment(self, r: CellRun, step_id: int,
                               attachment: dict[str, str] | None = None) -> None:
        """Keep with the step what the instrument calls the technique just started, so a
        later run finds it there again, running or finished."""
        if attachment is None:
            attachment = await self._caller(r.instrument)(r.channel.attachment)
        if attachment is not None:
            with self.store.transaction():
                self.store.set_attachment(step_id, attachment)

    async def _follow(self, exp: PlannedExperiment, step: Step, r: CellRun,
                      technique: Technique, step_id: int, t0: float, step_t0: float,
                      previous: tuple[float, float, float] | None, mark: Mark | None
                      ) -> str:
        """Drive a running step to its end, through any chamber suspension: the cell rests
        until the chamber is back, then the step carries on under its resume policy."""
        outcome = await self._drive(exp, step, r, step_id, t0, step_t0, previous, mark)
        if isinstance(outcome, str):
            return outcome
        await self._wait_for_chamber(exp, r)
        await self._safe_point([r], announce=False)   # a cell stopped from outside waits
        carried = await self._carry_on(exp, step, r, technique, step_id, *outcome)
        if isinstance(carried, str):
            return carried
        return await self._start_step(exp, step, r, technique, after_t=carried)

    async def _drive(self, exp: PlannedExperiment, step: Step, r: CellRun, step_id: int,
                     t0: float, step_t0: float, previous: tuple[float, float, float] | None,
                     mark: Mark | None) -> str | tuple[Mark | None, float]:
        """Poll a running technique to its end, storing its points: technique time 0 is
        clock time ``t0`` and step time ``step_t0`` (not 0 for a continued step); see
        :meth:`_store_points` for ``previous`` and ``mark``. Returns the end reason or, when
        the chamber suspended the cell (output off), the last point stored and the step time
        the output ran for."""
        k = exp.index_of(step)
        watch = self._watch_of(exp)
        suspended = False
        while True:
            readout = await self._poll(exp, k, r)
            points = readout.points
            trip = safety.check(r.cell.limits, points)
            if trip is not None:
                await self._stop(r)
                points = points.select(points.time_s <= trip.time_s)
            with self.store.transaction():
                previous, mark = self._store_points(r, step_id, k, t0, step_t0, points,
                                                    previous, mark)
                if trip is not None:
                    self.store.end_step(step_id, self.clock.now(), "safety_limit",
                                        r.counters.as_dict())
                    self.journal.event(r.cell.id, "safety_trip", str(trip),
                                       quantity=trip.quantity, value=trip.value,
                                       limit=trip.limit)
                elif readout.state in (ChannelState.DONE, ChannelState.FAULT):
                    self.store.end_step(step_id, self.clock.now(), readout.end_reason or "done",
                                        r.counters.as_dict())
                    self.journal.log(r.cell.id, "step_ended", f"{exp.name} step {k}"
                                     f" {step.kind}: {readout.end_reason}")
            self.progress.advanced(exp.name, self.clock.now() - self._began[exp.name])
            if trip is not None:
                raise CellFault(f"safety limit: {trip}")
            if readout.state is ChannelState.FAULT:
                raise CellFault(f"{exp.name} step {k}: channel fault ({readout.end_reason})")
            if readout.state is ChannelState.DONE:
                return readout.end_reason or "done"
            stopped_by = self.holds.take_stop(r.cell.id)   # a stop asked from outside
            if suspended or stopped_by is not None:
                await self._stop(r)
                stopped = self.clock.now()
                elapsed = step_t0 + stopped - t0
                if previous is not None:   # the output ran on at the last current until now
                    r.counters.hold(previous, stopped)
                with self.store.transaction():
                    if stopped_by is not None:
                        self._set_state(r, "paused")
                        self.journal.event(r.cell.id, "cell_stopped", f"{exp.name} step {k}"
                                           f" {step.kind}: output off at step time"
                                           f" {elapsed:.0f} s ({stopped_by})")
                    else:
                        assert watch is not None
                        self._set_state(r, "suspended")
                        self.journal.event(r.cell.id, "cell_suspended", f"{exp.name} step"
                                           f" {k} {step.kind}: output off at step time"
                                           f" {elapsed:.0f} s while {watch.name} is"
                                           f" {watch.reason}")
                return mark, elapsed
            now = self.clock.now()
            wake = now + self.poll_s
            if readout.next_event_s is not None:
                # never wait for a moment already past: that would poll without time moving
                wake = min(wake, max(readout.next_event_s, now + MIN_POLL_S))
            with self.holds.interruptible(r.cell.id):
                suspended = await self._sleep(watch, wake)

    async def _poll(self, exp: PlannedExperiment, k: int, r: CellRun) -> Readout:
        """A poll, tried again after a garbled or refused reply (the link itself retries
        timeouts and broken connections); an instrument that keeps failing faults the cell."""
        for attempt in range(1, POLL_ATTEMPTS + 1):
            try:
                return await self._caller(r.instrument)(r.channel.poll)
            except CellseqError as exc:
                if attempt == POLL_ATTEMPTS:
                    await self._stop(r)
                    raise CellFault(f"{exp.name} step {k}: instrument failed {attempt} times"
                                    f" running: {exc}") from exc
                self.journal.event(r.cell.id, "poll_failed", f"{exp.name} step {k}: {exc};"
                                   f" polling again (attempt {attempt + 1} of {POLL_ATTEMPTS})")
                await self.clock.sleep_until(self.clock.now() + self.poll_s)
        raise AssertionError("unreachable")

    async def _stop(self, r: CellRun) -> bool:
        """Output off; a failure is journalled, not raised (the run goes on; the end of the
        run tries again, reconnecting). True if the output is known to be off."""
        try:
            await self._caller(r.instrument)(r.channel.stop)
            return True
        except CellseqError as exc:
            self._note(r.cell.id, "stop_failed", f"could not stop the output: {exc}")
            return False

    def _store_points(self, r: CellRun, step_id: int, step_index: int, t0: float,
                      step_t0: float, points: Points,
                      previous: tuple[float, float, float] | None, mark: Mark | None
                      ) -> tuple[tuple[float, float, float] | None, Mark | None]:
        """Store a poll's points, and count them. Points at or before ``mark`` (the last point
        this step stored: a re-attached instrument sends its points again) and points whose
        step time does not move on are neither stored nor counted; the counters integrate from
        ``previous`` (None: from the first point, or from the last one left out, which is
        where a continued technique's first point may sit)."""
        if len(points) == 0:
            return previous, mark
        step_time = step_t0 + points.time_s
        keep = np.diff(step_time, prepend=-np.inf) > 0
        if mark is not None:
            keep &= (t0 + points.time_s > mark.t) & (step_time > mark.step_t)
        if not keep.all():
            dropped = np.flatnonzero(~keep)
            if previous is None and dropped[0] == 0:
                k = int(dropped[np.searchsorted(dropped, np.flatnonzero(keep)[0]) - 1]) \
                    if keep.any() else int(dropped[-1])
                previous = (t0 + float(points.time_s[k]), float(points.voltage_V[k]),
                            float(points.current_A[k]))
            points = points.select(keep)
            if len(points) == 0:
                return previous, mark
        test_time = t0 + points.time_s
        step_time = step_t0 + points.time_s
        if points.frequency_Hz is None:
            counters = r.counters.accumulate(test_time, points.voltage_V, points.current_A,
                                             previous)
        else:  # an impedance sweep moves no net charge: the counters stand still
            counters = {k: np.full(len(points), v) for k, v in r.counters.as_dict().items()}
        temperature = points.temperature_C
        if temperature is None:   # the channel has no probe: the cell is at its chamber's air
            watch = self._watches.get(self.plan.station.chamber_of(r.cell.id) or "")
            air = watch.air_C if watch is not None else math.nan
            temperature = np.full(len(points), air)
        columns = {
            "test_time_s": test_time, "step_time_s": step_time,
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
        r.last = {"t": float(columns["test_time_s"][-1]),
                  "voltage_V": float(columns["voltage_V"][-1]),
                  "current_A": float(columns["current_A"][-1]),
                  "temperature_C": float(columns["temperature_C"][-1])}
        self._set_state(r, "running")
        last = float(test_time[-1])
        return ((last, float(points.voltage_V[-1]), float(points.current_A[-1])),
                Mark(last, float(step_time[-1])))

    # -- helpers ---------------------------------------------------------------------------

    def _set_state(self, r: CellRun, state: str, soak: SoakProgress | None = None,
                   **fields: Any) -> None:
        r.state = state
        checkpoint: dict[str, Any] = {"counters": r.counters.as_dict(), "fault": r.fault}
        if soak is not None:
            checkpoint["soak"] = asdict(soak)
        self.store.set_cell_state(
            r.cell.id, state, self.clock.now(), step_count=r.step_count, cycle=r.cycle,
            last=r.last, checkpoint=checkpoint, **fields)

    async def _limits_to_instruments(self) -> None:
        """Give each cell's limits to its channel where the instrument can watch them itself,
        so a limit is kept between the points the sequencer sees too."""
        watched, unwatched = [], []
        for cid, r in self.runs.items():
            lim = r.cell.limits
            if lim.max_voltage is None and lim.min_voltage is None and lim.max_current is None:
                continue
            limits = SafetyLimits(lim.max_voltage, lim.min_voltage, lim.max_current)
            ok = await self._caller(r.instrument)(lambda r=r, limits=limits:
                                                  r.channel.set_safety_limits(limits))
            (watched if ok else unwatched).append(cid)
        if watched or unwatched:
            self.journal.event(None, "limits_set", "safety limits watched by the instrument"
                               f" for: {', '.join(watched) or 'none'}; by the sequencer's"
                               " checks of each point only for:"
                               f" {', '.join(unwatched) or 'none'}")

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
        for r in self.runs.values():
            r.channel = r.instrument.channel(r.channel_index)

    async def _all_outputs_off(self) -> None:
        """Stop every channel and put chambers in standby; one failure does not stop the rest."""
        failed = [r for r in self.runs.values()
                  if hasattr(r, "channel") and not await self._stop(r)]   # opened ones
        for inst in {id(r.instrument): r.instrument for r in failed}.values():
            # the link may have died: connect again and stop what failed
            call = self._caller(inst)
            try:
                with contextlib.suppress(CellseqError):
                    await call(inst.close)
                await call(inst.open)
                for r in failed:
                    if r.instrument is inst:
                        r.channel = inst.channel(r.channel_index)
                        await call(r.channel.stop)
                        self._note(r.cell.id, "output_off", "output off after reconnecting")
            except CellseqError as exc:
                self._note(None, "stop_failed", f"{type(inst).__name__} could not be reached"
                           f" to turn its outputs off: {exc}; CHECK THE INSTRUMENT")
        for name, chamber in self.instruments.chambers.items():
            try:
                await self._caller(chamber)(chamber.standby)
            except CellseqError as exc:
                self._note(None, "standby_failed", f"{name}: {exc}")
        for inst in self.instruments.all():
            try:
                await self._caller(inst)(inst.close)
            except CellseqError as exc:
                self._note(None, "close_failed", f"{type(inst).__name__}: {exc}")

    def _note(self, cell: str | None, kind: str, message: str) -> None:
        """Journal while shutting down: a failing store must not stop the next output going
        off (run.log still gets the line)."""
        try:
            self.journal.event(cell, kind, message)
        except StoreError:
            self.journal.log(cell, kind, message)


def _describe(exc: BaseException) -> str:
    """An error for the journal: the messages of a group's errors, not its repr."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


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
