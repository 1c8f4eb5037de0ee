"""Impedance: PEIS around open circuit, GEIS around a DC current."""

from __future__ import annotations

from drivers.techniques import Impedance
from protocols.cells import Cell
from protocols.steps import GEIS, PEIS


def technique(step: PEIS, cell: Cell) -> Impedance:
    return Impedance(f_start_Hz=step.f_start, f_end_Hz=step.f_end, amplitude_V=step.amplitude,
                     points_per_decade=step.points_per_decade, average=step.average)


def galvanostatic(step: GEIS, cell: Cell) -> Impedance:
    return Impedance(f_start_Hz=step.f_start, f_end_Hz=step.f_end, amplitude_V=0.0,
                     points_per_decade=step.points_per_decade, average=step.average,
                     galvanostatic=True, amplitude_A=step.amplitude, bias_A=step.bias or 0.0)


TECHNIQUES = {PEIS: technique, GEIS: galvanostatic}
