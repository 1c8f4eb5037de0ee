"""What a channel's firmware adds to a cell's response: extra end criteria and recording rules.

The cell model says when a technique ends on its own limit; the instrument also watches its
compliance, a short circuit (|V| collapsing, :mod:`drivers.short_circuit`), a steady current
(chronoamperometry) and records by dt, dV and dI as EC-Lab does. All of it is evaluated on a
fine time grid in one vectorised pass, except where the segment's own extremes show that no
point of that grid could end the step (the common case, a step well inside its limits).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from drivers.interfaces import ChannelCapabilities, SafetyLimits
from drivers.short_circuit import ShortWatch
from drivers.techniques import ConstantVoltage, EndConditions, Technique
from simulators.cells.base import Segment
from simulators.specs import MAX_GRID_POINTS


def fine_grid(duration_s: float, record_dt_s: float) -> np.ndarray:
    step = max(min(1.0, record_dt_s), duration_s / MAX_GRID_POINTS)
    return np.append(np.arange(0.0, duration_s, step), duration_s)


def extra_end(technique: Technique, segment: Segment, caps: ChannelCapabilities,
              limits: SafetyLimits | None = None,
              temperature_C: Callable[[np.ndarray], np.ndarray] | None = None
              ) -> tuple[float, str] | None:
    """The first time a firmware criterion ends the technique before the cell's own end:
    the channel's compliance (voltage or current out of its range: the real one overloads and
    stops), the cell's safety limits, a short circuit, a steady current, the step's end
    conditions (``temperature_C``: the cell's temperature at step times).

    Where only the compliance and the safety limits are watched and the segment knows its
    extremes, extremes clear of them by far more than rounding mean that no point of the grid
    could break one: the grid is not sampled (its answer would be None)."""
    short = ShortWatch.of(technique)
    steady = isinstance(technique, ConstantVoltage) and technique.steady_rel is not None
    if (short is None or _cannot_short(segment, short)) and not steady \
            and getattr(technique, "ends", None) is None:
        extremes = segment.extremes()
        if extremes is not None and _clear(extremes, caps, limits):
            return None
    t = fine_grid(segment.duration_s, technique.record_dt_s)
    v, i = segment.sample(t)

    def out_of_range(v: np.ndarray, i: np.ndarray) -> np.ndarray:
        return (v > caps.max_voltage_V) | (v < caps.min_voltage_V) | \
            (np.abs(i) > caps.max_current_A * (1 + 1e-9))

    ends: list[tuple[float, str]] = []
    out = out_of_range(v, i)
    if out.any():
        ends.append((crossing_time(lambda tt: out_of_range(*segment.sample(tt)), t, out),
                     "compliance"))
    if limits is not None:
        broken = beyond(limits, v, i)
        if broken.any():
            ends.append((crossing_time(lambda tt: beyond(limits, *segment.sample(tt)), t,
                                       broken), "safety_limit"))
    if short is not None:
        shorted_at = short.first(t, v)
        if shorted_at is not None:
            ends.append((shorted_at, "short"))
    if steady:
        assert isinstance(technique, ConstantVoltage)
        window = technique.steady_window_s or 0.0
        later = t[t >= window]
        if later.size:
            _, i_now = segment.sample(later)
            _, i_then = segment.sample(later - window)
            hit = np.flatnonzero(np.abs(i_now - i_then) <= technique.steady_rel * np.abs(i_now))
            if hit.size:
                ends.append((float(later[hit[0]]), "steady"))
    conditions = getattr(technique, "ends", None)
    if conditions is not None:
        met = conditions_met(conditions, t, v, i, temperature_C, segment)
        if met is not None:
            ends.append(met)
    return min(ends) if ends else None


def beyond(limits: SafetyLimits, v: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Where a point breaks one of the cell's safety limits (strictly beyond, as the
    sequencer's own check on the recorded points)."""
    broken = np.zeros(len(v), dtype=bool)
    if limits.max_voltage_V is not None:
        broken |= v > limits.max_voltage_V
    if limits.min_voltage_V is not None:
        broken |= v < limits.min_voltage_V
    if limits.max_abs_current_A is not None:
        broken |= np.abs(i) > limits.max_abs_current_A
    return broken


#: Points of each refining grid and how many refinements: 256^4 narrows a grid interval
#: (1 s at most, as a rule) to well under a nanosecond.
_REFINE_POINTS, _REFINE_ROUNDS = 257, 4


def crossing_time(reached: Callable[[np.ndarray], np.ndarray], t: np.ndarray,
                  hit: np.ndarray) -> float:
    """The first time ``reached`` holds (``reached(times)``: whether it holds at each of
    some increasing times), to well under a nanosecond, where ``hit`` (its value on the grid
    ``t``) first holds at a grid point.

    A real channel checks its limits and end conditions every few milliseconds, so it stops
    the step at the crossing; the grid point after it can be far past a limit where the
    curve is steep (an LFP cell at the end of its plateau climbs tens of mV in its last
    second). The bracket between the last grid point that did not hold and the first that
    did is searched on finer grids, and the time returned is one where ``reached`` holds (so
    the step's last recorded point shows the crossing, as the firmware's reading did)."""
    k = int(np.argmax(hit))
    if k == 0:
        return float(t[0])
    lo, hi = float(t[k - 1]), float(t[k])
    for _ in range(_REFINE_ROUNDS):
        fine = np.linspace(lo, hi, _REFINE_POINTS)[1:]
        found = reached(fine)
        j = int(np.argmax(found))
        if not found[j]:
            break   # rounding: the bracket's end is what holds
        lo, hi = (lo if j == 0 else float(fine[j - 1])), float(fine[j])
    return hi


#: How far inside a limit a segment's extremes must stay for the grid to be skipped: volts (or
#: amperes) plus a share of the limit, far above the rounding of a sampled point.
_CLEAR_ABS, _CLEAR_REL = 1e-9, 1e-9


def _clear(extremes: tuple[float, float, float], caps: ChannelCapabilities,
           limits: SafetyLimits | None) -> bool:
    """Whether V in [v_lo, v_hi] and |I| <= i_max keep inside the channel's compliance and
    the cell's safety limits with room to spare."""
    v_lo, v_hi, i_max = extremes

    def below(value: float, limit: float | None) -> bool:
        return limit is None or value < limit - _CLEAR_ABS - _CLEAR_REL * abs(limit)

    def above(value: float, limit: float | None) -> bool:
        return limit is None or value > limit + _CLEAR_ABS + _CLEAR_REL * abs(limit)

    if not (below(v_hi, caps.max_voltage_V) and above(v_lo, caps.min_voltage_V)
            and below(i_max, caps.max_current_A)):
        return False
    if limits is None:
        return True
    return (below(v_hi, limits.max_voltage_V) and above(v_lo, limits.min_voltage_V)
            and below(i_max, limits.max_abs_current_A))


def _cannot_short(segment: Segment, watch: ShortWatch) -> bool:
    """Whether the watch cannot fire on any grid point: |V| never falls, so its peak so far is
    |V| itself (and a fraction below 1 of it is never above it), and |V| when the watch starts
    is clear of the floor by far more than rounding."""
    if not segment.magnitude_never_falls():
        return False
    if watch.collapse_fraction is not None and not watch.collapse_fraction < 1 - _CLEAR_REL:
        return False
    start = watch.settle_s - watch.tolerance_s
    if start > segment.duration_s or watch.floor_V is None:
        return True
    v, _ = segment.sample(np.array([max(start, 0.0)]))
    return bool(abs(v[0]) > watch.floor_V + _CLEAR_ABS + _CLEAR_REL * abs(watch.floor_V))


def conditions_met(ends: EndConditions, t: np.ndarray, v: np.ndarray, i: np.ndarray,
                   temperature_C: Callable[[np.ndarray], np.ndarray] | None,
                   segment: Segment | None = None) -> tuple[float, str] | None:
    """The first time one of ``ends`` holds, and its name (a tie goes to the one listed
    first in :meth:`EndConditions.names`): on the grid ``t``, and with ``segment`` (whose
    samples ``v`` and ``i`` are), a level reached (charge, step time, temperature) between
    grid points at the moment it is reached (:func:`crossing_time`). The slopes (dV/dt,
    dI/dt), taken over a window, are watched on the grid."""
    found: list[tuple[float, int, str]] = []

    def first(hit: np.ndarray, name: str,
              reached: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        if hit.any():
            at = float(t[np.argmax(hit)]) if reached is None else crossing_time(reached, t, hit)
            found.append((at, len(found), name))

    if ends.charge_Ah is not None or ends.soc_charge_Ah is not None:
        passed = np.abs(np.concatenate(([0.0], np.cumsum(0.5 * (i[1:] + i[:-1])
                                                         * np.diff(t))))) / 3600.0
        for name, level in (("charge", ends.charge_Ah), ("soc", ends.soc_charge_Ah)):
            if level is not None:
                hit = passed >= level * (1 - 1e-9)
                first(hit, name, _charge_reached(segment, t, i, hit, level * (1 - 1e-9)))
    if ends.step_time_s is not None:
        hit = t >= ends.step_time_s * (1 - 1e-12)
        if hit.any():   # the step time itself, where it falls between grid points
            k = int(np.argmax(hit))
            at = float(t[k]) if k == 0 else max(float(t[k - 1]),
                                                min(float(t[k]), ends.step_time_s))
            found.append((at, len(found), "step_time"))
    window = ends.slope_window_s
    for name, level, values in (("dV_dt", ends.dV_dt_V_s, v), ("dI_dt", ends.dI_dt_A_s, i)):
        if level is None:
            continue
        later = t >= window
        back = np.interp(t - window, t, values)
        slope = np.abs(values - back) / window
        first(later & (slope <= level), name)
    if temperature_C is not None and (ends.temperature_above_C is not None
                                      or ends.temperature_below_C is not None):
        temp = np.asarray(temperature_C(t), dtype=float)
        env = temperature_C
        if ends.temperature_above_C is not None:
            above = ends.temperature_above_C
            first(temp >= above, "temperature_above",
                  lambda tt: np.asarray(env(tt), dtype=float) >= above)
        if ends.temperature_below_C is not None:
            below = ends.temperature_below_C
            first(temp <= below, "temperature_below",
                  lambda tt: np.asarray(env(tt), dtype=float) <= below)
    if not found:
        return None
    at, _, name = min(found)
    return at, name


def _charge_reached(segment: Segment | None, t: np.ndarray, i: np.ndarray, hit: np.ndarray,
                    level_Ah: float) -> Callable[[np.ndarray], np.ndarray] | None:
    """Whether |charge passed| has reached ``level_Ah`` at some times after the last grid
    point before ``hit`` first holds: the grid's trapezoids up to that point, then the
    segment's current integrated by trapezoids through the times asked about."""
    k = int(np.argmax(hit))
    if segment is None or k == 0:
        return None
    base_t = float(t[k - 1])
    base_As = float(np.sum(0.5 * (i[1:k] + i[:k - 1]) * np.diff(t[:k])))

    def reached(tt: np.ndarray) -> np.ndarray:
        nodes = np.concatenate(([base_t], tt))
        _, i_at = segment.sample(nodes)
        q = base_As + np.cumsum(0.5 * (i_at[1:] + i_at[:-1]) * np.diff(nodes))
        return np.abs(q) / 3600.0 >= level_Ah

    return reached


def record_times(technique: Technique, segment: Segment, duration_s: float) -> np.ndarray:
    """0, dt, 2 dt, ..., the end itself, and the moments V moved by dV or I by dI."""
    dt = float(technique.record_dt_s)   # an int dt would make the times ints, the end cut
    n = math.floor(duration_s / dt + 1e-9) + 1
    # (n - 1) * dt is the last multiple, as numpy's arange times dt gives it
    if duration_s - (n - 1) * dt > 1e-9:
        times = np.arange(n + 1) * dt
        times[-1] = duration_s
    else:
        times = np.arange(n) * dt
    dv = getattr(technique, "record_dV_V", None)
    di = getattr(technique, "record_dI_A", None)
    if dv or di:
        grid = fine_grid(duration_s, dt)
        v, i = segment.sample(grid)
        extra = []
        for values, delta in ((v, dv), (i, di)):
            if delta:
                level = np.floor(values / delta)
                extra.append(grid[1:][np.diff(level) != 0])
        times = np.unique(np.concatenate([times, *extra]))
    return times
