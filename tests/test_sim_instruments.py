"""The simulated channel and chamber: buffering, timing, refusals, determinism."""

import numpy as np
import pytest

from drivers.errors import CapabilityError, DriverError
from drivers.points import ChannelState
from drivers.techniques import ConstantCurrent, ConstantVoltage, Impedance, OpenCircuit
from simulators.clock import ManualClock
from simulators.instruments import VSP300_CAPABILITIES, SimChamber, SimChannel, SimPotentiostat

from .fakes import ResistorCell


def channel(seed: int = 0, cell: ResistorCell | None = None) -> tuple[SimChannel, ManualClock]:
    clock = ManualClock()
    ch = SimChannel("vsp/ch0", clock, VSP300_CAPABILITIES, np.random.default_rng(seed))
    ch.connect(cell or ResistorCell(), lambda t: np.full(np.shape(t), 25.0))
    return ch, clock


def test_points_are_buffered_between_polls_and_none_lost():
    ch, clock = channel()
    ch.start(OpenCircuit(duration_s=100.0, record_dt_s=10.0))
    clock.advance(35)
    first = ch.poll()
    assert first.state is ChannelState.RUNNING
    assert list(first.points.time_s) == [0, 10, 20, 30]
    assert first.next_event_s == 100.0
    clock.advance(1000)
    rest = ch.poll()
    assert rest.state is ChannelState.DONE and rest.end_reason == "duration"
    assert list(rest.points.time_s) == [40, 50, 60, 70, 80, 90, 100]


def test_cc_ends_at_the_voltage_limit_with_the_end_point_recorded():
    cell = ResistorCell(v0=3.0, k_V_per_C=1.0, r_ohm=10.0)
    ch, clock = channel(cell=cell)
    # V = 3 + 0.01 t + 0.1: reaches 3.6 V at t = 50 s
    ch.start(ConstantCurrent(current_A=0.01, duration_s=1000, record_dt_s=7,
                             until_voltage_V=3.6))
    clock.advance(2000)
    r = ch.poll()
    assert r.end_reason == "voltage"
    assert r.points.time_s[-1] == pytest.approx(50.0)
    assert r.points.voltage_V[-1] == pytest.approx(3.6, abs=1e-3)
    assert cell.charge_C == pytest.approx(0.5)


def test_same_seed_same_noise_regardless_of_poll_pattern():
    a, ca = channel(seed=7)
    b, cb = channel(seed=7)
    for ch in (a, b):
        ch.start(OpenCircuit(duration_s=100, record_dt_s=1))
    ca.advance(100)
    whole = a.poll().points.voltage_V
    parts = []
    for _ in range(10):
        cb.advance(10)
        parts.append(b.poll().points.voltage_V)
    assert np.array_equal(whole, np.concatenate(parts))


def test_impedance_sweep_takes_time_and_spans_the_range():
    ch, clock = channel()
    ch.start(Impedance(3e6, 0.1, 0.01, 10))
    r = ch.poll()
    assert len(r.points) == 0 and r.next_event_s > 60   # the 0.1 Hz points take tens of s
    clock.advance(r.next_event_s)
    r = ch.poll()
    assert r.state is ChannelState.DONE
    f = r.points.frequency_Hz
    assert len(f) == 76 and f[0] == pytest.approx(3e6) and f[-1] == pytest.approx(0.1)
    assert np.all(np.diff(r.points.time_s) > 0)
    assert r.points.z_real_ohm[0] == pytest.approx(10.0, rel=0.01)


@pytest.mark.parametrize(("technique", "match"), [
    (ConstantCurrent(current_A=0.6, duration_s=1, record_dt_s=1), r"exceeds the channel's range"),
    (Impedance(1e7, 0.1, 0.01, 10), r"outside the channel's EIS range"),
    (ConstantVoltage(voltage_V=12, duration_s=1, record_dt_s=1), r"outside the channel's control"),
    (Impedance(1e5, 1.0, 0.0, 10, galvanostatic=True, amplitude_A=0.3),
     r"GEIS amplitude 0.3 A \(\+ bias 0 A\) exceeds half the channel's current range"),
])
def test_the_channel_refuses_what_a_vsp300_refuses(technique, match):
    ch, _ = channel()
    with pytest.raises(CapabilityError, match=match):
        ch.start(technique)
    assert ch.poll().state is ChannelState.IDLE


