"""Electrochemical stability window from a linear sweep voltammogram (LSV).

The window's upper limit is the onset of oxidative decomposition: the voltage where the current
density, going up the sweep, first exceeds a threshold (``physics.md``: 10 uA/cm^2 = 0.1 A/m^2;
AIOSE reaches 5.6 V). A sweep at scan rate v also draws a capacitive current C v that is flat
along the sweep; it is subtracted as the baseline, so the onset does not move with the scan rate
or the electrode's double-layer capacitance.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from analysis.eis import _as_1d_finite
from analysis.errors import AnalysisError

#: 10 uA/cm^2 in A/m^2 (1 uA/cm^2 = 0.01 A/m^2).
DEFAULT_THRESHOLD_A_PER_M2 = 0.1


def stability_window(
    voltage_V: ArrayLike,
    current_A: ArrayLike,
    area_m2: float,
    threshold_A_per_m2: float = DEFAULT_THRESHOLD_A_PER_M2,
    *,
    baseline_fraction: float = 0.02,
    consecutive: int = 3,
) -> float:
    """The voltage (V) where |j - j_baseline| first exceeds ``threshold_A_per_m2`` going up.

    - Only the anodic part counts: the points in recorded order up to the first time the sweep
      reaches its highest voltage (a CV's way back, or a sweep stopped at a current limit, adds
      nothing).
    - Baseline: the mean current over the first ``baseline_fraction`` (default 2 %) of the
      sweep's voltage span, i.e. the capacitive current at the start, where no decomposition
      flows yet. The threshold is applied to the current with this baseline subtracted.
    - The onset is the first point from which ``consecutive`` points in a row (default 3, or all
      that remain) exceed the threshold, so one noise spike does not set the window. The voltage
      is interpolated linearly in |j| between that point and the one before it.

    Raises :class:`AnalysisError` if the threshold is never exceeded: the window then reaches at
    least the sweep's highest voltage, which is not a number to report as the window.
    """
    v = _as_1d_finite(voltage_V, "voltage_V")
    i = _as_1d_finite(current_A, "current_A")
    if v.size != i.size:
        raise AnalysisError(f"voltage_V and current_A differ in length ({v.size} vs {i.size})")
    for name, value in (("area_m2", area_m2), ("threshold_A_per_m2", threshold_A_per_m2)):
        if not (np.isfinite(value) and value > 0):
            raise AnalysisError(f"{name} must be a positive finite number, got {value!r}")
    if not 0 < baseline_fraction < 1:
        raise AnalysisError(f"baseline_fraction must be in (0, 1), got {baseline_fraction!r}")
    if consecutive < 1:
        raise AnalysisError(f"consecutive must be >= 1, got {consecutive!r}")
    if v.size < 2:
        raise AnalysisError("a sweep needs at least 2 points")
    top = int(np.argmax(v))
    v, i = v[: top + 1], i[: top + 1]
    span = float(v[-1] - v[0])
    if not span > 0:
        raise AnalysisError("the sweep does not go up from its first point")
    baseline = float(np.mean(i[v <= v[0] + baseline_fraction * span]))
    j = np.abs(i - baseline) / area_m2
    above = j > threshold_A_per_m2
    for k in np.flatnonzero(above):
        if np.all(above[k : k + consecutive]):
            if k == 0:
                return float(v[0])
            j0, j1 = j[k - 1], j[k]
            return float(v[k - 1] + (threshold_A_per_m2 - j0) / (j1 - j0) * (v[k] - v[k - 1]))
    raise AnalysisError(
        f"|j| never exceeds {threshold_A_per_m2:g} A/m^2 up to {v[-1]:.3f} V "
        f"(largest {j.max():.3g} A/m^2): the window extends beyond the sweep"
    )
