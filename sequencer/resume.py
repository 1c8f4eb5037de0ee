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

from drivers.errors import CapabilityError, CellseqError
from drivers.interfaces import Chamber
from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit, Technique
from protocols.cells import Cell, CellKind
from protocols.steps import SetTemperature, Step
from protocols.units import kelvin_to_celsius
from sequencer.cell_run import CellFault, CellRun, Mark, ResumeRefused
from sequencer.counters import Counters
from sequencer.handlers.set_temperature import SOAK_POLL_S, SoakProgress, SoakTimeout, soak
from sequencer.plan import PlannedExperiment
from store import RunStore, StoreError

#: Events a replay would write again; a resumed run writes each only once.
ONCE_KINDS = frozenset({"experiment_started", "experiment_finished", "experiment_skipped",
                        "loop_ended"})

#: Open-circuit voltages a connected cell of each kind can show (V). A channel with no cell
#: floats, usually to a rail, outside these.
_OCV_WINDOWS_V: dict[CellKind, tuple[float, float]] = {
    CellKind.BLOCKING: (-1.0, 1.0),
    CellKind.SYMMETRIC_LI: (-0.5, 0.5),
    CellKind.LI_CU: (-0.5, 3.6),
    CellKind.FULL_CELL: (1.5, 4.8),
}


@dataclass
class CellHistory:
    """One cell's rows of the stopped run."""

    state: str
    fault: str | None
    counters: dict[str, float]
    last: dict[str, float]
    soak: dict[str, Any] | None = None   # the soak under way: see SoakProgress
    done: dict[int, dict[str, Any]] = field(default_factory=dict)    # step_count -> row
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
        for s in store.cell_states():
            cp = s["checkpoint"]
            cells[s["cell"]] = CellHistory(s["state"], cp.get("fault"), cp.get("counters", {}),
                                           s["last"], cp.get("soak"))
        for row in store.steps():
            hist = cells.get(row["cell"])
            if hist is None:
                continue
            count = row["step_count"]
            if row["ended_t"] is None:
                hist.open[count] = row
            elif row["end_reason"] != "interrupted":
                hist.done[count] = row
            hist.by_experiment[row["experiment"]] = row
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


