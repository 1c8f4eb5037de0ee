"""What a resumed run needs from the store of the run it continues, and the rules it follows.

A run is resumed by replaying its control flow: the executor walks the plan as before, and each
step the store shows as finished is not run again but taken as it ended (its end reason and the
cell's counters then), so loop counters, cycle numbers and "until" decisions come out exactly
as they did. Experiments that had finished are skipped whole. The one step per cell that was
running when the run stopped is re-attached (the instrument kept running it), continued for its
remaining time, restarted or skipped (:func:`policy_for`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from drivers.clock import Clock
from drivers.errors import CapabilityError, CellseqError
from drivers.interfaces import Chamber
from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit, Technique
from protocols.cells import Cell, CellKind
from protocols.steps import SetTemperature, Step
from protocols.units import kelvin_to_celsius
from sequencer.calls import caller_for
from sequencer.cell_context import CellContext
from sequencer.cell_run import CellFault, Mark, ResumeRefused
from sequencer.counters import Counters
from sequencer.handlers.set_temperature import SOAK_POLL_S, SoakProgress, SoakTimeout, soak
from sequencer.journal import Journal
from sequencer.plan import PlannedExperiment, PlannedStep
from sequencer.step_outcomes import (
    Carried,
    Continue,
    Ended,
    Interrupted,
    Replayed,
    Restart,
    Running,
    SoakReplayed,
    SoakSettled,
    SoakUnderWay,
    TakenUp,
)
from sequencer.suspenders import Suspenders
from store import RunStore, StoreError

#: Events a replay would write again; a resumed run writes each only once.
ONCE_KINDS = frozenset({"experiment_started", "experiment_finished", "experiment_skipped",
                        "loop_ended", "branch", "branch_bound"})

#: Open-circuit voltages a connected cell of each kind can show (V). A channel with no cell
#: floats, usually to a rail, outside these.
_OCV_WINDOWS_V: dict[CellKind, tuple[float, float]] = {
    CellKind.BLOCKING: (-1.0, 1.0),
    CellKind.SYMMETRIC_LI: (-0.5, 0.5),
    CellKind.LI_CU: (-0.5, 3.6),
    CellKind.FULL_CELL: (1.5, 4.8),
}


class DoneSteps:
    """The rows of the steps of one cell that had ended in the stopped run, by step count,
    read from the store a stretch of step counts at a time as the replay walks them: a
    resumed run holds a few hundred steps' rows, not every step of a run of months.

    Only step counts up to the stopped run's highest are looked up: a row the resumed run
    writes itself (its steps come after those) is never taken for one the stopped run ended.
    """

    #: step counts read at once
    STRETCH = 256

    def __init__(self, store: RunStore | None = None, cell: str = "", top: int = 0) -> None:
        self._store, self._cell, self._top = store, cell, top
        self._lo, self._hi = 1, 0
        self._rows: dict[int, dict[str, Any]] = {}

    def get(self, count: int) -> dict[str, Any] | None:
        """The row of the step numbered ``count`` that ended (not interrupted; the last one
        stored if several), or None."""
        if self._store is None or not 0 <= count <= self._top:
            return None
        if not self._lo <= count <= self._hi:
            self._read(count, min(count + self.STRETCH - 1, self._top))
        return self._rows.get(count)

    def __contains__(self, count: int) -> bool:
        return self.get(count) is not None

    def __getitem__(self, count: int) -> dict[str, Any]:
        row = self.get(count)
        if row is None:
            raise KeyError(count)
        return row

    def check(self) -> None:
        """Read every row once (dropping each stretch after it), so a damaged row refuses the
        resume before it writes anything rather than in the middle of the replay."""
        for lo in range(0, self._top + 1, self.STRETCH):
            self._read(lo, min(lo + self.STRETCH - 1, self._top))
        self._lo, self._hi, self._rows = 1, 0, {}

    def _read(self, lo: int, hi: int) -> None:
        assert self._store is not None
        self._rows = {}
        for row in self._store.steps(self._cell, counts=(lo, hi)):   # in the order stored
            if row["ended_t"] is not None and row["end_reason"] != "interrupted":
                self._rows[row["step_count"]] = row
        self._lo, self._hi = lo, hi


@dataclass
class CellHistory:
    """One cell's rows of the stopped run."""

    state: str
    fault: str | None
    counters: dict[str, float]
    last: dict[str, float]
    soak: dict[str, Any] | None = None   # the soak under way: see SoakProgress
    #: the step whose output was off when the run stopped, and its step time then
    off: dict[str, Any] | None = None
    done: DoneSteps = field(default_factory=DoneSteps)    # step_count -> row, read as needed
    open: dict[int, dict[str, Any]] = field(default_factory=dict)    # step_count -> row
    by_experiment: dict[str, dict[str, Any]] = field(default_factory=dict)  # last row


