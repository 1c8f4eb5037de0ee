"""Cycling shorthands by C-rate: a CC-CV charge and a CC discharge."""

from __future__ import annotations

from typing import Literal

from protocols.steps.base import DEFAULT_RECORD_EVERY_S, StepBase
from protocols.steps.capacity_reference import ReferenceField
from protocols.types import CurrentLike, Duration, Voltage


class CCCVCharge(StepBase):
    """Charge at ``current`` to ``voltage``, then hold until ``until_current`` (or
    ``hold_duration``)."""

    kind: Literal["cccv_charge"] = "cccv_charge"
    current: CurrentLike
    voltage: Voltage
    until_current: CurrentLike
    hold_duration: Duration | None = None
    record_every: Duration = DEFAULT_RECORD_EVERY_S
    c_rate_reference: ReferenceField = None


class CCDischarge(StepBase):
    kind: Literal["cc_discharge"] = "cc_discharge"
    current: CurrentLike
    until_voltage: Voltage
    record_every: Duration = DEFAULT_RECORD_EVERY_S
    c_rate_reference: ReferenceField = None


STEPS = (CCCVCharge, CCDischarge)
