"""Pulse resistance from an HPPC: R(t) = (V(t) - V_0) / I at set times into each pulse.

V_0 is the voltage just before the pulse (the last point of the rest before it), I the pulse's
set current (signed, so R is positive both ways), V(t) the voltage t seconds into the pulse,
read between the two recorded points around t. The times are 0.1 s, 1 s and 10 s, the ones
HPPC reports quote, and the pulse's end where it is shorter than 10 s or a voltage limit ended
it early. A time needs a recorded point within a quarter of it (the 0.1 s value a point between
0.075 and 0.125 s): pulses recorded too sparsely give no value there, and say so, rather than
an interpolation across the instant that matters.

The state of charge of a pulse is its level's: the charge counted since the HPPC began, over the
cell's nominal capacity, from 100 % for an HPPC that discharges (0 % for one that charges).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.errors import AnalysisError

#: When into a pulse the resistance is read, in seconds.
PULSE_TIMES_S = (0.1, 1.0, 10.0)
#: A time needs a recorded point within this share of it.
POINT_TOLERANCE = 0.25


@dataclass(frozen=True)
class Pulse:
    """One pulse as recorded: step time and voltage of its points, its set current, the voltage
    before it, and whether a voltage limit ended it."""

    step_time_s: np.ndarray
    voltage_V: np.ndarray
    current_A: float
    voltage_before_V: float
    set_duration_s: float
    ended_on_limit: bool = False


@dataclass(frozen=True)
class PulseReading:
    time_s: float
    resistance_ohm: float | None
    at_end: bool
    why_none: str = ""


def pulse_readings(pulse: Pulse) -> list[PulseReading]:
    """R at each of :data:`PULSE_TIMES_S` the pulse lasted, and at its end where it ended
    before 10 s; a reading without a recorded point near its time is None with the reason."""
    t = np.asarray(pulse.step_time_s, dtype=np.float64)
    v = np.asarray(pulse.voltage_V, dtype=np.float64)
    keep = np.isfinite(t) & np.isfinite(v)
    t, v = t[keep], v[keep]
    if pulse.current_A == 0 or not np.isfinite(pulse.voltage_before_V):
        raise AnalysisError("a pulse needs a current and a voltage before")
    if t.size < 2:
        if pulse.ended_on_limit:   # the ohmic jump alone crossed the limit: the others stand
            return [PulseReading(float(t[0]) if t.size else 0.0, None, True,
                                 "the pulse ended on its voltage limit at its first point")]
        raise AnalysisError("a pulse needs two recorded points")
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    end = float(t[-1])
    out = []
    for time in PULSE_TIMES_S:
        if time > end * (1 + 1e-9):
            break
        nearest = float(np.min(np.abs(t - time)))
        if nearest > POINT_TOLERANCE * time:
            out.append(PulseReading(time, None, False,
                                    f"no point recorded within {POINT_TOLERANCE * time:.3g} s"
                                    f" of {time:g} s (the pulse's points are"
                                    f" {np.median(np.diff(t)):.3g} s apart)"))
            continue
        out.append(PulseReading(time, _resistance(float(np.interp(time, t, v)), pulse), False))
    if end < PULSE_TIMES_S[-1] * (1 - 1e-9) and not any(abs(r.time_s - end) <= 1e-6 * end
                                                        for r in out):
        out.append(PulseReading(end, _resistance(float(v[-1]), pulse), True))
    return out


def _resistance(voltage_V: float, pulse: Pulse) -> float:
    return (voltage_V - pulse.voltage_before_V) / pulse.current_A


def state_of_charge_percent(net_discharged_Ah: float, capacity_Ah: float,
                            discharging: bool) -> float:
    """SOC by charge counting from the HPPC's start: 100 % - Q / Q_nominal for one that
    discharges, Q_charged / Q_nominal for one that charges; ``net_discharged_Ah`` is the
    discharge minus the charge since the start."""
    if not capacity_Ah > 0:
        raise AnalysisError(f"a state of charge needs the cell's capacity, got {capacity_Ah!r}")
    moved = 100.0 * net_discharged_Ah / capacity_Ah
    return 100.0 - moved if discharging else -moved
