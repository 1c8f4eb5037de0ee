"""A step's ``until`` conditions resolved for one cell: what the channel ends the step on."""

from __future__ import annotations

from drivers.techniques import EndConditions
from protocols.cells import Cell
from protocols.steps.until import StepUntil
from protocols.units import kelvin_to_celsius


def end_conditions(until: StepUntil | None, cell: Cell) -> EndConditions | None:
    """The conditions in SI, a SOC as the charge it is of ``cell``'s capacity; ValueError for
    a SOC on a cell without one."""
    if until is None:
        return None
    soc_Ah = None
    if until.soc is not None:
        if cell.capacity_Ah is None:
            raise ValueError(f"until.soc: cell {cell.id!r} has no capacity to take"
                             f" {100 * until.soc:g} % of")
        soc_Ah = until.soc * cell.capacity_Ah
    return EndConditions(
        charge_Ah=until.charge / 3600.0 if until.charge is not None else None,
        soc_charge_Ah=soc_Ah, step_time_s=until.step_time, dV_dt_V_s=until.dV_dt,
        dI_dt_A_s=until.dI_dt,
        temperature_above_C=(kelvin_to_celsius(until.temperature_above)
                             if until.temperature_above is not None else None),
        temperature_below_C=(kelvin_to_celsius(until.temperature_below)
                             if until.temperature_below is not None else None),
        slope_window_s=until.slope_window)


def time_limit_s(duration_s: float | None, ends: EndConditions | None,
                 fallback_s: float | None) -> float:
    """A step's hard time limit: its duration, else a step_time condition, else the
    fallback the capacity gives; ValueError if none is known."""
    for value in (duration_s, ends.step_time_s if ends is not None else None, fallback_s):
        if value is not None:
            return value
    raise ValueError("give a duration: nothing else bounds this step's time")