def test_no_second_technique_while_running_and_stop_turns_off():
    ch, _clock = channel()
    ch.start(OpenCircuit(duration_s=100, record_dt_s=1))
    with pytest.raises(DriverError, match="already running"):
        ch.start(OpenCircuit(duration_s=100, record_dt_s=1))
    ch.stop()
    ch.stop()  # idempotent
    assert ch.poll().state is ChannelState.IDLE


def test_potentiostat_channel_index_is_checked():
    clock = ManualClock()
    pot = SimPotentiostat("VSP-300", [SimChannel("c0", clock, VSP300_CAPABILITIES,
                                                  np.random.default_rng(0))])
    with pytest.raises(CapabilityError, match=r"channels 0..0, not 3"):
        pot.channel(3)


def test_chamber_first_order_lag():
    clock = ManualClock()
    chamber = SimChamber(clock, np.random.default_rng(0), tau_s=600, overshoot=0, ambient_C=22,
                         noise_K=0)
    chamber.set_temperature_C(60)
    clock.advance(600)
    expected = 60 + (22 - 60) * np.exp(-1)
    assert chamber.read().temperature_C == pytest.approx(expected, abs=0.01)
    with pytest.raises(CapabilityError, match="outside the chamber's range"):
        chamber.set_temperature_C(150)


def test_chamber_overshoots_then_settles():
    clock = ManualClock()
    chamber = SimChamber(clock, np.random.default_rng(0), tau_s=600, overshoot=0.05,
                         ambient_C=20, noise_K=0)
    chamber.set_temperature_C(60)
    t = np.linspace(0, 20 * 600, 20001)
    temps = chamber.temperature_at(t)
    assert temps.max() == pytest.approx(60 + 0.05 * 40, abs=0.05)   # 5 % of the 40 K step
    assert temps[-1] == pytest.approx(60, abs=0.01)
    chamber.set_temperature_C(-20)
    clock.advance(100_000)
    assert chamber.read().temperature_C == pytest.approx(-20, abs=0.01)


def test_a_current_the_cell_cannot_take_overloads_the_channel():
    # 0.4 A through 100 Ohm would need 40 V: the +-10 V compliance stops it at once
    ch, clock = channel(cell=ResistorCell(v0=0.0, k_V_per_C=0.0, r_ohm=100.0))
    ch.start(ConstantCurrent(current_A=0.4, duration_s=100, record_dt_s=1))
    clock.advance(100)
    r = ch.poll()
    assert r.state is ChannelState.FAULT and r.end_reason == "compliance"
    assert r.points.time_s[-1] == 0.0


def _full_cell_channel(seed: int) -> tuple[SimChannel, ManualClock]:
    """A channel with the paper's full cell: its segments are pointwise, so polls evaluate
    points ahead."""
    from simulators.cells import build_cell

    clock = ManualClock()
    ch = SimChannel("cycler/ch0", clock, VSP300_CAPABILITIES, np.random.default_rng(seed))
    cell = build_cell("full_cell", "AIOSE", 300e-6, 2.0e-4,
                      cathode={"material": "NCM811", "active_mass_kg": 3e-6,
                               "capacity_Ah": 6e-4, "area_m2": 1.13e-4})
    ch.connect(cell, lambda t: np.full(np.shape(t), 25.0), lambda t: 25.0)
    return ch, clock


_CHARGE = ConstantCurrent(current_A=6e-4, duration_s=7200.0, record_dt_s=1.0,
                          until_voltage_V=4.3)


def _streams_after(seed: int, points: int) -> list[dict]:
    """The voltage and current streams' states after ``points`` points drew their noise."""
    streams = np.random.default_rng(seed).spawn(4)[:2]
    for g in streams:
        g.standard_normal(points)
    return [g.bit_generator.state for g in streams]


def test_points_evaluated_ahead_are_the_points_each_poll_would_draw():
    whole, cw = _full_cell_channel(seed=3)
    parts, cp = _full_cell_channel(seed=3)
    whole.start(_CHARGE)
    parts.start(_CHARGE)
    cw.advance(1e4)
    expected = whole.poll().points
    assert len(expected) > 100
    got, snaps = [], []
    while True:
        cp.advance(97.0)
        readout = parts.poll()
        got.append(readout.points)
        snap = parts.snapshot()
        if readout.state is ChannelState.RUNNING:
            snaps.append(snap)
        else:
            break
    for name in ("time_s", "voltage_V", "current_A", "temperature_C"):
        assert np.array_equal(np.concatenate([getattr(p, name) for p in got]),
                              getattr(expected, name)), name
    # a snapshot while the step runs holds the streams as the points handed out leave them,
    # not as the points evaluated ahead do
    for snap in snaps:
        assert snap["rng"][:2] == _streams_after(3, snap["emitted"])
    assert parts.snapshot()["rng"] == whole.snapshot()["rng"]


