"""A simulated temperature chamber: lag, overshoot, read noise and faults, so the soak logic and
the chamber suspenders are exercised.

The air follows a second-order (underdamped) step response towards each new target,
T(t) = SV + (T0 - SV) e^(-z w t) [cos(w_d t) + z / sqrt(1 - z^2) sin(w_d t)], with w = 1/tau and
the damping z chosen for the requested overshoot; ``overshoot=0`` gives the first-order lag
T0 + (SV - T0)(1 - e^(-t/tau)). The history is a list of such segments (one per setpoint change,
and two per heater failure: towards ambient, then back), each a closed form, so reading the
temperature at any time, or at an array of times, costs one vectorised call.

The closed forms decay without end: days after a step to 0 degC the remainder,
(T0 - SV) e^(-z w t), is some 1e-100 K, and the air read 7.2e-100 degC instead of 0. Once the
remainder is below :data:`SETTLED_K` (far below any thermometer's resolution) the air is at its
target, exactly.

Read noise is a function of the reading's time (seeded), not a stream: what a reading shows
does not depend on how many readings came before, so a resumed dry run reads what the
uninterrupted one read.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivers.clock import Clock
from drivers.errors import TransportError
from drivers.espec import MAX_C, MIN_C
from drivers.interfaces import Chamber, ChamberMode, ChamberReading

FAULT_KINDS = ("alarm", "heater", "no_answer")
#: A remainder of a setpoint step below this (kelvin) is none: the air is at its target.
SETTLED_K = 1e-9


@dataclass(frozen=True)
class Fault:
    """A fault between two times: ``alarm`` (the controller shows an alarm and stops
    regulating), ``heater`` (it stops regulating, silently), ``no_answer`` (the link is down;
    the air goes on as before)."""

    kind: str
    start_s: float
    end_s: float


class SimChamber(Chamber):
    blocking_io = False

    def __init__(self, clock: Clock, rng: np.random.Generator, tau_s: float = 600.0,
                 overshoot: float = 0.03, ambient_C: float = 22.0, noise_K: float = 0.03,
                 min_C: float = MIN_C, max_C: float = MAX_C) -> None:
        self._clock = clock
        self._noise_key = int(rng.integers(2**62))
        self._noise = random.Random()   # reseeded per reading: its noise depends on the time only
        self.tau_s, self.overshoot, self.noise_K = tau_s, overshoot, noise_K
        self.min_C, self.max_C = min_C, max_C
        self._ambient = ambient_C
        self._sv = ambient_C
        self._mode = ChamberMode.OFF
        # segments: (start time, temperature then, target), by start time
        self._segments: list[tuple[float, float, float]] = [(-math.inf, ambient_C, ambient_C)]
        self._faults: list[Fault] = []
        self._arrays: np.ndarray | None = None   # the segments as columns, for lookups
        self._start_list: list[float] | None = None
        self._settled: tuple[tuple[float, float, float], float] | None = None

    def open(self) -> None:
        """Nothing to connect in simulation."""

    def close(self) -> None:
        """Nothing to release in simulation."""

    # -- the controller ----------------------------------------------------------------------

    def set_temperature_C(self, setpoint_C: float) -> None:
        self._answer()
        self.check_setpoint(setpoint_C)
        if self._mode is ChamberMode.CONSTANT and setpoint_C == self._sv:
            return   # the same setpoint again (a resumed run restating it) changes nothing
        self._sv, self._mode = setpoint_C, ChamberMode.CONSTANT
        self._regulate()

    def standby(self) -> None:
        self._answer()
        self._sv, self._mode = self._ambient, ChamberMode.STANDBY
        self._regulate()

    def read(self) -> ChamberReading:
        self._answer()
        now = self._clock.now()
        self._noise.seed(self._noise_key + round(now * 1000))
        noise = self._noise.gauss(0.0, self.noise_K)
        pv = self.temperature_now_C(now) + noise
        shown_sv = self._sv if self._mode is ChamberMode.CONSTANT else math.nan
        alarms = tuple("HEATER FAULT" for f in self._active(now) if f.kind == "alarm")
        return ChamberReading(round(pv, 2), shown_sv, self._mode, alarms)

    # -- faults ------------------------------------------------------------------------------

    def inject(self, kind: str, start_s: float, end_s: float) -> None:
        """A fault from ``start_s`` to ``end_s`` (clock time); see :class:`Fault`."""
        if kind not in FAULT_KINDS or not start_s < end_s:
            raise ValueError(f"a fault is one of {FAULT_KINDS} over a positive window")
        self._faults.append(Fault(kind, start_s, end_s))
        self._regulate()

    def _active(self, t: float) -> list[Fault]:
        return [f for f in self._faults if f.start_s <= t < f.end_s]

    def _answer(self) -> None:
        if any(f.kind == "no_answer" for f in self._active(self._clock.now())):
            raise TransportError("simulated chamber: no answer (timed out)")

    # -- the air -----------------------------------------------------------------------------

    def _regulate(self) -> None:
        """From now on, the air heads for the setpoint, except while a fault stops the
        regulation (it heads for ambient then, and back once the fault clears)."""
        now = self._clock.now()
        self._cut(now)
        self._head(now, self._sv if not self._unregulated(now) else self._ambient)
        edges = sorted({t for f in self._faults if f.kind != "no_answer"
                        for t in (f.start_s, f.end_s) if t > now})
        for t in edges:
            self._head(t, self._ambient if self._unregulated(t) else self._sv)

    def _unregulated(self, t: float) -> bool:
        return any(f.kind in ("alarm", "heater") for f in self._active(t))

    def _cut(self, t: float) -> None:
        keep = bisect.bisect_right([s[0] for s in self._segments], t)
        del self._segments[max(keep, 1):]
        self._arrays = self._start_list = None

    def _head(self, t: float, target: float) -> None:
        if self._segments[-1][2] != target:
            self._segments.append((t, float(self.temperature_at(t)), target))
            self._arrays = self._start_list = None

    def temperature_now_C(self, t: float) -> float:
        """:meth:`temperature_at` for one time, the same number without arrays (the watchdog
        reads often, and a channel starting a technique asks for one time)."""
        k = max(bisect.bisect_right(self._starts(), t) - 1, 0)
        t0, v0, target = self._segments[k]
        if not math.isfinite(t0) or (k == len(self._segments) - 1
                                     and t >= self._settled_from()):
            return float(target) + 0.0
        return target + _remainder(v0 - target, float(
            _step_response(max(t - t0, 0.0) / self.tau_s, self.overshoot)))

    def _starts(self) -> list[float]:
        if self._start_list is None:
            self._start_list = [s[0] for s in self._segments]
        return self._start_list

    def _settled_from(self) -> float:
        """When the last segment's remainder is below :data:`SETTLED_K` for good (from then on
        the air reads its target exactly); cached per segment."""
        last = self._segments[-1]
        if self._settled is None or self._settled[0] != last:
            t0, v0, target = last
            self._settled = (last, t0 + self.tau_s * _settling_x(abs(v0 - target),
                                                                 self.overshoot))
        return self._settled[1]

    def temperature_at(self, t: float | np.ndarray) -> float | np.ndarray:
        """The true air temperature, noise-free (what a cell in the chamber feels)."""
        t = np.asarray(t, dtype=float)
        t_last, v_last, target_last = self._segments[-1]
        earliest = float(np.minimum.reduce(t, axis=None)) if t.size else math.nan
        if earliest >= self._settled_from():
            # every time after the last change has settled: the air is at its target
            settled = float(target_last) + 0.0   # as the closed form gives it, with no remainder
            if t.ndim == 0:
                return settled
            out = np.empty(t.shape)
            out.fill(settled)
            return out
        if math.isfinite(t_last) and earliest >= t_last:
            # the common case: every time since the last change (one closed form)
            out = target_last + _remainder(v_last - target_last, _step_response(
                (t - t_last) / self.tau_s, self.overshoot))
            return float(out) if out.ndim == 0 else out
        if self._arrays is None:
            self._arrays = np.array(self._segments).T
        starts, values, targets = self._arrays
        idx = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(starts) - 1)
        t0, v0, target = starts[idx], values[idx], targets[idx]
        dt = np.where(np.isfinite(t0), np.maximum(t - t0, 0.0), np.inf)
        out = target + _remainder(v0 - target, _step_response(dt / self.tau_s, self.overshoot))
        return float(out) if out.ndim == 0 else out

    # -- snapshots ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {"sv": self._sv, "mode": self._mode.value,
                "segments": [list(s) for s in self._segments[1:]],
                "faults": [[f.kind, f.start_s, f.end_s] for f in self._faults]}

    def restore(self, snap: dict[str, Any]) -> None:
        self._sv, self._mode = snap["sv"], ChamberMode(snap["mode"])
        self._segments = self._segments[:1] + [(float(a), float(b), float(c))
                                               for a, b, c in snap["segments"]]
        self._faults = [Fault(k, float(a), float(b)) for k, a, b in snap["faults"]]
        self._arrays = self._start_list = None


def _remainder(step_K: float | np.ndarray, fraction: float | np.ndarray
               ) -> float | np.ndarray:
    """What is left of a setpoint step: none once it is below :data:`SETTLED_K`."""
    left = np.multiply(step_K, fraction)
    return np.where(np.abs(left) < SETTLED_K, 0.0, left)


def _settling_x(step_K: float, overshoot: float) -> float:
    """t / tau after which |step| times the step response stays below half of
    :data:`SETTLED_K` (its envelope: e^(-x), or e^(-z x) / sqrt(1 - z^2) with overshoot), so
    rounding cannot lift it to the threshold: from then on :func:`_remainder` is 0."""
    if step_K == 0:
        return 0.0
    if overshoot <= 0:
        return max(math.log(2 * step_K / SETTLED_K), 0.0)
    log = math.log(overshoot)
    zeta = -log / math.sqrt(math.pi**2 + log**2)
    wd = math.sqrt(1 - zeta**2)
    return max(math.log(2 * step_K / (wd * SETTLED_K)) / zeta, 0.0)


def _step_response(x: np.ndarray, overshoot: float) -> np.ndarray:
    """The remaining fraction of a setpoint step after x = t / tau (0 for x = inf)."""
    x = np.asarray(x, dtype=float)
    finite = np.isfinite(x)
    if finite.all():
        return _response(x, overshoot)
    return np.where(finite, _response(np.where(finite, x, 0.0), overshoot), 0.0)


def _response(xf: np.ndarray, overshoot: float) -> np.ndarray:
    if overshoot <= 0:
        out = np.exp(-xf)
    else:
        log = math.log(overshoot)
        zeta = -log / math.sqrt(math.pi**2 + log**2)
        wd = math.sqrt(1 - zeta**2)
        out = np.exp(-zeta * xf) * (np.cos(wd * xf) + zeta / wd * np.sin(wd * xf))
    return out
