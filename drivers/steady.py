"""The "steady" end of a potentiostatic hold: |I| changed by at most ``rel`` of itself over
``window_s``. No firmware among the supported instruments tests it, so every driver evaluates
it on the readings it polls, with this one watch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from drivers.techniques import ConstantVoltage, Technique

if TYPE_CHECKING:   # numpy where points are handled: not to check a station or plan a run
    import numpy as np


class SteadyWatch:
    """Fed the readings of one hold in order; says when the hold first became steady. The
    current a window back is interpolated between readings, so the answer does not depend on
    how the readings arrive (one per poll or a buffer at a time)."""

    def __init__(self, rel: float, window_s: float, time_tolerance_s: float = 1e-3) -> None:
        import numpy as np

        self.rel, self.window_s, self.tolerance_s = rel, window_s, time_tolerance_s
        self._t, self._i = np.empty(0), np.empty(0)

    @classmethod
    def of(cls, technique: Technique, time_tolerance_s: float = 1e-3) -> SteadyWatch | None:
        """The watch a technique asks for, or None."""
        if isinstance(technique, ConstantVoltage) and technique.steady_rel is not None:
            return cls(technique.steady_rel, technique.steady_window_s or 0.0, time_tolerance_s)
        return None

    def first(self, t_new: np.ndarray, i_new: np.ndarray) -> float | None:
        """The time of the first new reading at which the hold is steady, if any."""
        import numpy as np

        if len(t_new) == 0:
            return None
        t, i = np.concatenate([self._t, t_new]), np.concatenate([self._i, i_new])
        new = np.arange(len(self._t), len(t))
        due = new[t[new] >= self.window_s - self.tolerance_s]
        if due.size:
            then = np.interp(t[due] - self.window_s, t, i)
            hit = due[np.abs(i[due] - then) <= self.rel * np.abs(i[due])]
            if hit.size:
                return float(t[hit[0]])
        # keep what later readings look back to: everything from one reading before t - window
        keep = max(0, int(np.searchsorted(t, t[-1] - self.window_s, "right")) - 1)
        self._t, self._i = t[keep:], i[keep:]
        return None

    def reached(self, t: float, i: float) -> bool:
        """One reading: is the hold steady at it?"""
        import numpy as np

        return self.first(np.array([t]), np.array([i])) is not None
