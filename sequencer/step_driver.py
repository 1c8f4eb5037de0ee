"""The step driver: one primitive step on one cell's channel, from its start to its end.

It starts the step's technique (or takes up the one a stopped run left running, through the
resume part), polls it, checks every point against the cell's safety limits, stores the points
with the cell's checkpoint in one transaction, and sleeps until the instrument says the
technique will next have news. A chamber that suspends its cells mid-step stops the output,
and so does a stop of the cell asked from outside (:mod:`sequencer.controls`); once the chamber
is back and nothing holds the cell, the step carries on under its resume policy. Each of these moves
returns a result type of :mod:`sequencer.step_outcomes`; :meth:`StepDriver.follow` is the loop
that turns them into the next move until the step has ended.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from drivers.clock import Clock
from drivers.errors import CapabilityError, CellseqError
from drivers.points import ChannelState, Points, Readout
from drivers.techniques import Technique
from sequencer import safety, start_check
from sequencer.cell_context import CellContext
from sequencer.cell_run import CellFault, CellRun, Mark
from sequencer.counters import SMALL_POLL
from sequencer.journal import Journal
from sequencer.pause import PauseControl
from sequencer.plan import PlannedExperiment, PlannedStep
from sequencer.progress import ExperimentProgress
from sequencer.resume import Resumer
from sequencer.station import Station
from sequencer.step_outcomes import (
    Continue,
    Driven,
    Ended,
    Interrupted,
    PointTVI,
    Restart,
    Running,
    Suspended,
    TakenUp,
)
from sequencer.suspenders import Suspenders
from store import Chunk, RunStore

#: Builds a step's technique when it starts, from what a stopped run's row of it recorded.
Resolve = Callable[[dict[str, Any] | None], Technique]

#: Polls of a running step tried before an instrument that answers wrongly faults the cell.
POLL_ATTEMPTS = 3
#: Below this |current| (A) a point is at open circuit: a rest's noise, not a current applied.
OPEN_CIRCUIT_A = 1e-6
MIN_POLL_S = 1e-3


class StepDriver:
    """Runs one step of one cell to its end (a part of the executor). Holds no state of its
    own between steps: a step's position lives in its :class:`~sequencer.step_outcomes`
    values and the cell's in its :class:`~sequencer.cell_context.CellContext` (it keeps only
    the JSON text of each planned step's parameters, which every pass of a loop repeats)."""

    def __init__(self, station: Station, store: RunStore, journal: Journal, clock: Clock,
                 poll_s: float, progress: ExperimentProgress, resumer: Resumer,
                 suspenders: Suspenders, pause: PauseControl) -> None:
        self._station, self._store, self._journal, self._clock = station, store, journal, clock
        self._poll_s, self._progress = poll_s, progress
        self._resumer, self._suspenders, self._pause = resumer, suspenders, pause
        #: each planned step's parameters as its rows record them (see :meth:`_params_json`)
        self._params: dict[tuple[int, str], tuple[PlannedStep, Technique, str]] = {}

    async def run(self, exp: PlannedExperiment, node: PlannedStep, cell: CellContext,
                  resolve: Resolve | None = None) -> tuple[str, Technique]:
        """Run one primitive step to its end (a resumed run replays it, or takes it up where
        the stopped run left it); return the end reason and the technique it ran.

        ``resolve`` builds the technique when the step starts (a C-rate of a measured
        capacity), given what the stopped run's row of this step recorded (None if it has
        none): a resumed step runs what the stopped run resolved, not a new resolution."""
        cell.run.step_count += 1
        cell.run.step_params = {}
        replayed = self._resumer.replay(cell)
        technique = node.techniques[cell.id]
        move: TakenUp
        row_before = cell.run.step_id
        try:
            if resolve is not None:
                technique = resolve(self._resumer.recorded_params(cell, replayed))
            if isinstance(replayed, Ended):
                recorded = self._resumer.recorded_params(cell, replayed) or {}
                if start_check.PARAM in recorded:   # as the stopped run saw it end
                    cell.run.step_params = {**cell.run.step_params,
                                            start_check.PARAM: recorded[start_check.PARAM]}
                return replayed.reason, technique
            if isinstance(replayed, Interrupted):
                move = await self._resumer.take_up(exp, node, cell, technique, replayed.row)
            else:
                move = await self.start(exp, node, cell, technique)
        except CellFault as exc:
            if not isinstance(replayed, Interrupted) and cell.run.step_id == row_before:
                # the fault came before the step started: name that step, which has no row
                # (and so no step count) of its own
                exc.prevented = exc.prevented or (exp.name, node.number, node.kind)
                cell.run.step_count -= 1
            raise
        return await self.follow(exp, node, cell, technique, move), technique

    async def follow(self, exp: PlannedExperiment, node: PlannedStep, cell: CellContext,
                     technique: Technique, move: TakenUp) -> str:
        """Make moves until the step has ended: drive a running technique; start the step
        again or continue it as the resume part says; after a chamber suspension or a stop
        from outside the cell rests until the chamber is back and nothing holds it, then the
        step carries on under its resume policy."""
        while True:
            if isinstance(move, Ended):
                return move.reason
            if isinstance(move, Restart):
                started = await self.start(exp, node, cell, technique, move.after_t)
                if isinstance(started, Ended):
                    return started.reason
                running = started
            elif isinstance(move, Continue):
                running = await self.continue_step(exp, node, cell, technique, move)
            else:
                running = move
            driven = await self.drive(exp, node, cell, running)
            if isinstance(driven, Ended):
                return driven.reason
            await self._suspenders.wait_for_chamber(exp, cell)
            await self._pause.safe_point([cell], announce=False)   # a cell stopped from outside
            move = self._resumer.carry_on(exp, node, cell, technique, running.step_id,
                                          driven.mark, driven.elapsed_s)

    async def start(self, exp: PlannedExperiment, node: PlannedStep, cell: CellContext,
                    technique: Technique, after_t: float | None = None) -> Running | Ended:
        """Start a step afresh; ``after_t``: a restarted step keeps no point from before the
        last one its interrupted attempt stored. A step whose voltage cut-off the cell has
        already reached ends at once, with no current applied (:mod:`sequencer.start_check`)."""
        await self._resumer.restate_chamber(exp)
        await self._suspenders.wait_for_chamber(exp, cell)
        k = node.number
        r = cell.run
        cuts = start_check.cut_offs(technique)
        at_start_V = await self._open_circuit_V(exp, node, cell, cuts)
        met = None if at_start_V is None else start_check.met_at_start(technique, at_start_V,
                                                                       cuts)
        if met is not None:
            r.step_params = {**r.step_params, start_check.PARAM: met}
        started = self._clock.now()
        r.off = None
        params = self._params_json(node, r, technique)
        with self._store.transaction():
            step_id = self._store.begin_step(r.cell.id, exp.name, r.step_count, k, node.kind,
                                             r.cycle, started, params)
            r.step_id = step_id
            cell.set_state("running", experiment=exp.name, step_index=k, step_kind=node.kind,
                           step_started_t=started,
                           step_estimate_s=getattr(technique, "duration_s", None))
            self._journal.log(r.cell.id, "step_started", f"{exp.name} step {k} {node.kind}"
                              f" (cycle {r.cycle}, step count {r.step_count})")
        if at_start_V is not None:
            ended = self._at_start(exp, node, cell, step_id, at_start_V, met)
            if ended is not None:
                return ended
        try:
            await cell.call(lambda: r.channel.start(technique))
            attachment = await cell.call(r.channel.attachment)
        except CellseqError as exc:
            raise CellFault(f"{exp.name} step {k} ({node.kind}) refused: {exc}") from exc
        self._store_attachment(step_id, attachment)
        mark = None if after_t is None else Mark(after_t, -math.inf)
        return Running(step_id, started, 0.0, None, mark)

    async def _open_circuit_V(self, exp: PlannedExperiment, node: PlannedStep,
                              cell: CellContext, cuts: tuple[start_check.CutOff, ...]
                              ) -> float | None:
        """The cell's voltage before a step with a voltage cut-off (``cuts``: the step's)
        starts (the output is off between steps); None for a step without one, or a channel
        that cannot read it on demand (its instrument then ends the step on its first
        reading)."""
        if not cuts:
            return None
        try:
            return float(await cell.call(cell.run.channel.read_voltage))
        except CapabilityError:
            return None
        except CellseqError as exc:
            await cell.stop()
            raise CellFault(f"{exp.name} step {node.number} ({node.kind}) not started: the"
                            f" cell's voltage could not be read before it: {exc}") from exc

    def _at_start(self, exp: PlannedExperiment, node: PlannedStep, cell: CellContext,
                  step_id: int, voltage_V: float, met: str | None) -> Ended | None:
        """End the step just begun at once, its open-circuit reading its one point, when the
        reading is beyond the cell's safety limits (a fault) or at its cut-off (``met``);
        None when the step is to run."""
        r = cell.run
        if met is None and safety.point_within(r.cell.limits, voltage_V, 0.0, None):
            return None   # the usual case, told without building the point's arrays
        point = Points(time_s=np.zeros(1), voltage_V=np.array([voltage_V]),
                       current_A=np.zeros(1))
        trip = safety.check(r.cell.limits, point)
        if trip is None and met is None:
            return None
        first_reading = not r.last
        where = f"{exp.name} step {node.number} {node.kind}"
        with self._store.transaction():
            self.store_points(cell, step_id, node.number, self._clock.now(), 0.0, point,
                              None, None)
            reason = "safety_limit" if trip is not None else start_check.REASON
            self._store.end_step(step_id, self._clock.now(), reason, r.counters.as_dict())
            if trip is not None:
                self._journal.event(r.cell.id, "safety_trip", f"{trip} ({where}: at open"
                                    " circuit, before any current)", quantity=trip.quantity,
                                    value=trip.value, limit=trip.limit)
            else:
                self._journal.event(r.cell.id, "step_ended_at_start", f"{where}: {reason}"
                                    f" ({met}: the step ended at once, no current applied)",
                                    voltage_V=voltage_V)
        self._progress.advanced(exp)
        if trip is not None:
            raise CellFault(f"safety limit: {trip} ({where}: at open circuit, before any"
                            f" current){_hint(trip, first_reading, point)}")
        return Ended(start_check.REASON)
    def _params_json(self, node: PlannedStep, r: CellRun, technique: Technique) -> str:
        """The JSON text of what a step's row records: its technique's numbers, the step as
        written, and what the cell adds (:attr:`CellRun.step_params`). The same for every
        pass of a loop over the step unless the cell adds something, so kept per step."""
        if r.step_params:
            return json.dumps({**_params(technique), "written_kind": node.written_kind,
                               "tag": node.step.tag, **r.step_params})
        key = (id(node), r.cell.id)
        known = self._params.get(key)
        if known is not None and known[0] is node and known[1] is technique:
            return known[2]
        text = json.dumps({**_params(technique), "written_kind": node.written_kind,
                           "tag": node.step.tag})
        self._params[key] = (node, technique, text)
        return text

    async def continue_step(self, exp: PlannedExperiment, node: PlannedStep, cell: CellContext,
                            technique: Technique, move: Continue) -> Running:
        """Start what is left of an interrupted step (``move.technique``) on the idle channel."""
        k = node.number
        r = cell.run
        try:
            await cell.call(lambda: r.channel.start(move.technique))
        except CellseqError as exc:
            raise CellFault(f"{exp.name} step {k} ({node.kind}) refused: {exc}") from exc
        await self._keep_attachment(cell, move.step_id)
        r.off = None
        now = self._clock.now()
        with self._store.transaction():
            cell.set_state("running", experiment=exp.name, step_index=k, step_kind=node.kind,
                           step_started_t=now - move.elapsed_s,
                           step_estimate_s=getattr(technique, "duration_s", None))
            self._journal.event(r.cell.id, "step_resumed", f"{exp.name} step {k} {node.kind}:"
                                f" continues for the remaining"
                                f" {move.technique.duration_s:.0f} s", elapsed_s=move.elapsed_s)
        # the counters integrate afresh from the continued technique's first point: nothing
        # flowed while the output was off
        return Running(move.step_id, now, move.elapsed_s, None, move.mark)

    async def _keep_attachment(self, cell: CellContext, step_id: int) -> None:
        """Keep with the step what the instrument calls the technique just started, so a
        later run finds it there again, running or finished."""
        self._store_attachment(step_id, await cell.call(cell.run.channel.attachment))

    def _store_attachment(self, step_id: int, attachment: dict[str, str] | None) -> None:
        """:meth:`_keep_attachment` of what the channel was asked already (None: nothing)."""
        if attachment is not None:
            with self._store.transaction():
                self._store.set_attachment(step_id, attachment)

    async def drive(self, exp: PlannedExperiment, node: PlannedStep, cell: CellContext,
                    running: Running) -> Driven:
        """Poll a running technique to its end, storing its points (see :meth:`store_points`).
        Returns the end reason or, when the chamber suspended the cell or a stop from outside
        came (output off), the last point stored and the step time the output ran for."""
        k = node.number
        r = cell.run
        watch = self._suspenders.watch_of(exp)
        step_id, t0, step_t0 = running.step_id, running.t0, running.step_t0
        previous, mark = running.previous, running.mark
        suspended = False
        if previous is None and mark is None:   # a technique just started: look before polling
            wake = await self._quiet_until(cell)
            if wake is not None:
                suspended = await self._suspenders.sleep(watch, wake, cell.id)
        while True:
            readout = await self._poll(exp, k, cell)
            points = readout.points
            first_reading = not r.last
            trip = safety.check(r.cell.limits, points)
            if trip is not None:
                await cell.stop()
                points = points.select(points.time_s <= trip.time_s)
            with self._store.transaction():
                previous, mark = self.store_points(cell, step_id, k, t0, step_t0, points,
                                                   previous, mark)
                if trip is not None:
                    # the output ran until the stop, unless the instrument had ended the step
                    ended = self._clock.now() if readout.state is ChannelState.RUNNING \
                        else _ended_at(previous, self._clock.now())
                    self._store.end_step(step_id, ended, "safety_limit", r.counters.as_dict())
                    self._journal.event(r.cell.id, "safety_trip", str(trip),
                                        quantity=trip.quantity, value=trip.value,
                                        limit=trip.limit)
                elif readout.state in (ChannelState.DONE, ChannelState.FAULT):
                    self._store.end_step(step_id, _ended_at(previous, self._clock.now()),
                                         readout.end_reason or "done", r.counters.as_dict())
                    self._journal.log(r.cell.id, "step_ended", f"{exp.name} step {k}"
                                      f" {node.kind}: {readout.end_reason}")
            self._progress.advanced(exp)
            if trip is not None:
                raise CellFault(f"safety limit: {trip}{_hint(trip, first_reading, points)}")
            if readout.state is ChannelState.FAULT:
                raise CellFault(f"{exp.name} step {k}: channel fault ({readout.end_reason})")
            if readout.state is ChannelState.DONE:
                return Ended(readout.end_reason or "done")
            stopped_by = self._pause.holds.take_stop(cell.id)   # a stop asked from outside
            if suspended or stopped_by is not None:
                await cell.stop()
                stopped = self._clock.now()
                elapsed = step_t0 + stopped - t0
                if previous is not None:   # the output ran on at the last current until now
                    r.counters.hold(previous, stopped)
                r.off = {"step_id": step_id, "elapsed_s": elapsed}
                with self._store.transaction():
                    if stopped_by is not None:
                        cell.set_state("paused")
                        self._journal.event(r.cell.id, "cell_stopped", f"{exp.name} step {k}"
                                            f" {node.kind}: output off at step time"
                                            f" {elapsed:.0f} s ({stopped_by})")
                    else:
                        assert watch is not None
                        cell.set_state("suspended")
                        self._journal.event(r.cell.id, "cell_suspended", f"{exp.name} step"
                                            f" {k} {node.kind}: output off at step time"
                                            f" {elapsed:.0f} s while {watch.name} is"
                                            f" {watch.reason}")
                return Suspended(mark, elapsed)
            suspended = await self._suspenders.sleep(watch, self._wake(readout.next_event_s),
                                                     cell.id)

    def _wake(self, next_event_s: float | None) -> float:
        """When to poll a running technique next: after the poll interval, or at its next
        news if that comes sooner."""
        now = self._clock.now()
        wake = now + self._poll_s
        if next_event_s is not None:
            # never wait for a moment already past: that would poll without time moving
            wake = min(wake, max(next_event_s, now + MIN_POLL_S))
        return wake

    async def _quiet_until(self, cell: CellContext) -> float | None:
        """When to poll a technique just started for the first time: at its next news, where
        the channel can peek at it (:meth:`~drivers.interfaces.Channel.peek`) and what it shows
        calls for nothing now (the technique runs on, every point so far is within the cell's
        limits); None: poll now. The points peeked at come with that poll, checked again: a
        step's points come in one poll, and a point beyond a limit is still acted on at the
        time the first poll would have found it."""
        r = cell.run
        try:
            peeked = await cell.call(r.channel.peek)
        except CellseqError:
            return None   # the poll reports it
        if peeked is None or peeked.state is not ChannelState.RUNNING \
                or peeked.next_event_s is None or peeked.next_event_s <= self._clock.now() \
                or safety.check(r.cell.limits, peeked.points) is not None:
            return None
        return self._wake(peeked.next_event_s)

    async def _poll(self, exp: PlannedExperiment, k: int, cell: CellContext) -> Readout:
        """A poll, tried again after a garbled or refused reply (the link itself retries
        timeouts and broken connections); an instrument that keeps failing faults the cell."""
        for attempt in range(1, POLL_ATTEMPTS + 1):
            try:
                return await cell.call(cell.run.channel.poll)
            except CellseqError as exc:
                if attempt == POLL_ATTEMPTS:
                    await cell.stop()
                    raise CellFault(f"{exp.name} step {k}: instrument failed {attempt} times"
                                    f" running: {exc}") from exc
                self._journal.event(cell.id, "poll_failed", f"{exp.name} step {k}: {exc};"
                                    f" polling again (attempt {attempt + 1} of"
                                    f" {POLL_ATTEMPTS})")
                await self._clock.sleep_until(self._clock.now() + self._poll_s)
        raise AssertionError("unreachable")

    def store_points(self, cell: CellContext, step_id: int, step_index: int, t0: float,
                     step_t0: float, points: Points, previous: PointTVI | None,
                     mark: Mark | None) -> tuple[PointTVI | None, Mark | None]:
        """Store a poll's points, and count them. Points at or before ``mark`` (the last point
        this step stored: a re-attached instrument sends its points again) and points whose
        step time does not move on are neither stored nor counted; the counters integrate from
        ``previous`` (None: from the first point, or from the last one left out, which is
        where a continued technique's first point may sit).

        A poll of a few points in order (a dry run's usual poll: one or two points) is worked
        out in plain floats, the same operations in the same order as numpy's, so the same
        bits: numpy's set-up per call costs more than such a poll's arithmetic."""
        n = len(points)
        if n == 0:
            return previous, mark
        r = cell.run
        few = _few_in_order(points, t0, step_t0, mark) \
            if n <= SMALL_POLL and points.frequency_Hz is None and _all_f8(points) else None
        columns: dict[str, Any]
        if few is not None:
            test_time, step_time, voltage, current = few
            origin = self._clock.origin_utc
            temperature: Any = points.temperature_C
            if temperature is None:   # the channel has no probe: the cell is at its chamber's air
                temperature = [self._suspenders.air_C(self._station.chamber_of(r.cell.id))] * n
            columns = {
                "test_time_s": test_time, "step_time_s": step_time,
                "utc_s": [origin + t for t in test_time], "voltage_V": voltage,
                "current_A": current, "temperature_C": temperature.tolist()
                if isinstance(temperature, np.ndarray) else temperature,
                **r.counters.accumulate_few(test_time, voltage, current, previous)}
            last = test_time[-1]
            stored = (last, voltage[-1], current[-1])
            last_step_t = step_time[-1]
        else:
            columns, previous = self._columns(r, t0, step_t0, points, previous, mark)
            if columns is None:
                return previous, mark
            last = float(columns["test_time_s"][-1])
            stored = (last, float(columns["voltage_V"][-1]), float(columns["current_A"][-1]))
            last_step_t = float(columns["step_time_s"][-1])
        kind = "spectrum" if "frequency_Hz" in columns else "series"
        self._store.append(step_id, Chunk(r.cell.id, r.step_count, step_index, r.cycle, kind,
                                          columns))
        r.last = {"t": last, "voltage_V": stored[1], "current_A": stored[2],
                  "temperature_C": float(columns["temperature_C"][-1])}
        cell.set_state("running")
        return stored, Mark(last, last_step_t)

    def _columns(self, r: CellRun, t0: float, step_t0: float, points: Points,
                 previous: PointTVI | None, mark: Mark | None
                 ) -> tuple[dict[str, np.ndarray] | None, PointTVI | None]:
        """:meth:`store_points`' columns of a poll, as arrays, with the points out of order
        or at or before ``mark`` left out (None if none is left), and where the counters
        integrate from."""
        step_time = step_t0 + points.time_s
        # points come in order and after the mark, but for a re-attached instrument's first
        # poll (it sends its points again) and an instrument's glitch
        in_order = _rising(step_time) and (
            mark is None or (t0 + float(points.time_s[0]) > mark.t
                             and float(step_time[0]) > mark.step_t))
        if not in_order:
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
                    return None, previous
                step_time = step_t0 + points.time_s
        test_time = t0 + points.time_s
        if points.frequency_Hz is None:
            counters = r.counters.accumulate(test_time, points.voltage_V, points.current_A,
                                             previous)
        else:  # an impedance sweep moves no net charge: the counters stand still
            counters = {k: np.full(len(points), v) for k, v in r.counters.as_dict().items()}
        temperature = points.temperature_C
        if temperature is None:   # the channel has no probe: the cell is at its chamber's air
            air = self._suspenders.air_C(self._station.chamber_of(r.cell.id))
            temperature = np.full(len(points), air)
        columns = {
            "test_time_s": test_time, "step_time_s": step_time,
            "utc_s": self._clock.origin_utc + test_time, "voltage_V": points.voltage_V,
            "current_A": points.current_A, "temperature_C": temperature, **counters,
        }
        if points.frequency_Hz is not None:
            columns.update(frequency_Hz=points.frequency_Hz, z_real_ohm=points.z_real_ohm,
                           z_imag_ohm=points.z_imag_ohm)
        return columns, previous


