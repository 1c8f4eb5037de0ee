"""Rest: open circuit for a duration."""

from __future__ import annotations

from drivers.techniques import OpenCircuit
from protocols.cells import Cell
from protocols.steps import Rest
from sequencer.handlers.end_conditions import end_conditions


def technique(step: Rest, cell: Cell) -> OpenCircuit:
    return OpenCircuit(duration_s=step.duration, record_dt_s=step.record_every,
                       record_dV_V=step.record_dV, ends=end_conditions(step.until, cell))


TECHNIQUES = {Rest: technique}
