"""Where a simulated step ends: at its limit or cut-off, not at the next point of a grid, and
the same however often the channel is polled."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from drivers.clock import Alarm, TrioClock
from drivers.interfaces import SafetyLimits
from drivers.points import ChannelState, Points
from drivers.techniques import ConstantCurrent, ConstantVoltage, EndConditions, Technique
from simulators.cells import build_cell
from simulators.cells.base import CellModel
from simulators.clock import ManualClock
from simulators.instruments import CYCLER_CAPABILITIES, SimChannel

from .fakes import ResistorCell
from .test_executor import run as run_executor
from .test_sim_cells import CAPACITY_AH, full_cell
from .test_sim_chemistries import MASS_KG, coin

COIN_ONE_C_A = MASS_KG * 170.0   # 1C (A) of coin(): its capacity in Ah at its 170 mAh/g
#: (cell, 1C in A, hold voltage) for the CV holds: two cells of the materials' physics (CV
#: integrated in time steps) and the paper's calibrated cell (CV in closed form)
CV_CELLS = [(lambda: coin("NMC811", "graphite"), COIN_ONE_C_A, 4.2),
            (lambda: coin("LFP", "Li"), COIN_ONE_C_A, 3.6),
            (full_cell, CAPACITY_AH, 4.3)]
CV_IDS = ["nmc811-graphite", "lfp-li", "paper-ncm811-aiose-li"]


def _channel(cell: CellModel, limits: SafetyLimits | None = None
             ) -> tuple[SimChannel, ManualClock]:
    clock = ManualClock()
    ch = SimChannel("cycler/ch0", clock, CYCLER_CAPABILITIES, np.random.default_rng(3))
    ch.connect(cell, lambda t: np.full(np.shape(t), 25.0))
    if limits is not None:
        ch.set_safety_limits(limits)
    return ch, clock


def _run(ch: SimChannel, clock: ManualClock, technique: Technique, every_s: float
         ) -> tuple[dict[str, np.ndarray], ChannelState, str | None]:
    """Start ``technique`` and poll it every ``every_s`` to its end: its points (time, voltage
    and current arrays), end state and end reason."""
    ch.start(technique)
    parts: list[Points] = []
    while True:
        clock.advance(every_s)
        r = ch.poll()
        parts.append(r.points)
        if r.state is not ChannelState.RUNNING:
            points = {name: np.concatenate([getattr(p, name) for p in parts])
                      for name in ("time_s", "voltage_V", "current_A")}
            return points, r.state, r.end_reason


@pytest.mark.parametrize(("current_C", "limits", "cut_off_V", "level_V"), [
    (5.0, SafetyLimits(max_voltage_V=3.8, min_voltage_V=2.0), 4.2, 3.8),     # end of charge
    (-5.0, SafetyLimits(max_voltage_V=4.3, min_voltage_V=2.9), 2.5, 2.9),    # end of discharge
])
def test_a_safety_limit_on_a_steep_curve_faults_at_the_limit(
        current_C: float, limits: SafetyLimits, cut_off_V: float, level_V: float) -> None:
    cell = coin("LFP", "Li")
    if current_C < 0:   # charged first, to discharge it
        ch, clock = _channel(cell)
        _run(ch, clock, ConstantCurrent(0.5 * COIN_ONE_C_A, 4e4, 10.0, until_voltage_V=3.8),
             1e5)
    ch, clock = _channel(cell, limits)
    technique = ConstantCurrent(current_C * COIN_ONE_C_A, 4e4, 10.0, until_voltage_V=cut_off_V)
    points, state, reason = _run(ch, clock, technique, 1e5)
    assert (state, reason) == (ChannelState.FAULT, "safety_limit")
    v_end = float(points["voltage_V"][-1])
    beyond = v_end - level_V if current_C > 0 else level_V - v_end
    assert 0 < beyond < 1e-6   # the reading that tripped, at the limit (it is beyond it)
    # the curve there is steep: a second later the voltage is far past the limit, as a check
    # on a one-second grid found it
    seg = cell.begin(technique, 25.0)
    later = seg.sample(np.array([points["time_s"][-1] + 1.0]))[0][0]
    assert abs(later - level_V) > 5e-3
    seg.finish(0.0)


@pytest.mark.parametrize(("cell_of", "one_c_A", "v_hold"), CV_CELLS, ids=CV_IDS)
def test_a_cv_hold_ends_at_its_cut_off_current(cell_of: Callable[[], CellModel],
                                               one_c_A: float, v_hold: float) -> None:
    ch, clock = _channel(cell_of())
    _run(ch, clock, ConstantCurrent(one_c_A, 4e4, 10.0, until_voltage_V=v_hold), 1e5)
    level = one_c_A / 20
    points, _, reason = _run(ch, clock, ConstantVoltage(v_hold, 4e4, 10.0,
                                                        until_abs_current_A=level), 1e5)
    assert reason == "current"
    # the end within 1e-4 of the level, below it; the channel's noise is 1e-4 of I
    assert points["current_A"][-1] == pytest.approx(level, rel=6e-4)


@pytest.mark.parametrize(("cell_of", "one_c_A", "v_hold"), CV_CELLS, ids=CV_IDS)
def test_a_cc_cv_charge_is_the_same_whatever_the_poll_cadence(
        cell_of: Callable[[], CellModel], one_c_A: float, v_hold: float) -> None:
    runs = []
    for every_s in (1.0, 997.0, 1e6):
        cell = cell_of()
        ch, clock = _channel(cell)
        cc, ends_cc, _ = _run(ch, clock, ConstantCurrent(one_c_A / 2, 4e4, 10.0,
                                                         until_voltage_V=v_hold), every_s)
        cv, ends_cv, reason = _run(ch, clock, ConstantVoltage(v_hold, 7200.0, 10.0,
                                                              until_abs_current_A=one_c_A / 50),
                                   every_s)
        assert ends_cc is ends_cv is ChannelState.DONE
        runs.append((cc, cv, reason, cell.state()))
    (cc0, cv0, reason0, state0), *others = runs
    for cc, cv, reason, state in others:
        for a, b in ((cc0, cc), (cv0, cv)):
            for name in a:
                assert np.array_equal(a[name], b[name]), name
        assert reason == reason0 and state == state0


class _LateClock(TrioClock):
    """Virtual time whose every wake-up comes ``late_s`` after the time asked for, as a
    paced dry run's (or a hardware run's) polls come a while after a step has ended."""

    def __init__(self, late_s: float) -> None:
        super().__init__(virtual=True, origin_utc=1.7e9)
        self.late_s = late_s

    async def sleep_until(self, t: float) -> None:
        await super().sleep_until(t + self.late_s)

    def alarm(self, t: float) -> Alarm:
        return super().alarm(t + self.late_s)


def test_a_steps_recorded_end_is_its_last_reading_however_late_the_poll(tmp_path, write_yaml
                                                                         ) -> None:
    """A paced run polls a finished step late: the step's row must still end where the
    instrument ended it (a CV hold's duration must not grow with the poll's lag)."""
    durations = []
    for late_s in (0.0, 37.0):
        folder = tmp_path / f"late{late_s:g}"
        folder.mkdir()
        store, _ = run_executor(folder, write_yaml, """
  - name: e
    cells: [b]
    steps:
      - {kind: constant_current, direction: charge, current: 0.4 mA, until_voltage: 4.2 V,
         duration: 5 h, record_every: 7 min}
      - {kind: constant_voltage, voltage: 4.2 V, until_current: 0.02 mA, duration: 5 h,
         record_every: 7 min}
