"""LSV and CV: linear voltage sweeps; an LSV stops at a current-density threshold."""

from __future__ import annotations

from drivers.techniques import VoltageSweep
from protocols.cells import Cell
from protocols.steps import CyclicVoltammetry, LinearSweep


def linear(step: LinearSweep, cell: Cell) -> VoltageSweep:
    until = (step.until_current_density * cell.electrode_area_m2
             if step.until_current_density is not None else None)
    return VoltageSweep(vertices_V=(step.vertex,), scan_rate_V_s=step.scan_rate,
                        record_dt_s=step.record_every, until_abs_current_A=until,
                        start_V=step.start)


def cyclic(step: CyclicVoltammetry, cell: Cell) -> VoltageSweep:
    return VoltageSweep(vertices_V=tuple(step.vertices), scan_rate_V_s=step.scan_rate,
                        record_dt_s=step.record_every, cycles=step.cycles, start_V=step.start)


TECHNIQUES = {LinearSweep: linear, CyclicVoltammetry: cyclic}
