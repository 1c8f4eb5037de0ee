"""A simulated temperature chamber: first-order thermal lag towards the setpoint, read noise."""

from __future__ import annotations

import math

import numpy as np

from drivers.clock import Clock
from drivers.interfaces import Chamber, ChamberMode, ChamberReading


class SimChamber(Chamber):
    """Air temperature T(t) = SV + (T_0 - SV) exp(-(t - t_0) / tau), evaluated in closed form,
    so reading it at any time, or at an array of times, costs one call."""

    blocking_io = False

    def __init__(self, clock: Clock, rng: np.random.Generator, tau_s: float = 600.0,
                 ambient_C: float = 22.0, noise_K: float = 0.03,
                 min_C: float = -40.0, max_C: float = 100.0) -> None:
        self._clock, self._rng = clock, rng
        self.tau_s, self.noise_K = tau_s, noise_K
        self.min_C, self.max_C = min_C, max_C
        self._ambient = ambient_C
        self._sv = ambient_C
        self._t0_value, self._t0 = ambient_C, 0.0
        self._mode = ChamberMode.OFF
        self._open = False

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        self._open = False

    def set_temperature_C(self, setpoint_C: float) -> None:
        self.check_setpoint(setpoint_C)
        now = self._clock.now()
        self._t0_value, self._t0 = float(self.temperature_at(now)), now
        self._sv, self._mode = setpoint_C, ChamberMode.CONSTANT

    def standby(self) -> None:
        now = self._clock.now()
        self._t0_value, self._t0 = float(self.temperature_at(now)), now
        self._sv, self._mode = self._ambient, ChamberMode.STANDBY

    def read(self) -> ChamberReading:
        pv = float(self.temperature_at(self._clock.now())) + self._rng.normal(0, self.noise_K)
        shown_sv = self._sv if self._mode is ChamberMode.CONSTANT else math.nan
        return ChamberReading(round(pv, 2), shown_sv, self._mode)

    def temperature_at(self, t: float | np.ndarray) -> float | np.ndarray:
        """The true air temperature, noise-free (what a cell in the chamber feels)."""
        dt = np.maximum(np.asarray(t, dtype=float) - self._t0, 0.0)
        return self._sv + (self._t0_value - self._sv) * np.exp(-dt / self.tau_s)
