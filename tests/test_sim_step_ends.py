"""The simulators' shortcuts give the answers of the searches they replace.

A full cell finds a step's end in closed form (not by sampling grids), the firmware skips its
fine grid when a segment's extremes are clear of every limit, and the chamber answers its target
once a step has settled: each is checked here against the slow way.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.interfaces import SafetyLimits
from drivers.short_circuit import ShortWatch
from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit, Technique
from simulators.cells import build_cell
from simulators.cells._common import first_crossing
from simulators.cells._surface import SurfacePath
from simulators.cells.base import CellModel, Segment
from simulators.clock import ManualClock
from simulators.instruments import CYCLER_CAPABILITIES, SimChamber, firmware
from simulators.instruments.chamber import SETTLED_K, _remainder, _step_response

from .test_sim_cells import AREA_M2, CAPACITY_AH, THICKNESS_M, full_cell


@pytest.mark.parametrize(("path", "level", "rising"), [
    (SurfacePath(0.2, 1e-5, 0.01, 0.0, 300.0), 0.25, True),      # rises all the way
    (SurfacePath(0.5, -1e-5, -0.02, 0.0, 300.0), 0.45, False),   # falls all the way
    (SurfacePath(0.3, 1e-5, 0.0, 0.05, 200.0), 0.4, True),       # falls first, then rises
    (SurfacePath(0.3, 1e-5, 0.0, 0.05, 200.0), 0.31, False),     # reached while it falls
    (SurfacePath(0.3, 1e-5, 0.0, 0.05, 200.0), 0.2, False),      # never gets that low
    # a GITT pulse's last: near the level y changes by less than its rounding per step of t
    (SurfacePath(0.12187006457625643, -2.157790029198857e-05, -0.12101481297804395,
                 -9.278990107976366e-54, 30.0), 1.5828103129221517e-05, False),
])
def test_the_surface_path_is_first_reached_where_a_dense_search_finds_it(
        path: SurfacePath, level: float, rising: bool) -> None:
    t_max = 20_000.0
    t = np.linspace(0.0, t_max, 2_000_001)
    y = path.y_bulk + path.rate * t + (path.d_inf + (path.d0 - path.d_inf)
                                       * np.exp(-t / path.tau_s))
    hit = (y >= level) if rising else (y <= level)
    found = path.first_reach(level, rising, t_max)
    if not hit.any():
        assert found is None
        return
    assert found is not None
    assert found == pytest.approx(float(t[np.argmax(hit)]), abs=t_max / 2_000_000)
    assert (path.at(found) >= level) if rising else (path.at(found) <= level)
    earlier = found * (1 - 1e-12)
    assert not ((path.at(earlier) >= level) if rising else (path.at(earlier) <= level))


@pytest.mark.parametrize("temperature_C", [-10.0, 25.0, 60.0])
@pytest.mark.parametrize("c_rate", [0.1, 1.0, 20.0])
def test_full_cell_steps_end_where_the_grid_search_finds_the_limit(temperature_C: float,
                                                                   c_rate: float) -> None:
    cell = full_cell()
    steps: list[tuple[Technique, float, bool]] = [
        (ConstantCurrent(c_rate * CAPACITY_AH, 30 * 3600 / c_rate, 30, until_voltage_V=4.35),
         4.35, True),
        (ConstantVoltage(4.35, 10 * 3600, 30, until_abs_current_A=CAPACITY_AH / 50),
         CAPACITY_AH / 50, False),
        (OpenCircuit(600, 30), math.nan, False),
        (ConstantCurrent(-c_rate * CAPACITY_AH, 30 * 3600 / c_rate, 30, until_voltage_V=2.8),
         2.8, False),
    ]
    for technique, level, rising in steps * 2:
        seg = cell.begin(technique, temperature_C)  # type: ignore[arg-type]
        if not math.isnan(level):
            def watched(t: np.ndarray, s: Segment = seg,
                        cv: bool = isinstance(technique, ConstantVoltage)) -> np.ndarray:
                v, i = s.sample(t)
                return np.abs(i) if cv else v
            slow = first_crossing(watched, technique.duration_s, level, rising)
            assert slow is not None and seg.end_reason != "duration"
            assert seg.duration_s == pytest.approx(slow, rel=1e-9, abs=1e-9)
            end = float(watched(np.array([seg.duration_s]))[0])
            assert (end >= level) if rising else (end <= level)
        seg.finish(seg.duration_s)


class _NoShortcuts(Segment):
    """A segment that tells the firmware nothing, so every check runs on the fine grid."""

    def __init__(self, inner: Segment) -> None:
        self.inner, self.duration_s, self.end_reason = inner, inner.duration_s, inner.end_reason

    def sample(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.inner.sample(t_s)

    def finish(self, elapsed_s: float) -> None:
        self.inner.finish(elapsed_s)


def _firmware_answers(cell: CellModel, technique: Technique, limits: SafetyLimits,
                      temperature_C: float = 25.0) -> tuple[object, object, Segment]:
    seg = cell.begin(technique, temperature_C)  # type: ignore[arg-type]
    fast = firmware.extra_end(technique, seg, CYCLER_CAPABILITIES, limits)
    slow = firmware.extra_end(technique, _NoShortcuts(seg), CYCLER_CAPABILITIES, limits)
    return fast, slow, seg


@pytest.mark.parametrize(("limits", "expected"), [
    (SafetyLimits(4.45, 2.5, 0.02), None),              # far inside every limit
    (SafetyLimits(4.0, 2.5, 0.02), "safety_limit"),     # the charge passes 4.0 V
    (SafetyLimits(4.45, 2.5, 1e-5), "safety_limit"),    # the current is over the limit
])
def test_the_firmware_grid_is_skipped_only_where_it_would_find_nothing(
        limits: SafetyLimits, expected: str | None) -> None:
    cell = full_cell()
    for technique in (ConstantCurrent(CAPACITY_AH, 7200, 10, until_voltage_V=4.35),
                      ConstantVoltage(4.35, 3600, 10, until_abs_current_A=CAPACITY_AH / 20),
                      OpenCircuit(600, 10),
                      ConstantCurrent(-CAPACITY_AH, 7200, 10, until_voltage_V=2.8)):
        fast, slow, seg = _firmware_answers(cell, technique, limits)
        assert fast == slow
        assert seg.extremes() is not None   # the shortcut is there to take
        seg.finish(seg.duration_s)
    charge = ConstantCurrent(CAPACITY_AH, 7200, 10, until_voltage_V=4.35)
    fast, slow, _ = _firmware_answers(cell, charge, limits)
    assert fast == slow
    assert (fast is None) if expected is None else (fast is not None and fast[1] == expected)


def test_a_short_is_still_found_where_the_voltage_collapses() -> None:
    cell = build_cell("symmetric_li", "AIOSE", THICKNESS_M, AREA_M2)
    limits = SafetyLimits(1.0, -1.0, None)
    area_cm2 = AREA_M2 * 1e4
    answers = []
    for j_mA_cm2 in (0.1, 0.5, 5.0):   # the last is beyond AIOSE's critical current density
        current = j_mA_cm2 * 1e-3 * area_cm2
        step = ConstantCurrent(current, 3600, 10, short_below_V=0.005)
        fast, slow, seg = _firmware_answers(cell, step, limits)
        assert fast == slow
        watch = ShortWatch.of(step)
        assert watch is not None
        assert firmware._cannot_short(seg, watch) is (fast is None)   # no grid for a sound cell
        answers.append(fast)
        seg.finish(seg.duration_s if fast is None else float(fast[0]))  # type: ignore[index]
    assert answers[:2] == [None, None]
    assert answers[2] is not None and answers[2][1] == "short"


def test_a_settled_chamber_answers_exactly_what_its_closed_form_gives() -> None:
    clock = ManualClock()
    chamber = SimChamber(clock, np.random.default_rng(0), tau_s=600, overshoot=0.03,
                         ambient_C=22, noise_K=0)
    chamber.set_temperature_C(60.0)
    t = np.linspace(0.0, 400 * 600, 400_001)
    closed = 60.0 + _remainder(22.0 - 60.0, _step_response(t / 600, 0.03))
    np.testing.assert_array_equal(chamber.temperature_at(t), closed)
    settled = t[np.abs(closed - 60.0) > 0].max()   # the last time any remainder shows
    late = t[t > settled]
    assert late.size and np.all(np.abs((22.0 - 60.0) * _step_response(late / 600, 0.03))
                                < SETTLED_K)
    for time_s in (settled, late[0], float(t[-1])):
        assert chamber.temperature_at(time_s) == float(60.0 + _remainder(
            -38.0, _step_response(np.array(time_s / 600), 0.03)))
        clock.advance(time_s - clock.now())
        assert chamber.read().temperature_C == round(float(chamber.temperature_at(time_s)), 2)
