"""Li | electrolyte | Li: transference number, interfacial ageing, plating/stripping, CCD.

Impedance: R_b - [(R_gb || CPE_gb) for ceramics] - (R_int || CPE_int) - finite-length Warburg
(R_D = R_b (1 - t+) / t+, tau_W = d^2 / D_salt). R_int lumps both Li interfaces and grows with the
cell's age as R_int = R_int0 + g sqrt(age / day); the cell counts its own age from the elapsed times
its segments are finished with (every segment: the interface ages in contact, current or not).

A potentiostatic hold (Bruce-Vincent) decays as I(t) = I_s(t) + (I_0 - I_s(0)) exp(-t / tau) with
I_0 = dV / (R_b + R_0), I_s = t+ dV / (R_b + t+ R_int(t)) and tau = d^2 / (pi^2 D_salt). R_int(t)
includes the interface's ageing and a polarisation growth during the hold, so R_s read from the
spectrum after the hold (:meth:`SymmetricLiCell.interfacial_resistance_ohm`) gives t+ back exactly.

Galvanostatic steps: the DC overpotential follows the measured plating/stripping points (a
monotone interpolation, see :func:`~simulators.cells._common.overpotential_V`), not the EIS
resistances, which would predict about twice the measured value. It has the sign of the current,
rises from the ohmic drop to the plateau in a few tens of seconds, and drifts up slowly with
cumulative time under current. Once |j| >= CCD (or the cumulative plated charge passes the
material's ``short_after_mAh_per_cm2``) a dendrite shorts the cell: |V| collapses to
|I| R_short, and the cell stays shorted.

Voltage sweeps (rare on Li|Li, but possible): the faradaic current follows the same measured
plating/stripping curve read the other way, |j| = eta^-1(|V| / s(T)) with the sign of V (the
rise transient and the drift are left out), plus the interfaces' double-layer current C dV/dt
behind R_b (C Brug's value of CPE_int). Once |j| reaches the CCD the cell shorts
``short_onset_s`` later and the current becomes V / R_short. The charge moved counts towards
``short_after_mAh_per_cm2`` when the sweep is finished, not during it.
"""

from __future__ import annotations

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
    current_density_mA_per_cm2,
    first_crossing,
    integrate,
    limited,
    membrane_resistances,
    overpotential_V,
    parallel,
    r_cpe,
    sweep_segment,
)
from simulators.cells.base import CellModel, Segment, TimeSeriesTechnique

DAY_S = 86400.0
HOUR_S = 3600.0
#: After a short, the voltage falls from its plating value to |I| R_short with this time constant.
SHORT_COLLAPSE_S = 2.0


def warburg_short(r_d: float, tau_s: float, omega: Array) -> Array:
    """Finite-length ("short", transmissive) Warburg: R_D tanh(sqrt(j w tau)) / sqrt(j w tau)."""
    if r_d <= 0:
        return np.zeros_like(omega, dtype=complex)
    s = np.sqrt(1j * omega * tau_s)
    return r_d * np.tanh(s) / s


