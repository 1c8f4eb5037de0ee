"""Physics and bookkeeping shared by the cell models: Arrhenius, circuit elements, end times.

One Arrhenius form everywhere (physics.md): sigma = sigma0 exp(-Ea / kT), so every resistance
scales as R(T) = R(25 degC) exp[(Ea / k)(1/T - 1/298.15 K)].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from drivers.techniques import VoltageSweep
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


#: Search grids on [0, 1], scaled per call: linear plus geometric (early and late crossings).
_COARSE = np.union1d(np.linspace(0.0, 1.0, 1025), np.geomspace(1e-9, 1.0, 513))
_FINE = np.linspace(0.0, 1.0, 257)


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
    grid = _COARSE * t_max
    hit = reached(func(grid))
    if not hit.any():
        return None
    k = int(np.argmax(hit))
    lo, hi = float(grid[k - 1]), float(grid[k])
    for _ in range(6):
        if hi - lo <= 1e-12 * t_max:
            break
        fine = lo + (hi - lo) * _FINE
        h = reached(func(fine))
        k = max(int(np.argmax(h)), 1) if h.any() else 256
        lo, hi = float(fine[k - 1]), float(fine[k])
    v_lo, v_hi = func(np.array([lo, hi]))
    if v_hi != v_lo:
        t = lo + (hi - lo) * float(np.clip((level - v_lo) / (v_hi - v_lo), 0.0, 1.0))
        if reached(func(np.array([t])))[0]:
            return t
    return hi


#: How far past a crossing found in closed form a step may move (units in the last place,
#: doubling) for rounding to show the level reached.
_CONFIRM_TRIES = 64


def confirmed_crossing(func: TimeFunction, t_s: float, t_max: float, level: float,
                       rising: bool) -> float | None:
    """``t_s`` (a crossing a model found in closed form), or the first of a few times a hair
    later, where ``func`` evaluated as a segment samples it shows the level reached: the same
    promise :func:`first_crossing` keeps. None if none of them does (the caller then searches
    with :func:`first_crossing`)."""
    t, nudge = t_s, math.ulp(max(t_s, 1e-300))
    for _ in range(_CONFIRM_TRIES):
        if t > t_max:
            return None
        v = float(func(np.array([t]))[0])
        if (v >= level) if rising else (v <= level):
            return t
        t, nudge = t_s + nudge, 2 * nudge
    return None


#: Finds the first time in [0, t_max] a segment reaches a level, or None (a model's closed form
#: in place of :func:`first_crossing`'s grids).
Crossing = Callable[[float, float], float | None]


def limited(func: TimeFunction, duration_s: float, level: float | None, rising: bool,
            reason: str, crossing: Crossing | None = None) -> tuple[float, str]:
    """(duration, end_reason) of a segment with a time limit and an optional level limit;
    ``crossing(t_max, level)`` finds where the level is reached, if the model can (by default
    :func:`first_crossing` searches ``func`` on grids)."""
    duration_s = check_duration(duration_s)
    if level is None:
        return duration_s, "duration"
    t = (first_crossing(func, duration_s, level, rising) if crossing is None
         else crossing(duration_s, level))
    if t is None or t >= duration_s:
        return duration_s, "duration"
    return t, reason


class FunctionSegment(Segment):
    """A segment given by closures: the models compute everything when the segment begins."""

    def __init__(self, duration_s: float, end_reason: str,
                 sample: Callable[[Array], tuple[Array, Array]],
                 finish: Callable[[float], None],
                 extremes: Callable[[float], tuple[float, float, float] | None] | None = None,
                 magnitude_never_falls: Callable[[float], bool] | None = None,
                 pointwise: bool = True) -> None:
        """``extremes(duration_s)`` and ``magnitude_never_falls(duration_s)``: see
        :meth:`Segment.extremes` and :meth:`Segment.magnitude_never_falls`; ``pointwise``:
        see :attr:`Segment.pointwise` (the models' closed forms are, unless they say not)."""
        self.duration_s = float(duration_s)
        self.pointwise = pointwise
        self.end_reason = end_reason
        self._sample, self._finish, self._extremes = sample, finish, extremes
        self._never_falls = magnitude_never_falls
        self._finished = False

    def extremes(self) -> tuple[float, float, float] | None:
        return None if self._extremes is None else self._extremes(self.duration_s)

    def magnitude_never_falls(self) -> bool:
        return self._never_falls is not None and self._never_falls(self.duration_s)

    def sample(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # np.clip's own result, in two ufunc calls (np.clip costs several times more on the
        # few points a poll brings)
        t = np.minimum(np.maximum(np.asarray(t_s, dtype=float), 0.0), self.duration_s)
        v, i = self._sample(t)
        return _fresh(v, t.shape), _fresh(i, t.shape)

    def finish(self, elapsed_s: float) -> None:
        if self._finished:
            raise RuntimeError("this segment has already been finished")
        self._finished = True
        self._finish(min(max(float(elapsed_s), 0.0), self.duration_s))


def _fresh(values: Array, shape: tuple[int, ...]) -> np.ndarray:
    """``values`` (an array of ``shape``, or a value for every point) as a new float array."""
    if isinstance(values, np.ndarray) and values.shape == shape:
        return values.astype(float)
    return np.broadcast_to(values, shape).astype(float)


# -- voltage sweeps (LSV, CV) ---------------------------------------------------------------------

class SweepPath:
    """The applied voltage of a :class:`~drivers.techniques.VoltageSweep`: piecewise linear.

    The path is ``start -> v_1 -> ... -> v_n`` and, for ``cycles > 1`` with several vertices,
    ``-> v_1 -> ... -> v_n`` again for each further cycle (the path ``sequencer.estimate`` times).
    Corners where the voltage would not move are dropped; a path that never moves lasts 0 s.
    """

    def __init__(self, sweep: VoltageSweep, start_V: float) -> None:
        rate = float(sweep.scan_rate_V_s)
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"a voltage sweep needs a positive scan_rate_V_s, got {rate}")
        vertices = [float(v) for v in sweep.vertices_V]
        if not vertices or int(sweep.cycles) < 1:
            raise ValueError("a voltage sweep needs at least one vertex and one cycle")
        points = [float(start_V), *vertices]
        if len(vertices) > 1:
            points += vertices * (int(sweep.cycles) - 1)
        if not all(math.isfinite(v) for v in points):
            raise ValueError(f"a voltage sweep needs finite voltages, got {points}")
        corners = [points[0]]
        for v in points[1:]:
            if v != corners[-1]:
                corners.append(v)
        if len(corners) == 1:
            corners.append(corners[0])
        self.rate_V_s = rate
        #: voltages and times of the corners; leg j runs from corner j to corner j + 1
        self.v_knots = np.asarray(corners)
        self.t_knots = np.concatenate(([0.0], np.cumsum(np.abs(np.diff(self.v_knots))) / rate))
        #: dV/dt of each leg (0 for a path that never moves)
        self.slopes = np.sign(np.diff(self.v_knots)) * rate
        self.duration_s = float(self.t_knots[-1])

    @property
    def n_legs(self) -> int:
        return len(self.slopes)

    def leg(self, t: Array) -> Array:
        """Index of the leg each time is on; a corner belongs to the leg it starts."""
        j = np.searchsorted(self.t_knots, t, side="right") - 1
        return np.clip(j, 0, self.n_legs - 1)

    def voltage(self, t: Array) -> Array:
        return np.interp(t, self.t_knots, self.v_knots)

    def slope(self, t: Array) -> Array:
        return self.slopes[self.leg(t)]


def brug_capacitance_F(q: float, n: float, r_series_ohm: float) -> float:
    """Brug's effective capacitance of a CPE (Q, n) in series with R: Q^(1/n) R^((1-n)/n)."""
    return q ** (1 / n) * r_series_ohm ** ((1 - n) / n)


class CapacitiveSweep:
    """A capacitor C behind a series resistance r_s, with an optional parallel leak r_e, driven by
    a :class:`SweepPath`: exact closed form per leg. Its current tends to C dV/dt (+ V / (r_s +
    r_e)) within a few R C, so it changes sign with the scan direction. The capacitor starts at
    ``x0_V`` (default: the path's start, i.e. any step to ``start_V`` came before the sweep)."""

    def __init__(self, path: SweepPath, c_F: float, r_s_ohm: float,
                 r_e_ohm: float = math.inf, x0_V: float | None = None) -> None:
        self.path, self.r_s = path, float(r_s_ohm)
        self.k = 1.0 if math.isinf(r_e_ohm) else r_e_ohm / (r_s_ohm + r_e_ohm)
        self.tau = max(c_F * r_s_ohm * self.k, 1e-300)
        x = np.empty(len(path.v_knots))
        x[0] = path.v_knots[0] if x0_V is None else x0_V
        # the particular solution on leg j is k (V(t) - s_j tau); one linear step per leg
        base = self.k * (path.v_knots[:-1] - path.slopes * self.tau)
        ends = self.k * (path.v_knots[1:] - path.slopes * self.tau)
        decay = np.exp(-np.diff(path.t_knots) / self.tau)
        for j in range(path.n_legs):
            x[j + 1] = ends[j] + (x[j] - base[j]) * decay[j]
        self._x_knots, self._base = x, base

    def capacitor_V(self, t: Array) -> Array:
        p = self.path
        j = p.leg(t)
        steady = self.k * (p.voltage(t) - p.slopes[j] * self.tau)
        return steady + (self._x_knots[j] - self._base[j]) * np.exp(-(t - p.t_knots[j])
                                                                     / self.tau)

    def current(self, t: Array) -> Array:
        return (self.path.voltage(t) - self.capacitor_V(t)) / self.r_s


def _lambert_w(log_z: Array) -> Array:
    """Principal Lambert W of z = exp(log_z) > 0, from log z so that huge z do not overflow.

    Newton on u = ln W: e^u + u = ln z (convex and increasing in u, so it converges from any
    start); fixed iterations, vectorised."""
    log_z = np.asarray(log_z, dtype=float)
    u = np.where(log_z < 1.0, log_z, np.log(np.maximum(log_z, 1.0)))
    for _ in range(40):
        eu = np.exp(u)
        step = (eu + u - log_z) / (eu + 1.0)
        u = u - step
        if np.all(np.abs(step) < 1e-13):
            break
    return np.exp(u)


def oxidation_current_A(params: Mapping[str, Any], area_cm2: float, e_V: Array,
                        r_series_ohm: float, temperature_C: float) -> Array:
    """Electrolyte oxidative decomposition at an electrode whose potential (vs Li) is ``e_V``.

    Tafel-like, irreversible: I = A j_on exp((E - I R - E_on) / b), where j_on
    (``oxidation_onset_current_density_A_per_cm2``) is the current density at the onset
    ``oxidation_onset_V`` (so the onset a threshold analysis at j_on finds is E_on, up to the small
    I R at j_on) and b (``oxidation_tafel_V``, the e-folding voltage; the decadic Tafel slope is
    b ln 10) scales with T as RT/(alpha F) does. j_on grows with temperature with the activation
    energy ``oxidation_ea_eV`` (Arrhenius, as everything else), so the window narrows when hot.
    The series resistance R limits the current at high voltage (solved exactly: Lambert W).
    """
    b = float(params["oxidation_tafel_V"]) * kelvin(temperature_C) / T_REF_K
    i_on = (float(params["oxidation_onset_current_density_A_per_cm2"]) * area_cm2
            / arrhenius_factor(float(params.get("oxidation_ea_eV", 0.0)), temperature_C))
    x = (np.asarray(e_V, dtype=float) - float(params["oxidation_onset_V"])) / b
    if r_series_ohm <= 0:
        return i_on * np.exp(np.minimum(x, 700.0))
    # w = I R / b solves w e^w = (R i_on / b) e^x
    return b / r_series_ohm * _lambert_w(math.log(r_series_ohm * i_on / b) + x)


def integrate(func: TimeFunction, elapsed_s: float, path: SweepPath,
              points: int = 20001) -> float:
    """Trapezoid integral of ``func`` over [0, elapsed_s] on a grid that holds every corner of the
    path (for the bookkeeping of charge at a segment's end, not for anything a test measures
    tightly)."""
    if elapsed_s <= 0:
        return 0.0
    t = np.union1d(np.linspace(0.0, elapsed_s, points), path.t_knots[path.t_knots < elapsed_s])
    return float(np.trapezoid(func(t), t))


def sweep_segment(path: SweepPath, current: TimeFunction, until_abs_current_A: float | None,
                  finish: Callable[[float], None]) -> FunctionSegment:
    """A sweep's segment: ends at the end of the path ("completed") or where |I| first reaches
    ``until_abs_current_A`` ("current")."""
    duration, reason = path.duration_s, "completed"
    if until_abs_current_A is not None:
        t = first_crossing(lambda t: np.abs(current(t)), duration, float(until_abs_current_A),
                           True)
        if t is not None and t < duration:
            duration, reason = t, "current"

    def sample(t: Array) -> tuple[Array, Array]:
        return path.voltage(t), current(t)

    # not pointwise: an electrolyte's oxidation current iterates until all points converge
    return FunctionSegment(duration, reason, sample, finish, pointwise=False)


def current_density_mA_per_cm2(params: Mapping[str, Any], eta_V: Array) -> Array:
    """|j| at overpotential |eta|: the inverse of :func:`overpotential_V`, vectorised."""
    eta = np.abs(np.asarray(eta_V, dtype=float))
    xs = np.concatenate(([0.0], np.asarray(params["overpotential_current_density_mA_per_cm2"],
                                           dtype=float)))
    ys = np.concatenate(([0.0], np.asarray(params["overpotential_mV"], dtype=float))) * 1e-3
    slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    return np.where(eta <= ys[-1], np.interp(eta, ys, xs), xs[-1] + (eta - ys[-1]) / slope)
