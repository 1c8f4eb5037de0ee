"""Small stand-ins for tests: a resistor cell with a linear OCV, closed forms everywhere."""

from __future__ import annotations

import numpy as np

from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit
from simulators.cells.base import CellModel, Segment


class _LinearSegment(Segment):
    def __init__(self, cell: ResistorCell, technique) -> None:
        self.cell, self.technique = cell, technique
        q0 = cell.charge_C
        if isinstance(technique, OpenCircuit):
            self.current = 0.0
        elif isinstance(technique, ConstantCurrent):
            self.current = technique.current_A
        else:
            self.current = (technique.voltage_V - cell.ocv_at(q0)) / cell.r_ohm
        self.duration_s, self.end_reason = technique.duration_s, "duration"
        if isinstance(technique, ConstantCurrent) and technique.until_voltage_V is not None:
            # V(t) = v0 + k (q0 + I t) + I R  ->  time at which V = limit
            v_now = cell.ocv_at(q0) + self.current * cell.r_ohm
            t_hit = (technique.until_voltage_V - v_now) / (cell.k_V_per_C * self.current)
            if 0 <= t_hit < technique.duration_s:
                self.duration_s, self.end_reason = t_hit, "voltage"
        self._q0 = q0

    def sample(self, t_s):
        q = self._q0 + self.current * t_s
        v = self.cell.ocv_at(q) + self.current * self.cell.r_ohm
        return v, np.full_like(t_s, self.current)

    def finish(self, elapsed_s: float) -> None:
        self.cell.charge_C = self._q0 + self.current * elapsed_s


class ResistorCell(CellModel):
    """OCV = v0 + k q, series resistance R, impedance R + 1/(j w C)."""

    def __init__(self, v0: float = 3.0, k_V_per_C: float = 1.0, r_ohm: float = 10.0) -> None:
        self.v0, self.k_V_per_C, self.r_ohm = v0, k_V_per_C, r_ohm
        self.charge_C = 0.0

    def ocv_at(self, q):
        return self.v0 + self.k_V_per_C * q

    def ocv_V(self, temperature_C: float) -> float:
        return float(self.ocv_at(self.charge_C))

    def begin(self, technique, temperature_C: float) -> Segment:
        assert isinstance(technique, OpenCircuit | ConstantCurrent | ConstantVoltage)
        return _LinearSegment(self, technique)

    def impedance(self, frequency_Hz, temperature_C: float):
        return self.r_ohm + 1 / (1j * 2 * np.pi * frequency_Hz * 1e-3)


class ShortingCell(ResistorCell):
    """A Li|Li-like cell (OCV 0 V, 100 Ohm) whose resistance collapses to 0.5 Ohm once it has
    run ``short_after_s`` in total: a short circuit."""

    def __init__(self, short_after_s: float) -> None:
        super().__init__(v0=0.0, k_V_per_C=0.0, r_ohm=100.0)
        self.short_after_s, self.age_s = short_after_s, 0.0

    def begin(self, technique, temperature_C: float) -> Segment:
        cell = self

        class _Seg(Segment):
            duration_s, end_reason = technique.duration_s, "duration"

            def sample(self, t_s):
                i = np.full_like(t_s, getattr(technique, "current_A", 0.0))
                r = np.where(cell.age_s + t_s < cell.short_after_s, 100.0, 0.5)
                return i * r, i

            def finish(self, elapsed_s: float) -> None:
                cell.age_s += elapsed_s

        return _Seg()


class FadingCell(ResistorCell):
    """Every discharge leaves 10 % less capacity: the OCV slope grows by 10 %."""

    def begin(self, technique, temperature_C: float) -> Segment:
        seg = super().begin(technique, temperature_C)
        if isinstance(technique, ConstantCurrent) and technique.current_A < 0:
            inner = seg.finish

            def finish(elapsed_s: float) -> None:
                inner(elapsed_s)
                self.k_V_per_C *= 1.1
                self.charge_C = (self.ocv_at(self.charge_C) - self.v0) / self.k_V_per_C

            seg.finish = finish  # type: ignore[method-assign]
        return seg