def test_a_stop_puts_the_noise_streams_back_after_the_points_handed_out():
    ch, clock = _full_cell_channel(seed=5)
    ch.start(_CHARGE)
    clock.advance(100.5)
    handed_out = len(ch.poll().points)
    assert handed_out == 101
    ch.stop()
    assert ch.snapshot()["rng"][:2] == _streams_after(5, handed_out)


def test_a_step_resumed_from_a_snapshot_while_it_ran_gives_the_same_points():
    ref, cr = _full_cell_channel(seed=9)
    ref.start(_CHARGE)
    cr.advance(1e4)
    expected = ref.poll().points
    first, c1 = _full_cell_channel(seed=9)
    first.start(_CHARGE)
    c1.advance(300.2)
    head = first.poll().points
    snap = first.snapshot()
    resumed, c2 = _full_cell_channel(seed=9)
    c2.advance(c1.now())
    resumed.restore(snap)
    c2.advance(1e4)
    tail = resumed.poll().points
    for name in ("voltage_V", "current_A"):
        assert np.array_equal(np.concatenate([getattr(head, name), getattr(tail, name)]),
                              getattr(expected, name)), name


def test_a_peek_hands_nothing_out_and_the_next_poll_brings_the_same_points():
    ref, cr = _full_cell_channel(seed=4)
    ref.start(_CHARGE)
    cr.advance(1e4)
    expected = ref.poll().points
    ch, clock = _full_cell_channel(seed=4)
    ch.start(_CHARGE)
    peeked = ch.peek()
    assert peeked is not None and peeked.state is ChannelState.RUNNING
    # the point at the start; the technique's end (its last point's time: it started at 0)
    assert len(peeked.points) == 1 and peeked.next_event_s == expected.time_s[-1]
    # nothing was handed out: a snapshot now is the one before any point
    assert ch.snapshot()["emitted"] == 0
    assert ch.snapshot()["rng"][:2] == _streams_after(4, 0)
    clock.advance(1e4)
    got = ch.poll().points
    for name in ("time_s", "voltage_V", "current_A", "temperature_C"):
        assert np.array_equal(getattr(got, name), getattr(expected, name)), name
    assert np.array_equal(peeked.points.voltage_V, expected.voltage_V[:1])


def test_a_peek_at_a_techniques_end_or_at_points_not_kept_ahead_is_refused():
    ch, clock = _full_cell_channel(seed=4)
    assert ch.peek() is None   # nothing runs
    ch.start(_CHARGE)
    clock.advance(1e5)
    assert ch.peek() is None   # its end is news: the caller polls
    assert ch.poll().state is ChannelState.DONE
    ch, clock = channel()   # a resistor's segments are not evaluated ahead
    ch.start(ConstantCurrent(current_A=1e-4, duration_s=10.0, record_dt_s=1.0))
    assert ch.peek() is None


def test_a_labs_channels_are_made_when_first_asked_for_each_with_the_same_noise():
    """A 16-channel cycler makes only the channels a run uses; a channel's noise streams
    come from its name, so it gives the same data whichever channels were made before it."""
    from simulators.lab import SimLab

    lab = SimLab(ManualClock(), seed=3)
    cycler = lab.add_cycler("cyc", 16)
    assert cycler.made_channels() == [] and cycler.channel_count == 16
    fifth = cycler.channel(5)
    assert cycler.made_channels() == [fifth] and cycler.channel(5) is fifth
    every = SimLab(ManualClock(), seed=3).add_cycler("cyc", 16).channels()
    assert len(every) == 16
    assert every[5].snapshot()["rng"] == fifth.snapshot()["rng"]
    assert every[4].snapshot()["rng"] != fifth.snapshot()["rng"]
    with pytest.raises(CapabilityError, match=r"has channels 0\.\.15, not 16"):
        cycler.channel(16)
