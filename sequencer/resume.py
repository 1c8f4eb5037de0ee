"""What a resumed run needs from the store of the run it continues, and the rules it follows.

A run is resumed by replaying its control flow: the executor walks the plan as before, and each
step the store shows as finished is not run again but taken as it ended (its end reason and the
cell's counters then), so loop counters, cycle numbers and "until" decisions come out exactly
as they did. Experiments that had finished are skipped whole. The one step per cell that was
running when the run stopped is re-attached (the instrument kept running it), continued for its
remaining time, restarted or skipped (:func:`policy_for`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit, Technique
from protocols.cells import Cell, CellKind
from protocols.steps import Step
from sequencer.store import RunStore

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
