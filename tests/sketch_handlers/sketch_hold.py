"""The sketch step's handler, as its own module under ``sequencer/handlers`` would be (imported
only by tests/test_step_registry.py, as ``sequencer.handlers.sketch_hold``)."""

from __future__ import annotations

from protocols.steps.sketch_hold import SketchHold

from drivers.techniques import ConstantVoltage
from protocols.cells import Cell


def technique(step: SketchHold, cell: Cell) -> ConstantVoltage:
    return ConstantVoltage(voltage_V=step.voltage, duration_s=step.duration,
                           record_dt_s=step.record_every)


TECHNIQUES = {SketchHold: technique}
