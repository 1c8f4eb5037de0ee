"""The executor: runs a plan's experiments on instruments and streams every point to the store.

Experiments run as the plan scheduled them: each starts when every earlier experiment sharing a
channel or chamber with it has ended, except that experiments sharing a chamber whose
temperature schedules agree run together and soak once for all
(:mod:`sequencer.shared_chamber`). Within an experiment each cell runs its steps independently
on its own channel; a ``set_temperature`` step is a meeting point: every cell stops there, the
chamber soaks once, then all go on. Each poll's points and the cell's checkpoint commit in one
transaction. Whatever happens, every output is turned off before the executor returns.

The executor walks the plan (experiments, soaks, loops) and composes parts that each own their
state (``docs/architecture.md`` describes them): a :class:`~sequencer.cell_context.CellContext`
per cell, the :class:`~sequencer.step_driver.StepDriver` that runs one step on one channel, the
:class:`~sequencer.resume.Resumer` that replays a stopped run, the chamber
:class:`~sequencer.suspenders.Suspenders`, and :class:`~sequencer.pause.PauseControl`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from analysis.cycles import StepOutcome, ended_at_once
from core.text import counted, plural
from drivers.clock import Clock
from drivers.errors import CapabilityError, CellseqError
from drivers.interfaces import SafetyLimits
from drivers.techniques import ConstantCurrent, Technique
from protocols.cells import CellKind
from protocols.steps import Loop, SetTemperature
from protocols.units import kelvin_to_celsius
from sequencer import start_check
from sequencer.branches import branch_of
from sequencer.calls import caller_for
from sequencer.capacity_basis import PlannedReference
from sequencer.cell_context import CellContext
from sequencer.cell_run import CellFault, CellRun
from sequencer.handlers import technique_for, voltage_window
from sequencer.handlers.set_temperature import SoakProgress, SoakTimeout, soak
from sequencer.instruments import Instruments, channel_capabilities
from sequencer.journal import Journal
from sequencer.loop_conditions import CycleTracker, measured_reason, watched_discharge
from sequencer.pause import Holds, PauseControl
from sequencer.plan import Plan, PlannedExperiment, PlannedStep
from sequencer.progress import ExperimentProgress, NoProgress
from sequencer.resume import Resumer, ResumeState
from sequencer.shared_chamber import Arrivals, ChamberShare
from sequencer.status import run_outcome
from sequencer.step_driver import StepDriver
from sequencer.step_outcomes import SoakSettled, SoakUnderWay
from sequencer.suspenders import WATCH_S, Suspenders
from store import RunStore, StoreError

#: Longest wait between polls. Hardware is polled every second; a simulated channel says when
#: its technique ends, so dry runs wake only then (or after an hour of virtual time at most).
HARDWARE_POLL_S = 1.0
SIMULATED_POLL_S = 3600.0


@dataclass
class Seen:
    """What a block of steps ended with: every end reason its steps gave, whether a loop
    inside it already journalled the break (a short circuit) that ends the loops around it,
    and the loop around it (its number, and why) whose capacity retention fell below its
    threshold inside the block: every loop up to that one ends."""

    reasons: set[str] = field(default_factory=set)
    break_reported: bool = False
    ended_by: tuple[int, str] | None = None

    def add(self, other: Seen) -> None:
        self.reasons |= other.reasons
        self.break_reported |= other.break_reported
        self.ended_by = self.ended_by or other.ended_by


@dataclass(frozen=True)
class RetentionWatch:
    """A loop's ``until: capacity_retention_below``: checked after each iteration of the loop
    and of every loop inside it, on the cycles of the discharge step numbered ``watched``."""

    loop: int
    below: float
    watched: int


class Executor:
    """Runs a plan; its parts (see the module's docstring) do the work."""

    def __init__(self, plan: Plan, instruments: Instruments, store: RunStore, journal: Journal,
                 clock: Clock, poll_s: float, progress: NoProgress | None = None,
                 resume: ResumeState | None = None, watch_s: float = WATCH_S,
                 on_start: Callable[[], None] | None = None) -> None:
        self.plan, self.instruments, self.store = plan, instruments, store
        self.journal, self.clock, self.poll_s = journal, clock, poll_s
        self.resume, self.watch_s = resume, watch_s
        #: called once the checks before a run have passed, before it writes anything
        self.on_start = on_start
        #: set when the user stopped the run (Ctrl-C twice, or a stop from the dashboard)
        self.interrupted = False
        #: what the journal gives as the reason when the run is interrupted
        self.stop_reason = "interrupted by the user (Ctrl-C)"
        self.pause_control = PauseControl(store, journal, clock)
        self.suspenders = Suspenders(instruments.chambers, store, journal, clock,
                                     self.pause_control, watch_s)
        self.resumer = Resumer(resume, store, journal, clock, instruments.chambers,
                               self.suspenders)
        self.progress = ExperimentProgress(progress or NoProgress(), clock)
        self.driver = StepDriver(plan.station, store, journal, clock, poll_s, self.progress,
                                 self.resumer, self.suspenders, self.pause_control)
        #: each sharing experiment's chamber share (one object per group of sharers)
        self.shares: dict[int, ChamberShare] = {}
        for exp in plan.experiments:
            if exp.sharing and exp.index not in self.shares:
                share = ChamberShare([plan.experiments[i] for i in exp.sharing])
                self.shares.update(dict.fromkeys(exp.sharing, share))
        self.cells: dict[str, CellContext] = {}
        for cell_id, placement in plan.station.cells.items():
            if any(cell_id in e.cells for e in plan.experiments):
                inst = instruments.channels[placement.instrument]
                run = CellRun(plan.campaign.cell(cell_id), inst, placement.channel)
                self.cells[cell_id] = CellContext(run, store, journal, clock)
        #: each cell's place in the campaign (the runs of :attr:`cells`)
        self.runs: dict[str, CellRun] = {cid: c.run for cid, c in self.cells.items()}
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
        self.pause_control.pause()

    def unpause(self) -> None:
        self.pause_control.unpause()

    @property
    def paused(self) -> bool:
        return self.pause_control.paused

    @property
    def holds(self) -> Holds:
        """Pauses and stops, of the whole run and of single cells (:mod:`sequencer.controls`
        changes them)."""
        return self.pause_control.holds

    async def _safe_point(self, cells: list[CellContext]) -> None:
        """A pause point: between steps, with the channels idle. A hold takes effect here."""
        await self.pause_control.safe_point(cells)

    async def run(self) -> None:
        """Run every experiment; outputs off and chambers to standby however it ends."""
        try:
            await self._open_all()
            if self.resume is not None:
                await self.resumer.check_cells_present(self.cells)
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
                    for c in self.cells.values():
                        if c.run.state != "faulted":
                            c.set_state("pending")
                self.journal.event(None, "run_started",
                                   f"{counted(len(self.plan.experiments), 'experiment')},"
                                   f" {counted(len(self.cells), 'cell')}")
            finished = {e.index: trio.Event() for e in self.plan.experiments}
            async with trio.open_nursery() as nursery:
                for exp in self.plan.experiments:
                    nursery.start_soon(self._run_when_free, exp, finished)
            for c in self.cells.values():
                if c.run.state != "faulted":
                    with self.store.transaction():
                        c.set_state("completed")
            outcome = run_outcome(r.state for r in self.runs.values())
            faulted = [c for c, r in self.runs.items() if r.state == "faulted"]
            self.journal.event(None, f"run_{outcome}", "all experiments done" + (
                f"; {len(faulted)} of {len(self.runs)} {plural(len(self.runs), 'cell')}"
                f" faulted: {', '.join(faulted)}"
                if faulted else ""), status=outcome, faulted=faulted)
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                interrupted = self.interrupted or isinstance(exc, KeyboardInterrupt) or (
                    isinstance(exc, BaseExceptionGroup)
                    and exc.subgroup(KeyboardInterrupt) is not None)
                reason = self.stop_reason if interrupted else f"aborted: {_describe(exc)}"
                try:
                    with self.store.transaction():
                        for c in self.cells.values():
                            if c.run.state in ("running", "pending", "paused", "suspended"):
                                c.set_state("aborted")
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
            if exp.index in self.shares:
                self.shares[exp.index].leave(exp)
            finished[exp.index].set()

    async def _run_experiment(self, exp: PlannedExperiment) -> None:
        if self.resumer.finished(exp):
            self.resumer.fast_forward(exp, self.cells)
            return
        cells = [self.cells[c] for c in exp.cells if self.runs[c].state != "faulted"]
        skipped = [c for c in exp.cells if self.runs[c].state == "faulted"]
        for cid in skipped:
            self.resumer.event_once(cid, "experiment_skipped",
                                    f"{exp.name}: cell faulted earlier ({self.runs[cid].fault})")
        for c in cells:
            c.run.set_point_degC = None
        self.resumer.event_once(None, "experiment_started", exp.name, cells=list(exp.cells))
        self.progress.started(exp)
        async with trio.open_nursery() as watching:
            share = self.shares.get(exp.index)
            if exp.chamber is not None:
                watching.start_soon(self.suspenders.watch_chamber, exp, share)
            soaks = 0
            for segment in _segments(exp.steps):
                cells = [c for c in cells if c.run.state != "faulted"]
                if not cells:
                    break
                if isinstance(segment, PlannedStep) and share is not None:
                    await self._safe_point(cells)
                    await share.meet(soaks, exp, cells,
                                     lambda arrived, node=segment: self._soak_all(node, arrived))
                    soaks += 1
                elif isinstance(segment, PlannedStep):
                    await self._safe_point(cells)
                    await self._soak_all(segment, {exp.name: (exp, cells)})
                else:
                    async with trio.open_nursery() as nursery:
                        for c in cells:
                            nursery.start_soon(self._run_cell, exp, segment, c)
            watching.cancel_scope.cancel()
        self.progress.finished(exp)
        self.resumer.event_once(None, "experiment_finished", exp.name)

    async def _soak_all(self, node: PlannedStep, arrived: Arrivals) -> None:
        """The meeting point of a temperature step: the chamber soaks once for the cells of
        every experiment in ``arrived`` (one, or the sharers of the chamber); a failure
        faults them all and is reported for each experiment."""
        assert isinstance(node.step, SetTemperature)
        step = node.step
        members = list(arrived.values())
        exp0 = members[0][0]
        assert exp0.chamber is not None
        chamber = self.instruments.chambers[exp0.chamber]
        k = node.number
        cells = [c for _, cs in members for c in cs]
        of = {c.id: e for e, cs in members for c in cs}
        for c in cells:
            c.run.step_count += 1
            c.run.set_point_degC = kelvin_to_celsius(step.target)
        carried: SoakProgress | None = None
        ids: dict[str, int] = {}
        replayed = self.resumer.soak_replayed(chamber, step, cells)
        if isinstance(replayed, SoakSettled):
            return
        if isinstance(replayed, SoakUnderWay):
            ids, carried = replayed.step_ids, replayed.progress
        names = [e.name for e, _ in members]
        if not ids:
            with self.store.transaction():
                for c in cells:
                    r = c.run
                    ids[c.id] = self.store.begin_step(
                        c.id, of[c.id].name, r.step_count, k, step.kind, r.cycle,
                        self.clock.now(), {"target_K": step.target, "tolerance_K": step.tolerance})
                    c.set_state("running", experiment=of[c.id].name, step_index=k,
                                step_kind=step.kind, step_started_t=self.clock.now(),
                                step_estimate_s=step.timeout)
                for name in names:
                    self.journal.event(None, "soak_started", f"{exp0.chamber} to"
                                       f" {step.target - 273.15:g} degC{_with(names, name)}",
                                       experiment=name)

        def checkpoint(progress: SoakProgress) -> None:
            with self.store.transaction():
                for c in cells:
                    c.set_state("running", soak=progress)

        watch = self.suspenders.watch_of(exp0)
        assert watch is not None
        watch.soaking = True
        try:
            result = await soak(chamber, step, self.clock, caller_for(chamber), carried,
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
            for c in cells:
                self.store.end_step(ids[c.id], self.clock.now(), reason,
                                    c.run.counters.as_dict())
                if fault:
                    c.run.fault = f"{of[c.id].name}: {fault}"
                    c.set_state("faulted")
            for name in names:
                if fault:
                    self.journal.event(None, "soak_failed", fault + _with(names, name),
                                       experiment=name)
                else:
                    self.journal.event(None, "soak_settled", f"{exp0.chamber} stable at"
                                       f" {result.last.temperature_C:g} degC after"
                                       f" {result.settled_after_s / 60:.1f} min"
                                       f"{_with(names, name)}", experiment=name)

    async def _run_cell(self, exp: PlannedExperiment, steps: list[PlannedStep],
                        cell: CellContext) -> None:
        try:
            with self.holds.running(cell.id):
                await self._run_steps(exp, steps, cell)
        except CellFault as exc:
            message, at = str(exc), {}
            if exc.prevented is not None:   # the fault came before this step started
                name, index, kind = exc.prevented
                where = f"{name} step {index} ({kind})"
                if not message.startswith(where):
                    message = f"{where} not started: {message}"
                at = {"experiment": name, "step_index": index, "step_kind": kind}
            with self.store.transaction():
                cell.run.fault = message
                cell.set_state("faulted", **at)
                self.journal.event(cell.id, "cell_faulted", message, experiment=exp.name)

    async def _run_steps(self, exp: PlannedExperiment, steps: tuple[PlannedStep, ...] |
                         list[PlannedStep], cell: CellContext, iteration: int | None = None,
                         breaks: frozenset[str] = frozenset(), scope: int | None = None,
                         watches: tuple[RetentionWatch, ...] = ()) -> Seen:
        """Run ``steps``; return the end reasons seen. A reason in ``breaks`` (a short circuit
        inside a loop that ends on one), or the capacity retention of a loop around them
        falling below its threshold, leaves the block at once. ``scope``: where in the cell's
        steps run so far the outermost loop around them began (None outside loops);
        ``watches``: the retention conditions of the loops around them."""
        seen = Seen()
        taken: dict[tuple[int, str], int] = {}   # branches taken in this run of the block
        index = 0
        while index < len(steps):
            node = steps[index]
            index += 1
            every = node.step.every
            if every is not None and iteration is not None and (iteration - 1) % every:
                continue
            if isinstance(node.step, Loop):
                seen.add(await self._run_loop(exp, node, cell, breaks, scope, watches))
            else:
                reason = await self._run_channel_step(exp, node, cell)
                seen.reasons.add(reason)
                target = self._branch(exp, node, cell, reason, taken)
                if target is not None:
                    index = next(i for i, n in enumerate(steps) if n.number == target)
            if seen.reasons & breaks or seen.ended_by is not None:
                break
        return seen

    def _branch(self, exp: PlannedExperiment, node: PlannedStep, cell: CellContext,
                reason: str, taken: dict[tuple[int, str], int]) -> int | None:
        """The number of the step a branch of ``node`` goes to on ``reason``, if one is
        written and not yet taken as often as it may be (``taken`` counts)."""
        branch = branch_of(exp.branches, node.number, reason)
        if branch is None:
            return None
        key = (branch.source, branch.reason)
        done = taken.get(key, 0)
        r = cell.run
        where = f"{exp.name} step {node.number} (step count {r.step_count})"
        if branch.at_most is not None and done >= branch.at_most:
            self.resumer.event_once(cell.id, "branch_bound", f"{where} ended on"
                                    f" {branch.reason}: goto {branch.label!r} not taken, taken"
                                    f" {done} times already (at most {branch.at_most})")
            return None
        taken[key] = done + 1
        bound = f" ({done + 1} of at most {branch.at_most})" if branch.at_most else ""
        self.resumer.event_once(cell.id, "branch", f"{where} ended on {branch.reason}: goto"
                                f" {branch.label!r} (step {branch.target}){bound}")
        return branch.target

    async def _run_loop(self, exp: PlannedExperiment, node: PlannedStep, cell: CellContext,
                        breaks: frozenset[str], scope: int | None,
                        watches: tuple[RetentionWatch, ...]) -> Seen:
        loop = node.step
        assert isinstance(loop, Loop)
        until = loop.until
        if until is not None and until.short_circuit:
            breaks = breaks | {"short"}
        counts = loop.count_cycles and not any(isinstance(c.step, Loop) for c in node.children)
        r = cell.run
        if scope is None:   # the outermost loop: its nest's retentions cut cycles from here
            scope = r.steps_run.count
            if _watches_retention(node, cell.id):
                leading = "discharge" if r.cell.kind is CellKind.LI_CU else "charge"
                r.steps_run.track(scope, CycleTracker(leading, r.cell.capacity_Ah))
            try:
                return await self._run_loop(exp, node, cell, breaks, scope, watches)
            finally:
                r.steps_run.untrack(scope)
        if until is not None and until.capacity_retention_below is not None:
            watched = watched_discharge(node, cell.id)
            if watched is not None:   # the plan refuses a retention with nothing to watch
                watches = (*watches, RetentionWatch(node.number, until.capacity_retention_below,
                                                    watched))
        seen = Seen()
        for iteration in range(1, loop.count + 1):
            if counts:
                r.cycle += 1
            start = r.steps_run.count
            got = await self._run_steps(exp, node.children, cell, iteration, breaks, scope,
                                        watches)
            seen.add(got)
            why = None
            if got.reasons & breaks:
                why = "a short circuit"
            elif got.ended_by is not None and got.ended_by[0] != node.number:
                break   # a loop around this one ends: the journal says so there
            elif got.ended_by is not None:
                why = got.ended_by[1]
                seen.ended_by = None
            elif until is not None and until.voltage_limit and "voltage" in got.reasons:
                why = "a step reached its voltage limit"
            else:
                fell = self._retention_fell(cell, watches, scope, start)
                if fell is not None and fell[0] != node.number:
                    seen.ended_by = fell
                    break
                if fell is not None:
                    why = fell[1]
                elif until is not None and until.measured:
                    why = measured_reason(until, lambda: self._last_point(r),
                                          r.steps_run.last_discharge_Ah(start))
            if why:
                # a short ends every loop around it; the innermost one, where it happened,
                # says so (a ramp's level and the ramp are one step as written)
                if not got.break_reported:
                    self.resumer.event_once(cell.id, "loop_ended", f"{exp.name} step"
                                            f" {node.number}: loop ended after"
                                            f" iteration {iteration} of {loop.count}: {why}")
                if got.reasons & breaks:
                    seen.break_reported = True
                break
        return seen

    def _retention_fell(self, cell: CellContext, watches: tuple[RetentionWatch, ...],
                        scope: int, start: int) -> tuple[int, str] | None:
        """The outermost loop whose capacity retention the steps from ``start`` on brought
        below its threshold, and why; None if none."""
        if not watches:
            return None
        tracker = cell.run.steps_run.tracker(scope)
        for watch in watches:
            check = tracker.check(start, watch.watched)
            if check is not None and check.retention < watch.below:
                return watch.loop, (
                    f"capacity retention {100 * check.retention:.1f} % fell below"
                    f" {100 * watch.below:g} % ({1e3 * check.cycle.discharge_Ah:.4g} mAh"
                    f" against {1e3 * check.first.discharge_Ah:.4g} mAh in the first cycle of"
                    f" the series '{check.series}')")
        return None

    def _last_point(self, r: CellRun) -> dict[str, float] | None:
        """The last point the cell's last step stored (the same on a resumed run)."""
        return None if r.step_id is None else self.store.last_point(r.step_id)

    async def _run_channel_step(self, exp: PlannedExperiment, node: PlannedStep,
                                cell: CellContext) -> str:
        """Run one primitive step to its end, after the pause point before it; return the end
        reason. What it passed goes to the cell's steps run
        (:class:`~sequencer.steps_run.StepsRun`)."""
        await self._safe_point([cell])
        r = cell.run
        before = r.counters.as_dict()
        reference = next((ref for ref in exp.references if ref.source == node.number), None)
        resolve = None if reference is None else (
            lambda recorded: self._resolve(exp, node, cell, reference, recorded))
        reason, technique = await self.driver.run(exp, node, cell, resolve)
        after = r.counters.as_dict()
        current = technique.current_A if isinstance(technique, ConstantCurrent) else None
        basis = r.step_params.get("capacity_basis_Ah")
        passed = {name: max(after[name] - before[name], 0.0) for name in after}
        r.steps_run.add(StepOutcome(
            step_count=r.step_count, kind=node.kind, current_A=current, tag=node.step.tag,
            written_kind=node.written_kind, temperature_degC=r.set_point_degC,
            end_reason=reason, experiment=exp.name,
            capacity_basis_Ah=basis if isinstance(basis, float) else None,
            ended_at_start=ended_at_once(r.step_params.get(start_check.PARAM)),
            **passed), node.number, exp.references)
        return reason

    def _resolve(self, exp: PlannedExperiment, node: PlannedStep, cell: CellContext,
                 ref: PlannedReference, recorded: dict[str, Any] | None) -> Technique:
        """The technique of a step whose C-rates are taken of a measured capacity: the
        capacity the stopped run recorded for this very step, else the one the reference's
        last run measured (:func:`measured_basis`). No measurement, or a current the channel
        or the cell's ``max_current`` refuses, faults the cell before anything is sent."""
        r = cell.run
        where = f"{exp.name} step {node.number} ({node.kind}): c_rate_reference {ref.name!r}"
        nominal = r.cell.capacity_Ah
        if recorded is not None and isinstance(recorded.get("capacity_basis_Ah"), float):
            basis = recorded["capacity_basis_Ah"]
        else:
            measured = r.steps_run.measured(exp.name, ref)
            if isinstance(measured, str):
                raise CellFault(f"{where}: {measured}; the step does not run at the nominal"
                                " capacity instead (give its C-rate without c_rate_reference"
                                " for that)")
            basis = measured.capacity_Ah
            if r.bases_Ah.get(node.number) != basis:
                counts = measured.step_counts
                share = f" ({100 * basis / nominal:.1f} % of the nominal" \
                        f" {1e3 * nominal:.4g} mAh)" if nominal else ""
                self.resumer.event_once(cell.id, "c_rate_basis", (
                    f"{where}: 1C = {1e3 * basis:.6g} mAh, the {ref.capacity} capacity measured"
                    f" in step count {counts[0]}{'-' + str(counts[-1]) if len(counts) > 1 else ''}"
                    f" (ended on {measured.end_reason}){share}"), capacity_basis_Ah=basis)
        r.bases_Ah[node.number] = basis
        try:
            technique = technique_for(node.step, r.cell.with_capacity(basis))
            channel_capabilities(self.plan.station, cell.id).check(technique,
                                                                  voltage_window(r.cell))
        except (ValueError, CapabilityError) as exc:
            raise CellFault(f"{where}: at the measured {1e3 * basis:.6g} mAh: {exc}") from exc
        top = r.cell.limits.max_current
        amps = abs(getattr(technique, "current_A", 0.0))
        if top is not None and amps > top:
            raise CellFault(f"{where}: at the measured {1e3 * basis:.6g} mAh the current is"
                            f" {1e3 * amps:.6g} mA, above the cell's max_current of"
                            f" {1e3 * top:g} mA; nothing was sent")
        r.step_params = {"capacity_basis_Ah": basis, "c_rate_reference": ref.name}
        return technique

    # -- instruments -----------------------------------------------------------------------

    async def _limits_to_instruments(self) -> None:
        """Give each cell's limits to its channel where the instrument can watch them itself,
        so a limit is kept between the points the sequencer sees too."""
        watched, unwatched = [], []
        for cid, c in self.cells.items():
            lim = c.run.cell.limits
            if lim.max_voltage is None and lim.min_voltage is None and lim.max_current is None:
                continue
            limits = SafetyLimits(lim.max_voltage, lim.min_voltage, lim.max_current)
            ok = await c.call(lambda c=c, limits=limits:
                              c.run.channel.set_safety_limits(limits))
            (watched if ok else unwatched).append(cid)
        if watched or unwatched:
            self.journal.event(None, "limits_set", "safety limits watched by the instrument"
                               f" for: {', '.join(watched) or 'none'}; by the sequencer's"
                               " checks of each point only for:"
                               f" {', '.join(unwatched) or 'none'}")

    async def _open_all(self) -> None:
        for inst in self.instruments.all():
            await caller_for(inst)(inst.open)
        for r in self.runs.values():
            r.channel = r.instrument.channel(r.channel_index)

    async def _all_outputs_off(self) -> None:
        """Stop every channel and put chambers in standby; one failure does not stop the rest."""
        failed = [c.run for c in self.cells.values()
                  if hasattr(c.run, "channel") and not await c.stop()]   # opened ones
        for inst in {id(r.instrument): r.instrument for r in failed}.values():
            # the link may have died: connect again and stop what failed
            call = caller_for(inst)
            try:
                with contextlib.suppress(CellseqError):
                    await call(inst.close)
                await call(inst.open)
                for r in failed:
                    if r.instrument is inst:
                        r.channel = inst.channel(r.channel_index)
                        await call(r.channel.stop)
                        self.journal.note(r.cell.id, "output_off",
                                          "output off after reconnecting")
            except CellseqError as exc:
                self.journal.note(None, "stop_failed", f"{type(inst).__name__} could not be"
                                  f" reached to turn its outputs off: {exc}; CHECK THE"
                                  " INSTRUMENT")
        for name, chamber in self.instruments.chambers.items():
            try:
                await caller_for(chamber)(chamber.standby)
            except CellseqError as exc:
                self.journal.note(None, "standby_failed", f"{name}: {exc}")
        for inst in self.instruments.all():
            try:
                await caller_for(inst)(inst.close)
            except CellseqError as exc:
                self.journal.note(None, "close_failed", f"{type(inst).__name__}: {exc}")


def _watches_retention(loop: PlannedStep, cell: str) -> bool:
    """Some loop of the nest ``loop`` heads stops on a capacity retention of ``cell``'s
    cycles (so the nest's cycles are cut as its steps run)."""
    nodes = [loop]
    while nodes:
        node = nodes.pop()
        until = node.step.until if isinstance(node.step, Loop) else None
        if until is not None and until.capacity_retention_below is not None \
                and watched_discharge(node, cell) is not None:
            return True
        nodes.extend(n for n in node.children if isinstance(n.step, Loop))
    return False


def _describe(exc: BaseException) -> str:
    """An error for the journal: the messages of a group's errors, not its repr."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def _with(names: list[str], name: str) -> str:
    """" (shared with ...)" for a soak of a shared chamber; nothing for one experiment's."""
    others = [n for n in names if n != name]
    return f" (shared with {', '.join(others)})" if others else ""


def _segments(steps: tuple[PlannedStep, ...]) -> list[PlannedStep | list[PlannedStep]]:
    """Split top-level steps at set_temperature steps (a node of its own), which all cells
    pass together; the steps between are lists that each cell runs on its own."""
    out: list[PlannedStep | list[PlannedStep]] = []
    for node in steps:
        if isinstance(node.step, SetTemperature):
            out.append(node)
        elif out and isinstance(out[-1], list):
            out[-1].append(node)
        else:
            out.append([node])
    return out
