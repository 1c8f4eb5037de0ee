"""Per-cell safety limits, checked on every point independently of how a step ends."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drivers.points import Points
from protocols.cells import Limits
from protocols.units import kelvin_to_celsius


@dataclass(frozen=True)
class Trip:
    quantity: str
    value: float
    limit: float
    time_s: float   # within the technique

    def __str__(self) -> str:
        unit = {"voltage": "V", "current": "A", "temperature": "degC"}[self.quantity]
        value, limit = f"{self.value:.5g}", f"{self.limit:.5g}"
        # An instrument trips on the first reading past its limit, which is often past it by
        # less than the digits shown: "3.8 V beyond the limit 3.8 V" would read as a contradiction.
        where = (f"reached the limit {limit} {unit}" if value == limit
                 else f"{value} {unit} beyond the limit {limit} {unit}")
        return f"{self.quantity} {where} at {self.time_s:.1f} s into the step"


def check(limits: Limits, points: Points) -> Trip | None:
    """The first point that breaks a limit, or None."""
    if len(points) == 0 or _all_within(limits, points):
        return None
    candidates: list[tuple[int, Trip]] = []

    def first(mask: np.ndarray, quantity: str, values: np.ndarray, limit: float) -> None:
        idx = np.flatnonzero(mask)
        if idx.size:
            k = int(idx[0])
            candidates.append((k, Trip(quantity, float(values[k]), limit,
                                       float(points.time_s[k]))))

    v, i = points.voltage_V, points.current_A
    if limits.max_voltage is not None:
        first(v > limits.max_voltage, "voltage", v, limits.max_voltage)
    if limits.min_voltage is not None:
        first(v < limits.min_voltage, "voltage", v, limits.min_voltage)
    if limits.max_current is not None:
        first(np.abs(i) > limits.max_current, "current", i, limits.max_current)
    if limits.max_temperature is not None and points.temperature_C is not None:
        t_max = kelvin_to_celsius(limits.max_temperature)
        first(points.temperature_C > t_max, "temperature", points.temperature_C, t_max)
    return min(candidates, key=lambda c: c[0])[1] if candidates else None


def _all_within(limits: Limits, points: Points) -> bool:
    """Every point within every limit, from the extremes alone (the common case, a few array
    reductions); False when one is beyond, or a value is NaN (then each point is looked at)."""
    v = points.voltage_V
    if len(v) == 1:   # every step's first poll: plain floats cost less than numpy's reductions
        return point_within(limits, v.item(), points.current_A.item(),
                           None if points.temperature_C is None else points.temperature_C.item())
    if limits.max_voltage is not None and not float(v.max()) <= limits.max_voltage:
        return False
    if limits.min_voltage is not None and not float(v.min()) >= limits.min_voltage:
        return False
    if limits.max_current is not None and \
            not float(np.abs(points.current_A).max()) <= limits.max_current:
        return False
    return limits.max_temperature is None or points.temperature_C is None or \
        float(points.temperature_C.max()) <= kelvin_to_celsius(limits.max_temperature)


def point_within(limits: Limits, voltage_V: float, current_A: float,
                temperature_C: float | None) -> bool:
    """Whether one point is within every limit (NaN is never within): :func:`check` of a
    single point finds no trip exactly when this is True, with no arrays to build."""
    if limits.max_voltage is not None and not voltage_V <= limits.max_voltage:
        return False
    if limits.min_voltage is not None and not voltage_V >= limits.min_voltage:
        return False
    if limits.max_current is not None and not abs(current_A) <= limits.max_current:
        return False
    return limits.max_temperature is None or temperature_C is None or \
        temperature_C <= kelvin_to_celsius(limits.max_temperature)
