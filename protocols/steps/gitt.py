"""Galvanostatic intermittent titration: current pulses with rests, until a voltage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from protocols.steps.base import StepBase
from protocols.steps.constant_current import Direction
from protocols.types import Count, CurrentLike, Duration, Voltage


class GITT(StepBase):
    kind: Literal["gitt"] = "gitt"
    direction: Direction
    current: CurrentLike
    pulse: Duration
    rest: Duration
    until_voltage: Voltage
    max_pulses: Count = Field(default=1000, ge=1, le=100_000)
    record_every: Duration = 1.0


STEPS = (GITT,)
