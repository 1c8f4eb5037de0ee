"""Inclusive range checks that survive unit conversion.

A value a user wrote exactly at a limit ("10 uHz", "-40 degC") comes out of unit conversion a
rounding error away from it (1e-05 Hz becomes 9.999999999999999e-06 Hz; -40 degC goes through
kelvin and back as -40.00000000000003). Comparing such a value with ``<=`` refuses what the
instrument accepts. Every range check of cellseq goes through :func:`within`, which counts a value
within a few parts in 10^9 of a limit as at the limit.
"""

from __future__ import annotations

import math

#: Relative tolerance at a limit: far above float rounding (1e-16), far below anything an
#: instrument resolves.
REL_TOL = 1e-9
#: Absolute tolerance, for limits at zero (0 V, 0 A): a picovolt or picoampere.
ABS_TOL = 1e-12


def at_least(value: float, limit: float) -> bool:
    """``value >= limit``, or within rounding of it."""
    return value >= limit or math.isclose(value, limit, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def at_most(value: float, limit: float) -> bool:
    """``value <= limit``, or within rounding of it."""
    return value <= limit or math.isclose(value, limit, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def within(value: float, low: float, high: float) -> bool:
    """``low <= value <= high``, limits included after rounding; NaN is never within."""
    return at_least(value, low) and at_most(value, high)