@dataclass
class ResumeState:
    cells: dict[str, CellHistory]
    finished_experiments: set[str]
    seen_events: set[tuple[str | None, str, str]]

    @classmethod
    def load(cls, store: RunStore) -> ResumeState:
        cells: dict[str, CellHistory] = {}
        tops = store.top_step_counts()
        for s in store.cell_states():
            cp = s["checkpoint"]
            done = DoneSteps(store, s["cell"], tops.get(s["cell"], 0))
            done.check()
            cells[s["cell"]] = CellHistory(s["state"], cp.get("fault"), cp.get("counters", {}),
                                           s["last"], cp.get("soak"), cp.get("off"), done)
        for row in store.unfinished_steps():
            if row["cell"] in cells:
                cells[row["cell"]].open[row["step_count"]] = row
        for row in store.last_steps_of_experiments():
            if row["cell"] in cells:
                cells[row["cell"]].by_experiment[row["experiment"]] = row
        events = store.events()
        finished = {e["message"] for e in events if e["kind"] == "experiment_finished"}
        seen = {(e["cell"], e["kind"], e["message"]) for e in events
                if e["kind"] in ONCE_KINDS}
        return cls(cells, finished, seen)

    @property
    def empty(self) -> bool:
        """Nothing of the run was committed but its metadata (it was killed, or its disk
        filled, before its first commit): a resume starts it from the beginning."""
        return not self.cells and not self.finished_experiments

    def of(self, cell_id: str) -> CellHistory:
        """A cell's history; a cell the store shows nothing of has not started."""
        hist = self.cells.get(cell_id)
        return hist if hist is not None else CellHistory("pending", None, {}, {})


def plausible_ocv_V(cell: Cell) -> tuple[float, float]:
    """The window a present cell's open-circuit voltage lies in, narrowed by its limits."""
    lo, hi = _OCV_WINDOWS_V[cell.kind]
    if cell.limits.min_voltage is not None:
        lo = max(lo, cell.limits.min_voltage - 0.2)
    if cell.limits.max_voltage is not None:
        hi = min(hi, cell.limits.max_voltage + 0.2)
    return lo, hi


def policy_for(step: Step, technique: Technique) -> str:
    """The step's ``on_resume`` or the default: a step that runs for a set time (a rest, a
    half-cycle at constant current, a hold) continues for the time it has left; one that ends
    on a limit (to a voltage, to a current, to steady state) or measures a spectrum or a sweep
    starts again."""
    if step.on_resume is not None:
        return step.on_resume
    timed = getattr(step, "duration", None) is not None and not any(
        getattr(step, name, None) is not None
        for name in ("until_voltage", "until_current", "until_steady"))
    if timed and isinstance(technique, OpenCircuit | ConstantCurrent | ConstantVoltage):
        return "continue"
    return "restart"


def remaining(technique: Technique, elapsed_s: float) -> Technique | None:
    """The technique for what is left after ``elapsed_s``; None when no time is left."""
    assert isinstance(technique, OpenCircuit | ConstantCurrent | ConstantVoltage)
    left = technique.duration_s - elapsed_s
    if left <= 0:
        return None
    if isinstance(technique, ConstantCurrent):
        return replace(technique, duration_s=left,
                       settle_s=max(technique.settle_s - elapsed_s, 0.0),
                       record_dt_s=min(technique.record_dt_s, left))
    return replace(technique, duration_s=left, record_dt_s=min(technique.record_dt_s, left))


