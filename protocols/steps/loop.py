"""Repeat a block of steps; each iteration of an innermost loop is one cycle.

``count`` is always the bound; ``until`` ends the loop earlier: a capacity retention below a
percentage of the loop's first cycle, a short circuit, or a step ending on its voltage limit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, StrictBool, model_validator

from protocols.steps.base import StepBase
from protocols.types import FROZEN, Count, Fraction

if TYPE_CHECKING:
    from protocols.steps import Step


class LoopUntil(BaseModel):
    model_config = FROZEN
    capacity_retention_below: Fraction | None = None
    short_circuit: StrictBool = False
    voltage_limit: StrictBool = False

    @model_validator(mode="after")
    def _some_condition(self) -> LoopUntil:
        if self.capacity_retention_below is None and not (self.short_circuit
                                                         or self.voltage_limit):
            raise ValueError("until needs a condition: capacity_retention_below, short_circuit"
                             " or voltage_limit")
        return self


class Loop(StepBase):
    """``count_cycles: false`` keeps an innermost loop's iterations from counting as cycles
    (GITT pulses, a repeated EIS)."""

    kind: Literal["loop"] = "loop"
    count: Count = Field(ge=1, le=1_000_000)
    until: LoopUntil | None = None
    count_cycles: StrictBool = True
    steps: list[Step] = Field(min_length=1)


STEPS = (Loop,)