class Resumption:
    """The executor's resume behaviour (a part of :class:`~sequencer.executor.Executor`):
    replaying finished steps and experiments, taking up or carrying on the interrupted step,
    restating chambers, and checking the cells are there."""

    def _fast_forward(self, exp: PlannedExperiment) -> None:
        """A resumed run passes an experiment that had finished: each cell takes the step
        count, cycle and counters its last step there left."""
        assert self.resume is not None
        for cid in exp.cells:
            row = self.resume.cells[cid].by_experiment.get(exp.name) \
                if cid in self.resume.cells else None
            if row is None:
                continue
            r = self.runs[cid]
            r.step_count, r.cycle = max(r.step_count, row["step_count"]), row["cycle"]
            if row["end_counters"]:
                r.counters = Counters(**row["end_counters"])

    def _soak_replayed(self, chamber: Chamber, step: SetTemperature, runs: list[CellRun]
                       ) -> bool | tuple[dict[str, int], SoakProgress | None]:
        """On resume. True: the soak had settled; it is not waited for again (its setpoint is
        restated before the next step that runs: :meth:`_restate_chamber`). Otherwise the
        rows of the soak that was under way, carried on from its last checkpoint when the
        interruption was short enough for the hold timer to stand (else it starts again)."""
        assert self.resume is not None
        hist = [self.resume.of(r.cell.id) for r in runs]
        if all(r.step_count in h.done for r, h in zip(runs, hist, strict=True)):
            self._restate[chamber] = step
            return True
        self._restate.pop(chamber, None)
        rows = {r.cell.id: h.open.pop(r.step_count, None)
                for r, h in zip(runs, hist, strict=True)}
        if not any(rows.values()):
            return False
        saved = [h.soak for h in hist]
        if all(rows.values()) and saved[0] is not None and all(x == saved[0] for x in saved):
            progress = SoakProgress(**saved[0])
            if self.clock.now() - progress.last_read_t > SOAK_POLL_S:
                # unwatched for longer than a reading: hold time and timeout start again
                progress = SoakProgress(self.clock.now(), None, self.clock.now(),
                                        self.clock.now())
            return {cid: row["id"] for cid, row in rows.items() if row}, progress
        with self.store.transaction():
            for r in runs:
                row = rows[r.cell.id]
                if row is not None:
                    self.store.end_step(row["id"], self.clock.now(), "interrupted",
                                        r.counters.as_dict())
        return False

    async def _restate_chamber(self, exp: PlannedExperiment) -> None:
        """The first step a resumed run really runs in a chamber: set the chamber to the last
        setpoint the replay passed (a chamber that lost power holds none) and, if it has
        drifted out of tolerance meanwhile, soak again."""
        if exp.chamber is None:
            return
        chamber = self.instruments.chambers[exp.chamber]
        step = self._restate.pop(chamber, None)
        if step is None:
            return
        watch = self._watch_of(exp)
        assert watch is not None
        watch.step = step
        call = self._caller(chamber)
        target = kelvin_to_celsius(step.target)
        try:
            await call(lambda: chamber.set_temperature_C(target))
            reading = await call(chamber.read)
            if abs(reading.temperature_C - target) > step.tolerance:
                self.journal.event(None, "resoak", f"{exp.chamber} reads"
                                   f" {reading.temperature_C:g} degC after the interruption;"
                                   f" soaking at {target:g} degC again", experiment=exp.name)
                await soak(chamber, step, self.clock, call)
        except StoreError:
            raise   # the store failed, not the chamber: the run stops
        except (SoakTimeout, CellseqError) as exc:
            raise CellFault(f"{exp.name}: the chamber could not be restored: {exc}") from exc

    async def _resume_step(self, exp: PlannedExperiment, step: Step, r: CellRun,
                           technique: Technique, row: dict[str, Any]) -> str | float | None:
        """The step that was running when the run stopped: re-attached if the instrument kept
        running it, else carried on under its resume policy (:meth:`_carry_on`)."""
        if self._restate:
            await self._restate_chamber(exp)
        k = exp.index_of(step)
        call = self._caller(r.instrument)
        hist = self.resume.cells[r.cell.id] if self.resume else None
        if hist is not None and hist.counters:
            r.counters = Counters(**hist.counters)
        last = self.store.last_point(row["id"])
        mark = None if last is None else Mark(last["test_time_s"], last["step_time_s"])
        if r.channel.running_unknown:   # the instrument runs something it cannot name
            try:
                await call(lambda: r.channel.adopt(technique))
            except CellseqError as exc:
                self.journal.event(r.cell.id, "adopt_failed", f"{exp.name} step {k}: {exc}")
        attachment = row["params"].get("attachment")
        if await call(lambda: r.channel.reattach(technique, attachment)):
            self.journal.event(r.cell.id, "step_reattached", f"{exp.name} step {k}"
                               f" {step.kind}: the instrument kept running it; carrying on")
            previous = None if last is None else (last["test_time_s"], last["voltage_V"],
                                                  last["current_A"])
            return await self._follow(exp, step, r, technique, row["id"], row["started_t"],
                                      0.0, previous, mark)
        await self._stop(r)
        await self._wait_for_chamber(exp, r)
        # what the channel did after the last point stored is unknown: the step counts from there
        elapsed = 0.0 if mark is None else mark.step_t
        return await self._carry_on(exp, step, r, technique, row["id"], mark, elapsed)

    async def _carry_on(self, exp: PlannedExperiment, step: Step, r: CellRun,
                        technique: Technique, step_id: int, mark: Mark | None, elapsed: float
                        ) -> str | float | None:
        """An interrupted step, its channel idle, ``elapsed`` of it done: continue it for its
        remaining time, skip it, or end it so that it starts again. Returns the end reason,
        or, to start again, the time of its last stored point (None if it stored none)."""
        k = exp.index_of(step)
        policy = policy_for(step, technique)
        rest = remaining(technique, elapsed) if policy == "continue" else None
        if policy == "restart" or (policy == "continue" and rest is None and mark is None):
            with self.store.transaction():
                self.store.end_step(step_id, self.clock.now(), "interrupted",
                                    r.counters.as_dict())
                self.journal.event(r.cell.id, "step_restarted", f"{exp.name} step {k}"
                                   f" {step.kind} starts again after the interruption")
            return None if mark is None else mark.t
        if policy == "skip" or rest is None:
            reason = "skipped" if policy == "skip" else "duration"
            with self.store.transaction():
                self.store.end_step(step_id, self.clock.now(), reason, r.counters.as_dict())
                self.journal.event(r.cell.id, "step_resumed", f"{exp.name} step {k}"
                                   f" {step.kind}: {reason} after the interruption")
            return reason
        try:
            await self._caller(r.instrument)(lambda: r.channel.start(rest))
        except CellseqError as exc:
            raise CellFault(f"{exp.name} step {k} ({step.kind}) refused: {exc}") from exc
        await self._keep_attachment(r, step_id)
        now = self.clock.now()
        with self.store.transaction():
            self._set_state(r, "running", experiment=exp.name, step_index=k,
                            step_kind=step.kind, step_started_t=now - elapsed,
                            step_estimate_s=getattr(technique, "duration_s", None))
            self.journal.event(r.cell.id, "step_resumed", f"{exp.name} step {k} {step.kind}:"
                               f" continues for the remaining {rest.duration_s:.0f} s",
                               elapsed_s=elapsed)
        # the counters integrate afresh from the continued technique's first point: nothing
        # flowed while the output was off
        return await self._follow(exp, step, r, technique, step_id, now, elapsed, None, mark)

    def _event_once(self, cell: str | None, kind: str, message: str, **data: Any) -> None:
        """A journal event a resumed run's replay would repeat: written once."""
        if self.resume is not None and (cell, kind, message) in self.resume.seen_events:
            return
        self.journal.event(cell, kind, message, **data)

    async def _check_cells_present(self) -> None:
        """Before a resumed run sends anything: every cell still to run shows a plausible
        open-circuit voltage, or the run does not start."""
        assert self.resume is not None
        wrong, unchecked = [], []
        for cid, r in self.runs.items():
            hist = self.resume.cells.get(cid)
            if r.state == "faulted" or (hist is not None and hist.state == "completed"):
                continue
            try:
                v = await self._caller(r.instrument)(r.channel.read_voltage)
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
            self.journal.event(cid, "cell_check_skipped", "the channel cannot read its"
                               " voltage; carrying on without checking the cell is there")
