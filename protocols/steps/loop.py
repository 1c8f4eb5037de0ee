"""Repeat a block of steps; each iteration of an innermost loop is one cycle.

``count`` is always the bound; ``until`` ends the loop earlier, checked after each iteration
(and, for a capacity retention, after each iteration of the loops inside it too):

- ``capacity_retention_below``: the loop's cycles fell below a fraction of the first cycle of
  their series (same tag, C-rate and temperature): a check-up at another rate or tag inside
  the loop is a series of its own and neither ends the loop nor is summed into its cycles;
- ``short_circuit``: a step ended on a short;
- ``voltage_limit``: a step ended on its voltage limit;
- ``voltage_below`` / ``voltage_above``: the cell's last measured voltage;
- ``temperature_above`` / ``temperature_below``: the cell's last measured temperature;
- ``discharge_capacity_below``: the charge the iteration's last discharge delivered.

Any of the conditions given ends the loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, StrictBool, model_validator

from protocols.steps.base import StepBase
from protocols.types import FROZEN, Count, Fraction, PositiveCharge, Temperature, Voltage

if TYPE_CHECKING:
    from protocols.steps import Step

#: The measured conditions of ``until``, checked from the iteration's last point.
MEASURED_CONDITIONS = ("voltage_below", "voltage_above", "temperature_above",
                       "temperature_below", "discharge_capacity_below")


class LoopUntil(BaseModel):
    model_config = FROZEN
    capacity_retention_below: Fraction | None = None
    short_circuit: StrictBool = False
    voltage_limit: StrictBool = False
    voltage_below: Voltage | None = None
    voltage_above: Voltage | None = None
    temperature_above: Temperature | None = None
    temperature_below: Temperature | None = None
    discharge_capacity_below: PositiveCharge | None = None

    @model_validator(mode="after")
    def _some_condition(self) -> LoopUntil:
        if self.capacity_retention_below is None and not (self.short_circuit
                                                         or self.voltage_limit) and all(
                getattr(self, name, None) is None for name in MEASURED_CONDITIONS):
            raise ValueError("until needs a condition: capacity_retention_below, short_circuit,"
                             " voltage_limit, " + ", ".join(MEASURED_CONDITIONS))
        return self

    @property
    def measured(self) -> bool:
        """A condition on what the cell measured at the end of an iteration."""
        return any(getattr(self, name, None) is not None for name in MEASURED_CONDITIONS)


class Loop(StepBase):
    """``count_cycles: false`` keeps an innermost loop's iterations from counting as cycles
    (GITT pulses, a repeated EIS)."""

    kind: Literal["loop"] = "loop"
    count: Count = Field(ge=1, le=1_000_000)
    until: LoopUntil | None = None
    count_cycles: StrictBool = True
    steps: list[Step] = Field(min_length=1)


STEPS = (Loop,)
