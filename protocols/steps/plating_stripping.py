"""Galvanostatic Li plating/stripping on symmetric cells, and the critical-current-density ramp.

A short circuit shows as a voltage collapse: |V| below ``short_circuit_below`` once the
half-cycle has settled. It ends the step (and, in a ramp, the ramp)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from protocols.steps.base import DEFAULT_RECORD_EVERY_S, StepBase
from protocols.types import Count, Duration, PositiveCurrentDensity, PositiveVoltage

#: Default collapse threshold: well below the paper's smallest plateau (34.7 mV at
#: 0.15 mA/cm^2) and above j A R_short for a 1-5 Ohm short at the CCD (a few mV).
DEFAULT_SHORT_BELOW_V = 0.005


class PlatingStripping(StepBase):
    """``cycles`` x (charge at ``current_density`` for ``half_cycle``, then discharge)."""

    kind: Literal["plating_stripping"] = "plating_stripping"
    current_density: PositiveCurrentDensity
    half_cycle: Duration
    cycles: Count = Field(ge=1, le=1_000_000)
    short_circuit_below: PositiveVoltage = DEFAULT_SHORT_BELOW_V
    record_every: Duration = DEFAULT_RECORD_EVERY_S


class CCDRamp(StepBase):
    """Plating/stripping at ``start``, ``start + increment``, ... up to ``maximum``,
    ``cycles_per_level`` cycles each, until the cell shorts."""

    kind: Literal["ccd_ramp"] = "ccd_ramp"
    start: PositiveCurrentDensity
    increment: PositiveCurrentDensity
    maximum: PositiveCurrentDensity
    half_cycle: Duration
    cycles_per_level: Count = Field(default=1, ge=1, le=1000)
    short_circuit_below: PositiveVoltage = DEFAULT_SHORT_BELOW_V
    record_every: Duration = DEFAULT_RECORD_EVERY_S

    @model_validator(mode="after")
    def _bounded(self) -> CCDRamp:
        if self.maximum < self.start:
            raise ValueError("maximum must not be below start")
        if (self.maximum - self.start) / self.increment > 1000:
            raise ValueError("the ramp has more than 1000 levels; raise increment")
        return self

    def levels(self) -> list[float]:
        n = int((self.maximum - self.start) / self.increment + 1e-9) + 1
        return [self.start + k * self.increment for k in range(n)]


STEPS = (PlatingStripping, CCDRamp)