class Resumer:
    """Resuming a stopped run (a part of the executor): replaying finished steps and
    experiments, taking up or carrying on the interrupted step, restating chambers, and
    checking the cells are there. Owns the stopped run's history (``state``; None for a fresh
    run, whose replay finds nothing) and the setpoints still to restate."""

    def __init__(self, state: ResumeState | None, store: RunStore, journal: Journal,
                 clock: Clock, chambers: dict[str, Chamber], suspenders: Suspenders) -> None:
        self.state = state
        self._store, self._journal, self._clock = store, journal, clock
        self._chambers, self._suspenders = chambers, suspenders
        #: chambers whose setpoint a replayed soak passed: restated before a step runs there
        self._restate: dict[Chamber, SetTemperature] = {}

    def finished(self, exp: PlannedExperiment) -> bool:
        """The experiment had finished in the stopped run."""
        return self.state is not None and exp.name in self.state.finished_experiments

    def fast_forward(self, exp: PlannedExperiment, cells: dict[str, CellContext]) -> None:
        """A resumed run passes an experiment that had finished: each cell takes the step
        count, cycle and counters its last step there left."""
        assert self.state is not None
        for cid in exp.cells:
            row = self.state.cells[cid].by_experiment.get(exp.name) \
                if cid in self.state.cells else None
            if row is None:
                continue
            r = cells[cid].run
            r.step_count, r.cycle = max(r.step_count, row["step_count"]), row["cycle"]
            if row["end_counters"]:
                r.counters = Counters(**row["end_counters"])

    def replay(self, cell: CellContext) -> Replayed:
        """The cell's current step (its step count) in the stopped run: ended (the cell's
        counters are set as it left them), interrupted while running, or not run (None)."""
        if self.state is None or cell.id not in self.state.cells:
            return None
        r = cell.run
        hist = self.state.cells[cell.id]
        done = hist.done.get(r.step_count)
        if done is not None:
            r.step_id = done["id"]
            if done["end_counters"]:
                r.counters = Counters(**done["end_counters"])
            return Ended(done["end_reason"])
        row = hist.open.pop(r.step_count, None)
        if row is None:
            return None
        r.step_id = row["id"]
        return Interrupted(row)

    def recorded_params(self, cell: CellContext, replayed: Replayed) -> dict[str, Any] | None:
        """What the stopped run's row of the cell's current step recorded (its parameters),
        for a step :meth:`replay` found ended or interrupted; None for a step not run."""
        if isinstance(replayed, Interrupted):
            return replayed.row["params"]
        if isinstance(replayed, Ended) and self.state is not None:
            return self.state.cells[cell.id].done[cell.run.step_count]["params"]
        return None

    def soak_replayed(self, chamber: Chamber, step: SetTemperature,
                      cells: list[CellContext]) -> SoakReplayed:
        """A soak in the stopped run: settled (not waited for again; its setpoint is restated
        before the next step that runs: :meth:`restate_chamber`), under way (carried on from
        its last checkpoint when the interruption was short enough for the hold timer to
        stand, else with its hold time and timeout started again), or (None) to be soaked
        afresh."""
        if self.state is None:
            return None
        hist = [self.state.of(c.id) for c in cells]
        if all(c.run.step_count in h.done for c, h in zip(cells, hist, strict=True)):
            self._restate[chamber] = step
            return SoakSettled()
        self._restate.pop(chamber, None)
        rows = {c.id: h.open.pop(c.run.step_count, None)
                for c, h in zip(cells, hist, strict=True)}
        if not any(rows.values()):
            return None
        saved = [h.soak for h in hist]
        if all(rows.values()) and saved[0] is not None and all(x == saved[0] for x in saved):
            progress = SoakProgress(**saved[0])
            if self._clock.now() - progress.last_read_t > SOAK_POLL_S:
                # unwatched for longer than a reading: hold time and timeout start again
                progress = SoakProgress(self._clock.now(), None, self._clock.now(),
                                        self._clock.now())
            return SoakUnderWay({cid: row["id"] for cid, row in rows.items() if row}, progress)
        with self._store.transaction():
            for c in cells:
                row = rows[c.id]
                if row is not None:
                    self._store.end_step(row["id"], self._clock.now(), "interrupted",
                                         c.run.counters.as_dict())
        return None

    async def restate_chamber(self, exp: PlannedExperiment) -> None:
        """The first step a resumed run really runs in a chamber: set the chamber to the last
        setpoint the replay passed (a chamber that lost power holds none) and, if it has
        drifted out of tolerance meanwhile, soak again. A chamber in alarm, out of constant
        mode or far from its setpoint suspends its cells (every sharer's) until its watch
        sees it back, as it does in a run that was never interrupted."""
        if not self._restate or exp.chamber is None:
            return
        chamber = self._chambers[exp.chamber]
        step = self._restate.pop(chamber, None)
        if step is None:
            return
        watch = self._suspenders.watch_of(exp)
        assert watch is not None
        watch.step = step
        call = caller_for(chamber)
        target = kelvin_to_celsius(step.target)
        try:
            await call(lambda: chamber.set_temperature_C(target))
            reading = await call(chamber.read)
            problem = watch.problem(reading)
            if problem is not None:
                # an alarm, a mode or air far off: the cells rest (outputs off) until the
                # chamber's watch sees it back and has soaked again, as in an unbroken run
                if not watch.suspended:
                    watch.suspend(problem)
                    self._journal.event(None, "chamber_suspended", f"{exp.chamber}: {problem}"
                                        " after the interruption; its cells rest until it is"
                                        " back", experiment=exp.name)
                return
            if abs(reading.temperature_C - target) > step.tolerance:
                self._journal.event(None, "resoak", f"{exp.chamber} reads"
                                    f" {reading.temperature_C:g} degC after the interruption;"
                                    f" soaking at {target:g} degC again", experiment=exp.name)
                await soak(chamber, step, self._clock, call)
        except StoreError:
            raise   # the store failed, not the chamber: the run stops
        except (SoakTimeout, CellseqError) as exc:
            raise CellFault(f"{exp.name}: the chamber could not be restored: {exc}") from exc

    async def take_up(self, exp: PlannedExperiment, node: PlannedStep, cell: CellContext,
                      technique: Technique, row: dict[str, Any]) -> TakenUp:
        """The step that was running when the run stopped: re-attached if the instrument kept
        running it (:class:`Running`), else carried on under its resume policy
        (:meth:`carry_on`)."""
        await self.restate_chamber(exp)
        k = node.number
        r = cell.run
        hist = self.state.cells[cell.id] if self.state else None
        if hist is not None and hist.counters:
            r.counters = Counters(**hist.counters)
        last = self._store.last_point(row["id"])
        mark = None if last is None else Mark(last["test_time_s"], last["step_time_s"])
        if r.channel.running_unknown:   # the instrument runs something it cannot name
            try:
                await cell.call(lambda: r.channel.adopt(technique))
            except CellseqError as exc:
                self._journal.event(cell.id, "adopt_failed", f"{exp.name} step {k}: {exc}")
        attachment = row["params"].get("attachment")
        if await cell.call(lambda: r.channel.reattach(technique, attachment)):
            self._journal.event(cell.id, "step_reattached", f"{exp.name} step {k}"
                                f" {node.kind}: the instrument kept running it; carrying on")
            previous = None if last is None else (last["test_time_s"], last["voltage_V"],
                                                  last["current_A"])
            return Running(row["id"], row["started_t"], 0.0, previous, mark)
        await cell.stop()
        await self._suspenders.wait_for_chamber(exp, cell)
        # what the channel did after the last point stored is unknown: the step counts from
        # there, unless the executor had turned the output off itself (a suspension, a stop)
        elapsed = 0.0 if mark is None else mark.step_t
        off = hist.off if hist is not None else None
        if off is not None and off.get("step_id") == row["id"] and mark is not None:
            elapsed = max(elapsed, float(off["elapsed_s"]))
        return self.carry_on(exp, node, cell, technique, row["id"], mark, elapsed)

    def carry_on(self, exp: PlannedExperiment, node: PlannedStep, cell: CellContext,
                 technique: Technique, step_id: int, mark: Mark | None, elapsed: float
                 ) -> Carried:
        """An interrupted step, its channel idle, ``elapsed`` of it done: continue it for its
        remaining time (:class:`Continue`), skip it or let it end (:class:`Ended`), or end it
        so that it starts again (:class:`Restart`)."""
        k = node.number
        policy = policy_for(node.step, technique)
        rest = remaining(technique, elapsed) if policy == "continue" else None
        if policy == "restart" or (policy == "continue" and rest is None and mark is None):
            with self._store.transaction():
                self._store.end_step(step_id, self._clock.now(), "interrupted",
                                     cell.run.counters.as_dict())
                self._journal.event(cell.id, "step_restarted", f"{exp.name} step {k}"
                                    f" {node.kind} starts again after the interruption")
            return Restart(None if mark is None else mark.t)
        if policy == "skip" or rest is None:
            reason = "skipped" if policy == "skip" else "duration"
            with self._store.transaction():
                self._store.end_step(step_id, self._clock.now(), reason,
                                     cell.run.counters.as_dict())
                self._journal.event(cell.id, "step_resumed", f"{exp.name} step {k}"
                                    f" {node.kind}: {reason} after the interruption")
            return Ended(reason)
        return Continue(step_id, rest, elapsed, mark)

    def event_once(self, cell: str | None, kind: str, message: str, **data: Any) -> None:
        """A journal event a resumed run's replay would repeat: written once."""
        if self.state is not None and (cell, kind, message) in self.state.seen_events:
            return
        self._journal.event(cell, kind, message, **data)

    async def check_cells_present(self, cells: dict[str, CellContext]) -> None:
        """Before a resumed run sends anything: every cell still to run shows a plausible
        open-circuit voltage, or the run does not start."""
        assert self.state is not None
        wrong, unchecked = [], []
        for cid, cell in cells.items():
            r = cell.run
            hist = self.state.cells.get(cid)
            if r.state == "faulted" or (hist is not None and hist.state == "completed"):
                continue
            try:
                v = await cell.call(r.channel.read_voltage)
            except CapabilityError:
                unchecked.append(cid)
                continue
            lo, hi = plausible_ocv_V(r.cell)
            if not (math.isfinite(v) and lo <= v <= hi):
                wrong.append(f"{cid} reads {v:.3f} V, outside {lo:g}..{hi:g} V for a"
                             f" {r.cell.kind.value} cell")
        if wrong:   # refused: nothing is written (the run stays as it was)
            raise ResumeRefused("not resuming: " + "; ".join(wrong) + ". Is every cell still"
                                " connected to its channel? Nothing was started.")
        for cid in unchecked:
            self._journal.event(cid, "cell_check_skipped", "the channel cannot read its"
                                " voltage; carrying on without checking the cell is there")
