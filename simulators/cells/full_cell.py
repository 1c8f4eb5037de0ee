"""Cathode | electrolyte | Li full cell: MSMR open-circuit voltage, empirical capacity, a circuit.

State. The cathode's bulk delithiation y (MSMR: y = 1 - x, x(U) = sum_j X_j / (1 + exp(F (U - U0_j)
/ (w_j R T)))) and the offset d between the particle surface and the bulk. The voltage is set by
the surface: V = U(y_bulk + d, T) + I R(T), with R = R_b + R_i + R_ct (each Arrhenius) and the
Li anode at 0 V. A new cell is fully discharged, as a lithiated cathode is assembled: it rests at
the material's ``pristine_ocv_V`` (a pristine layered oxide rests well above its discharge cutoff,
~3.0-3.5 V), which in the MSMR description is less than 0.1 % of the window short of the cutoff.

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
``full_cell_fade_multiplier``) per equivalent full cycle at 25 degC: discharged charge over the
cell's present 1C, 25 degC capacity (the condition the paper's fade was measured at, so its
cycling fades by exactly that much per cycle). Away from 25 degC each cycle ages the cell more,
on two Arrhenius branches that meet at 25 degC (``fade_ea_above_25C_eV``: side reactions that
heat speeds up; ``fade_ea_below_25C_eV``: the sluggish interfaces of the cold), the form
post-mortem studies of cells cycled from -20 to 70 degC find (Waldmann et al., J. Power Sources
262 (2014) 129). R_i and R_ct follow the paper's evolution against the cycle count. While
charging only ``coulombic_efficiency`` of the charge is stored.

CC: V(t) in closed form, the end where V crosses ``until_voltage_V`` found by a grid and bracket
refinement to ~1e-10 of the step, so the charge the analysis integrates matches the model's.
CV: I(t) = I_0 exp(-t / tau), I_0 continuing from the surface voltage and tau such that the
charge passed brings the bulk to equilibrium at the hold voltage. Rest: the offset relaxes.

Voltage sweeps (LSV, CV): the same circuit, with the voltage imposed. The cathode surface follows
R q dy/dt = V(t) - U(y) (q the charge per unit y, R = R_b + R_i + R_ct): near equilibrium that is
I = dQ/dU dV/dt plus the ohmic lag (peaks of C(U) dV/dt, shifted by I R), and where dQ/dU is huge
(LFP's plateau) it is the ohmic limit (V - U) / R. Integrated with an exponential integrator (U
linearised over steps of at most 2 mV of V and a small change of y, exact for the linear ODE on
each step), so stiff and flat stretches are both stable; sampling evaluates the steps' closed forms
vectorised. Above the cathode's window the electrolyte's oxidation (Tafel-like, onset from the
electrolyte's file, per cathode area, at the electrode potential V - I R) adds to the cathode's
current; the double layer (Brug's C of CPE_ct) adds C dV/dt. The state of charge moves by the
integrated cathode current (the electrolyte's oxidation does not charge the cathode), with
``coulombic_efficiency`` of the charging part stored; the surface is left where the sweep left it.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit, VoltageSweep
from simulators.cells._common import (
    FARADAY,
    M2_TO_CM2,
    R_GAS,
    Array,
    CapacitiveSweep,
    FunctionSegment,
    SweepPath,
    arrhenius_factor,
    brug_capacitance_F,
    confirmed_crossing,
    first_crossing,
    kelvin,
    limited,
    membrane_resistances,
    oxidation_current_A,
    r_cpe,
    sweep_segment,
)
from simulators.cells._surface import SurfacePath
from simulators.cells.base import CellModel, Segment, TimeSeriesTechnique

MAH_TO_C = 3.6
#: OCV table range and step: wide enough that no step ends by running off it.
_U_GRID = np.linspace(1.5, 5.5, 8001)
#: Retention never drops below this, so a dry run of thousands of cycles stays finite.
MIN_RETENTION = 0.05
#: A sweep's OCV table: potential step and margin round the path; integrator step limits in V and
#: y, and the most steps a sweep takes (longer paths take longer steps).
_SWEEP_DU_V = 0.25e-3
_SWEEP_MARGIN_V = 0.5
_SWEEP_DV_STEP = 2e-3
_SWEEP_DY_STEP = 2e-3
_SWEEP_MAX_STEPS = 200_000


def _expit(z: Array) -> Array:
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def msmr_delithiation(u_V: Array | float, u0: tuple[float, ...], x: tuple[float, ...],
                      w: tuple[float, ...], temperature_K: float) -> Array:
    """y(U) = sum_j X_j / (1 + exp(-F (U - U0_j) / (w_j R T))): 0 lithiated, sum X delithiated."""
    u = np.asarray(u_V, dtype=float)[..., None]
    z = FARADAY * (u - np.asarray(u0)) / (np.asarray(w) * R_GAS * temperature_K)
    return np.sum(np.asarray(x) * _expit(z), axis=-1)


def msmr_delithiation_at(u_V: float, u0: tuple[float, ...], x: tuple[float, ...],
                         w: tuple[float, ...], temperature_K: float) -> float:
    """:func:`msmr_delithiation` at one voltage, in float arithmetic (a step's set-up asks for a
    handful of single values, where numpy's per-call cost is most of the work). The same
    operations in the same order, so the same numbers."""
    total = 0.0
    for u0_j, x_j, w_j in zip(u0, x, w, strict=True):
        z = FARADAY * (u_V - u0_j) / (w_j * R_GAS * temperature_K)
        e = math.exp(-abs(z))
        total += x_j * (1.0 / (1.0 + e) if z >= 0 else e / (1.0 + e))
    return total


def msmr_differential(u_V: Array | float, u0: tuple[float, ...], x: tuple[float, ...],
                      w: tuple[float, ...], temperature_K: float) -> Array:
    """dy/dU of :func:`msmr_delithiation` (1/V), exact."""
    u = np.asarray(u_V, dtype=float)[..., None]
    f = np.asarray(w) * R_GAS * temperature_K / FARADAY
    sig = _expit((u - np.asarray(u0)) / f)
    return np.sum(np.asarray(x) * sig * (1.0 - sig) / f, axis=-1)


@functools.lru_cache(maxsize=64)
def _ocv_table(u0: tuple[float, ...], x: tuple[float, ...], w: tuple[float, ...],
               temperature_mK: int) -> tuple[Array, Array]:
    """(y, U) on a 0.5 mV grid, y strictly increasing, to invert the MSMR by np.interp."""
    y = msmr_delithiation(_U_GRID, u0, x, w, temperature_mK / 1000)
    keep = np.concatenate(([True], np.diff(y) > 0))
    return y[keep], _U_GRID[keep]


#: Temperatures whose terms a cell keeps (:meth:`FullCell._at`).
_CONDITIONS_KEPT = 64
#: Single-voltage delithiations a cell keeps (:meth:`FullCell.delithiation_at`).
_DELITHIATION_KEPT = 256


@dataclass(frozen=True)
class _Conditions:
    """The terms of a step that depend on the temperature alone."""

    ocv_y: Array                    # U(y) table: y strictly increasing ...
    ocv_V: Array                    # ... and U
    y_limits: tuple[float, float]   # the table's ends
    capacity_factor: float          # f(T) of the capacity's temperature series
    c_half: float                   # c_half(T)
    surface_time_s: float           # tau_s(T)
    membrane_ohm: float             # R_b(T)
    interface_factor: float         # Arrhenius factor of R_i and R_ct


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
        self._delithiation_known: dict[tuple[float, float], float] = {}
        self.v_min_V, self.v_max_V = float(c["v_min_V"]), float(c["v_max_V"])
        self.coulombic_efficiency = float(c["coulombic_efficiency"])
        y_lo, y_hi = self.delithiation([self.v_min_V, self.v_max_V], 25.0)
        self._q_per_y_fresh_C = (float(c["q_window_mAh_per_g"]) * MAH_TO_C * self.active_mass_g
                                 / float(y_hi - y_lo))
        self._fade_per_cycle = (float(c["fade_percent_per_cycle"]) / 100
                                * float(self.electrolyte.get("full_cell_fade_multiplier", 1.0)))
        self._fade_ea_eV = (float(c.get("fade_ea_above_25C_eV", 0.0)),
                            float(c.get("fade_ea_below_25C_eV", 0.0)))
        self._temperature_factors = self._capacity_temperature_factors()
        #: the last reference state (:meth:`_reference_full`) and what it was computed for,
        #: with the discharge offsets at it per |current| (a cycle's charge and discharge at
        #: the same rate share one)
        self._reference_cache: tuple[tuple[float, ...], float, dict[float, float]] = \
            ((), 0.0, {})
        #: what depends on the temperature alone, per temperature a step started at
        self._conditions: dict[float, _Conditions] = {}
        self._interface_tables = {key: (np.asarray(c[f"{key}_cycles"], dtype=float),
                                        np.asarray(c[f"{key}_ohm_cm2"], dtype=float))
                                  for key in ("r_i", "r_ct")}
        #: the last ASR (Ohm cm^2) read from each table, with the cycle count it is for
        self._interface_asr: dict[str, tuple[float, float]] = {}
        self._efc_charge_C = (self.accessible_capacity_mAh_per_g(1.0, 25.0, fresh=True)
                              * MAH_TO_C * self.active_mass_g)
        # state: a pristine (as-assembled, lithiated) cathode rests at ``pristine_ocv_V`` when
        # the material gives it, else at v_min
        pristine_V = float(c.get("pristine_ocv_V", self.v_min_V))
        self.y_bulk = float(self.delithiation(max(pristine_V, self.v_min_V), 25.0))
        self.y_offset = 0.0
        self.discharged_C = 0.0
        self.charged_C = 0.0
        self.equivalent_full_cycles = 0.0
        self.capacity_lost = 0.0  # fraction of the fresh charge per unit y

    # -- open-circuit voltage -----------------------------------------------------------------
    def delithiation(self, u_V: Array | float | list[float], temperature_C: float) -> Array:
        """MSMR y(U) at temperature (exact, vectorised)."""
        return msmr_delithiation(np.asarray(u_V, dtype=float), *self._msmr, kelvin(temperature_C))

    def delithiation_at(self, u_V: float, temperature_C: float) -> float:
        """MSMR y(U) at one voltage (exact), remembered: every cycle asks again for the same
        few voltages (a CV's hold voltage, the reference charge's v_max)."""
        known = self._delithiation_known.get((u_V, temperature_C))
        if known is None:
            if len(self._delithiation_known) >= _DELITHIATION_KEPT:
                self._delithiation_known.clear()
            known = self._delithiation_known[u_V, temperature_C] = msmr_delithiation_at(
                u_V, *self._msmr, kelvin(temperature_C))
        return known

    def open_circuit_voltage(self, y: Array | float, temperature_C: float) -> Array:
        """U(y) by interpolation in a table computed once per temperature."""
        cond = self._at(temperature_C)
        return np.interp(y, cond.ocv_y, cond.ocv_V)

    def _y_limits(self, temperature_C: float) -> tuple[float, float]:
        cond = self._at(temperature_C)
        return cond.y_limits

    def _at(self, temperature_C: float) -> _Conditions:
        """The temperature's terms, computed once per temperature (a chamber ramp brings many
        temperatures: the oldest are dropped)."""
        cond = self._conditions.get(temperature_C)
        if cond is None:
            if len(self._conditions) >= _CONDITIONS_KEPT:
                del self._conditions[next(iter(self._conditions))]
            c = self.cathode
            temps, f = self._temperature_factors
            ys, us = _ocv_table(*self._msmr, round(kelvin(temperature_C) * 1000))
            cond = _Conditions(
                ocv_y=ys, ocv_V=us, y_limits=(float(ys[0]), float(ys[-1])),
                capacity_factor=float(np.interp(temperature_C, temps, f)),
                c_half=self._c_half(temperature_C),
                surface_time_s=float(c["surface_time_constant_s"]) * arrhenius_factor(
                    float(c["c_half_ea_eV"]), temperature_C),
                membrane_ohm=sum(membrane_resistances(self.electrolyte, self.thickness_m,
                                                      self.area_m2, temperature_C)),
                interface_factor=arrhenius_factor(float(c["ea_interface_eV"]), temperature_C))
            self._conditions[temperature_C] = cond
        return cond

    @property
    def state_of_charge(self) -> float:
        """Bulk state between the voltage limits at 25 degC: 0 at v_min, 1 at v_max."""
        y_lo, y_hi = self.delithiation([self.v_min_V, self.v_max_V], 25.0)
        return float((self.y_bulk - y_lo) / (y_hi - y_lo))

    def start_formed(self, soc: float) -> None:
        """At rest at ``soc`` of the window between v_min (0) and v_max (1), as
        :attr:`state_of_charge` counts it. A Li metal cell has no SEI to form."""
        if self.charged_C or self.discharged_C:
            raise ValueError("only a fresh cell can be started formed")
        y_lo, y_hi = self.delithiation([self.v_min_V, self.v_max_V], 25.0)
        self.y_bulk = float(y_lo + soc * (y_hi - y_lo))

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
        cond = self._at(temperature_C)
        q = (float(c["q_rate_25C_mAh_per_g"]) * cond.capacity_factor
             / (1 + (abs(c_rate) / cond.c_half) ** float(c["rate_exponent"])))
        return q if fresh else q * self.retention

    @property
    def retention(self) -> float:
        return max(MIN_RETENTION, 1.0 - self.capacity_lost)

    def fade_factor(self, temperature_C: float) -> float:
        """Ageing per equivalent full cycle at ``temperature_C`` over that at 25 degC (>= 1)."""
        above, below = self._fade_ea_eV
        if temperature_C >= 25.0:
            return 1.0 / arrhenius_factor(above, temperature_C)
        return arrhenius_factor(below, temperature_C)

    def _q_per_y_C(self) -> float:
        return self._q_per_y_fresh_C * self.retention

    def _surface_time_s(self, temperature_C: float) -> float:
        return self._at(temperature_C).surface_time_s

    # -- resistances --------------------------------------------------------------------------
    def _interface_ohm(self, key: str, temperature_C: float) -> float:
        efc = self.equivalent_full_cycles
        known = self._interface_asr.get(key)
        if known is None or known[0] != efc:   # only a discharge moves the cycle count
            cycles, asrs = self._interface_tables[key]
            known = self._interface_asr[key] = (efc, float(np.interp(efc, cycles, asrs)))
        return known[1] / self.cathode_area_cm2 * self._at(temperature_C).interface_factor

    def resistances_ohm(self, temperature_C: float) -> dict[str, float]:
        """R_b (membrane), R_i (interphase) and R_ct (charge transfer) now."""
        return {"r_b": self._at(temperature_C).membrane_ohm,
                "r_i": self._interface_ohm("r_i", temperature_C),
                "r_ct": self._interface_ohm("r_ct", temperature_C)}

    def resistance_ohm(self, temperature_C: float) -> float:
        """The DC resistance that shapes the voltage: R_b + R_i + R_ct."""
        return (self._at(temperature_C).membrane_ohm + self._interface_ohm("r_i", temperature_C)
                + self._interface_ohm("r_ct", temperature_C))

    def _discharge_offset(self, current_A: float, temperature_C: float, r_ohm: float,
                          q_per_y: float, tau_s: float) -> Callable[[float], float]:
        """d_inf for a discharge at |current_A| that, started at bulk ``y_start`` with no offset,
        reaches v_min exactly when Q(C, T) has been delivered (closed form, <= 0), as a function
        of ``y_start`` (the rest does not depend on it, and the calibration asks for several)."""
        i = abs(current_A)
        y_end = self.delithiation_at(self.v_min_V + i * r_ohm, temperature_C)
        q_acc = (self.accessible_capacity_mAh_per_g(self.c_rate(i), temperature_C)
                 * MAH_TO_C * self.active_mass_g)
        build_up = -math.expm1(-q_acc / i / tau_s)  # share of d_inf reached when Q is delivered
        gain, spread = q_acc / q_per_y, max(build_up, 1e-12)

        def offset(y_start: float) -> float:
            return min(0.0, (y_end - y_start + gain) / spread)

        return offset

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
        y_eq = self.delithiation_at(self.v_max_V, temperature_C)
        y_surface = self.delithiation_at(self.v_max_V - i_ref * r_ohm, temperature_C)
        discharge_offset = self._discharge_offset(i_ref, temperature_C, r_ohm, q_per_y, tau_s)

        def step(y: float) -> float:
            d_charge = -kappa * discharge_offset(y)
            return y_eq - left * (y_eq - (y_surface - d_charge))

        # Fixed-point iteration with Aitken's acceleration: the map is nearly linear, so each
        # round of two steps lands almost on the fixed point (3-4 rounds instead of ~10 steps).
        y_full = y_eq
        for _ in range(20):
            y1 = step(y_full)
            if abs(y1 - y_full) < 1e-12:
                return y1
            y2 = step(y1)
            denominator = y2 - 2 * y1 + y_full
            y_new = y2 if denominator == 0 else y_full - (y1 - y_full) ** 2 / denominator
            if abs(y_new - y2) < 1e-12:
                return y_new
            y_full = y_new
        return y_full

    def _offset_target(self, current_A: float, temperature_C: float, r_ohm: float,
                       q_per_y: float, tau_s: float) -> float:
        """d_inf: the surface offset a CC step at current_A settles to (see the module doc)."""
        if current_A == 0:
            return 0.0
        key = (temperature_C, r_ohm, q_per_y, tau_s, self.retention)
        if self._reference_cache[0] != key:   # a cycle's charge and discharge share it
            self._reference_cache = (key, self._reference_full(temperature_C, r_ohm, q_per_y,
                                                               tau_s), {})
        _, y_full, offsets = self._reference_cache
        d_dis = offsets.get(abs(current_A))
        if d_dis is None:
            d_dis = offsets[abs(current_A)] = self._discharge_offset(
                current_A, temperature_C, r_ohm, q_per_y, tau_s)(y_full)
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
        if isinstance(technique, VoltageSweep):
            return self._sweep(technique, temperature_C)
        raise NotImplementedError(f"a full cell cannot run {type(technique).__name__}")

    # -- segments -----------------------------------------------------------------------------
    def _commit(self, y_bulk: float, y_offset: float, charge_C: float,
                temperature_C: float) -> None:
        self.y_bulk, self.y_offset = y_bulk, y_offset
        if charge_C < 0:
            self.discharged_C -= charge_C
            cycles = -charge_C / (self._efc_charge_C * self.retention)
            self.equivalent_full_cycles += cycles
            self.capacity_lost += self._fade_per_cycle * self.fade_factor(temperature_C) * cycles
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
            self._commit(y_b, d0 * math.exp(-elapsed / tau), 0.0, temperature_C)

        def extremes(duration: float) -> tuple[float, float, float]:
            v = voltage(np.array([0.0, duration]))   # the offset relaxes monotonically
            return float(v.min()), float(v.max()), 0.0

        return FunctionSegment(technique.duration_s, "duration", sample, finish, extremes)

    def _galvanostatic(self, technique: ConstantCurrent, temperature_C: float) -> Segment:
        current = technique.current_A
        r = self.resistance_ohm(temperature_C)
        q_per_y = self._q_per_y_C()
        cond = self._at(temperature_C)
        tau = cond.surface_time_s
        stored = self.coulombic_efficiency if current > 0 else 1.0
        rate = stored * current / q_per_y  # dy_bulk/dt
        d_inf = self._offset_target(current, temperature_C, r, q_per_y, tau)
        y_b0, d0 = self.y_bulk, self.y_offset
        surface = SurfacePath(y_b0, rate, d_inf, d0, tau)
        rising = current > 0
        ys, us = cond.ocv_y, cond.ocv_V
        known: dict[float, tuple[float, float, float]] = {}   # extremes up to a found end

        def offset(t: Array) -> Array:
            return d_inf + (d0 - d_inf) * np.exp(-t / tau)

        def voltage(t: Array) -> Array:
            return np.interp(y_b0 + rate * t + offset(t), ys, us) + current * r

        def sample(t: Array) -> tuple[Array, Array]:
            return voltage(t), np.full_like(t, current)

        def extremes_at(times: list[float]) -> tuple[Array, tuple[float, float, float]]:
            # V follows y, which is monotone on either side of its one turn: its extremes up
            # to times[0] are at 0, times[0] and the turn
            turn = [start for start, _ in surface.pieces(times[0])[1:]]
            v = voltage(np.array(times + turn))
            return v, (float(v.min()), float(v.max()), abs(current))

        def crossing(t_max: float, level: float) -> float | None:
            # V = U(y) + I R with U increasing: V reaches the level where y reaches U's inverse
            # at level - I R, found on y's monotone pieces (the grid search only off the table)
            u_level = level - current * r
            if not us[0] < u_level < us[-1]:
                return first_crossing(voltage, t_max, level, rising)
            t = surface.first_reach(float(np.interp(u_level, us, ys)), rising, t_max)
            if t is None:
                return None
            v, known[t] = extremes_at([t, 0.0])   # and the check that V is at the level
            if (v[0] >= level) if rising else (v[0] <= level):
                return t
            found = confirmed_crossing(voltage, t, t_max, level, rising)
            return first_crossing(voltage, t_max, level, rising) if found is None else found

        def extremes(duration: float) -> tuple[float, float, float]:
            return known[duration] if duration in known else extremes_at([duration, 0.0])[1]

        duration, reason = limited(voltage, technique.duration_s, technique.until_voltage_V,
                                   rising, "voltage", crossing)

        def finish(elapsed: float) -> None:
            self._commit(y_b0 + rate * elapsed, float(offset(np.array([elapsed]))[0]),
                         current * elapsed, temperature_C)

        return FunctionSegment(duration, reason, sample, finish, extremes)

    def _potentiostatic(self, technique: ConstantVoltage, temperature_C: float) -> Segment:
        v_hold = technique.voltage_V
        r = self.resistance_ohm(temperature_C)
        q_per_y = self._q_per_y_C()
        y_b0, d0 = self.y_bulk, self.y_offset
        y_lo, y_hi = self._y_limits(temperature_C)
        i0 = (v_hold - float(self.open_circuit_voltage(y_b0 + d0, temperature_C))) / r
        y_eq = min(max(self.delithiation_at(v_hold, temperature_C), y_lo), y_hi)
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

        def magnitude(t: Array) -> Array:
            return np.abs(current(t))

        def crossing(t_max: float, level: float) -> float | None:
            # |I| = |i0| e^(-t / tau) falls to the level at tau ln(|i0| / level)
            if abs(i0) <= level:
                return 0.0
            if level <= 0:
                return None
            t = tau * math.log(abs(i0) / level)
            if t > t_max:
                return None
            found = confirmed_crossing(magnitude, t, t_max, level, False)
            return first_crossing(magnitude, t_max, level, False) if found is None else found

        def extremes(duration: float) -> tuple[float, float, float]:
            return v_hold, v_hold, abs(i0)   # |I| decays from |i0|

        duration, reason = limited(magnitude, technique.duration_s,
                                   technique.until_abs_current_A, False, "current", crossing)

        def finish(elapsed: float) -> None:
            charge = -i0 * tau * math.expm1(-elapsed / tau)
            y_b = y_b0 + stored * charge / q_per_y
            i_end = i0 * math.exp(-elapsed / tau)
            y_s = min(max(self.delithiation_at(v_hold - i_end * r, temperature_C), y_lo), y_hi)
            self._commit(y_b, y_s - y_b, charge, temperature_C)

        return FunctionSegment(duration, reason, sample, finish, extremes)

    def _sweep(self, technique: VoltageSweep, temperature_C: float) -> Segment:
        """R q dy/dt = V(t) - U(y), plus oxidation and the double layer (module doc)."""
        res = self.resistances_ohm(temperature_C)
        r = sum(res.values())
        q_per_y = self._q_per_y_C()
        y_b0, y_s0 = self.y_bulk, self.y_bulk + self.y_offset
        start = self.ocv_V(temperature_C) if technique.start_V is None else technique.start_V
        path = SweepPath(technique, start)
        u = np.arange(min(1.0, float(path.v_knots.min()) - _SWEEP_MARGIN_V),
                      max(6.5, float(path.v_knots.max()) + _SWEEP_MARGIN_V), _SWEEP_DU_V)
        ocv = _SweepOcv(self.delithiation(u, temperature_C), u,
                        msmr_differential(u, *self._msmr, kelvin(temperature_C)))
        steps = _integrate_sweep(path, ocv, r * q_per_y, min(max(y_s0, ocv.y[0]), ocv.y[-1]))

        def cathode(t: Array) -> Array:
            return steps.ir_drop_V(t) / r

        double_layer = CapacitiveSweep(path, brug_capacitance_F(
            float(self.cathode["cpe_ct_q_S_s_n_per_cm2"]) * self.cathode_area_cm2,
            float(self.cathode["cpe_ct_n"]), res["r_b"]), r)
        area = self.cathode_area_cm2

        def current(t: Array) -> Array:
            return (cathode(t) + double_layer.current(t)
                    + oxidation_current_A(self.electrolyte, area, steps.electrode_V(t),
                                          res["r_b"], temperature_C))

        stored = self.coulombic_efficiency

        def finish(elapsed: float) -> None:
            y_end, dy_in, dy_out = steps.state(elapsed)
            q_in, q_out = dy_in * q_per_y, dy_out * q_per_y
            y_b = y_b0 + (stored * q_in + q_out) / q_per_y
            self._commit(y_b, y_end - y_b, q_in, temperature_C)
            self._commit(y_b, y_end - y_b, q_out, temperature_C)

        return sweep_segment(path, current, technique.until_abs_current_A, finish)


class _SweepOcv:
    """U(y) and dU/dy by interpolation in a table (y strictly increasing), scalar and fast."""

    def __init__(self, y: Array, u: Array, dy_du: Array) -> None:
        keep = np.concatenate(([True], np.diff(y) > 0))
        self.y, self.u = y[keep], u[keep]
        self.du_dy = 1.0 / np.maximum(dy_du[keep], 1e-300)
        self._y_list = self.y.tolist()
        self._u_list = self.u.tolist()
        self._k_list = self.du_dy.tolist()

    def at(self, y: float) -> tuple[float, float]:
        ys = self._y_list
        i = min(max(bisect.bisect_right(ys, y), 1), len(ys) - 1)
        y0, y1 = ys[i - 1], ys[i]
        f = min(max((y - y0) / (y1 - y0), 0.0), 1.0)
        u, k = self._u_list, self._k_list
        return u[i - 1] + f * (u[i] - u[i - 1]), k[i - 1] + f * (k[i] - k[i - 1])


def _phi(x: Array) -> tuple[Array, Array]:
    """phi1 = (1 - e^-x) / x and phi2 = (x - 1 + e^-x) / x^2, accurate for small x >= 0."""
    x = np.asarray(x, dtype=float)
    small = x < 1e-3
    xs = np.where(small, 1.0, x)
    em = np.expm1(-xs)
    phi1 = np.where(small, 1 - x / 2 + x * x / 6, -em / xs)
    phi2 = np.where(small, 0.5 - x / 6 + x * x / 24, (xs + em) / (xs * xs))
    return phi1, phi2


class _SweepSteps:
    """The integrated sweep: on step n (from t_n), with a_n = V(t_n) - U(y_n), k_n = dU/dy and
    s_n = dV/dt, the linearised R q z' = a_n + s_n t' - k_n z has z = t' / (R q) (a_n phi1 + s_n t'
    phi2), x = k_n t' / (R q); the cathode's I R = V - U = a + s t' - k z."""

    def __init__(self, rq: float, t: list[float], y: list[float], a: list[float],
                 k: list[float], s: list[float], u: list[float]) -> None:
        self.rq = rq
        self.t, self.y, self.a, self.k, self.s, self.u = (np.asarray(x) for x in (t, y, a, k, s, u))
        dz = np.diff(self.y, append=self.y[-1])  # the last step's change is found in state()
        self.dy_in = np.concatenate(([0.0], np.cumsum(np.maximum(dz, 0.0))))
        self.dy_out = np.concatenate(([0.0], np.cumsum(np.minimum(dz, 0.0))))

    def _local(self, t: Array) -> tuple[Array, Array, Array]:
        n = np.clip(np.searchsorted(self.t, t, side="right") - 1, 0, len(self.t) - 1)
        tp = t - self.t[n]
        phi1, phi2 = _phi(self.k[n] * tp / self.rq)
        z = tp / self.rq * (self.a[n] * phi1 + self.s[n] * tp * phi2)
        return n, tp, z

    def ir_drop_V(self, t: Array) -> Array:
        """I R = V(t) - U(y(t))."""
        n, tp, z = self._local(np.asarray(t, dtype=float))
        return self.a[n] + self.s[n] * tp - self.k[n] * z

    def electrode_V(self, t: Array) -> Array:
        n, _, z = self._local(np.asarray(t, dtype=float))
        return self.u[n] + self.k[n] * z

    def state(self, elapsed: float) -> tuple[float, float, float]:
        """(y, increase of y, decrease of y (<= 0)) after ``elapsed``."""
        n, _, z = self._local(np.array([elapsed]))
        i, dz = int(n[0]), float(z[0])
        return (float(self.y[i]) + dz, float(self.dy_in[i]) + max(dz, 0.0),
                float(self.dy_out[i]) + min(dz, 0.0))