""", cells={"a": ResistorCell(), "b": full_cell()}, clock=_LateClock(late_s))
        steps = store.steps("b")
        data = store.read("b")
        assert [s["end_reason"] for s in steps] == ["voltage", "current"]
        for s in steps:
            last = data["test_time_s"][data["step_count"] == s["step_count"]][-1]
            assert s["ended_t"] == last   # the step ends at its last reading
        durations.append([s["ended_t"] - s["started_t"] for s in steps])
    assert durations[1] == pytest.approx(durations[0], abs=1e-9)


@pytest.mark.parametrize(("ends", "expected_s", "reason"), [
    (EndConditions(charge_Ah=2e-4 * 100.37 / 3600), 100.37, "charge"),
    (EndConditions(soc_charge_Ah=2e-4 * 250.61 / 3600), 250.61, "soc"),
    (EndConditions(step_time_s=333.3), 333.3, "step_time"),
    (EndConditions(temperature_above_C=35.0037), 600.222, "temperature_above"),
])
def test_an_end_condition_ends_the_step_when_it_is_met_not_at_the_next_second(
        ends: EndConditions, expected_s: float, reason: str) -> None:
    clock = ManualClock()
    ch = SimChannel("ch", clock, CYCLER_CAPABILITIES, np.random.default_rng(0))
    ch.connect(build_cell("symmetric_li", "AIOSE", 300e-6, 2e-4),
               lambda t: 25.0 + np.asarray(t) / 60.0)   # 1 K/min
    ch.start(ConstantCurrent(current_A=2e-4, duration_s=3600, record_dt_s=60, ends=ends))
    clock.advance(4000)
    readout = ch.poll()
    assert readout.end_reason == reason
    assert readout.points.time_s[-1] == pytest.approx(expected_s, abs=1e-6)
