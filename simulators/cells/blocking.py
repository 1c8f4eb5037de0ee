"""SS | electrolyte | SS: the blocking cell a conductivity measurement uses.

Impedance: L + R_lead + (R_b || C_geo) + (R_gb || CPE_gb) + (CPE_dl || R_e). The bulk arc
(C_geo = eps0 eps_r S / d, tens of pF) peaks far above 3 MHz, so the spectrum shows the real-axis
intercept at R_b and then the blocking spike; ceramics add a grain-boundary arc near 1 MHz.

DC: no charge crosses the steel, so current only charges the double layer. For time-series steps
the double layer is an ideal capacitor C_eff (Brug's value for the CPE) leaking through the tiny
electronic resistance R_e: closed-form exponentials for CC, CV and rest, with one state, V_dl.
A voltage sweep (LSV, CV) drives the same circuit with a piecewise-linear voltage, also in closed
form per leg: the current is the capacitive C dV/dt (its sign follows the scan direction) plus the
leakage V / (R_s + R_e); nothing faradaic happens at blocking electrodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit, VoltageSweep
from simulators.cells._common import (
    EPS0,
    M2_TO_CM2,
    M_TO_CM,
    Array,
    CapacitiveSweep,
    FunctionSegment,
    SweepPath,
    cpe,
    limited,
    membrane_resistances,
    parallel,
    r_cpe,
    sweep_segment,
)
from simulators.cells.base import CellModel, Segment, TimeSeriesTechnique


class BlockingCell(CellModel):
    """A membrane between two ion-blocking electrodes; starts discharged (OCV 0 V)."""

    def __init__(self, electrolyte_params: Mapping[str, Any], thickness_m: float, area_m2: float,
                 inductance_H: float = 0.0, lead_resistance_ohm: float = 0.0) -> None:
        if thickness_m <= 0 or area_m2 <= 0:
            raise ValueError("thickness_m and area_m2 must be positive")
        self.params = dict(electrolyte_params)
        self.thickness_m, self.area_m2 = float(thickness_m), float(area_m2)
        self.inductance_H = float(inductance_H)
        self.lead_resistance_ohm = float(lead_resistance_ohm)
        p = self.params
        area_cm2 = self.area_m2 * M2_TO_CM2
        self.c_geo_F = EPS0 * float(p.get("eps_r", 10.0)) * self.area_m2 / self.thickness_m
        self.q_dl = float(p["cpe_dl_q_S_s_n_per_cm2"]) * area_cm2
        self.n_dl = float(p["cpe_dl_n"])
        self.q_gb = float(p["cpe_gb_q_S_s_n_cm"]) * area_cm2 / (self.thickness_m * M_TO_CM)
        self.n_gb = float(p["cpe_gb_n"])
        sigma_e = float(p.get("sigma_electronic_S_per_cm", 1e-9))
        self.r_electronic_ohm = self.thickness_m * M_TO_CM / (sigma_e * area_cm2)
        self.v_dl_V = 0.0  # double-layer voltage, the only DC state

    # -- resistances ------------------------------------------------------------------------
    def bulk_resistance_ohm(self, temperature_C: float) -> float:
        """R_b = d / (sigma_bulk(T) S): the high-frequency intercept."""
        return membrane_resistances(self.params, self.thickness_m, self.area_m2, temperature_C)[0]

    def total_resistance_ohm(self, temperature_C: float) -> float:
        """R_b + R_gb = d / (sigma(T) S), the resistance the conductivity refers to."""
        return sum(membrane_resistances(self.params, self.thickness_m, self.area_m2,
                                        temperature_C))

    def _series_ohm(self, temperature_C: float) -> float:
        return self.lead_resistance_ohm + self.total_resistance_ohm(temperature_C)

    def _c_eff_F(self, temperature_C: float) -> float:
        """Brug's effective capacitance of a CPE in series with R: Q^(1/n) R^((1-n)/n)."""
        r = self._series_ohm(temperature_C)
        return self.q_dl ** (1 / self.n_dl) * r ** ((1 - self.n_dl) / self.n_dl)

    # -- CellModel ----------------------------------------------------------------------------
    def ocv_V(self, temperature_C: float) -> float:
        return self.v_dl_V

    def impedance(self, frequency_Hz: np.ndarray, temperature_C: float) -> np.ndarray:
        w = 2 * np.pi * np.asarray(frequency_Hz, dtype=float)
        r_b, r_gb = membrane_resistances(self.params, self.thickness_m, self.area_m2,
                                         temperature_C)
        z = self.lead_resistance_ohm + 1j * w * self.inductance_H
        z = z + r_b / (1 + 1j * w * r_b * self.c_geo_F)
        if r_gb > 0:
            z = z + r_cpe(r_gb, self.q_gb, self.n_gb, w)
        return z + parallel(cpe(self.q_dl, self.n_dl, w), self.r_electronic_ohm)

    def begin(self, technique: TimeSeriesTechnique, temperature_C: float) -> Segment:
        r_s = self._series_ohm(temperature_C)
        r_e = self.r_electronic_ohm
        c = self._c_eff_F(temperature_C)
        v0 = self.v_dl_V

        if isinstance(technique, VoltageSweep):
            return self._sweep(technique, r_s, r_e, c)

        if isinstance(technique, OpenCircuit):
            tau = r_e * c

            def v_dl(t: Array) -> Array:
                return v0 * np.exp(-t / tau)

            def sample(t: Array) -> tuple[Array, Array]:
                return v_dl(t), np.zeros_like(t)

            duration, reason = limited(v_dl, technique.duration_s, None, True, "")

        elif isinstance(technique, ConstantCurrent):
            current = technique.current_A
            tau = r_e * c
            v_inf = current * r_e

            def v_dl(t: Array) -> Array:
                return v_inf + (v0 - v_inf) * np.exp(-t / tau)

            def voltage(t: Array) -> Array:
                return current * r_s + v_dl(t)

            def sample(t: Array) -> tuple[Array, Array]:
                return voltage(t), np.full_like(t, current)

            duration, reason = limited(voltage, technique.duration_s, technique.until_voltage_V,
                                       current > 0, "voltage")

        elif isinstance(technique, ConstantVoltage):
            v_hold = technique.voltage_V
            tau = c * r_s * r_e / (r_s + r_e)
            v_inf = v_hold * r_e / (r_s + r_e)

            def v_dl(t: Array) -> Array:
                return v_inf + (v0 - v_inf) * np.exp(-t / tau)

            def current(t: Array) -> Array:
                return (v_hold - v_dl(t)) / r_s

            def sample(t: Array) -> tuple[Array, Array]:
                return np.full_like(t, v_hold), current(t)

            lim = technique.until_abs_current_A
            duration, reason = limited(lambda t: np.abs(current(t)), technique.duration_s, lim,
                                       False, "current")
        else:
            raise NotImplementedError(f"a blocking cell cannot run {type(technique).__name__}")

        def finish(elapsed: float) -> None:
            self.v_dl_V = float(v_dl(np.array([elapsed]))[0])

        return FunctionSegment(duration, reason, sample, finish)

    def _sweep(self, technique: VoltageSweep, r_s: float, r_e: float, c: float) -> Segment:
        """The double layer follows the applied voltage within R_s C (tens of us); a start_V away
        from V_dl is stepped to before the sweep (that spike is not part of it)."""
        start = self.v_dl_V if technique.start_V is None else technique.start_V
        path = SweepPath(technique, start)
        circuit = CapacitiveSweep(path, c, r_s, r_e)

        def finish(elapsed: float) -> None:
            self.v_dl_V = float(circuit.capacitor_V(np.array([elapsed]))[0])

        return sweep_segment(path, circuit.current, technique.until_abs_current_A, finish)


__all__ = ["BlockingCell"]
