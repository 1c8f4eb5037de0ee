"""Chronoamperometry: a potential hold for a duration or until the current is steady.

``voltage`` is against the reference electrode, or with ``vs: ocv`` against the open-circuit
voltage at the start (a 10 mV polarisation for a transference number)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from protocols.steps.base import RecordingStep
from protocols.types import FROZEN, Duration, Fraction, Voltage


class Steady(BaseModel):
    """The current changed by less than ``relative_change`` over the last ``window``."""

    model_config = FROZEN
    relative_change: Fraction
    window: Duration


class Chronoamperometry(RecordingStep):
    kind: Literal["chronoamperometry"] = "chronoamperometry"
    voltage: Voltage
    vs: Literal["reference", "ocv"] = "reference"
    duration: Duration
    until_steady: Steady | None = None


STEPS = (Chronoamperometry,)
