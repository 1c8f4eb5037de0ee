"""Li | electrolyte | Cu: the plating efficiency (Coulombic efficiency) cell.

Sign convention: the working electrode is the Cu, the Li disc is counter and reference. Plating Li
onto Cu is a reduction of the working electrode, so a **negative** current (the discharge
direction) plates, and the voltage sits at -eta below 0 V; a **positive** current (charge) strips
the plated Li back, at +eta, until the Li on the Cu runs out, when the voltage shoots up towards
bare Cu (``cu_ocv_V`` + I R_b) and crosses the usual cutoff (e.g. 0.5 V) within about a second.

Only a fraction CE of the plated Li can be stripped again (the rest is lost to SEI and dead Li),
so the cell keeps one number, the strippable Li on the Cu: plating adds CE * charge, stripping
removes the charge. With a constant CE the average CE over any number of full cycles is CE
(96.31 % for AIOSE). The overpotential is the same measured plating/stripping curve as the Li|Li
cell's (see :mod:`simulators.cells.symmetric`); plating onto bare Cu adds a nucleation overshoot.
This cell does not model shorts: the Li on the Cu is too thin to reach across.

Voltage sweeps (LSV, CV; the classic stability test sweeps from the bare Cu/SS's OCV, ~3 V,
upwards). The current is the sum of
- the double layer of the Cu, C dV/dt behind the uncompensated resistance R_u = R_b + R_int / 2
  (membrane and the Li counter's interface); C is Brug's value of the blocking CPE;
- the electrolyte's oxidative decomposition, A j_on exp((E - E_on) / b) with E = V - I R_u (see
  :func:`~simulators.cells._common.oxidation_current_A`): j_on at E_on, so the LSV's onset at
  j_on is the material's ``oxidation_onset_V`` (5.6 V for AIOSE) to within the ~2 mV of I R_u;
- Li plating below 0 V and stripping above 0 V while Li is on the Cu, at I = V / R, R the linear
  fit of the plating curve (as a potentiostatic hold); stripping stops when the Li is gone. The
  nucleation overshoot is not modelled in a sweep.
An anodic sweep on bare Cu moves no Li: only plating and stripping change the Li inventory.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit, VoltageSweep
from simulators.cells._common import (
    M2_TO_CM2,
    M_TO_CM,
    Array,
    CapacitiveSweep,
    FunctionSegment,
    SweepPath,
    arrhenius_factor,
    brug_capacitance_F,
    cpe,
    limited,
    linear_overpotential_asr_ohm_cm2,
    membrane_resistances,
    overpotential_V,
    oxidation_current_A,
    r_cpe,
    sweep_segment,
)
from simulators.cells.base import CellModel, Segment, TimeSeriesTechnique

#: Open-circuit voltage of bare Cu against Li (assumed; typically 2.5-3.2 V).
CU_OCV_V = 3.0
#: Nucleation overshoot on bare Cu, as a fraction of the plateau, and its decay time (assumed).
NUCLEATION_FRACTION = 0.5
NUCLEATION_TIME_S = 30.0
#: Time for bare Cu's voltage to fall from its OCV to plating (double layer, SEI), assumed.
SETTLE_TIME_S = 2.0
#: Time of the voltage rise once the plated Li is exhausted (assumed).
EXHAUSTION_TIME_S = 5.0
#: Strippable Li below this (C) counts as none.
_EMPTY_C = 1e-12


class LiCuCell(CellModel):
    """Li counter/reference, Cu working electrode; starts with bare Cu (OCV ``cu_ocv_V``)."""

    def __init__(self, electrolyte_params: Mapping[str, Any], thickness_m: float, area_m2: float,
                 cu_ocv_V: float = CU_OCV_V) -> None:
        if thickness_m <= 0 or area_m2 <= 0:
            raise ValueError("thickness_m and area_m2 must be positive")
        self.params = dict(electrolyte_params)
        self.thickness_m, self.area_m2 = float(thickness_m), float(area_m2)
        self.area_cm2 = self.area_m2 * M2_TO_CM2
        self.cu_ocv_V = float(cu_ocv_V)
        self.coulombic_efficiency = float(self.params["li_cu_coulombic_efficiency"])
        # state
        self.li_on_cu_C = 0.0      # strippable Li on the Cu
        self.plated_C = 0.0        # totals, for reference
        self.stripped_C = 0.0

    # -- helpers ----------------------------------------------------------------------------
    def bulk_resistance_ohm(self, temperature_C: float) -> float:
        return sum(membrane_resistances(self.params, self.thickness_m, self.area_m2,
                                        temperature_C))

    def _interface_ohm(self, temperature_C: float) -> float:
        """Both interfaces' resistance when both are Li (the Li|Li value)."""
        return (float(self.params["r_int_ohm_cm2"]) / self.area_cm2
                * arrhenius_factor(float(self.params["ea_int_eV"]), temperature_C))

    def _temperature_scale(self, temperature_C: float) -> float:
        r_int = self._interface_ohm(25.0)
        return ((self.bulk_resistance_ohm(temperature_C) + self._interface_ohm(temperature_C))
                / (self.bulk_resistance_ohm(25.0) + r_int))

    def _plateau(self, current_A: float, temperature_C: float) -> tuple[float, float, float]:
        """(ohmic drop, steady overpotential, rise time) for |current_A|."""
        j = abs(current_A) / self.area_cm2 * 1e3
        eta = overpotential_V(self.params, j) * self._temperature_scale(temperature_C)
        ohmic = min(abs(current_A) * self.bulk_resistance_ohm(temperature_C), eta)
        return ohmic, eta, float(self.params["overpotential_rise_time_s"])

    @property
    def has_lithium(self) -> bool:
        return self.li_on_cu_C > _EMPTY_C

    # -- CellModel --------------------------------------------------------------------------
    def ocv_V(self, temperature_C: float) -> float:
        return 0.0 if self.has_lithium else self.cu_ocv_V

    def impedance(self, frequency_Hz: np.ndarray, temperature_C: float) -> np.ndarray:
        w = 2 * np.pi * np.asarray(frequency_Hz, dtype=float)
        p = self.params
        r_b, r_gb = membrane_resistances(p, self.thickness_m, self.area_m2, temperature_C)
        q_int = float(p["cpe_int_q_S_s_n_per_cm2"]) * self.area_cm2
        n_int = float(p["cpe_int_n"])
        half = self._interface_ohm(temperature_C) / 2  # one Li interface: half R, twice Q
        z = r_b + r_cpe(half, 2 * q_int, n_int, w)
        if r_gb > 0:
            q_gb = float(p["cpe_gb_q_S_s_n_cm"]) * self.area_cm2 / (self.thickness_m * M_TO_CM)
            z = z + r_cpe(r_gb, q_gb, float(p["cpe_gb_n"]), w)
        if self.has_lithium:
            return z + r_cpe(half, 2 * q_int, n_int, w)
        return z + cpe(float(p["cpe_dl_q_S_s_n_per_cm2"]) * self.area_cm2,
                       float(p["cpe_dl_n"]), w)

    def begin(self, technique: TimeSeriesTechnique, temperature_C: float) -> Segment:
        if isinstance(technique, ConstantCurrent) and technique.current_A < 0:
            return self._plate(technique, temperature_C)
        if isinstance(technique, ConstantCurrent) and technique.current_A > 0:
            return self._strip(technique, temperature_C)
        if isinstance(technique, ConstantVoltage):
            return self._hold(technique, temperature_C)
        if isinstance(technique, VoltageSweep):
            return self._sweep(technique, temperature_C)
        if isinstance(technique, OpenCircuit | ConstantCurrent):
            v = self.ocv_V(temperature_C)
            return FunctionSegment(technique.duration_s, "duration",
                                   lambda t: (np.full_like(t, v), np.zeros_like(t)), lambda e: None)
        raise NotImplementedError(f"a Li|Cu cell cannot run {type(technique).__name__}")

    # -- segments ---------------------------------------------------------------------------
    def _plate(self, technique: ConstantCurrent, temperature_C: float) -> Segment:
        current = technique.current_A
        ohmic, eta, tau = self._plateau(current, temperature_C)
        bare = not self.has_lithium
        nuc = NUCLEATION_FRACTION * eta if bare else 0.0
        v0 = self.ocv_V(temperature_C)

        def voltage(t: Array) -> Array:
            mag = ohmic + (eta - ohmic) * (1 - np.exp(-t / tau)) + nuc * np.exp(
                -t / NUCLEATION_TIME_S)
            if not bare:
                return -mag
            start = v0 + ohmic + nuc  # bare Cu starts at its OCV and falls to the plating value
            return -mag + start * np.exp(-t / SETTLE_TIME_S)

        def sample(t: Array) -> tuple[Array, Array]:
            return voltage(t), np.full_like(t, current)

        duration, reason = limited(voltage, technique.duration_s, technique.until_voltage_V,
                                   False, "voltage")

        def finish(elapsed: float) -> None:
            charge = -current * elapsed
            self.plated_C += charge
            self.li_on_cu_C += self.coulombic_efficiency * charge

        return FunctionSegment(duration, reason, sample, finish)

    def _strip(self, technique: ConstantCurrent, temperature_C: float) -> Segment:
        current = technique.current_A
        ohmic, eta, tau = self._plateau(current, temperature_C)
        li0 = self.li_on_cu_C if self.has_lithium else 0.0
        t_empty = li0 / current
        v_cu = self.cu_ocv_V + current * self.bulk_resistance_ohm(temperature_C)

        def plateau(t: Array) -> Array:
            return ohmic + (eta - ohmic) * (1 - np.exp(-t / tau))

        v_at_empty = float(plateau(np.array([t_empty]))[0]) if li0 > 0 else v_cu

        def voltage(t: Array) -> Array:
            after = v_cu + (v_at_empty - v_cu) * np.exp(
                -np.maximum(t - t_empty, 0.0) / EXHAUSTION_TIME_S)
            return np.where(t < t_empty, plateau(t), after)

        def sample(t: Array) -> tuple[Array, Array]:
            return voltage(t), np.full_like(t, current)

        duration, reason = limited(voltage, technique.duration_s, technique.until_voltage_V,
                                   True, "voltage")

        def finish(elapsed: float) -> None:
            self._remove(min(current * elapsed, li0))

        return FunctionSegment(duration, reason, sample, finish)

    def _remove(self, charge: float) -> None:
        self.stripped_C += charge
        self.li_on_cu_C = max(self.li_on_cu_C - charge, 0.0)

    def _linear_ohm(self, temperature_C: float) -> float:
        """R of I = V / R for Li plating/stripping under potential control."""
        return (linear_overpotential_asr_ohm_cm2(self.params) / self.area_cm2
                * self._temperature_scale(temperature_C))

    def _hold(self, technique: ConstantVoltage, temperature_C: float) -> Segment:
        """Potentiostatic: I = V / R, R the linear fit of the plating curve; stripping stops
        (current decays in ``EXHAUSTION_TIME_S``) once the Li on the Cu is gone."""
        v_hold = technique.voltage_V
        r_lin = self._linear_ohm(temperature_C)
        i0 = v_hold / r_lin
        li0 = self.li_on_cu_C if self.has_lithium else 0.0
        if i0 > 0 and li0 <= 0:
            i0 = 0.0  # nothing to strip: the Cu blocks
        t_empty = li0 / i0 if i0 > 0 else math.inf

        def current(t: Array) -> Array:
            if not math.isfinite(t_empty):
                return np.full_like(t, i0)
            return np.where(t < t_empty, i0,
                            i0 * np.exp(-np.maximum(t - t_empty, 0.0) / EXHAUSTION_TIME_S))

        def sample(t: Array) -> tuple[Array, Array]:
            return np.full_like(t, v_hold), current(t)

        duration, reason = limited(lambda t: np.abs(current(t)), technique.duration_s,
                                   technique.until_abs_current_A, False, "current")

        def finish(elapsed: float) -> None:
            if i0 < 0:
                charge = -i0 * elapsed
                self.plated_C += charge
                self.li_on_cu_C += self.coulombic_efficiency * charge
            elif i0 > 0:
                self._remove(min(i0 * elapsed, li0))

        return FunctionSegment(duration, reason, sample, finish)

    def _sweep(self, technique: VoltageSweep, temperature_C: float) -> Segment:
        """LSV / CV: double layer + oxidative decomposition + Li plating/stripping (module doc)."""
        p = self.params
        start = self.ocv_V(temperature_C) if technique.start_V is None else technique.start_V
        path = SweepPath(technique, start)
        r_u = self.bulk_resistance_ohm(temperature_C) + self._interface_ohm(temperature_C) / 2
        c_dl = brug_capacitance_F(float(p["cpe_dl_q_S_s_n_per_cm2"]) * self.area_cm2,
                                  float(p["cpe_dl_n"]), r_u)
        double_layer = CapacitiveSweep(path, c_dl, r_u)
        lithium = _LithiumExchange(path, self._linear_ohm(temperature_C),
                                   self.li_on_cu_C if self.has_lithium else 0.0,
                                   self.coulombic_efficiency)
        area = self.area_cm2

        def current(t: Array) -> Array:
            return (double_layer.current(t) + lithium.current(t)
                    + oxidation_current_A(p, area, path.voltage(t), r_u, temperature_C))

        def finish(elapsed: float) -> None:
            li, plated, stripped = lithium.state(elapsed)
            self.li_on_cu_C = li
            self.plated_C += plated
            self.stripped_C += stripped

        return sweep_segment(path, current, technique.until_abs_current_A, finish)


