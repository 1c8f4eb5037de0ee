"""Li | electrolyte | Li cells under galvanostatic plating/stripping: overpotential, critical
current density, time to a short circuit.

A symmetric cell's open-circuit voltage is 0 V, so |V| during a half cycle is the overpotential of
the cell (electrolyte and both interfaces together). The input is one cell's time series as the run
store records it: time, voltage and current (positive = charge = current into the working
electrode), in time order.

Half cycles are found from the current alone (:func:`current_segments`), so the same code reads a
plating/stripping step, a critical-current-density ramp or data from another cycler. A short
circuit shows as a voltage collapse: |V| falls to |I| R_short, a few mV, while the current keeps
flowing. The sequencer's firmware ends such a step with ``end_reason == "short"``; the store's step
records are the primary evidence when given, the voltage collapse the model-free fallback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

from analysis.eis import _as_1d_finite
from analysis.errors import AnalysisError

# pandas is imported where a frame is made: a run's printed summary with nothing to derive
# loads neither it nor pyarrow (tests/test_startup_imports.py)
if TYPE_CHECKING:
    import pandas as pd

_FloatArray = npt.NDArray[np.float64]

#: 1 A/m^2 = 0.1 mA/cm^2.
A_PER_M2_TO_MA_PER_CM2 = 0.1
#: A step record's end reason when the firmware saw the voltage collapse (a short circuit).
SHORT_END_REASON = "short"
#: Time after a half cycle starts before its voltage is judged (the firmware's default settle_s).
DEFAULT_SETTLE_S = 60.0

HALF_CYCLE_COLUMNS = (
    "start_index", "stop_index", "start_s", "end_s", "current_A", "plateau_V", "overpotential_V",
)


@dataclass(frozen=True)
class CurrentSegment:
    """Indices ``start:stop`` (time order) of one run of constant current; 0.0 for a rest."""

    start: int
    stop: int
    current_A: float


def current_segments(
    current_A: ArrayLike, *, rest_fraction: float = 0.01, rtol: float = 0.05
) -> list[CurrentSegment]:
    """Split a series into runs of constant current and rests, from the current alone.

    - A point is at rest when |I| <= ``rest_fraction`` * max |I| (an instrument's offset is not a
      current step); consecutive rest points form one rest segment with ``current_A = 0.0``.
    - A new segment starts where the current changes sign, or where it differs from the previous
      point's by more than ``rtol`` of the larger magnitude (the next level of a ramp, or the next
      pulse after a change of set point).
    - ``current_A`` of a segment is the median of its points (robust to a spike at a switch).
    """
    current = _as_1d_finite(current_A, "current_A")
    if current.size == 0:
        raise AnalysisError("the series is empty")
    if not 0 <= rest_fraction < 1 or not 0 < rtol < 1:
        raise AnalysisError(
            f"rest_fraction must be in [0, 1) and rtol in (0, 1), got {rest_fraction}, {rtol}"
        )
    magnitude = np.abs(current)
    peak = float(np.max(magnitude))
    active = magnitude > rest_fraction * peak
    # point k starts a segment when it leaves or enters a rest, or (active) when the current
    # changes sign or steps by more than rtol of the larger magnitude: one pass over arrays (a
    # 1200 h cell sampled every second is millions of points)
    prev, now = current[:-1], current[1:]
    switched = active[1:] != active[:-1]
    stepped = active[1:] & ((np.sign(prev) != np.sign(now))
                            | (np.abs(now - prev) > rtol * np.maximum(magnitude[1:],
                                                                      magnitude[:-1])))
    boundaries = [0, *(np.flatnonzero(switched | stepped) + 1).tolist(), current.size]
    segments = []
    for start, stop in pairwise(boundaries):
        level = float(np.median(current[start:stop])) if active[start] else 0.0
        segments.append(CurrentSegment(start, stop, level))
    return segments


def half_cycles(
    t_s: ArrayLike,
    voltage_V: ArrayLike,
    current_A: ArrayLike,
    *,
    plateau_fraction: float = 0.5,
    rest_fraction: float = 0.01,
    rtol: float = 0.05,
) -> pd.DataFrame:
    """One row per galvanostatic half cycle (rests left out), in time order.

    ``plateau_V`` is the mean voltage over the last ``plateau_fraction`` of the half cycle's
    duration (by time, not by points, so a dV-triggered burst of samples does not weigh more): the
    first part is the rise from the ohmic drop to the plateau. ``overpotential_V`` = |plateau_V|.
    """
    import pandas as pd

    t, v, i = _series(t_s, voltage_V, current_A)
    _check_fraction(plateau_fraction, "plateau_fraction")
    rows = []
    for seg in current_segments(i, rest_fraction=rest_fraction, rtol=rtol):
        if seg.current_A == 0.0:
            continue
        tt, vv = t[seg.start:seg.stop], v[seg.start:seg.stop]
        plateau = float(np.mean(vv[tt >= tt[-1] - plateau_fraction * (tt[-1] - tt[0])]))
        rows.append((seg.start, seg.stop, float(tt[0]), float(tt[-1]), seg.current_A, plateau,
                     abs(plateau)))
    return pd.DataFrame(rows, columns=list(HALF_CYCLE_COLUMNS)).astype(
        {"start_index": np.int64, "stop_index": np.int64}
    )


def overpotential(
    t_s: ArrayLike,
    voltage_V: ArrayLike,
    current_A: ArrayLike,
    *,
    plateau_fraction: float = 0.5,
    stop_at_short: bool = True,
    collapse_fraction: float = 0.2,
    settle_s: float = DEFAULT_SETTLE_S,
) -> float:
    """Mean plateau |V| of the half cycles, in V; each half cycle weighs the same.

    The plateau of a half cycle is its mean voltage over the last ``plateau_fraction`` of its
    duration (:func:`half_cycles`). With ``stop_at_short`` (default), half cycles from the first
    voltage collapse on (:func:`short_circuit_time`) are left out: a shorted cell's |I| R_short is
    not an overpotential. Mix current densities only on purpose; see
    :func:`overpotential_by_current_density`.
    """
    table = _usable_half_cycles(t_s, voltage_V, current_A, plateau_fraction, stop_at_short,
                                collapse_fraction, settle_s)
    if table.empty:
        raise AnalysisError("no complete galvanostatic half cycle before a short circuit")
    return float(table["overpotential_V"].mean())


def overpotential_by_current_density(
    t_s: ArrayLike,
    voltage_V: ArrayLike,
    current_A: ArrayLike,
    area_m2: float,
    *,
    plateau_fraction: float = 0.5,
    density_rtol: float = 0.02,
    stop_at_short: bool = True,
    collapse_fraction: float = 0.2,
    settle_s: float = DEFAULT_SETTLE_S,
) -> pd.DataFrame:
    """Mean plateau |V| per |current density|: columns ``current_density_mA_cm2``,
    ``overpotential_V``, ``half_cycles``, sorted by current density.

    j = |I| / area, reported in mA/cm^2 (the unit the contract's condition key carries). Half
    cycles whose j lie within ``density_rtol`` of a group's smallest j form one group (the same set
    point repeated, wherever it occurs in the run); the group's j is their mean. Half cycles after
    a short are left out as in :func:`overpotential`.
    """
    import pandas as pd

    _check_positive(area_m2, "area_m2")
    if not 0 <= density_rtol < 1:
        raise AnalysisError(f"density_rtol must be in [0, 1), got {density_rtol}")
    table = _usable_half_cycles(t_s, voltage_V, current_A, plateau_fraction, stop_at_short,
                                collapse_fraction, settle_s)
    columns = ["current_density_mA_cm2", "overpotential_V", "half_cycles"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    density = np.abs(table["current_A"].to_numpy()) / area_m2 * A_PER_M2_TO_MA_PER_CM2
    order = np.argsort(density, kind="stable")
    group = np.empty(density.size, dtype=np.int64)
    current_group, anchor = -1, -np.inf
    for k in order:
        if density[k] > anchor * (1 + density_rtol):
            current_group, anchor = current_group + 1, density[k]
        group[k] = current_group
    frame = pd.DataFrame({"group": group, "current_density_mA_cm2": density,
                          "overpotential_V": table["overpotential_V"].to_numpy()})
    out = frame.groupby("group", sort=True).agg(
        current_density_mA_cm2=("current_density_mA_cm2", "mean"),
        overpotential_V=("overpotential_V", "mean"),
        half_cycles=("overpotential_V", "size"),
    )
    return out.reset_index(drop=True)[columns]


def shorted_step(steps: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The first step record (``RunStore.steps(cell)``) that ended by a short circuit, by start
    time; None if none did."""
    shorted = [s for s in steps if s.get("end_reason") == SHORT_END_REASON]
    if not shorted:
        return None
    return min(shorted, key=lambda s: float(s.get("started_t", 0.0)))


