"""Constant power and constant resistance (a load), as cyclers run them.

Constant power follows the sign convention of a current: ``direction: charge`` puts power in,
``discharge`` takes it out, and the current is P / V. A constant resistance discharges the cell
through the load (I = -V / R). Both end at ``until_voltage`` (crossed upwards when charging,
downwards when discharging), after ``duration``, or at an ``until`` condition; without a
duration the plan sets a time limit from the cell's capacity, as for a constant current.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from protocols.steps.base import RecordingStep
from protocols.steps.constant_current import Direction
from protocols.steps.until import StepUntil
from protocols.types import Duration, PositivePower, PositiveResistance, Voltage


class _Driven(RecordingStep):
    until_voltage: Voltage | None = None
    duration: Duration | None = None
    until: StepUntil | None = None

    @model_validator(mode="after")
    def _has_an_end(self) -> _Driven:
        if self.until_voltage is None and self.duration is None and self.until is None:
            raise ValueError("give until_voltage, duration or until")
        return self


class ConstantPower(_Driven):
    kind: Literal["constant_power"] = "constant_power"
    direction: Direction
    power: PositivePower


class ConstantResistance(_Driven):
    kind: Literal["constant_resistance"] = "constant_resistance"
    resistance: PositiveResistance


STEPS = (ConstantPower, ConstantResistance)