def _all_f8(points: Points) -> bool:
    """Whether a poll's times, voltages and currents are float64 (what numpy sums them in)."""
    return points.time_s.dtype.char == points.voltage_V.dtype.char == \
        points.current_A.dtype.char == "d"


def _few_in_order(points: Points, t0: float, step_t0: float, mark: Mark | None
                  ) -> tuple[list[float], list[float], list[float], list[float]] | None:
    """A few points' test times, step times, voltages and currents as lists, if they are in
    order and after ``mark`` (see :meth:`StepDriver.store_points`); None if they are not."""
    times = points.time_s.tolist()
    step_time = [step_t0 + t for t in times]
    previous = -math.inf
    for t in step_time:
        if not t > previous:   # NaN too
            return None
        previous = t
    test_time = [t0 + t for t in times]
    if mark is not None and not (test_time[0] > mark.t and step_time[0] > mark.step_t):
        return None
    return test_time, step_time, points.voltage_V.tolist(), points.current_A.tolist()


def _ended_at(last: PointTVI | None, now: float) -> float:
    """When a step the instrument ended by itself ended: at its last reading (``last``, the
    step's last stored point), not when a poll found it over (a paced or hardware run polls
    a while after). So a step's recorded duration does not depend on how often it was polled;
    ``now`` where the step stored no point."""
    return now if last is None else min(now, last[0])


def _hint(trip: safety.Trip, first_reading: bool, points: Points) -> str:
    """What to do about a cell found below its min_voltage at its very first reading of the
    run, at open circuit: nothing the run did put it there."""
    at_rest = abs(float(points.current_A[0])) < OPEN_CIRCUIT_A
    if not (first_reading and at_rest and trip.quantity == "voltage"
            and trip.value < trip.limit):
        return ""
    return ("; it is the cell's first reading in this run, before any current: a fresh cell"
            " whose anode holds no lithium yet (graphite, silicon) rests near 0-1 V until its"
            " first charge, so give min_voltage below that for its formation (a dry run"
            " simulates such a fresh cell unless the cell states it is formed:"
            " initial_state: {formed: true, soc: 50 %})")


def _rising(step_time: np.ndarray) -> bool:
    """Every point's step time moves on from the one before (the first from nothing): a poll
    whose points are all kept."""
    if not step_time[0] > -math.inf:   # NaN
        return False
    return len(step_time) == 1 or bool((step_time[1:] > step_time[:-1]).all())


def _params(technique: object) -> dict[str, Any]:
    return {"technique": type(technique).__name__,
            **{k: v for k, v in vars(technique).items()
               if isinstance(v, int | float) and math.isfinite(v)}}
