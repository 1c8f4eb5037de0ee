"""The steady-hold watch every driver uses for ConstantVoltage(steady_rel=...)."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.steady import SteadyWatch
from drivers.techniques import ConstantCurrent, ConstantVoltage

TIMES = np.arange(0.0, 600.0, 2.0)
CURRENT = 1e-3 * (0.2 + np.exp(-TIMES / 30.0))   # decays onto a plateau
REL, WINDOW = 0.01, 20.0


def expected_first() -> float:
    """By hand: the first reading whose current is within REL of the current WINDOW before."""
    for t, i in zip(TIMES, CURRENT, strict=True):
        if t >= WINDOW and abs(i - np.interp(t - WINDOW, TIMES, CURRENT)) <= REL * abs(i):
            return float(t)
    raise AssertionError("never steady")


def test_one_reading_at_a_time_and_whole_buffers_agree() -> None:
    by_reading = SteadyWatch(REL, WINDOW)
    first_by_reading = next(float(t) for t, i in zip(TIMES, CURRENT, strict=True)
                            if by_reading.reached(float(t), float(i)))
    by_buffer = SteadyWatch(REL, WINDOW)
    chunks = np.array_split(np.arange(len(TIMES)), 7)
    found = (by_buffer.first(TIMES[c], CURRENT[c]) for c in chunks)
    first_by_buffer = next(f for f in found if f is not None)
    assert first_by_reading == first_by_buffer == expected_first()
    assert 60.0 < first_by_reading < 200.0   # neither at once nor never


def test_not_before_a_whole_window() -> None:
    watch = SteadyWatch(REL, WINDOW)
    flat = [watch.reached(t, 1e-3) for t in (0.0, 5.0, 10.0, 15.0, 20.0)]
    assert flat == [False, False, False, False, True]


def test_only_a_hold_that_asks_for_it_gets_one() -> None:
    assert SteadyWatch.of(ConstantVoltage(0.01, 60.0, 1.0)) is None
    assert SteadyWatch.of(ConstantCurrent(1e-3, 60.0, 1.0)) is None
    watch = SteadyWatch.of(ConstantVoltage(0.01, 60.0, 1.0, steady_rel=0.02, steady_window_s=5))
    assert watch is not None and (watch.rel, watch.window_s) == (0.02, pytest.approx(5.0))
