"""Cathode | electrolyte | Li full cell: MSMR open-circuit voltage, empirical capacity, a circuit.

State. The cathode's bulk delithiation y (MSMR: y = 1 - x, x(U) = sum_j X_j / (1 + exp(F (U - U0_j)
/ (w_j R T)))) and the offset d between the particle surface and the bulk. The voltage is set by
the surface: V = U(y_bulk + d, T) + I R(T), with R = R_b + R_i + R_ct (each Arrhenius) and the
Li anode at 0 V. A new cell is fully discharged: y at the lower cutoff, OCV = v_min (2.8 V for
NCM811), as a lithiated cathode is assembled.

Why an offset. An ohmic model alone gets the rate dependence of capacity wrong (physics.md), so the
capacity is set empirically, Q(C, T) = q25 f(T) / (1 + (C / c_half(T))^p) (the paper's closed form
at 25 degC; f(T) follows the 0.1C temperature series, c_half(T) is Arrhenius fitted to the 60 degC
rate data), and the circuit only shapes the voltage. Under a current the surface runs ahead of the
bulk (solid diffusion): d relaxes towards d_inf(I, T) with a time constant tau_s(T). d_inf is
chosen in closed form so that a CC discharge at rate C from full reaches v_min exactly when
Q(C, T) has been delivered, "full" being the state the paper's usual charge leaves (CC at 0.1C to
v_max, CV to C/50, at the same temperature; ``reference_*`` keys), rested. After a discharge the
surface relaxes back and a slower discharge can take out more, as in the paper's rate test.
Charging has a smaller offset (``charge_offset_ratio``). Where the circuit alone would end a
discharge before Q(C, T) (a huge I R), d_inf is 0 and the cell delivers less than Q(C, T).

Fade: the charge per unit y shrinks by ``fade_percent_per_cycle`` (times the electrolyte's
``full_cell_fade_multiplier``) per equivalent full cycle: discharged charge over the cell's
present 1C, 25 degC capacity (the condition the paper's fade was measured at, so its cycling
fades by exactly that much per cycle). R_i and R_ct follow the paper's evolution against the same
cycle count. While charging only
``coulombic_efficiency`` of the charge is stored.

CC: V(t) in closed form, the end where V crosses ``until_voltage_V`` found by a grid and bracket
refinement to ~1e-10 of the step, so the charge the analysis integrates matches the model's.
CV: I(t) = I_0 exp(-t / tau), I_0 continuing from the surface voltage and tau such that the
charge passed brings the bulk to equilibrium at the hold voltage. Rest: the offset relaxes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit
from simulators.cells._common import (
    FARADAY,
    M2_TO_CM2,
    R_GAS,
    Array,
    FunctionSegment,
    arrhenius_factor,
    kelvin,
    limited,
    membrane_resistances,
    r_cpe,
)
from simulators.cells.base import CellModel, Segment, TimeSeriesTechnique

MAH_TO_C = 3.6
#: OCV table range and step: wide enough that no step ends by running off it.
_U_GRID = np.linspace(1.5, 5.5, 8001)
#: Retention never drops below this, so a dry run of thousands of cycles stays finite.
MIN_RETENTION = 0.05


def _expit(z: Array) -> Array:
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def msmr_delithiation(u_V: Array | float, u0: tuple[float, ...], x: tuple[float, ...],
                      w: tuple[float, ...], temperature_K: float) -> Array:
    """y(U) = sum_j X_j / (1 + exp(-F (U - U0_j) / (w_j R T))): 0 lithiated, sum X delithiated."""
    u = np.asarray(u_V, dtype=float)[..., None]
    z = FARADAY * (u - np.asarray(u0)) / (np.asarray(w) * R_GAS * temperature_K)
    return np.sum(np.asarray(x) * _expit(z), axis=-1)


@functools.lru_cache(maxsize=64)
def _ocv_table(u0: tuple[float, ...], x: tuple[float, ...], w: tuple[float, ...],
               temperature_mK: int) -> tuple[Array, Array]:
    """(y, U) on a 0.5 mV grid, y strictly increasing, to invert the MSMR by np.interp."""
    y = msmr_delithiation(_U_GRID, u0, x, w, temperature_mK / 1000)
    keep = np.concatenate(([True], np.diff(y) > 0))
    return y[keep], _U_GRID[keep]


class FullCell(CellModel):
    """A cathode against Li metal through a membrane; starts fully discharged (OCV = v_min)."""

    def __init__(self, cathode_params: Mapping[str, Any], electrolyte_params: Mapping[str, Any],
                 active_mass_kg: float, capacity_Ah: float, thickness_m: float, area_m2: float,
                 cathode_area_m2: float | None = None) -> None:
        """``thickness_m``/``area_m2`` describe the membrane; the cathode disc's area (default the
        membrane's) scales R_i, R_ct, their CPEs and the Warburg. ``capacity_Ah`` is the
        protocol's nominal 1C; the cell itself feels C-rates against its material's
        ``one_c_mA_per_g`` and active mass (the mass is derived from ``capacity_Ah`` if not
        positive)."""
        if thickness_m <= 0 or area_m2 <= 0:
            raise ValueError("thickness_m and area_m2 must be positive")
        self.cathode = dict(cathode_params)
        self.electrolyte = dict(electrolyte_params)
        c = self.cathode
        self.thickness_m, self.area_m2 = float(thickness_m), float(area_m2)
        self.cathode_area_cm2 = float(cathode_area_m2 or area_m2) * M2_TO_CM2
        self.nominal_capacity_Ah = float(capacity_Ah)
        self.one_c_A_per_g = float(c["one_c_mA_per_g"]) * 1e-3
        if active_mass_kg > 0:
            self.active_mass_g = float(active_mass_kg) * 1e3
        elif capacity_Ah > 0:
            self.active_mass_g = float(capacity_Ah) / self.one_c_A_per_g
        else:
            raise ValueError("a full cell needs a positive active_mass_kg or capacity_Ah")
        self._msmr = (tuple(map(float, c["msmr_U0_V"])), tuple(map(float, c["msmr_X"])),
                      tuple(map(float, c["msmr_w"])))
        self.v_min_V, self.v_max_V = float(c["v_min_V"]), float(c["v_max_V"])
        self.coulombic_efficiency = float(c["coulombic_efficiency"])
        y_lo, y_hi = self.delithiation([self.v_min_V, self.v_max_V], 25.0)
        self._q_per_y_fresh_C = (float(c["q_window_mAh_per_g"]) * MAH_TO_C * self.active_mass_g
                                 / (y_hi - y_lo))
        self._fade_per_cycle = (float(c["fade_percent_per_cycle"]) / 100
                                * float(self.electrolyte.get("full_cell_fade_multiplier", 1.0)))
        self._temperature_factors = self._capacity_temperature_factors()
        self._efc_charge_C = (self.accessible_capacity_mAh_per_g(1.0, 25.0, fresh=True)
                              * MAH_TO_C * self.active_mass_g)
        # state
        self.y_bulk = float(y_lo)
        self.y_offset = 0.0
        self.discharged_C = 0.0
        self.charged_C = 0.0
        self.equivalent_full_cycles = 0.0

    # -- open-circuit voltage -----------------------------------------------------------------
    def delithiation(self, u_V: Array | float | list[float], temperature_C: float) -> Array:
        """MSMR y(U) at temperature (exact, vectorised)."""
        return msmr_delithiation(np.asarray(u_V, dtype=float), *self._msmr, kelvin(temperature_C))

    def open_circuit_voltage(self, y: Array | float, temperature_C: float) -> Array:
        """U(y) by interpolation in a table computed once per temperature."""
        ys, us = _ocv_table(*self._msmr, round(kelvin(temperature_C) * 1000))
        return np.interp(y, ys, us)

    def _y_limits(self, temperature_C: float) -> tuple[float, float]:
        ys, _ = _ocv_table(*self._msmr, round(kelvin(temperature_C) * 1000))
        return float(ys[0]), float(ys[-1])

    @property
    def state_of_charge(self) -> float:
        """Bulk state between the voltage limits at 25 degC: 0 at v_min, 1 at v_max."""
        y_lo, y_hi = self.delithiation([self.v_min_V, self.v_max_V], 25.0)
        return float((self.y_bulk - y_lo) / (y_hi - y_lo))

    # -- capacity -----------------------------------------------------------------------------
    def c_rate(self, current_A: float) -> float:
        """|I| in multiples of the material's 1C for this cell's active mass."""
        return abs(current_A) / (self.one_c_A_per_g * self.active_mass_g)

    def _c_half(self, temperature_C: float) -> float:
        c = self.cathode
        return float(c["c_half_25C"]) / arrhenius_factor(float(c["c_half_ea_eV"]), temperature_C)

    def _capacity_temperature_factors(self) -> tuple[Array, Array]:
        """f(T_i) such that Q(0.1C, T_i) / Q(0.1C, 25 degC) is the paper's ratio, f(25) = 1."""
        c = self.cathode
        temps = np.asarray(c["capacity_temperature_C"], dtype=float)
        q = np.asarray(c["capacity_0p1C_mAh_per_g"], dtype=float)
        p = float(c["rate_exponent"])
        q25 = float(np.interp(25.0, temps, q))
        rate25 = 1 + (0.1 / self._c_half(25.0)) ** p
        f = np.array([qi / q25 * (1 + (0.1 / self._c_half(ti)) ** p) / rate25
                      for ti, qi in zip(temps, q, strict=True)])
        return temps, f

    def accessible_capacity_mAh_per_g(self, c_rate: float, temperature_C: float,
                                      fresh: bool = False) -> float:
        """Q(C, T) a CC discharge at rate C from full delivers (faded unless ``fresh``)."""
        c = self.cathode
        temps, f = self._temperature_factors
        ch = self._c_half(temperature_C)
        q = (float(c["q_rate_25C_mAh_per_g"]) * float(np.interp(temperature_C, temps, f))
             / (1 + (abs(c_rate) / ch) ** float(c["rate_exponent"])))
        return q if fresh else q * self.retention

    @property
    def retention(self) -> float:
        return max(MIN_RETENTION, 1.0 - self._fade_per_cycle * self.equivalent_full_cycles)

    def _q_per_y_C(self) -> float:
        return self._q_per_y_fresh_C * self.retention

    def _surface_time_s(self, temperature_C: float) -> float:
        c = self.cathode
        return float(c["surface_time_constant_s"]) * arrhenius_factor(
            float(c["c_half_ea_eV"]), temperature_C)

    # -- resistances --------------------------------------------------------------------------
    def _interface_ohm(self, key: str, temperature_C: float) -> float:
        c = self.cathode
        asr = float(np.interp(self.equivalent_full_cycles, c[f"{key}_cycles"],
                              c[f"{key}_ohm_cm2"]))
        return asr / self.cathode_area_cm2 * arrhenius_factor(float(c["ea_interface_eV"]),
                                                             temperature_C)

    def resistances_ohm(self, temperature_C: float) -> dict[str, float]:
        """R_b (membrane), R_i (interphase) and R_ct (charge transfer) now."""
        r_b = sum(membrane_resistances(self.electrolyte, self.thickness_m, self.area_m2,
                                       temperature_C))
        return {"r_b": r_b, "r_i": self._interface_ohm("r_i", temperature_C),
                "r_ct": self._interface_ohm("r_ct", temperature_C)}

    def resistance_ohm(self, temperature_C: float) -> float:
        """The DC resistance that shapes the voltage: R_b + R_i + R_ct."""
        return sum(self.resistances_ohm(temperature_C).values())

    def _discharge_offset(self, current_A: float, temperature_C: float, r_ohm: float,
                          q_per_y: float, tau_s: float, y_start: float) -> float:
        """d_inf for a discharge at |current_A| that, started at bulk ``y_start`` with no offset,
        reaches v_min exactly when Q(C, T) has been delivered (closed form, <= 0)."""
        i = abs(current_A)
        y_end = float(self.delithiation(self.v_min_V + i * r_ohm, temperature_C))
        q_acc = (self.accessible_capacity_mAh_per_g(self.c_rate(i), temperature_C)
                 * MAH_TO_C * self.active_mass_g)
        build_up = -math.expm1(-q_acc / i / tau_s)  # share of d_inf reached when Q is delivered
        return min(0.0, (y_end - y_start + q_acc / q_per_y) / max(build_up, 1e-12))

    def _reference_full(self, temperature_C: float, r_ohm: float, q_per_y: float,
                        tau_s: float) -> float:
        """Bulk y after the reference charge at this temperature, "full" for the calibration.

        The reference is the paper's usual CC-CV: CC at ``reference_charge_c_rate`` to v_max
        (ending with the surface at U = v_max - I R, the bulk behind it by the charge offset),
        then CV until the current falls to ``reference_cv_cutoff_c_rate``, which leaves that
        ratio of the CV's charge in the bulk. The charge offset depends on the discharge offset
        at the same rate, which depends on this state: a fixed point, found in a few steps.
        """
        c = self.cathode
        i_ref = float(c.get("reference_charge_c_rate", 0.1)) * self.one_c_A_per_g \
            * self.active_mass_g
        left = min(max(float(c.get("reference_cv_cutoff_c_rate", 0.02))
                       / float(c.get("reference_charge_c_rate", 0.1)), 0.0), 1.0)
        kappa = float(c["charge_offset_ratio"])
        y_eq, y_surface = (float(y) for y in self.delithiation(
            [self.v_max_V, self.v_max_V - i_ref * r_ohm], temperature_C))
        y_full = y_eq
        for _ in range(20):
            d_charge = -kappa * self._discharge_offset(i_ref, temperature_C, r_ohm, q_per_y,
                                                       tau_s, y_full)
            y_cc = y_surface - d_charge
            y_new = y_eq - left * (y_eq - y_cc)
            if abs(y_new - y_full) < 1e-12:
                return y_new
            y_full = y_new
        return y_full

    def _offset_target(self, current_A: float, temperature_C: float, r_ohm: float,
                       q_per_y: float, tau_s: float) -> float:
        """d_inf: the surface offset a CC step at current_A settles to (see the module doc)."""
        if current_A == 0:
            return 0.0
        y_full = self._reference_full(temperature_C, r_ohm, q_per_y, tau_s)
        d_dis = self._discharge_offset(current_A, temperature_C, r_ohm, q_per_y, tau_s, y_full)
        if current_A < 0:
            return d_dis
        return -float(self.cathode["charge_offset_ratio"]) * d_dis

    # -- CellModel ----------------------------------------------------------------------------
    def ocv_V(self, temperature_C: float) -> float:
        """The voltage at open circuit now (the surface's, which relaxes to the bulk's)."""
        return float(self.open_circuit_voltage(self.y_bulk + self.y_offset, temperature_C))

    def impedance(self, frequency_Hz: np.ndarray, temperature_C: float) -> np.ndarray:
        w = 2 * np.pi * np.asarray(frequency_Hz, dtype=float)
        c, a = self.cathode, self.cathode_area_cm2
        r = self.resistances_ohm(temperature_C)
        sigma_w = (float(c["warburg_ohm_cm2_s_half"]) / a
                   * arrhenius_factor(float(c["ea_interface_eV"]), temperature_C))
        return (r["r_b"]
                + r_cpe(r["r_i"], float(c["cpe_i_q_S_s_n_per_cm2"]) * a, float(c["cpe_i_n"]), w)
                + r_cpe(r["r_ct"], float(c["cpe_ct_q_S_s_n_per_cm2"]) * a, float(c["cpe_ct_n"]),
                        w)
                + sigma_w * (1 - 1j) / np.sqrt(w))

    def begin(self, technique: TimeSeriesTechnique, temperature_C: float) -> Segment:
        if isinstance(technique, ConstantCurrent):
            return self._galvanostatic(technique, temperature_C)
        if isinstance(technique, ConstantVoltage):
            return self._potentiostatic(technique, temperature_C)
        if isinstance(technique, OpenCircuit):
            return self._rest(technique, temperature_C)
        raise NotImplementedError(f"a full cell cannot run {type(technique).__name__}")

    # -- segments -----------------------------------------------------------------------------
    def _commit(self, y_bulk: float, y_offset: float, charge_C: float) -> None:
        self.y_bulk, self.y_offset = y_bulk, y_offset
        if charge_C < 0:
            self.discharged_C -= charge_C
            self.equivalent_full_cycles -= charge_C / (self._efc_charge_C * self.retention)
        else:
            self.charged_C += charge_C

    def _rest(self, technique: OpenCircuit, temperature_C: float) -> Segment:
        y_b, d0 = self.y_bulk, self.y_offset
        tau = self._surface_time_s(temperature_C)

        def voltage(t: Array) -> Array:
            return self.open_circuit_voltage(y_b + d0 * np.exp(-t / tau), temperature_C)

        def sample(t: Array) -> tuple[Array, Array]:
            return voltage(t), np.zeros_like(t)

        def finish(elapsed: float) -> None:
            self._commit(y_b, d0 * math.exp(-elapsed / tau), 0.0)

        return FunctionSegment(technique.duration_s, "duration", sample, finish)

    def _galvanostatic(self, technique: ConstantCurrent, temperature_C: float) -> Segment:
        current = technique.current_A
        r = self.resistance_ohm(temperature_C)
        q_per_y = self._q_per_y_C()
        tau = self._surface_time_s(temperature_C)
        stored = self.coulombic_efficiency if current > 0 else 1.0
        rate = stored * current / q_per_y  # dy_bulk/dt
        d_inf = self._offset_target(current, temperature_C, r, q_per_y, tau)
        y_b0, d0 = self.y_bulk, self.y_offset

        def offset(t: Array) -> Array:
            return d_inf + (d0 - d_inf) * np.exp(-t / tau)

        def voltage(t: Array) -> Array:
            return self.open_circuit_voltage(y_b0 + rate * t + offset(t), temperature_C) \
                + current * r

        def sample(t: Array) -> tuple[Array, Array]:
            return voltage(t), np.full_like(t, current)

        duration, reason = limited(voltage, technique.duration_s, technique.until_voltage_V,
                                   current > 0, "voltage")

        def finish(elapsed: float) -> None:
            self._commit(y_b0 + rate * elapsed, float(offset(np.array([elapsed]))[0]),
                         current * elapsed)

        return FunctionSegment(duration, reason, sample, finish)

    def _potentiostatic(self, technique: ConstantVoltage, temperature_C: float) -> Segment:
        v_hold = technique.voltage_V
        r = self.resistance_ohm(temperature_C)
        q_per_y = self._q_per_y_C()
        y_b0, d0 = self.y_bulk, self.y_offset
        y_lo, y_hi = self._y_limits(temperature_C)
        i0 = (v_hold - float(self.open_circuit_voltage(y_b0 + d0, temperature_C))) / r
        y_eq = min(max(float(self.delithiation(v_hold, temperature_C)), y_lo), y_hi)
        dq_bulk = (y_eq - y_b0) * q_per_y
        q_pass = dq_bulk / self.coulombic_efficiency if dq_bulk > 0 else dq_bulk
        if i0 * q_pass > 0:
            tau = q_pass / i0  # the charge passed, i0 tau, brings the bulk to equilibrium
        else:
            # the surface sits on the other side of the hold voltage from the bulk (or both are
            # at it): the bulk still relaxes to equilibrium, on the surface time constant
            tau = self._surface_time_s(temperature_C)
            i0 = q_pass / tau
        stored = self.coulombic_efficiency if i0 > 0 else 1.0

        def current(t: Array) -> Array:
            return i0 * np.exp(-t / tau)

        def sample(t: Array) -> tuple[Array, Array]:
            return np.full_like(t, v_hold), current(t)

        duration, reason = limited(lambda t: np.abs(current(t)), technique.duration_s,
                                   technique.until_abs_current_A, False, "current")

        def finish(elapsed: float) -> None:
            charge = -i0 * tau * math.expm1(-elapsed / tau)
            y_b = y_b0 + stored * charge / q_per_y
            i_end = i0 * math.exp(-elapsed / tau)
            y_s = min(max(float(self.delithiation(v_hold - i_end * r, temperature_C)), y_lo),
                      y_hi)
            self._commit(y_b, y_s - y_b, charge)

        return FunctionSegment(duration, reason, sample, finish)


__all__ = ["FullCell", "msmr_delithiation"]
