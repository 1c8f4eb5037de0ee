"""Constant current and chronopotentiometry: the C-rate or density resolved for this cell, the
sign from the direction."""

from __future__ import annotations

from drivers.techniques import ConstantCurrent as CCTechnique
from protocols.cells import Cell
from protocols.steps import Chronopotentiometry, ConstantCurrent
from sequencer.handlers.end_conditions import end_conditions
from sequencer.handlers.limits import default_time_limit_s


def technique(step: ConstantCurrent | Chronopotentiometry, cell: Cell) -> CCTechnique:
    amps = step.current.to_amps(cell.electrode_area_m2, cell.capacity_Ah)
    signed = amps if step.direction == "charge" else -amps
    ends = end_conditions(getattr(step, "until", None), cell)
    duration = step.duration or (ends.step_time_s if ends is not None else None) or \
        default_time_limit_s(cell, amps, "until_voltage")
    return CCTechnique(current_A=signed, duration_s=duration, record_dt_s=step.record_every,
                       until_voltage_V=step.until_voltage, record_dV_V=step.record_dV,
                       short_below_V=getattr(step, "short_circuit_below", None), ends=ends)


TECHNIQUES = {ConstantCurrent: technique, Chronopotentiometry: technique}