def _integrate_sweep(path: SweepPath, ocv: _SweepOcv, rq: float, y0: float) -> _SweepSteps:
    """Exponential-integrator steps of R q dy/dt = V(t) - U(y) along the path (a loop over
    steps, at most ``_SWEEP_MAX_STEPS``; sampling afterwards is vectorised)."""
    length = float(np.abs(np.diff(path.v_knots)).sum())
    dv_step = max(_SWEEP_DV_STEP, length / _SWEEP_MAX_STEPS)
    h_max = dv_step / path.rate_V_s
    y_lo, y_hi = float(ocv.y[0]), float(ocv.y[-1])
    ts: list[float] = []
    ys: list[float] = []
    aa: list[float] = []
    kk: list[float] = []
    ss: list[float] = []
    uu: list[float] = []
    y = y0

    def dz(a: float, k: float, s: float, h: float) -> float:
        x = k * h / rq
        if x < 1e-3:
            p1, p2 = 1 - x / 2 + x * x / 6, 0.5 - x / 6 + x * x / 24
        else:
            em = math.expm1(-x)
            p1, p2 = -em / x, (x + em) / (x * x)
        return h / rq * (a * p1 + s * h * p2)

    for j in range(path.n_legs):
        t_a, t_b = float(path.t_knots[j]), float(path.t_knots[j + 1])
        v_a, s = float(path.v_knots[j]), float(path.slopes[j])
        t = t_a
        while True:
            u, k = ocv.at(y)
            a = v_a + s * (t - t_a) - u
            h = min(h_max, t_b - t)
            z = dz(a, k, s, h)
            for _ in range(8):  # keep y and U(y) nearly linear over the step
                over = max(abs(z) / _SWEEP_DY_STEP, k * abs(z) / _SWEEP_DV_STEP)
                if over <= 1 or h <= 1e-9 * h_max:
                    break
                h *= 0.9 / over
                z = dz(a, k, s, h)
            ts.append(t)
            ys.append(y)
            aa.append(a)
            kk.append(k)
            ss.append(s)
            uu.append(u)
            y = min(max(y + z, y_lo), y_hi)
            t += h
            if t >= t_b - 1e-12 * max(t_b, 1.0):
                break
    return _SweepSteps(rq, ts, ys, aa, kk, ss, uu)


__all__ = ["FullCell", "msmr_delithiation", "msmr_differential"]
