"""Potentiostatic hold, e.g. the CV part of a CC-CV charge."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from protocols.steps.base import RecordingStep
from protocols.steps.capacity_reference import ReferenceField
from protocols.steps.until import StepUntil
from protocols.types import CurrentLike, Duration, Voltage


class ConstantVoltage(RecordingStep):
    """Ends when |I| falls to ``until_current`` or after ``duration``. Without a duration the
    plan sets a time limit of 1.5x the time the capacity lasts at ``until_current``."""

    kind: Literal["constant_voltage"] = "constant_voltage"
    voltage: Voltage
    until_current: CurrentLike | None = None
    duration: Duration | None = None
    until: StepUntil | None = None
    c_rate_reference: ReferenceField = None

    @model_validator(mode="after")
    def _has_an_end(self) -> ConstantVoltage:
        if self.until_current is None and self.duration is None and self.until is None:
            raise ValueError("give until_current, duration or both (or an until condition)")
        return self


STEPS = (ConstantVoltage,)
