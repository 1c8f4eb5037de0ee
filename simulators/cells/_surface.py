"""The cathode surface's delithiation during a constant-current step, in closed form.

Under a constant current the bulk moves linearly and the surface offset relaxes exponentially,
so the surface sits at y(t) = a + r t + b e^(-t / tau). Its second derivative has the sign of b
throughout: y is convex or concave, so it turns at most once and is monotone on either side of
that turn. That is what makes a step's end exact and cheap: the open-circuit voltage U(y) is
increasing, so V = U(y) + I R crosses a cutoff where y crosses U's inverse at it, and a bracketed
Newton search on each monotone piece finds that time to rounding in a few float operations
(instead of sampling V on grids); the extremes of V over the step are at its ends and the turn.
"""

from __future__ import annotations

import math

#: Newton and bisection rounds at most (bisection alone narrows any bracket of doubles in < 1100).
_MAX_ROUNDS = 200


class SurfacePath:
    """y(t) = y_bulk + rate t + d_inf + (d0 - d_inf) e^(-t / tau), in float arithmetic."""

    def __init__(self, y_bulk: float, rate: float, d_inf: float, d0: float,
                 tau_s: float) -> None:
        if not tau_s > 0:
            raise ValueError(f"a surface time constant must be positive, got {tau_s}")
        self.y_bulk, self.rate, self.d_inf, self.d0, self.tau_s = y_bulk, rate, d_inf, d0, tau_s

    def at(self, t_s: float) -> float:
        """y at t (the same operations, in the same order, as the model's vectorised form)."""
        return self.y_bulk + self.rate * t_s + (self.d_inf + (self.d0 - self.d_inf)
                                                * math.exp(-t_s / self.tau_s))

    def slope(self, t_s: float) -> float:
        """dy/dt at t."""
        return self.rate - (self.d0 - self.d_inf) / self.tau_s * math.exp(-t_s / self.tau_s)

    def turn_s(self) -> float | None:
        """The one time dy/dt = 0, if there is one after t = 0."""
        b = self.d0 - self.d_inf
        if b == 0:
            return None
        ratio = self.rate * self.tau_s / b   # e^(-t / tau) at the turn
        if not 0 < ratio < 1:
            return None
        return -self.tau_s * math.log(ratio)

    def pieces(self, t_max_s: float) -> list[tuple[float, float]]:
        """[0, t_max] cut at the turn: y is monotone on each piece."""
        turn = self.turn_s()
        if turn is None or turn >= t_max_s:
            return [(0.0, t_max_s)]
        return [(0.0, turn), (turn, t_max_s)]

    def first_reach(self, level: float, rising: bool, t_max_s: float) -> float | None:
        """The earliest t in [0, t_max] with y(t) >= level (``rising``) or <= level, to the
        rounding of t; None if y never gets there."""
        def reached(t: float) -> bool:
            y = self.at(t)
            return y >= level if rising else y <= level

        if reached(0.0):
            return 0.0
        for lo, hi in self.pieces(t_max_s):
            if reached(hi):   # not reached at lo: the previous piece ended short of the level
                return self._bracketed(level, rising, lo, hi)
        return None

    def _bracketed(self, level: float, rising: bool, lo: float, hi: float) -> float:
        """Newton on y(t) = level from the secant through the bracket's ends, kept inside
        [lo, hi] (not reached at lo, reached at hi) by bisecting where a step would leave it.
        Near the root y is a staircase (its rounding is coarser than t's), so once a step is
        below rounding the bracket is closed round that point and bisected to neighbouring
        times; returns the reached one."""
        def reached(t: float) -> bool:
            y = self.at(t)
            return y >= level if rising else y <= level

        y_lo, y_hi = self.at(lo), self.at(hi)
        t = lo + (hi - lo) * min(max((level - y_lo) / (y_hi - y_lo), 0.0), 1.0)
        for _ in range(_MAX_ROUNDS):
            if not lo < t < hi:
                t = 0.5 * (lo + hi)
                if not lo < t < hi:
                    return hi   # lo and hi are neighbours
            y = self.at(t)
            if (y >= level) if rising else (y <= level):
                hi = t
            else:
                lo = t
            slope = self.slope(t)
            step = (y - level) / slope if slope != 0 else math.inf
            if abs(step) <= 4 * math.ulp(t):
                break
            t -= step
        else:
            return hi
        # stalled at t (now lo or hi): widen a gap from t by doubling until it holds the
        # change, then bisect it
        gap = math.ulp(t)
        if t == hi:
            while t - gap > lo:
                if not reached(t - gap):
                    lo = t - gap
                    break
                hi, gap = t - gap, 2 * gap
        else:
            while t + gap < hi:
                if reached(t + gap):
                    hi = t + gap
                    break
                lo, gap = t + gap, 2 * gap
        while True:
            mid = 0.5 * (lo + hi)
            if not lo < mid < hi:
                return hi
            if reached(mid):
                hi = mid
            else:
                lo = mid