def critical_current_density_from_steps(
    steps: Sequence[Mapping[str, Any]], area_m2: float
) -> float | None:
    """|j| in mA/cm^2 of the first step that ended with ``end_reason == "short"``, from its
    ``params["current_A"]``; None if no step shorted.
    """
    _check_positive(area_m2, "area_m2")
    step = shorted_step(steps)
    if step is None:
        return None
    return _step_density(step, area_m2)


def critical_current_density(
    t_s: ArrayLike,
    voltage_V: ArrayLike,
    current_A: ArrayLike,
    area_m2: float,
    *,
    steps: Sequence[Mapping[str, Any]] | None = None,
    collapse_fraction: float = 0.2,
    plateau_fraction: float = 0.5,
    settle_s: float = DEFAULT_SETTLE_S,
) -> float | None:
    """The current density (mA/cm^2) of the half cycle in which the cell first shorted.

    Two kinds of evidence, the earlier one wins:

    - a step record in ``steps`` with ``end_reason == "short"`` (the firmware saw |V| collapse);
      j = |params["current_A"]| / area;
    - a voltage collapse in the series (:func:`short_circuit_time`); j = |I| / area of that half
      cycle.

    The step records' times and ``t_s`` must be on the same clock (the run store's test time is).
    Returns None if the cell never shorted: the CCD is then above the highest level tried, which is
    a different statement from "the CCD is the highest level".
    """
    _check_positive(area_m2, "area_m2")
    t, v, i = _series(t_s, voltage_V, current_A)
    table = half_cycles(t, v, i, plateau_fraction=plateau_fraction)
    collapse = _first_collapse(t, v, table, collapse_fraction, settle_s)
    step = shorted_step(steps) if steps is not None else None
    if step is not None and (
        collapse is None or _step_time(step) <= float(t[collapse[1]])
    ):
        return _step_density(step, area_m2)
    if collapse is None:
        return None
    current = float(table["current_A"].iloc[collapse[0]])
    return abs(current) / area_m2 * A_PER_M2_TO_MA_PER_CM2


