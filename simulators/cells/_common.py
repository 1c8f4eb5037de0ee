"""Physics and bookkeeping shared by the cell models: Arrhenius, circuit elements, end times.

One Arrhenius form everywhere (physics.md): sigma = sigma0 exp(-Ea / kT), so every resistance
scales as R(T) = R(25 degC) exp[(Ea / k)(1/T - 1/298.15 K)].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from simulators.cells.base import Segment

K_B_EV = 8.617e-5          # Boltzmann constant, eV/K (the value physics.md fixes)
T_REF_K = 298.15           # 25 degC, where every material parameter is anchored
FARADAY = 96485.33212      # C/mol
R_GAS = 8.314462618        # J/(mol K)
EPS0 = 8.8541878128e-12    # F/m
M2_TO_CM2 = 1e4
M_TO_CM = 1e2

Array = np.ndarray
TimeFunction = Callable[[Array], Array]


def kelvin(temperature_C: float) -> float:
    return float(temperature_C) + 273.15


def arrhenius_factor(ea_eV: float, temperature_C: float) -> float:
    """R(T) / R(25 degC) for a resistance with activation energy ``ea_eV`` (sigma0 exp(-Ea/kT))."""
    return math.exp(ea_eV / K_B_EV * (1.0 / kelvin(temperature_C) - 1.0 / T_REF_K))


def membrane_resistances(params: Mapping[str, Any], thickness_m: float, area_m2: float,
                         temperature_C: float) -> tuple[float, float]:
    """(R_bulk, R_gb) in Ohm: R_total = d / (sigma(T) S), split by ``grain_boundary_fraction``.

    The grain boundaries may have their own activation energy (``ea_gb_eV``, default ``ea_eV``).
    """
    r25 = thickness_m * M_TO_CM / (params["sigma_25C_S_per_cm"] * area_m2 * M2_TO_CM2)
    f_gb = float(params.get("grain_boundary_fraction", 0.0))
    ea = float(params["ea_eV"])
    r_bulk = (1.0 - f_gb) * r25 * arrhenius_factor(ea, temperature_C)
    r_gb = f_gb * r25 * arrhenius_factor(float(params.get("ea_gb_eV", ea)), temperature_C)
    return r_bulk, r_gb


def cpe(q: float, n: float, omega: Array) -> Array:
    """Constant-phase element Z = 1 / (Q (j w)^n)."""
    return 1.0 / (q * (1j * omega) ** n)


def r_cpe(r: float, q: float, n: float, omega: Array) -> Array:
    """R || CPE: a depressed arc of diameter R."""
    return r / (1.0 + r * q * (1j * omega) ** n)


def parallel(z1: Array | float, z2: Array | float) -> Array:
    return z1 * z2 / (z1 + z2)


def overpotential_V(params: Mapping[str, Any], j_mA_cm2: float) -> float:
    """Steady Li plating/stripping overpotential at |j|, through the material's measured points.

    Piecewise linear through (0, 0) and the points, so it is monotone and reproduces them exactly;
    beyond the last point it continues with the last segment's slope.
    """
    j = abs(j_mA_cm2)
    xs = np.concatenate(([0.0], np.asarray(params["overpotential_current_density_mA_per_cm2"])))
    ys = np.concatenate(([0.0], np.asarray(params["overpotential_mV"]))) * 1e-3
    if j <= xs[-1]:
        return float(np.interp(j, xs, ys))
    slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    return float(ys[-1] + slope * (j - xs[-1]))


def linear_overpotential_asr_ohm_cm2(params: Mapping[str, Any]) -> float:
    """Least-squares slope through the origin of the plating points, for potentiostatic steps."""
    xs = np.asarray(params["overpotential_current_density_mA_per_cm2"], dtype=float)
    ys = np.asarray(params["overpotential_mV"], dtype=float)
    return float(np.sum(xs * ys) / np.sum(xs * xs))  # mV / (mA/cm^2) = Ohm cm^2


def check_duration(duration_s: float) -> float:
    if not (math.isfinite(duration_s) and duration_s >= 0):
        raise ValueError(f"a technique needs a finite, non-negative duration_s, got {duration_s}")
    return float(duration_s)


def first_crossing(func: TimeFunction, t_max: float, level: float, rising: bool) -> float | None:
    """First t in [0, t_max] where func(t) reaches ``level`` (>= if rising, <= if falling).

    A coarse grid (linear plus geometric, so both early and late crossings are bracketed) finds
    the first grid point past the level, then finer grids narrow the bracket to ~1e-12 of t_max
    and a secant step lands on the level. Returns a time where the level is reached (not merely
    approached), so sampling the segment at its end shows the limit met. None if never reached.
    """

    def reached(v: Array) -> Array:
        return v >= level if rising else v <= level

    if reached(func(np.zeros(1)))[0]:
        return 0.0
    if t_max <= 0:
        return None
    grid = np.union1d(np.linspace(0.0, t_max, 2049), np.geomspace(t_max * 1e-9, t_max, 1025))
    hit = reached(func(grid))
    if not hit.any():
        return None
    k = int(np.argmax(hit))
    lo, hi = float(grid[k - 1]), float(grid[k])
    for _ in range(6):
        if hi - lo <= 1e-12 * t_max:
            break
        fine = np.linspace(lo, hi, 257)
        h = reached(func(fine))
        k = max(int(np.argmax(h)), 1) if h.any() else 256
        lo, hi = float(fine[k - 1]), float(fine[k])
    v_lo, v_hi = func(np.array([lo, hi]))
    if v_hi != v_lo:
        t = lo + (hi - lo) * float(np.clip((level - v_lo) / (v_hi - v_lo), 0.0, 1.0))
        if reached(func(np.array([t])))[0]:
            return t
    return hi


def limited(func: TimeFunction, duration_s: float, level: float | None, rising: bool,
            reason: str) -> tuple[float, str]:
    """(duration, end_reason) of a segment with a time limit and an optional level limit."""
    duration_s = check_duration(duration_s)
    if level is None:
        return duration_s, "duration"
    t = first_crossing(func, duration_s, level, rising)
    if t is None or t >= duration_s:
        return duration_s, "duration"
    return t, reason


class FunctionSegment(Segment):
    """A segment given by closures: the models compute everything when the segment begins."""

    def __init__(self, duration_s: float, end_reason: str,
                 sample: Callable[[Array], tuple[Array, Array]],
                 finish: Callable[[float], None]) -> None:
        self.duration_s = float(duration_s)
        self.end_reason = end_reason
        self._sample, self._finish = sample, finish
        self._finished = False

    def sample(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = np.clip(np.asarray(t_s, dtype=float), 0.0, self.duration_s)
        v, i = self._sample(t)
        return np.broadcast_to(v, t.shape).astype(float), np.broadcast_to(i, t.shape).astype(float)

    def finish(self, elapsed_s: float) -> None:
        if self._finished:
            raise RuntimeError("this segment has already been finished")
        self._finished = True
        self._finish(min(max(float(elapsed_s), 0.0), self.duration_s))
