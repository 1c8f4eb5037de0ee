"""Open circuit: no current, the voltage recorded."""

from __future__ import annotations

from typing import Literal

from protocols.steps.base import RecordingStep
from protocols.steps.until import StepUntil
from protocols.types import Duration


class Rest(RecordingStep):
    kind: Literal["rest"] = "rest"
    duration: Duration
    until: StepUntil | None = None


STEPS = (Rest,)