def short_circuit_time(
    t_s: ArrayLike,
    voltage_V: ArrayLike,
    current_A: ArrayLike,
    *,
    steps: Sequence[Mapping[str, Any]] | None = None,
    collapse_fraction: float = 0.2,
    plateau_fraction: float = 0.5,
    settle_s: float = DEFAULT_SETTLE_S,
) -> float | None:
    """Time (on the clock of ``t_s``, s) of the first voltage collapse; None if none.

    A half cycle has collapsed at its first point, at least ``settle_s`` after it started (the
    sign reversal and the rise from the ohmic drop pass through small |V| legitimately), where
    |V| < ``collapse_fraction`` * the reference:

    - the reference is the plateau |V| (:func:`half_cycles`) of the previous half cycle, so the
      slow drift of a long test and each new level of a ramp are followed;
    - for the first half cycle there is no previous one: its own peak |V| after settling, and only
      points after that peak count.

    With ``steps``, a step that ended with ``end_reason == "short"`` gives its ``ended_t`` if that
    is earlier. Subtract the start of the test from the result for "shorted after ... h".
    """
    t, v, i = _series(t_s, voltage_V, current_A)
    table = half_cycles(t, v, i, plateau_fraction=plateau_fraction)
    collapse = _first_collapse(t, v, table, collapse_fraction, settle_s)
    times = [] if collapse is None else [float(t[collapse[1]])]
    step = shorted_step(steps) if steps is not None else None
    if step is not None:
        times.append(_step_time(step))
    return min(times) if times else None


