"""Potential holds: constant voltage (ends on a current or a duration) and chronoamperometry
(ends on a duration or a steady current)."""

from __future__ import annotations

from drivers.techniques import ConstantVoltage as CVTechnique
from protocols.cells import Cell
from protocols.steps import Chronoamperometry, ConstantVoltage
from sequencer.handlers.end_conditions import end_conditions
from sequencer.handlers.limits import default_time_limit_s


def technique(step: ConstantVoltage, cell: Cell) -> CVTechnique:
    until = (step.until_current.to_amps(cell.electrode_area_m2, cell.capacity_Ah)
             if step.until_current is not None else None)
    ends = end_conditions(step.until, cell)
    duration = step.duration
    if duration is None and ends is not None:
        duration = ends.step_time_s
    if duration is None:
        if until is None:
            raise ValueError("until: give a duration or until_current (or until.step_time):"
                             " nothing else bounds a potential hold")
        duration = default_time_limit_s(cell, until, "until_current")
    return CVTechnique(voltage_V=step.voltage, duration_s=duration,
                       record_dt_s=step.record_every, until_abs_current_A=until,
                       record_dI_A=step.record_dI, ends=ends)


def chronoamperometry(step: Chronoamperometry, cell: Cell) -> CVTechnique:
    steady = step.until_steady
    return CVTechnique(voltage_V=step.voltage, duration_s=step.duration,
                       record_dt_s=step.record_every, record_dI_A=step.record_dI,
                       steady_rel=steady.relative_change if steady else None,
                       steady_window_s=steady.window if steady else None,
                       vs_ocv=step.vs == "ocv")


TECHNIQUES = {ConstantVoltage: technique, Chronoamperometry: chronoamperometry}
