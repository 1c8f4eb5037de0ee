"""A sketch of a new step type, as its own module under ``protocols/steps`` would declare it
(not a test module: imported only by tests/test_step_registry.py, as ``protocols.steps.
sketch_hold``)."""

from __future__ import annotations

from typing import Literal

from protocols.steps.base import RecordingStep
from protocols.types import Duration, Voltage


class SketchHold(RecordingStep):
    kind: Literal["sketch_hold"] = "sketch_hold"
    voltage: Voltage
    duration: Duration


STEPS = (SketchHold,)