class SymmetricLiCell(CellModel):
    """Two Li electrodes on one membrane; OCV 0 V. Fresh (age 0) when built."""

    def __init__(self, electrolyte_params: Mapping[str, Any], thickness_m: float,
                 area_m2: float) -> None:
        if thickness_m <= 0 or area_m2 <= 0:
            raise ValueError("thickness_m and area_m2 must be positive")
        self.params = dict(electrolyte_params)
        self.thickness_m, self.area_m2 = float(thickness_m), float(area_m2)
        self.area_cm2 = self.area_m2 * M2_TO_CM2
        p = self.params
        self.t_plus = float(p["transference_number"])
        self.r_short_ohm = float(p["short_resistance_ohm"])
        self.q_int = float(p["cpe_int_q_S_s_n_per_cm2"]) * self.area_cm2
        self.q_gb = (float(p["cpe_gb_q_S_s_n_cm"]) * self.area_cm2
                     / (self.thickness_m * M_TO_CM))
        # state: all scalars, no history
        self.age_s = 0.0                  # time in contact (every finished segment)
        self.time_under_current_s = 0.0   # drives the slow overpotential drift
        self.plated_mAh_per_cm2 = 0.0     # cumulative charge moved across, per area
        self.r_pol_ohm_cm2 = 0.0          # interface growth left by a potentiostatic hold
        self.shorted = False
        self._v_relax = 0.0               # non-ohmic polarisation left by the last step
        self._tau_relax = float(p.get("overpotential_rise_time_s", 20.0))

    # -- resistances and time constants ---------------------------------------------------
    def bulk_resistance_ohm(self, temperature_C: float) -> float:
        """Membrane resistance R_b (bulk plus grain boundaries) = d / (sigma(T) S)."""
        return sum(membrane_resistances(self.params, self.thickness_m, self.area_m2,
                                        temperature_C))

    def _r_int_asr(self, age_s: float, r_pol_asr: float) -> float:
        p = self.params
        return (float(p["r_int_ohm_cm2"]) + r_pol_asr
                + float(p["r_int_growth_ohm_cm2_per_sqrt_day"]) * math.sqrt(age_s / DAY_S))

    def interfacial_resistance_ohm(self, temperature_C: float) -> float:
        """R_int now: R_int0 + g sqrt(age/day) + polarisation growth, over both interfaces."""
        return (self._r_int_asr(self.age_s, self.r_pol_ohm_cm2) / self.area_cm2
                * arrhenius_factor(float(self.params["ea_int_eV"]), temperature_C))

    def salt_diffusivity_cm2_per_s(self, temperature_C: float) -> float:
        """D_salt(T), scaled like the conductivity."""
        return float(self.params["d_salt_cm2_per_s"]) / arrhenius_factor(
            float(self.params["ea_eV"]), temperature_C)

    def polarisation_time_constant_s(self, temperature_C: float) -> float:
        """Bruce-Vincent decay time d^2 / (pi^2 D_salt), about 900 s for AIOSE at 25 degC."""
        d_cm = self.thickness_m * M_TO_CM
        return d_cm**2 / (math.pi**2 * self.salt_diffusivity_cm2_per_s(temperature_C))

    def warburg_resistance_ohm(self, temperature_C: float) -> float:
        """R_D = R_b (1 - t+) / t+: zero for a single-ion conductor."""
        if self.t_plus >= 1:
            return 0.0
        return self.bulk_resistance_ohm(temperature_C) * (1 - self.t_plus) / self.t_plus

    def _temperature_scale(self, temperature_C: float) -> float:
        """How much the DC overpotential grows away from 25 degC: as R_b + R_int0."""
        r_int0 = float(self.params["r_int_ohm_cm2"]) / self.area_cm2
        ea_int = float(self.params["ea_int_eV"])
        r25 = self.bulk_resistance_ohm(25.0) + r_int0
        return (self.bulk_resistance_ohm(temperature_C)
                + r_int0 * arrhenius_factor(ea_int, temperature_C)) / r25

    # -- CellModel --------------------------------------------------------------------------
    def ocv_V(self, temperature_C: float) -> float:
        return 0.0

    def impedance(self, frequency_Hz: np.ndarray, temperature_C: float) -> np.ndarray:
        w = 2 * np.pi * np.asarray(frequency_Hz, dtype=float)
        p = self.params
        r_b, r_gb = membrane_resistances(p, self.thickness_m, self.area_m2, temperature_C)
        z = r_b + np.zeros_like(w, dtype=complex)
        if r_gb > 0:
            z = z + r_cpe(r_gb, self.q_gb, float(p["cpe_gb_n"]), w)
        z = z + r_cpe(self.interfacial_resistance_ohm(temperature_C), self.q_int,
                      float(p["cpe_int_n"]), w)
        d_cm = self.thickness_m * M_TO_CM
        tau_w = d_cm**2 / self.salt_diffusivity_cm2_per_s(temperature_C)
        z = z + warburg_short(self.warburg_resistance_ohm(temperature_C), tau_w, w)
        if self.shorted:
            z = parallel(z, self.r_short_ohm)
        return z

    def begin(self, technique: TimeSeriesTechnique, temperature_C: float) -> Segment:
        if isinstance(technique, ConstantCurrent) and technique.current_A != 0:
            return self._galvanostatic(technique, temperature_C)
        if isinstance(technique, ConstantVoltage):
            return self._potentiostatic(technique, temperature_C)
        if isinstance(technique, VoltageSweep):
            return self._sweep(technique, temperature_C)
        if isinstance(technique, OpenCircuit | ConstantCurrent):
            return self._rest(technique, temperature_C)
        raise NotImplementedError(f"a Li|Li cell cannot run {type(technique).__name__}")

    # -- segments ---------------------------------------------------------------------------
    def _age(self, elapsed: float, tau_pol: float) -> None:
        self.age_s += elapsed
        self.r_pol_ohm_cm2 *= math.exp(-elapsed / tau_pol)

    def _rest(self, technique: OpenCircuit | ConstantCurrent, temperature_C: float) -> Segment:
        v0, tau = self._v_relax, self._tau_relax
        tau_pol = self.polarisation_time_constant_s(temperature_C)

        def voltage(t: Array) -> Array:
            return v0 * np.exp(-t / tau)

        def sample(t: Array) -> tuple[Array, Array]:
            return voltage(t), np.zeros_like(t)

        def finish(elapsed: float) -> None:
            self._age(elapsed, tau_pol)
            self._v_relax = float(voltage(np.array([elapsed]))[0])

        return FunctionSegment(technique.duration_s, "duration", sample, finish)

    def _galvanostatic(self, technique: ConstantCurrent, temperature_C: float) -> Segment:
        p = self.params
        current = technique.current_A
        sign = 1.0 if current > 0 else -1.0
        j = abs(current) / self.area_cm2 * 1e3  # mA/cm^2
        r_b = self.bulk_resistance_ohm(temperature_C)
        tau_pol = self.polarisation_time_constant_s(temperature_C)
        v_short = abs(current) * self.r_short_ohm

        if self.shorted:
            def magnitude(t: Array) -> Array:
                return np.full_like(t, v_short)
            t_short = 0.0
        else:
            eta = overpotential_V(p, j) * self._temperature_scale(temperature_C)
            ohmic = min(abs(current) * r_b, eta)
            tau_rise = float(p["overpotential_rise_time_s"])
            drift = float(p["overpotential_drift_per_1000h"]) / (1000 * HOUR_S)
            t_cur0 = self.time_under_current_s

            def plateau(t: Array) -> Array:
                rise = ohmic + (eta - ohmic) * (1 - np.exp(-t / tau_rise))
                return rise * (1 + drift * (t_cur0 + t))

            t_short = math.inf
            if j >= float(p["ccd_mA_per_cm2"]) * (1 - 1e-9):
                t_short = float(p["short_onset_s"])
            limit = p.get("short_after_mAh_per_cm2")
            if limit is not None:
                left_h = max(float(limit) - self.plated_mAh_per_cm2, 0.0) / j
                t_short = min(t_short, left_h * HOUR_S)
            at_short = float(plateau(np.array([t_short]))[0]) if math.isfinite(t_short) else 0.0

            def magnitude(t: Array) -> Array:
                after = v_short + (at_short - v_short) * np.exp(
                    -np.maximum(t - t_short, 0.0) / SHORT_COLLAPSE_S)
                return np.where(t < t_short, plateau(t), after)

        def voltage(t: Array) -> Array:
            return sign * magnitude(t)

        def sample(t: Array) -> tuple[Array, Array]:
            return voltage(t), np.full_like(t, current)

        # |V| builds up (from the ohmic drop to the plateau, drifting up) until a short, after
        # which it collapses; a shorted cell's stays at |I| R_short
        shorted, rises = self.shorted, float(p["overpotential_drift_per_1000h"]) >= 0

        def never_falls(duration: float) -> bool:
            return shorted or (rises and duration <= t_short)

        def extremes(duration: float) -> tuple[float, float, float] | None:
            if not never_falls(duration):
                return None
            v = voltage(np.array([0.0, duration]))
            return float(v.min()), float(v.max()), abs(current)

        duration, reason = limited(voltage, technique.duration_s, technique.until_voltage_V,
                                   current > 0, "voltage")

        def finish(elapsed: float) -> None:
            self._age(elapsed, tau_pol)
            self.time_under_current_s += elapsed
            self.plated_mAh_per_cm2 += j * elapsed / HOUR_S
            if elapsed >= t_short:
                self.shorted = True
            v_end = float(voltage(np.array([elapsed]))[0])
            self._v_relax = 0.0 if self.shorted else v_end - current * r_b
            self._tau_relax = float(p["overpotential_rise_time_s"])

        return FunctionSegment(duration, reason, sample, finish, extremes, never_falls)

    def _potentiostatic(self, technique: ConstantVoltage, temperature_C: float) -> Segment:
        p = self.params
        v_hold = technique.voltage_V
        tau = self.polarisation_time_constant_s(temperature_C)

        if self.shorted:
            def current(t: Array) -> Array:
                return np.full_like(t, v_hold / self.r_short_ohm)

            def r_pol(t: float) -> float:
                return self.r_pol_ohm_cm2 * math.exp(-t / tau)
        else:
            r_b = self.bulk_resistance_ohm(temperature_C)
            f_int = arrhenius_factor(float(p["ea_int_eV"]), temperature_C) / self.area_cm2
            t_plus, age0, pol0 = self.t_plus, self.age_s, self.r_pol_ohm_cm2
            pol_inf = float(p["r_int_polarisation_ohm_cm2"])
            g = float(p["r_int_growth_ohm_cm2_per_sqrt_day"])
            r_int0 = float(p["r_int_ohm_cm2"])

            def r_int(t: Array) -> Array:
                pol = pol_inf + (pol0 - pol_inf) * np.exp(-t / tau)
                return (r_int0 + g * np.sqrt((age0 + t) / DAY_S) + pol) * f_int

            def steady(t: Array) -> Array:
                return t_plus * v_hold / (r_b + t_plus * r_int(t))

            zero = np.zeros(1)
            i_0 = float(v_hold / (r_b + r_int(zero))[0])
            i_s0 = float(steady(zero)[0])

            def current(t: Array) -> Array:
                return steady(t) + (i_0 - i_s0) * np.exp(-t / tau)

            def r_pol(t: float) -> float:
                return pol_inf + (pol0 - pol_inf) * math.exp(-t / tau)

        def sample(t: Array) -> tuple[Array, Array]:
            return np.full_like(t, v_hold), current(t)

        duration, reason = limited(lambda t: np.abs(current(t)), technique.duration_s,
                                   technique.until_abs_current_A, False, "current")

        def finish(elapsed: float) -> None:
            self.age_s += elapsed
            self.r_pol_ohm_cm2 = r_pol(elapsed)
            if self.shorted:
                self._v_relax = 0.0
                return
            # what is left at open circuit: the salt concentration polarisation, which relaxes
            # on the same diffusion time
            i_end = float(current(np.array([elapsed]))[0])
            r_int_end = self.interfacial_resistance_ohm(temperature_C)
            self._v_relax = v_hold - i_end * (self.bulk_resistance_ohm(temperature_C) + r_int_end)
            self._tau_relax = tau

        return FunctionSegment(duration, reason, sample, finish)

    def _sweep(self, technique: VoltageSweep, temperature_C: float) -> Segment:
        """I(V) from the plating/stripping curve plus the double layer (module doc)."""
        p = self.params
        start = self.ocv_V(temperature_C) if technique.start_V is None else technique.start_V
        path = SweepPath(technique, start)
        r_b = self.bulk_resistance_ohm(temperature_C)
        tau_pol = self.polarisation_time_constant_s(temperature_C)
        double_layer = CapacitiveSweep(
            path, brug_capacitance_F(self.q_int, float(p["cpe_int_n"]), r_b), r_b)
        scale = self._temperature_scale(temperature_C)
        area, r_short = self.area_cm2, self.r_short_ohm

        def j_mA_cm2(t: Array) -> Array:
            """Faradaic current density through the intact interfaces, signed."""
            v = path.voltage(t)
            return np.sign(v) * current_density_mA_per_cm2(p, v / scale)

        if self.shorted:
            t_short = 0.0
        else:
            t_ccd = first_crossing(lambda t: np.abs(j_mA_cm2(t)), path.duration_s,
                                   float(p["ccd_mA_per_cm2"]) * (1 - 1e-9), True)
            t_short = math.inf if t_ccd is None else t_ccd + float(p["short_onset_s"])

        def faradaic(t: Array) -> Array:
            return np.where(t < t_short, j_mA_cm2(t) * 1e-3 * area, path.voltage(t) / r_short)

        def current(t: Array) -> Array:
            return double_layer.current(t) + faradaic(t)

        def finish(elapsed: float) -> None:
            self._age(elapsed, tau_pol)
            self.time_under_current_s += elapsed
            moved = integrate(lambda t: np.where(t < t_short, np.abs(j_mA_cm2(t)), 0.0),
                              elapsed, path)
            self.plated_mAh_per_cm2 += moved / HOUR_S
            if elapsed >= t_short:
                self.shorted = True
            v_end, i_end = (float(x[0]) for x in (path.voltage(np.array([elapsed])),
                                                   faradaic(np.array([elapsed]))))
            self._v_relax = 0.0 if self.shorted else v_end - i_end * r_b
            self._tau_relax = float(p["overpotential_rise_time_s"])

        return sweep_segment(path, current, technique.until_abs_current_A, finish)


__all__ = ["SymmetricLiCell", "warburg_short"]