def _usable_half_cycles(
    t_s: ArrayLike,
    voltage_V: ArrayLike,
    current_A: ArrayLike,
    plateau_fraction: float,
    stop_at_short: bool,
    collapse_fraction: float,
    settle_s: float,
) -> pd.DataFrame:
    t, v, i = _series(t_s, voltage_V, current_A)
    table = half_cycles(t, v, i, plateau_fraction=plateau_fraction)
    if stop_at_short:
        collapse = _first_collapse(t, v, table, collapse_fraction, settle_s)
        if collapse is not None:
            table = table.iloc[: collapse[0]]
    return table


def _first_collapse(
    t: _FloatArray, v: _FloatArray, table: pd.DataFrame, collapse_fraction: float, settle_s: float
) -> tuple[int, int] | None:
    """(row of ``table``, index into the series) of the first collapsed point, or None."""
    _check_fraction(collapse_fraction, "collapse_fraction")
    if not np.isfinite(settle_s) or settle_s < 0:
        raise AnalysisError(f"settle_s must be a finite number >= 0, got {settle_s!r}")
    reference: float | None = None
    for row, (start, stop, plateau) in enumerate(
        zip(table["start_index"], table["stop_index"], table["overpotential_V"], strict=True)
    ):
        settled = np.flatnonzero(t[start:stop] - t[start] >= settle_s) + start
        if settled.size == 0:
            continue  # too short to judge; it does not become the reference either
        magnitude = np.abs(v[settled])
        if reference is None:
            peak = int(np.argmax(magnitude))
            low = np.flatnonzero(magnitude[peak:] < collapse_fraction * magnitude[peak]) + peak
        else:
            low = np.flatnonzero(magnitude < collapse_fraction * reference)
        if low.size:
            return row, int(settled[low[0]])
        reference = float(plateau)
    return None


def _step_density(step: Mapping[str, Any], area_m2: float) -> float:
    params = step.get("params") or {}
    current = params.get("current_A")
    if current is None or not np.isfinite(float(current)):
        raise AnalysisError(
            f"the shorted step (step_count {step.get('step_count')}) has no params['current_A']"
        )
    return abs(float(current)) / area_m2 * A_PER_M2_TO_MA_PER_CM2


def _step_time(step: Mapping[str, Any]) -> float:
    """When a shorted step's short is known to have happened at the latest."""
    end = step.get("ended_t")
    return float(end if end is not None else step.get("started_t", np.inf))


def _series(
    t_s: ArrayLike, voltage_V: ArrayLike, current_A: ArrayLike
) -> tuple[_FloatArray, _FloatArray, _FloatArray]:
    """Validated, equally long arrays in non-decreasing time."""
    t = _as_1d_finite(t_s, "t_s")
    v = _as_1d_finite(voltage_V, "voltage_V")
    i = _as_1d_finite(current_A, "current_A")
    if not t.size == v.size == i.size:
        raise AnalysisError(
            f"t_s, voltage_V and current_A differ in length ({t.size}, {v.size}, {i.size})"
        )
    if t.size == 0:
        raise AnalysisError("the series is empty")
    if np.any(np.diff(t) < 0):
        raise AnalysisError("t_s must be in time order (non-decreasing)")
    return t, v, i


def _check_fraction(value: float, name: str) -> None:
    if not (np.isfinite(value) and 0 < value <= 1):
        raise AnalysisError(f"{name} must be in (0, 1], got {value!r}")


def _check_positive(value: float, name: str) -> None:
    if not (np.isfinite(value) and value > 0):
        raise AnalysisError(f"{name} must be a positive finite number, got {value!r}")
