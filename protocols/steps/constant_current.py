"""Galvanostatic step: charge or discharge at a current, density or C-rate."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from protocols.steps.base import RecordingStep
from protocols.steps.capacity_reference import ReferenceField
from protocols.steps.until import StepUntil
from protocols.types import CurrentLike, Duration, PositiveVoltage, Voltage

Direction = Literal["charge", "discharge"]


class ConstantCurrent(RecordingStep):
    """Ends at ``until_voltage`` (reached from below when charging, from above when
    discharging), at a short circuit (|V| below ``short_circuit_below``) or after ``duration``,
    whichever comes first. Without a duration the plan sets a time limit of 1.5x the time the
    cell's capacity allows."""

    kind: Literal["constant_current"] = "constant_current"
    direction: Direction
    current: CurrentLike
    until_voltage: Voltage | None = None
    duration: Duration | None = None
    until: StepUntil | None = None
    short_circuit_below: PositiveVoltage | None = None
    c_rate_reference: ReferenceField = None

    @model_validator(mode="after")
    def _has_an_end(self) -> ConstantCurrent:
        if self.until_voltage is None and self.duration is None and self.until is None:
            raise ValueError("give until_voltage, duration or both (or an until condition)")
        return self


STEPS = (ConstantCurrent,)
