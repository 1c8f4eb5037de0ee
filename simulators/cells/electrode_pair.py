"""Two intercalation electrodes (or a cathode against Li metal) with a liquid or solid electrolyte:
a single-particle model with electrolyte, solved in closed form for every constant current.

Per electrode (parameters from the material library, ``electrode`` block, or from a published
cell's parameter set in the PyBaMM benchmark):

- **Solid diffusion** in a spherical particle of radius R with diffusivity D (Arrhenius). Under a
  constant surface flux N the average stoichiometry moves linearly and the surface deviation is a
  sum of eigenmodes of the sphere (tan(l) = l), each relaxing exponentially towards
  -2 N R / (D c_max l^2) (Carslaw & Jaeger); :data:`N_MODES` modes are carried in the state and
  the faster rest is taken as quasi-steady. So a CC step or a rest is exact in closed form, and a
  GITT pulse shows the sqrt(t) transient of the material's real D.
- **Open-circuit potential** U(surface stoichiometry), tabulated from the published curve; silicon
  blends have a second (delithiation) branch: the branch follows the direction of the last current.
- **Kinetics**: symmetric Butler-Volmer, eta = (2RT/F) asinh(i / (2 j0)), with PyBaMM's exchange
  current j0 = m_ref c_e^0.5 c_s^0.5 (c_max - c_s)^0.5 (Arrhenius).
- **Ohmic losses** in the solid (L / (3 sigma eps_s^b)) and the electrolyte in the pores
  (L / (3 kappa eps^b)), plus the separator or membrane.

The electrolyte: a liquid's concentration difference across the cell relaxes with one time
constant towards its steady value (1 - t+) i / F * sum(L / D_eff) (the SPMe's leading-order
profile); it enters j0 and adds the concentration overpotential 2 (1 - t+) RT/F ln(c_n / c_p). A
solid electrolyte is a single-ion conductor: no concentration term, c_e fixed.

A Li metal counter electrode has no OCP (0 V) and the electrolyte's Li plating/stripping
overpotential (half of a Li||Li cell's). An intercalation anode first loses
``first_cycle_loss_fraction`` of the charge to SEI formation while it is lithiated for the first
time (until that share of the cathode's window has been lost), and (1 - coulombic_efficiency) of
later charge; while charging, (1 - coulombic_efficiency) of the cathode's current oxidises the
electrolyte instead of delithiating it.

Voltage-controlled steps (CV holds, sweeps) are integrated in time steps, the current of each step
solved so that the closed-form voltage at its end meets the target.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit, VoltageSweep
from simulators.cells._common import (
    FARADAY,
    R_GAS,
    Array,
    FunctionSegment,
    SweepPath,
    arrhenius_factor,
    kelvin,
    limited,
    overpotential_V,
    r_cpe,
    sweep_segment,
)
from simulators.cells.base import CellModel, Segment, TimeSeriesTechnique

N_MODES = 30
#: Double-layer capacitance per particle surface (F/m^2), PyBaMM's default for every set.
DOUBLE_LAYER_F_PER_M2 = 0.2
#: Once a particle surface is full or empty the voltage runs away: by this much per unit of
#: stoichiometry beyond the end, at most by _BEYOND_V (beyond any cutoff).
_BEYOND_V = 10.0
_BEYOND_V_PER_UNIT = 1e4
_EPS = 1e-6
#: Voltage-controlled integration: first step, growth per step, most steps.
_VC_FIRST_S = 0.5
_VC_GROWTH = 1.08
_VC_MAX_STEPS = 4000
#: A CV hold's end current lands within this share below its cut-off (at most this many
#: bisections of its last step).
_CUT_OFF_REL = 1e-4
_CUT_OFF_STEPS = 40
#: A sweep's steps move the voltage by at most this much.
_SWEEP_DV_V = 2e-3


def _j_per_mol_to_eV(ea: float) -> float:
    return ea / FARADAY


def _arrhenius_J(ea_J_per_mol: float, temperature_C: float) -> float:
    """k(T) / k(25 degC) for a rate with activation energy ``ea_J_per_mol`` (> 1 above 25)."""
    return 1.0 / arrhenius_factor(_j_per_mol_to_eV(ea_J_per_mol), temperature_C)


@functools.cache
def sphere_eigenvalues(n: int = N_MODES) -> tuple[Array, float]:
    """(first n positive roots of tan(l) = l, 1/5 - sum 2/l^2 over them: the tail's share)."""
    roots = []
    for k in range(1, n + 1):
        x = (k + 0.5) * math.pi - 1.0 / ((k + 0.5) * math.pi)
        for _ in range(50):
            f = math.tan(x) - x
            x -= f / (1.0 / math.cos(x) ** 2 - 1.0)
        roots.append(x)
    lam = np.asarray(roots)
    return lam, 0.2 - float(np.sum(2.0 / lam**2))


class Ocp:
    """U(stoichiometry) by interpolation in the material's table; one or two branches."""

    def __init__(self, table: Mapping[str, Any]) -> None:
        self.x = np.asarray(table["stoichiometry"], dtype=float)
        self.lith = np.asarray(table["voltage_V"], dtype=float)
        d = table.get("delithiation_V")
        self.delith = None if d is None else np.asarray(d, dtype=float)

    def __call__(self, x: Array, delithiating: bool = False) -> Array:
        u = self.delith if (delithiating and self.delith is not None) else self.lith
        return np.interp(x, self.x, u)

    def slope(self, x: float, delithiating: bool = False) -> float:
        h = 1e-3
        lo, hi = max(x - h, float(self.x[0])), min(x + h, float(self.x[-1]))
        u = self(np.array([lo, hi]), delithiating)
        return float((u[1] - u[0]) / (hi - lo)) if hi > lo else 0.0

    def stoichiometry_at(self, u_V: float, delithiating: bool = False) -> float:
        """Inverse (the table falls with stoichiometry)."""
        u = self.delith if (delithiating and self.delith is not None) else self.lith
        return float(np.interp(-u_V, -u, self.x))


@dataclass
class Electrode:
    """One porous electrode: its material's physics and the electrode's size."""

    params: Mapping[str, Any]
    active_volume_m3: float
    thickness_m: float
    area_m2: float

    def __post_init__(self) -> None:
        p = self.params
        self.ocp = Ocp(p["ocp"])
        self.c_max = float(p["c_max_mol_per_m3"])
        self.radius = float(p["particle_radius_m"])
        self.surface_m2 = 3.0 * self.active_volume_m3 / self.radius
        self.capacity_C_per_unit = FARADAY * self.c_max * self.active_volume_m3
        self.porosity = float(p["porosity"])

    def diffusivity(self, temperature_C: float) -> float:
        return float(self.params["diffusivity_m2_per_s"]) * _arrhenius_J(
            float(self.params["diffusivity_ea_J_per_mol"]), temperature_C)

    def m_ref(self, temperature_C: float) -> float:
        return float(self.params["exchange_current_m_ref"]) * _arrhenius_J(
            float(self.params["exchange_current_ea_J_per_mol"]), temperature_C)

    def solid_ohm(self) -> float:
        p = self.params
        eps_s = float(p["active_fraction"])
        sigma = float(p["conductivity_S_per_m"]) * eps_s ** float(p["bruggeman_electrode"])
        return self.thickness_m / (3.0 * sigma * self.area_m2)


@dataclass
class Electrolyte:
    """Transport in the pores and the separator. ``liquid`` None: a single-ion solid conductor
    whose conductivity in the electrodes is the membrane's (sigma_25C_S_per_cm, ea_eV)."""

    membrane: Mapping[str, Any]
    liquid: Mapping[str, Any] | None
    separator_ohm: Callable[[float], float]      # Ohm at temperature (degC)
    separator_thickness_m: float
    separator_porosity: float
    separator_bruggeman: float

    def conductivity(self, temperature_C: float) -> float:
        if self.liquid is None:
            return (float(self.membrane["sigma_25C_S_per_cm"]) * 100.0
                    / arrhenius_factor(float(self.membrane["ea_eV"]), temperature_C))
        return float(self.liquid["conductivity_S_per_m"]) * _arrhenius_J(
            float(self.liquid["conductivity_ea_J_per_mol"]), temperature_C)

    def diffusivity(self, temperature_C: float) -> float:
        assert self.liquid is not None
        return float(self.liquid["diffusivity_m2_per_s"]) * _arrhenius_J(
            float(self.liquid["diffusivity_ea_J_per_mol"]), temperature_C)

    @property
    def c0(self) -> float:
        return float(self.liquid["concentration_mol_per_m3"]) if self.liquid else 1000.0

    @property
    def t_plus(self) -> float:
        return float(self.liquid["transference_number"]) if self.liquid else 1.0


class ElectrodePairCell(CellModel):
    """cathode | electrolyte | anode (intercalation or Li metal); the module doc has the model.

    ``theta_p`` / ``theta_n`` are the electrodes' initial stoichiometries (Li fraction of c_max);
    ``sei_loss_C`` the charge the first lithiation of the anode loses to SEI; ``theta_p_max`` the
    most the cathode takes back (a lab's cathode is not relithiated beyond its pristine state);
    ``v_min_V`` / ``v_max_V`` the window a "full" state refers to.
    """

    def __init__(self, positive: Electrode, negative: Electrode | None,
                 electrolyte: Electrolyte, theta_p: float, theta_n: float,
                 sei_loss_C: float = 0.0, theta_p_max: float = 1.0) -> None:
        self.positive, self.negative, self.electrolyte = positive, negative, electrolyte
        #: the most the cathode's surface can be lithiated (a lab's cathode: its pristine state)
        self._theta_p_max = float(theta_p_max)
        self._lam, self._tail = sphere_eigenvalues()
        self.area_m2 = positive.area_m2
        pn = negative.params if negative is not None else {}
        self._first_loss = float(pn.get("first_cycle_loss_fraction", 0.0))
        self._ce_n = float(pn.get("coulombic_efficiency", 1.0))
        self._ce_p = float(positive.params.get("coulombic_efficiency", 1.0))
        # state (scalars; the modes are saved by state()/restore())
        self.theta_p = float(theta_p)
        self.theta_n = float(theta_n)
        self.modes_p = np.zeros(N_MODES)
        self.modes_n = np.zeros(N_MODES)
        self.delta_ce = 0.0
        self.sei_remaining_C = float(sei_loss_C) if negative is not None else 0.0
        self.anode_delithiating = False
        self.charged_C = 0.0
        self.discharged_C = 0.0

    def start_formed(self, soc: float) -> None:
        """At rest, formed, at ``soc`` of the formed cell's capacity, its lithium where a
        formation would have left it: the anode's first-cycle loss taken from the cell's
        lithium, the rest shared between the electrodes. Full (1) is the cathode at its
        ``v_max_V`` vs Li (the anode, if it fills first, at its ``v_min_V``); empty (0) is the
        cell's open-circuit voltage at the cathode's ``v_min_V`` (2.8 V for NCM811 on graphite),
        or the cathode back at its pristine state or the anode at its ``v_max_V`` vs Li, whichever
        comes first. The charge between them is linear in ``soc``."""
        if self.charged_C or self.discharged_C:
            raise ValueError("only a fresh cell can be started formed")
        p, n = self.positive, self.negative
        p_full = p.ocp.stoichiometry_at(float(p.params["v_max_V"]))
        if n is None:
            p_empty = self._theta_p_max
            self.theta_p = p_empty - soc * (p_empty - p_full)
            return
        cap_p, cap_n = p.capacity_C_per_unit, n.capacity_C_per_unit
        lithium_C = self.theta_p * cap_p + self.theta_n * cap_n - self.sei_remaining_C
        n_empty = n.ocp.stoichiometry_at(float(n.params["v_max_V"]))
        n_full = n.ocp.stoichiometry_at(float(n.params["v_min_V"]))
        p_full = max(p_full, (lithium_C - n_full * cap_n) / cap_p)
        p_empty = min(self._theta_p_max, (lithium_C - n_empty * cap_n) / cap_p)
        floor_V = float(p.params["v_min_V"])

        def ocv(theta_p: float) -> float:
            theta_n = (lithium_C - theta_p * cap_p) / cap_n
            return float(p.ocp(np.array([theta_p]))[0] - n.ocp(np.array([theta_n]))[0])

        if ocv(p_empty) < floor_V < ocv(p_full):   # the OCV falls as the cathode fills
            lo, hi = p_full, p_empty
            for _ in range(60):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if ocv(mid) > floor_V else (lo, mid)
            p_empty = lo
        self.theta_p = p_empty - soc * (p_empty - p_full)
        self.theta_n = (lithium_C - self.theta_p * cap_p) / cap_n
        self.sei_remaining_C = 0.0

    # -- state (the modes are arrays) --------------------------------------------------------
    def state(self) -> dict[str, float | int | bool]:
        out = super().state()
        for name in ("modes_p", "modes_n"):
            for k, v in enumerate(getattr(self, name)):
                out[f"{name}_{k:02d}"] = float(v)
        return out

    def restore(self, state: dict[str, float | int | bool]) -> None:
        state = dict(state)
        for name in ("modes_p", "modes_n"):
            arr = getattr(self, name)
            for k in range(len(arr)):
                arr[k] = float(state.pop(f"{name}_{k:02d}", arr[k]))
        super().restore(state)

    _DYNAMIC = ("theta_p", "theta_n", "delta_ce", "sei_remaining_C", "anode_delithiating",
                "charged_C", "discharged_C")

    def _snapshot(self) -> tuple[object, ...]:
        """The state that steps change, cheaply (for the voltage-controlled integration)."""
        return (*(getattr(self, k) for k in self._DYNAMIC), self.modes_p.copy(),
                self.modes_n.copy())

    def _put(self, snap: tuple[object, ...]) -> None:
        for k, v in zip(self._DYNAMIC, snap, strict=False):
            setattr(self, k, v)
        self.modes_p, self.modes_n = snap[-2].copy(), snap[-1].copy()  # type: ignore[union-attr]

    # -- pieces ------------------------------------------------------------------------------
    def _flux_terms(self, e: Electrode, flux_mol_m2_s: float, temperature_C: float
                    ) -> tuple[float, Array, Array, float]:
        """(d theta_avg/dt, mode targets, mode rates, quasi-steady tail deviation)."""
        d = e.diffusivity(temperature_C)
        scale = flux_mol_m2_s * e.radius / (d * e.c_max)
        return (-3.0 * flux_mol_m2_s / (e.radius * e.c_max), -2.0 * scale / self._lam**2,
                self._lam**2 * d / e.radius**2, -scale * self._tail)

    @staticmethod
    def _surface(theta0: float, rate: float, modes0: Array, target: Array, k: Array,
                 tail: float, t: Array) -> tuple[Array, Array]:
        """(theta_avg(t), theta_surface(t)) for the closed-form step."""
        t = np.asarray(t, dtype=float)
        avg = theta0 + rate * t
        decay = np.exp(-np.multiply.outer(t, k))
        dev = np.sum(target + (modes0 - target) * decay, axis=-1) + tail
        return avg, avg + dev

    def _eta(self, e: Electrode, current_density: float, theta_s: Array, c_e: Array | float,
             temperature_C: float) -> Array:
        """Butler-Volmer overpotential for the current density (A/m^2 of particle surface)."""
        th = np.clip(theta_s, _EPS, 1 - _EPS)
        j0 = (e.m_ref(temperature_C) * np.sqrt(np.maximum(c_e, 1.0)) * e.c_max
              * np.sqrt(th * (1 - th)))
        return 2 * R_GAS * kelvin(temperature_C) / FARADAY * np.arcsinh(current_density
                                                                          / (2 * j0))

    def ohmic_ohm(self, temperature_C: float) -> float:
        """Separator, pore electrolyte and solid-phase resistance (Ohm)."""
        el = self.electrolyte
        kappa = el.conductivity(temperature_C)
        r = el.separator_ohm(temperature_C) + self.positive.solid_ohm()
        for e in (self.positive, self.negative):
            if e is None:
                continue
            k_eff = kappa * e.porosity ** float(e.params["bruggeman_electrolyte"])
            r += e.thickness_m / (3 * k_eff * e.area_m2)
        if self.negative is not None:
            r += self.negative.solid_ohm()
        return r

    def _concentration(self, current_A: float, temperature_C: float) -> tuple[float, float]:
        """(steady concentration difference anode - cathode, relaxation time) for a current."""
        el = self.electrolyte
        if el.liquid is None:
            return 0.0, 1.0
        d = el.diffusivity(temperature_C)
        i = -current_A / self.area_m2  # discharge (I < 0) enriches the anode side
        b_s = el.separator_bruggeman
        resist = el.separator_thickness_m / (d * el.separator_porosity ** b_s)
        slope = 0.0
        for e in (self.positive, self.negative):
            if e is None:
                continue
            eps = e.porosity
            resist += e.thickness_m / (3 * d * eps ** float(e.params["bruggeman_electrolyte"]))
            slope += 1.0 / (eps * e.thickness_m)
        if self.negative is None:
            slope += 1.0 / (el.separator_porosity * el.separator_thickness_m)
        factor = (1 - el.t_plus) / FARADAY
        steady = factor * i * resist
        tau = resist / (slope if slope > 0 else 1.0)
        return steady, tau

    def _conc_eta(self, delta: Array, temperature_C: float) -> Array:
        el = self.electrolyte
        if el.liquid is None:
            return np.zeros_like(np.asarray(delta, dtype=float))
        c0 = el.c0
        half = np.clip(np.asarray(delta) / 2, -0.95 * c0, 0.95 * c0)
        return (-2 * (1 - el.t_plus) * R_GAS * kelvin(temperature_C) / FARADAY
                * np.log((c0 + half) / (c0 - half)))

    def _li_metal_eta(self, current_A: float, temperature_C: float) -> float:
        """Li plating/stripping overpotential of one Li interface (half a Li||Li cell's)."""
        j = abs(current_A) / self.area_m2 / 10.0  # A/m^2 -> mA/cm^2
        m = self.electrolyte.membrane
        eta = overpotential_V(m, j) / 2 * arrhenius_factor(float(m["ea_int_eV"]), temperature_C)
        return math.copysign(eta, current_A)

    # -- one constant-current step, closed form ----------------------------------------------
    def _cc(self, current_A: float, temperature_C: float) -> _CcStep:
        p, n = self.positive, self.negative
        # charge into SEI while the fresh anode is lithiated; later (1 - CE) of the charge
        if n is not None and current_A > 0:
            loss = self._first_loss if self.sei_remaining_C > 0 else 1.0 - self._ce_n
        else:
            loss = 0.0
        t_sei = (self.sei_remaining_C / (current_A * loss)
                 if loss > 0 and self.sei_remaining_C > 0 and current_A > 0 else math.inf)
        # while charging, (1 - CE) of the cathode's current oxidises the electrolyte instead
        i_p = current_A * (self._ce_p if current_A > 0 else 1.0)
        rp, tp, kp, qp = self._flux_terms(p, i_p / (FARADAY * p.surface_m2), temperature_C)
        i_int = current_A * (1 - loss)
        if n is not None:
            rn, tn, kn, qn = self._flux_terms(n, -i_int / (FARADAY * n.surface_m2),
                                              temperature_C)
            rn_after = (-3.0 * (-current_A * self._ce_n / (FARADAY * n.surface_m2))
                        / (n.radius * n.c_max)) if math.isfinite(t_sei) else rn
        else:
            rn = rn_after = qn = 0.0
            tn = kn = np.zeros(N_MODES)
        steady, tau_e = self._concentration(current_A, temperature_C)
        delithiating = self.anode_delithiating if current_A == 0 else current_A < 0
        return _CcStep(self, current_A, temperature_C, rp, tp, kp, qp, rn, rn_after, t_sei, tn,
                       kn, qn, steady, tau_e, self.ohmic_ohm(temperature_C), delithiating,
                       loss)

    # -- CellModel ---------------------------------------------------------------------------
    def ocv_V(self, temperature_C: float) -> float:
        return float(self._cc(0.0, temperature_C).voltage(np.zeros(1))[0])

    def open_circuit_voltage_bulk(self) -> float:
        u_p = float(self.positive.ocp(np.array([self.theta_p]))[0])
        if self.negative is None:
            return u_p
        return u_p - float(self.negative.ocp(np.array([self.theta_n]),
                                             self.anode_delithiating)[0])

    def begin(self, technique: TimeSeriesTechnique, temperature_C: float) -> Segment:
        if isinstance(technique, ConstantCurrent):
            step = self._cc(float(technique.current_A), temperature_C)
            current = float(technique.current_A)

            def sample(t: Array) -> tuple[Array, Array]:
                return step.voltage(t), np.full_like(t, current)

            duration, reason = limited(step.voltage, technique.duration_s,
                                       technique.until_voltage_V, current > 0, "voltage")
            return FunctionSegment(duration, reason, sample, step.commit)
        if isinstance(technique, OpenCircuit):
            step = self._cc(0.0, temperature_C)

            def sample_rest(t: Array) -> tuple[Array, Array]:
                return step.voltage(t), np.zeros_like(t)

            return FunctionSegment(technique.duration_s, "duration", sample_rest, step.commit)
        if isinstance(technique, ConstantVoltage):
            v = float(technique.voltage_V)
            return self._voltage_controlled(lambda t: np.full_like(np.asarray(t, float), v),
                                            float(technique.duration_s),
                                            technique.until_abs_current_A, temperature_C)
        if isinstance(technique, VoltageSweep):
            start = self.ocv_V(temperature_C) if technique.start_V is None else technique.start_V
            path = SweepPath(technique, start)
            seg = self._voltage_controlled(path.voltage, path.duration_s, None, temperature_C,
                                           max_step_s=_SWEEP_DV_V / path.rate_V_s)

            def current(t: Array) -> Array:
                return seg.sample(t)[1]

            return sweep_segment(path, current, technique.until_abs_current_A, seg.finish)
        raise NotImplementedError(f"a full cell cannot run {type(technique).__name__}")

    def _voltage_controlled(self, target: Callable[[Array], Array], duration_s: float,
                            until_abs_current_A: float | None, temperature_C: float,
                            max_step_s: float = math.inf) -> FunctionSegment:
        """Steps of constant current, each solved so that the voltage at its end is the
        target's; the cell's state is restored afterwards (``finish`` commits)."""
        saved = self._snapshot()
        times, currents, states = [0.0], [], [saved]
        t, h = 0.0, _VC_FIRST_S
        r = self.ohmic_ohm(temperature_C) + 1e-6
        i_guess = 0.0
        end_reason = "duration"
        if duration_s / min(max_step_s, duration_s or 1.0) > _VC_MAX_STEPS:
            max_step_s = duration_s / _VC_MAX_STEPS
        while t < duration_s and len(currents) < _VC_MAX_STEPS:
            h = min(h, max_step_s, duration_s - t)
            v_t = float(target(np.array([t + h]))[0])

            def gap(i: float, h: float = h, v_t: float = v_t) -> float:
                self._put(states[-1])
                return float(self._cc(i, temperature_C).voltage(np.array([h]))[0]) - v_t

            i = _solve_current(gap, i_guess, r)
            if until_abs_current_A is not None and abs(i) <= until_abs_current_A:
                end_reason = "current"
                if currents:   # the cut-off is crossed within this step: end the step there
                    h, i = self._to_cut_off(target, t, h, i, i_guess, until_abs_current_A,
                                            states[-1], r, temperature_C)
            self._put(states[-1])
            self._cc(i, temperature_C).commit(h)
            currents.append(i)
            t += h
            times.append(t)
            states.append(self._snapshot())
            i_guess = i
            if end_reason == "current":
                break
            h *= _VC_GROWTH
        self._put(saved)
        t_knots = np.asarray(times)
        i_steps = np.asarray(currents) if currents else np.zeros(1)
        total = float(t_knots[-1])

        def current(tq: Array) -> Array:
            k = np.clip(np.searchsorted(t_knots, tq, side="right") - 1, 0, len(i_steps) - 1)
            return i_steps[k]

        def sample(tq: Array) -> tuple[Array, Array]:
            return target(tq), current(tq)

        def finish(elapsed: float) -> None:
            k = int(np.clip(np.searchsorted(t_knots, elapsed, side="right") - 1, 0,
                            len(i_steps) - 1))
            self._put(states[k])
            self._cc(float(i_steps[k]), temperature_C).commit(elapsed - float(t_knots[k]))

        return FunctionSegment(total, end_reason if total < duration_s else "duration",
                               sample, finish)

    def _to_cut_off(self, target: Callable[[Array], Array], t: float, h: float, i: float,
                    i_before: float, level_A: float, state: tuple[object, ...], r: float,
                    temperature_C: float) -> tuple[float, float]:
        """(length, current) of the step from ``t`` that ends where its current reaches the
        cut-off ``level_A``: the step of length ``h`` (current ``i``, at or below the level)
        overshoots it by up to a twelfth of the time held so far, as the steps grow (a CV
        hold's end current then lands several percent below its cut-off). A shorter step's
        current is larger (less relaxed), so the length is bisected between 0 (the previous
        step's current ``i_before``, above the level) and ``h``, to :data:`_CUT_OFF_REL` of
        the level."""
        lo, hi, i_hi = 0.0, h, i
        for _ in range(_CUT_OFF_STEPS):
            if abs(i_hi) >= level_A * (1 - _CUT_OFF_REL):
                break
            mid = 0.5 * (lo + hi)
            v_t = float(target(np.array([t + mid]))[0])

            def gap(i: float, mid: float = mid, v_t: float = v_t) -> float:
                self._put(state)
                return float(self._cc(i, temperature_C).voltage(np.array([mid]))[0]) - v_t

            i_mid = _solve_current(gap, i_before, r)
            if abs(i_mid) <= level_A:
                hi, i_hi = mid, i_mid
            else:
                lo = mid
        return hi, i_hi

    def impedance(self, frequency_Hz: np.ndarray, temperature_C: float) -> np.ndarray:
        w = 2 * np.pi * np.asarray(frequency_Hz, dtype=float)
        z = np.full(w.shape, self.ohmic_ohm(temperature_C), dtype=complex)
        step = self._cc(0.0, temperature_C)
        theta_ps, theta_ns = step.surfaces_now()
        c0 = self.electrolyte.c0
        vt = R_GAS * kelvin(temperature_C) / FARADAY
        for e, th in ((self.positive, theta_ps), (self.negative, theta_ns)):
            if e is None:
                continue
            th = min(max(th, _EPS), 1 - _EPS)
            j0 = e.m_ref(temperature_C) * math.sqrt(c0) * e.c_max * math.sqrt(th * (1 - th))
            r_ct = vt / (j0 * e.surface_m2)
            z = z + r_cpe(r_ct, DOUBLE_LAYER_F_PER_M2 * e.surface_m2, 1.0, w)
            d = e.diffusivity(temperature_C)
            du_dc = abs(e.ocp.slope(th)) / e.c_max
            x = np.sqrt(1j * w * e.radius**2 / d)
            z = z + du_dc * e.radius / (FARADAY * e.surface_m2 * d) * np.tanh(x) / (x - np.tanh(x))
        if self.negative is None:
            m = self.electrolyte.membrane
            r_li = (float(m["r_int_ohm_cm2"]) / 2 / (self.area_m2 * 1e4)
                    * arrhenius_factor(float(m["ea_int_eV"]), temperature_C))
            z = z + r_cpe(r_li, float(m["cpe_int_q_S_s_n_per_cm2"]) * self.area_m2 * 1e4,
                          float(m["cpe_int_n"]), w)
        return z


class _CcStep:
    """A constant-current (or rest) step from the cell's present state, in closed form."""

    def __init__(self, cell: ElectrodePairCell, current_A: float, temperature_C: float,
                 rp: float, tp: Array, kp: Array, qp: float, rn: float, rn_after: float,
                 t_sei: float, tn: Array, kn: Array, qn: float, steady: float, tau_e: float,
                 r_ohm: float, delithiating: bool, loss: float) -> None:
        self.cell, self.i, self.temp = cell, current_A, temperature_C
        self.rp, self.tp, self.kp, self.qp = rp, tp, kp, qp
        self.rn, self.rn_after, self.t_sei = rn, rn_after, t_sei
        self.tn, self.kn, self.qn = tn, kn, qn
        self.steady, self.tau_e, self.r_ohm = steady, tau_e, r_ohm
        self.delith, self.loss = delithiating, loss
        self.p0, self.n0 = cell.theta_p, cell.theta_n
        self.mp0, self.mn0 = cell.modes_p.copy(), cell.modes_n.copy()
        self.dc0 = cell.delta_ce

    def _theta_n_avg(self, t: Array) -> Array:
        if not math.isfinite(self.t_sei):
            return self.n0 + self.rn * t
        return np.where(t <= self.t_sei, self.n0 + self.rn * t,
                        self.n0 + self.rn * self.t_sei + self.rn_after * (t - self.t_sei))

    def surfaces(self, t: Array) -> tuple[Array, Array, Array, Array]:
        t = np.asarray(t, dtype=float)
        _, ps = ElectrodePairCell._surface(self.p0, self.rp, self.mp0, self.tp, self.kp,
                                           self.qp, t)
        if self.cell.negative is None:
            return ps, np.zeros_like(t), ps, t
        n_avg = self._theta_n_avg(t)
        decay = np.exp(-np.multiply.outer(t, self.kn))
        ns = n_avg + np.sum(self.tn + (self.mn0 - self.tn) * decay, axis=-1) + self.qn
        return ps, ns, ps, t

    def surfaces_now(self) -> tuple[float, float]:
        ps, ns, _, _ = self.surfaces(np.zeros(1))
        return float(ps[0]), float(ns[0])

    def delta_ce(self, t: Array) -> Array:
        return self.steady + (self.dc0 - self.steady) * np.exp(-np.asarray(t) / self.tau_e)

    def voltage(self, t: Array) -> Array:
        cell, temp, i = self.cell, self.temp, self.i
        t = np.asarray(t, dtype=float)
        ps, ns, _, _ = self.surfaces(t)
        dce = self.delta_ce(t)
        c0 = cell.electrolyte.c0
        p = cell.positive
        v = p.ocp(np.clip(ps, 0, 1)) + cell._eta(p, i / p.surface_m2, ps, c0 - dce / 2, temp)
        beyond = np.maximum(ps - cell._theta_p_max, 0.0) + np.maximum(-ps, 0.0)
        n = cell.negative
        if n is None:
            v = v + cell._li_metal_eta(i, temp)
        else:
            i_int = i * (1 - self.loss)
            v = (v - n.ocp(np.clip(ns, 0, 1), self.delith)
                 + cell._eta(n, i_int / n.surface_m2, ns, c0 + dce / 2, temp))
            beyond = beyond + np.maximum(ns - 1.0, 0.0) + np.maximum(-ns, 0.0)
        v = v + i * self.r_ohm + cell._conc_eta(dce, temp)
        if i != 0:  # a full or empty surface: the voltage runs away, steeply but continuously
            v = v + math.copysign(1.0, i) * np.minimum(_BEYOND_V, _BEYOND_V_PER_UNIT * beyond)
        return v

    def commit(self, elapsed: float) -> None:
        cell, t = self.cell, np.array([elapsed])
        cell.theta_p = float(self.p0 + self.rp * elapsed)
        cell.modes_p = self.tp + (self.mp0 - self.tp) * np.exp(-self.kp * elapsed)
        if cell.negative is not None:
            cell.theta_n = float(self._theta_n_avg(t)[0])
            cell.modes_n = self.tn + (self.mn0 - self.tn) * np.exp(-self.kn * elapsed)
            if self.i > 0 and cell.sei_remaining_C > 0:
                cell.sei_remaining_C = max(0.0, cell.sei_remaining_C - self.i * self.loss
                                           * min(elapsed, self.t_sei))
        cell.delta_ce = float(self.delta_ce(t)[0])
        if self.i != 0:
            cell.anode_delithiating = self.i < 0
        if self.i > 0:
            cell.charged_C += self.i * elapsed
        else:
            cell.discharged_C -= self.i * elapsed


def _solve_current(gap: Callable[[float], float], guess: float, r_ohm: float) -> float:
    """The current where gap(I) = 0 (gap rises with I): secant steps from the ohmic guess,
    then bisection on a bracket if needed."""
    a = guess
    fa = gap(a)
    if abs(fa) < 1e-7:
        return a
    b = a - fa / r_ohm
    fb = gap(b)
    for _ in range(30):
        if abs(fb) < 1e-7 or fb == fa:
            return b
        c = b - fb * (b - a) / (fb - fa)
        if not math.isfinite(c) or abs(c - b) > 1e3 * (abs(b) + 1e-3):
            break
        a, fa, b, fb = b, fb, c, gap(c)
    lo, hi = -1.0, 1.0
    while gap(lo) > 0:
        lo *= 4
    while gap(hi) < 0:
        hi *= 4
    for _ in range(80):
        mid = (lo + hi) / 2
        if gap(mid) > 0:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


__all__ = ["N_MODES", "Electrode", "ElectrodePairCell", "Electrolyte", "Ocp",
           "sphere_eigenvalues"]
