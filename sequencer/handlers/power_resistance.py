"""Constant power, constant resistance and profiles: the largest current each may draw worked
out from the cell's voltage window, so pre-flight checks it against the channel."""

from __future__ import annotations

from drivers.techniques import ConstantPower as CPTechnique
from drivers.techniques import ConstantResistance as CRTechnique
from drivers.techniques import Profile as ProfileTechnique
from protocols.cells import Cell
from protocols.steps.power_resistance import ConstantPower, ConstantResistance
from protocols.steps.profile import CurrentProfile
from sequencer.handlers.end_conditions import end_conditions, time_limit_s
from sequencer.handlers.limits import default_time_limit_s


def _lowest_V(step: ConstantPower, cell: Cell) -> float:
    """The lowest voltage the step may see: its cut-off when discharging, else the cell's
    lower limit."""
    lows = [cell.limits.min_voltage]
    if step.direction == "discharge":
        lows.append(step.until_voltage)
    known = [v for v in lows if v is not None]
    if not known or max(known) <= 0:
        raise ValueError("a constant power needs a positive until_voltage (discharging) or a"
                         f" cell min_voltage: cell {cell.id!r} gives none, so the largest"
                         " current it would draw is unknown")
    return max(known)


def constant_power(step: ConstantPower, cell: Cell) -> CPTechnique:
    peak = step.power / _lowest_V(step, cell)
    ends = end_conditions(step.until, cell)
    fallback = None
    if step.duration is None and (ends is None or ends.step_time_s is None):
        # the time limit at the smallest current the power can draw, as for a constant current
        high = cell.limits.max_voltage
        least = step.power / high if high is not None and high > 0 else peak
        fallback = default_time_limit_s(cell, least, "until_voltage")
    duration = time_limit_s(step.duration, ends, fallback)
    signed = step.power if step.direction == "charge" else -step.power
    return CPTechnique(power_W=signed, duration_s=duration, record_dt_s=step.record_every,
                       peak_current_A=peak, until_voltage_V=step.until_voltage,
                       record_dV_V=step.record_dV, ends=ends)


def constant_resistance(step: ConstantResistance, cell: Cell) -> CRTechnique:
    high = cell.limits.max_voltage
    if high is None:
        raise ValueError(f"a constant resistance needs cell {cell.id!r}'s max_voltage: the"
                         " largest current the load draws is unknown without it")
    peak = high / step.resistance
    ends = end_conditions(step.until, cell)
    fallback = None
    if step.duration is None and (ends is None or ends.step_time_s is None):
        low = step.until_voltage if step.until_voltage is not None else high
        fallback = default_time_limit_s(cell, max(low, 1e-6) / step.resistance,
                                        "until_voltage")
    return CRTechnique(resistance_ohm=step.resistance,
                       duration_s=time_limit_s(step.duration, ends, fallback),
                       record_dt_s=step.record_every, peak_current_A=peak,
                       until_voltage_V=step.until_voltage, record_dV_V=step.record_dV,
                       ends=ends)


def profile(step: CurrentProfile, cell: Cell) -> ProfileTechnique:
    data = step.data
    row = data.peak_row()
    peak = abs(data.values[row])
    if step.quantity == "power":
        low = step.lowest_voltage(cell)
        if low is None or low <= 0:
            raise ValueError("a power profile needs a positive min_voltage (or the cell's)"
                             " so that its largest current is known")
        peak /= low
    return ProfileTechnique(
        quantity=step.quantity, times_s=data.times_s, values=data.values,
        record_dt_s=step.record_every, peak_current_A=peak,
        min_voltage_V=step.min_voltage, max_voltage_V=step.max_voltage,
        peak_label=f"{data.name}:{data.line_of(row)}", record_dV_V=step.record_dV,
        ends=end_conditions(step.until, cell))


TECHNIQUES = {ConstantPower: constant_power, ConstantResistance: constant_resistance,
              CurrentProfile: profile}
