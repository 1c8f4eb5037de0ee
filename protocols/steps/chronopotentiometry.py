"""Chronopotentiometry: a current for a set time, the voltage recorded (optionally limited)."""

from __future__ import annotations

from typing import Literal

from protocols.steps.base import RecordingStep
from protocols.steps.capacity_reference import ReferenceField
from protocols.steps.constant_current import Direction
from protocols.types import CurrentLike, Duration, Voltage


class Chronopotentiometry(RecordingStep):
    kind: Literal["chronopotentiometry"] = "chronopotentiometry"
    direction: Direction
    current: CurrentLike
    duration: Duration
    until_voltage: Voltage | None = None
    c_rate_reference: ReferenceField = None


STEPS = (Chronopotentiometry,)