class _LithiumExchange:
    """Li plating/stripping at the Cu during a sweep: I = V / R where V < 0 (plating, CE of it
    stays strippable) and where V > 0 while strippable Li is left (stripping), else 0.

    The path is cut where V crosses 0 and where the Li runs out (a quadratic, solved exactly), so
    on each piece the current is either V / R or 0 and the Li inventory is closed-form."""

    def __init__(self, path: SweepPath, r_ohm: float, li0_C: float, ce: float) -> None:
        self.path, self.r, self.ce = path, float(r_ohm), float(ce)
        starts: list[float] = []
        active: list[bool] = []
        states: list[tuple[float, float, float]] = []  # (Li, plated, stripped) at each start
        li, plated, stripped = float(li0_C), 0.0, 0.0

        def piece(t0: float, on: bool) -> None:
            starts.append(t0)
            active.append(on)
            states.append((li, plated, stripped))

        for j in range(path.n_legs):
            a, b = float(path.t_knots[j]), float(path.t_knots[j + 1])
            va, s = float(path.v_knots[j]), float(path.slopes[j])
            cuts = [a, b]
            if va * float(path.v_knots[j + 1]) < 0:
                cuts.insert(1, a - va / s)
            for lo, hi in itertools.pairwise(cuts):
                if hi <= lo:
                    continue
                v_lo, v_hi = va + s * (lo - a), va + s * (hi - a)
                charge = 0.5 * (v_lo + v_hi) * (hi - lo) / self.r  # integral of V / R
                if charge < 0:  # plating
                    piece(lo, True)
                    plated -= charge
                    li -= self.ce * charge
                elif charge == 0 or li <= _EMPTY_C:
                    piece(lo, False)
                elif charge <= li:
                    piece(lo, True)
                    stripped += charge
                    li -= charge
                else:  # runs out: V_lo u + s u^2 / 2 = R Li
                    rli = self.r * li
                    u = 2 * rli / (v_lo + math.sqrt(max(v_lo * v_lo + 2 * s * rli, 0.0)))
                    piece(lo, True)
                    stripped += li
                    li = 0.0
                    piece(lo + min(max(u, 0.0), hi - lo), False)
        if not starts:
            piece(0.0, False)
        self._starts = np.asarray(starts)
        self._active = np.asarray(active)
        self._states = states

    def _piece(self, t: Array) -> Array:
        return np.clip(np.searchsorted(self._starts, t, side="right") - 1, 0, None)

    def current(self, t: Array) -> Array:
        return np.where(self._active[self._piece(t)], self.path.voltage(t) / self.r, 0.0)

    def state(self, elapsed: float) -> tuple[float, float, float]:
        """(strippable Li, plated, stripped) after ``elapsed``, in C."""
        k = int(self._piece(np.array([elapsed]))[0])
        li, plated, stripped = self._states[k]
        if self._active[k]:
            t0 = float(self._starts[k])
            v0, v1 = (float(v) for v in self.path.voltage(np.array([t0, elapsed])))
            charge = 0.5 * (v0 + v1) * (elapsed - t0) / self.r
            if charge < 0:
                plated -= charge
                li -= self.ce * charge
            else:
                charge = min(charge, li)
                stripped += charge
                li -= charge
        return max(li, 0.0), plated, stripped


__all__ = ["CU_OCV_V", "LiCuCell"]
