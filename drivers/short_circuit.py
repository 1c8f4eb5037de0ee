"""The "short" end of a constant-current step: the cell's polarisation collapses.

A short circuit shows as |V| falling to |I| R_short while the current keeps flowing. Where it
falls to depends on the cell, not on a fixed number: a solid electrolyte at 0.4 V drops to a few
mV, but a liquid cell at 0.18 V drops to 12 mV (6 mA through 2 Ohm), which an absolute 5 mV
threshold never sees. So the rule is relative to the cell's own voltage at this current:

    after ``settle_s``, |V| < max(``short_below_V``, ``short_collapse_fraction`` x peak |V|)

where the peak is the largest |V| the step has shown so far (at this current, since a step keeps
its current). The absolute ``short_below_V`` stays as a floor: it catches a cell that shorted
before its voltage ever rose. Nothing is judged in the first ``settle_s`` of the step: a reversal
and the rise from the ohmic drop pass through small |V| legitimately.

Every place that ends a constant-current step applies this one watch: the simulated firmware
(on its fine time grid), the Keithley 2450 and Neware BTS drivers (on each reading they poll) and
the VSP-300 driver, whose firmware can only test an absolute limit: it keeps the floor as a
firmware limit and completes the relative part on the points it polls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from drivers.techniques import ConstantCurrent, Technique

if TYPE_CHECKING:   # numpy where points are handled: not to check a station or plan a run
    import numpy as np


class ShortWatch:
    """Fed the readings of one constant-current step in order; says when the cell first shows
    a short. The peak |V| is carried between calls, so the answer does not depend on how the
    readings arrive (one per poll, a buffer at a time, or the whole step at once)."""

    def __init__(self, settle_s: float, floor_V: float | None,
                 collapse_fraction: float | None, time_tolerance_s: float = 0.0) -> None:
        self.settle_s, self.floor_V = settle_s, floor_V
        self.collapse_fraction, self.tolerance_s = collapse_fraction, time_tolerance_s
        self.peak_V = 0.0

    @classmethod
    def of(cls, technique: Technique, time_tolerance_s: float = 0.0,
           relative: bool = True) -> ShortWatch | None:
        """The watch a technique asks for (a constant current with ``short_below_V``), or
        None. ``relative=False``: the absolute floor alone, as an instrument's firmware that
        can only compare with a fixed limit applies it."""
        if not isinstance(technique, ConstantCurrent) or technique.short_below_V is None \
                or technique.current_A == 0:
            return None
        fraction = technique.short_collapse_fraction if relative else None
        return cls(technique.settle_s, technique.short_below_V, fraction, time_tolerance_s)

    def first(self, t_s: np.ndarray, voltage_V: np.ndarray) -> float | None:
        """The time of the first of these readings at which the cell is shorted, if any."""
        import numpy as np

        if len(t_s) == 0:
            return None
        magnitude = np.abs(np.asarray(voltage_V, dtype=float))
        peak = np.maximum.accumulate(np.maximum(magnitude, self.peak_V))
        limit = np.zeros_like(peak)
        if self.collapse_fraction is not None:
            limit = self.collapse_fraction * peak
        if self.floor_V is not None:
            limit = np.maximum(limit, self.floor_V)
        settled = np.asarray(t_s, dtype=float) >= self.settle_s - self.tolerance_s
        hit = np.flatnonzero(settled & (magnitude < limit))
        self.peak_V = float(peak[-1])
        return float(t_s[hit[0]]) if hit.size else None

    def shorted(self, t_s: float, voltage_V: float) -> bool:
        """One reading: is the cell shorted at it?"""
        import numpy as np

        return self.first(np.array([t_s]), np.array([voltage_V])) is not None
