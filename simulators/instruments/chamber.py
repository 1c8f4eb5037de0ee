"""A simulated temperature chamber: lag, overshoot and read noise, so soak logic is exercised.

The air follows a second-order (underdamped) step response towards each new setpoint,
T(t) = SV + (T0 - SV) e^(-z w t) [cos(w_d t) + z / sqrt(1 - z^2) sin(w_d t)], with w = 1/tau and
the damping z chosen for the requested overshoot; ``overshoot=0`` gives the first-order lag
T0 + (SV - T0)(1 - e^(-t/tau)). Both are closed forms, so reading the temperature at any time, or
at an array of times, costs one call.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from drivers.clock import Clock
from drivers.interfaces import Chamber, ChamberMode, ChamberReading


class SimChamber(Chamber):
    blocking_io = False

    def __init__(self, clock: Clock, rng: np.random.Generator, tau_s: float = 600.0,
                 overshoot: float = 0.03, ambient_C: float = 22.0, noise_K: float = 0.03,
                 min_C: float = -40.0, max_C: float = 100.0) -> None:
        self._clock, self._rng = clock, rng
        self.tau_s, self.overshoot, self.noise_K = tau_s, overshoot, noise_K
        self.min_C, self.max_C = min_C, max_C
        self._ambient = ambient_C
        self._sv = ambient_C
        self._t0_value, self._t0 = ambient_C, 0.0
        self._mode = ChamberMode.OFF

    def open(self) -> None:
        """Nothing to connect in simulation."""

    def close(self) -> None:
        """Nothing to release in simulation."""

    def set_temperature_C(self, setpoint_C: float) -> None:
        self.check_setpoint(setpoint_C)
        if self._mode is ChamberMode.CONSTANT and setpoint_C == self._sv:
            return   # the same setpoint again (a resumed run restating it) changes nothing
        self._step_to(setpoint_C)
        self._mode = ChamberMode.CONSTANT

    def standby(self) -> None:
        self._step_to(self._ambient)
        self._mode = ChamberMode.STANDBY

    def read(self) -> ChamberReading:
        pv = float(self.temperature_at(self._clock.now())) + self._rng.normal(0, self.noise_K)
        shown_sv = self._sv if self._mode is ChamberMode.CONSTANT else math.nan
        return ChamberReading(round(pv, 2), shown_sv, self._mode)

    def snapshot(self) -> dict[str, Any]:
        return {"sv": self._sv, "t0_value": self._t0_value, "t0": self._t0,
                "mode": self._mode.value, "rng": self._rng.bit_generator.state}

    def restore(self, snap: dict[str, Any]) -> None:
        self._sv, self._t0_value, self._t0 = snap["sv"], snap["t0_value"], snap["t0"]
        self._mode = ChamberMode(snap["mode"])
        self._rng.bit_generator.state = snap["rng"]

    def temperature_at(self, t: float | np.ndarray) -> float | np.ndarray:
        """The true air temperature, noise-free (what a cell in the chamber feels)."""
        dt = np.maximum(np.asarray(t, dtype=float) - self._t0, 0.0)
        return self._sv + (self._t0_value - self._sv) * _step_response(dt / self.tau_s,
                                                                       self.overshoot)

    def _step_to(self, setpoint_C: float) -> None:
        now = self._clock.now()
        self._t0_value, self._t0 = float(self.temperature_at(now)), now
        self._sv = setpoint_C


def _step_response(x: np.ndarray, overshoot: float) -> np.ndarray:
    """The remaining fraction of a setpoint step after x = t / tau."""
    if overshoot <= 0:
        return np.exp(-x)
    log = math.log(overshoot)
    zeta = -log / math.sqrt(math.pi**2 + log**2)
    wd = math.sqrt(1 - zeta**2)
    return np.exp(-zeta * x) * (np.cos(wd * x) + zeta / wd * np.sin(wd * x))
