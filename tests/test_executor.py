"""The executor on simulated instruments with closed-form cells, in virtual time."""

from __future__ import annotations

import numpy as np
import pytest
import trio

from drivers.clock import TrioClock
from drivers.points import ChannelState
from protocols import load_campaign
from sequencer.executor import SIMULATED_POLL_S, Executor
from sequencer.instruments import Instruments
from sequencer.journal import Journal
from sequencer.plan import build_plan
from sequencer.station import simulated_station
from simulators.lab import SimLab
from store import RunStore

from .fakes import ResistorCell

HEAD = """
campaign: t
cells:
  - id: a
    kind: symmetric_li
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    limits: {max_voltage: 3.5 V}
  - id: b
    kind: symmetric_li
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
experiments:
"""


def run(tmp_path, write_yaml, experiments: str, chamber_tau_s: float = 300.0,
        cells: dict | None = None, fail_at: float | None = None, overshoot: float = 0.0,
        faults: tuple[tuple[str, float, float], ...] = (), clock: TrioClock | None = None,
        head: str = HEAD):
    campaign = load_campaign(write_yaml(head + experiments))
    station = simulated_station(campaign)
    plan = build_plan(campaign, station, "t.yaml")
    store = RunStore.create(tmp_path, durable=False)
    clock = clock or TrioClock(virtual=True, origin_utc=1.7e9)
    journal = Journal(store, tmp_path, clock)
    models = cells or {cid: ResistorCell() for cid in station.cells}
    holder = {}

    async def main():
        clock.start()
        lab = SimLab(clock, seed=1)
        inst = Instruments()
        for name, cfg in station.instruments.items():
            if cfg.driver == "sim.chamber":
                inst.chambers[name] = lab.add_chamber(name)
                inst.chambers[name].tau_s = chamber_tau_s
                inst.chambers[name].overshoot = overshoot
                for fault in faults:
                    inst.chambers[name].inject(*fault)
            elif cfg.driver == "sim.potentiostat":
                inst.channels[name] = lab.add_potentiostat(name, cfg.channels)
            else:
                inst.channels[name] = lab.add_cycler(name, cfg.channels)
        for cid, p in station.cells.items():
            lab.place(models[cid], p.instrument, p.channel, p.chamber)
        holder["inst"] = inst
        ex = Executor(plan, inst, store, journal, clock, SIMULATED_POLL_S)
        holder["ex"] = ex
        if fail_at is None:
            await ex.run()
        else:
            with trio.move_on_after(fail_at):
                await ex.run()

    trio.run(main, clock=clock.trio_clock())
    journal.close()
    return store, holder


def test_cells_run_concurrently_with_continuous_counters(tmp_path, write_yaml):
    store, holder = run(tmp_path, write_yaml, """
  - name: e
    cells: [a, b]
    steps:
      - kind: rest
        duration: 10 min
        record_every: 1 min
      - kind: loop
        count: 2
        steps:
          - kind: constant_current
            direction: charge
            current: 1 mA
            duration: 1 h
            record_every: 5 min
          - kind: constant_current
            direction: discharge
            current: 1 mA
            duration: 1 h
            record_every: 5 min
""", cells={"a": ResistorCell(k_V_per_C=0.01), "b": ResistorCell(k_V_per_C=0.01)})
    for cell in ("a", "b"):
        d = store.read(cell)
        t = d["test_time_s"]
        assert np.all(np.diff(t) >= 0)
        assert t[0] == 0 and t[-1] == pytest.approx(600 + 4 * 3600)   # concurrent, not queued
        assert list(np.unique(d["cycle"])) == [0, 1, 2]
        assert d["charge_Ah"][-1] == pytest.approx(2e-3, rel=1e-3)
        assert d["discharge_Ah"][-1] == pytest.approx(2e-3, rel=1e-3)
        steps = store.steps(cell)
        assert [s["kind"] for s in steps] == ["rest"] + ["constant_current"] * 4
        assert all(s["end_reason"] == "duration" for s in steps)
    states = {s["cell"]: s["state"] for s in store.cell_states()}
    assert states == {"a": "completed", "b": "completed"}
    for inst in holder["inst"].channels.values():
        for k in range(inst.channel_count):
            assert inst.channel(k).poll().state is ChannelState.IDLE


def test_a_safety_trip_stops_only_that_cell(tmp_path, write_yaml):
    # a: OCV 3 V + 1 V/C; charging at 1 mA crosses its 3.5 V limit after ~490 s
    store, _ = run(tmp_path, write_yaml, """
  - name: e
    cells: [a, b]
    steps:
      - kind: constant_current
        direction: charge
        current: 1 mA
        duration: 1 h
        record_every: 10 s
""", cells={"a": ResistorCell(), "b": ResistorCell(k_V_per_C=0.1)})
    a = store.read("a")
    # the offending point is the last one kept: nothing recorded after the output went off
    assert np.all(a["voltage_V"][:-1] <= 3.5) and a["voltage_V"][-1] > 3.5
    assert a["test_time_s"][-1] == pytest.approx(490, abs=10)
    trip = [e for e in store.events("a") if e["kind"] == "safety_trip"]
    assert len(trip) == 1 and trip[0]["data"]["limit"] == 3.5
    assert trip[0]["data"]["value"] == a["voltage_V"][-1]
    states = {s["cell"]: s["state"] for s in store.cell_states()}
    assert states == {"a": "faulted", "b": "completed"}
    assert store.read("b")["test_time_s"][-1] == pytest.approx(3600)


def test_soak_waits_for_stability_then_all_cells_go_on(tmp_path, write_yaml):
    store, _ = run(tmp_path, write_yaml, """
  - name: e
    cells: [a, b]
    steps:
      - kind: set_temperature
        target: 60 degC
        tolerance: 0.5 K
        hold: 10 min
        timeout: 5 h
      - kind: rest
        duration: 10 min
""", chamber_tau_s=600)
    # from 22 degC with tau 600 s: within 0.5 K after 600 ln(38/0.5) = 2598 s, then 10 min hold
    for cell in ("a", "b"):
        d = store.read(cell)
        assert d["test_time_s"][0] == pytest.approx(2598 + 600, abs=60)
        assert d["temperature_C"][0] == pytest.approx(60, abs=0.5)
    assert any(e["kind"] == "soak_settled" for e in store.events())


def test_soak_timeout_faults_the_cells_with_a_reason(tmp_path, write_yaml):
    store, _ = run(tmp_path, write_yaml, """
  - name: e
    cells: [a]
    steps:
      - kind: set_temperature
        target: 60 degC
        hold: 10 min
        timeout: 1 h
      - kind: rest
        duration: 10 min
""", chamber_tau_s=20000)
    assert store.point_count("a") == 0
    (failed,) = [e for e in store.events() if e["kind"] == "soak_failed"]
    assert failed["message"].startswith("chamber did not hold 60 +- 0.5 degC for 10 min within 1 h")
    assert {s["cell"]: s["state"] for s in store.cell_states()}["a"] == "faulted"


def test_an_interrupted_run_turns_every_output_off(tmp_path, write_yaml):
    store, holder = run(tmp_path, write_yaml, """
  - name: e
    cells: [a, b]
    steps:
      - kind: constant_current
        direction: discharge
        current: 1 mA
        duration: 10 h
""", fail_at=3600.0)
    for inst in holder["inst"].channels.values():
        for k in range(inst.channel_count):
            assert inst.channel(k).poll().state is ChannelState.IDLE
    states = {s["cell"]: s["state"] for s in store.cell_states()}
    assert states == {"a": "aborted", "b": "aborted"}
    assert any(e["kind"] == "run_aborted" for e in store.events())


def test_the_hold_timer_restarts_when_the_chamber_overshoots(tmp_path, write_yaml):
    store, holder = run(tmp_path, write_yaml, """
  - name: e
    cells: [a]
    steps:
      - {kind: set_temperature, target: 60 degC, tolerance: 0.5 K, hold: 10 min,
         timeout: 10 h}
      - {kind: rest, duration: 1 min}
""", chamber_tau_s=600, overshoot=0.05)
    chamber = next(iter(holder["inst"].chambers.values()))
    settled = store.read("a")["test_time_s"][0]
    t = np.arange(0, settled, 1.0)
    outside = np.abs(chamber.temperature_at(t) - 60) > 0.5   # the air's history
    first_inside = t[np.argmax(~outside)]
    last_outside = t[np.flatnonzero(outside)[-1]]
    assert last_outside > first_inside + 600   # the overshoot left the band after a hold
    # the chamber is read every 30 s with 0.03 K of noise, so the last excursion is seen
    # to within one reading
    assert last_outside - 30 + 600 <= settled <= last_outside + 600 + 60


SUSPENDED = """
  - name: e
    cells: [a, b]
    steps:
      - {kind: set_temperature, target: 60 degC, tolerance: 0.5 K, hold: 10 min,
         timeout: 10 h}
      - {kind: constant_current, direction: charge, current: 10 uA, duration: 4 h,
         record_every: 60 s}
"""


@pytest.mark.parametrize("kind", ["alarm", "no_answer", "heater"])
def test_a_chamber_fault_rests_its_cells_until_the_chamber_is_back(tmp_path, write_yaml, kind):
    start, end = 7200.0, 9000.0
    store, _ = run(tmp_path, write_yaml, SUSPENDED, faults=((kind, start, end),))
    events = store.events()
    kinds = [e["kind"] for e in events]
    assert kinds.count("chamber_suspended") == 1, kinds
    suspended_t = next(e["t"] for e in events if e["kind"] == "chamber_suspended")
    resumed_t = next(e["t"] for e in events if e["kind"] == "chamber_resumed")
    # a heater failing silently is seen once the air leaves twice the tolerance
    assert start <= suspended_t <= start + (900 if kind == "heater" else 60)
    assert resumed_t >= end + 600   # back only after a fresh soak with its 10 min hold
    for cell in ("a", "b"):
        assert [e["cell"] for e in events if e["kind"] == "cell_suspended"].count(cell) == 1
        steps = [s for s in store.steps(cell) if s["kind"] == "constant_current"]
        assert [s["end_reason"] for s in steps] == ["duration"]
        data = store.read(cell)
        t = data["test_time_s"]
        assert not np.any((t > suspended_t) & (t < resumed_t))    # output off meanwhile
        assert data["step_time_s"][-1] == pytest.approx(4 * 3600)  # the full 4 h, in all
        assert np.all(np.diff(data["step_time_s"]) > 0)
        # the charge passed is the whole step's, not more
        assert data["charge_Ah"][-1] == pytest.approx(10e-6 * 4, rel=1e-3)
    assert {s["state"] for s in store.cell_states()} == {"completed"}


def test_a_chamber_that_stays_away_keeps_its_cells_resting(tmp_path, write_yaml):
    store, holder = run(tmp_path, write_yaml, SUSPENDED, faults=(("alarm", 7200.0, 1e9),),
                        fail_at=50 * 3600)
    states = {s["cell"]: s["state"] for s in store.cell_states()}
    assert states == {"a": "aborted", "b": "aborted"}   # the move_on stopped the run
    t = store.read("a")["test_time_s"]
    assert t[-1] <= 7200 + 60
    for inst in holder["inst"].channels.values():
        for k in range(inst.channel_count):
            assert inst.channel(k).poll().state is ChannelState.IDLE


def test_the_instrument_stops_a_step_at_the_limit_between_recorded_points(tmp_path, write_yaml):
    # cell a: max 3.5 V; a ResistorCell charged at 10 mA reaches it after (3.5 - 3.1) / 0.01 s
    store, _ = run(tmp_path, write_yaml, """
  - name: e
    cells: [a]
    steps:
      - {kind: constant_current, direction: charge, current: 10 mA, duration: 2 h,
         record_every: 10 min}
""")
    data = store.read("a")
    crossing = (3.5 - 3.0 - 0.01 * 10.0) / 0.01          # V = 3 + q + I R, q = I t
    assert data["step_time_s"][-1] == pytest.approx(crossing, abs=1.0)   # not at 10 min
    assert data["voltage_V"][-1] == pytest.approx(3.5, abs=0.02)
    trip = next(e for e in store.events() if e["kind"] == "safety_trip")
    assert trip["cell"] == "a" and trip["data"]["limit"] == 3.5
    assert store.steps("a")[-1]["end_reason"] == "safety_limit"
    assert next(s for s in store.cell_states() if s["cell"] == "a")["state"] == "faulted"
    assert any(e["kind"] == "limits_set" and "watched by the instrument for: a" in e["message"]
               for e in store.events())


@pytest.mark.parametrize("nan_at", [None, 0, 2])
def test_the_safety_check_finds_the_first_point_beyond_a_limit_past_nan_readings(nan_at):
    from drivers.points import Points
    from protocols.cells import Limits
    from sequencer import safety

    limits = Limits(max_voltage="4.4 V", min_voltage="2.5 V", max_current="2 mA",
                    max_temperature="40 degC")
    t = np.arange(5.0)
    v = np.array([3.0, 3.5, 4.0, 4.5, 3.0])
    i = np.full(5, 1e-3)
    temp = np.full(5, 25.0)
    if nan_at is not None:
        v[nan_at] = np.nan
    trip = safety.check(limits, Points(t, v, i, temp))
    assert trip is not None and (trip.quantity, trip.time_s, trip.value) == ("voltage", 3.0, 4.5)
    v[3] = 4.0
    assert safety.check(limits, Points(t, v, i, temp)) is None
    temp[4] = 41.0
    trip = safety.check(limits, Points(t, v, i, temp))
    assert trip is not None and (trip.quantity, trip.time_s) == ("temperature", 4.0)
    i[1] = -3e-3
    trip = safety.check(limits, Points(t, v, i, temp))
    assert trip is not None and (trip.quantity, trip.time_s) == ("current", 1.0)


@pytest.mark.parametrize(("voltage_V", "current_A", "temperature_C"), [
    (3.7, 1e-3, 25.0), (4.5, 1e-3, 25.0), (2.4, -1e-3, 25.0), (3.7, -3e-3, 25.0),
    (3.7, 1e-3, 41.0), (np.nan, 1e-3, 25.0), (3.7, np.nan, 25.0), (3.7, 1e-3, np.nan),
    (3.7, 1e-3, None), (4.4, 2e-3, 40.0)])
def test_a_poll_of_one_point_is_checked_as_that_point_in_a_longer_poll(voltage_V, current_A,
                                                                       temperature_C):
    """A step's first poll (one point) is checked in plain floats: the same trip, or none,
    as numpy's check of a poll of that point twice, and ``point_within`` agrees."""
    from drivers.points import Points
    from protocols.cells import Limits
    from sequencer import safety

    limits = Limits(max_voltage="4.4 V", min_voltage="2.5 V", max_current="2 mA",
                    max_temperature="40 degC")

    def poll(n: int) -> Points:
        return Points(np.zeros(n), np.full(n, voltage_V), np.full(n, current_A),
                      None if temperature_C is None else np.full(n, temperature_C))

    one, two = safety.check(limits, poll(1)), safety.check(limits, poll(2))
    assert repr(one) == repr(two)
    within = safety.point_within(limits, voltage_V, current_A, temperature_C)
    assert within == (one is None and not any(
        x is not None and np.isnan(x) for x in (voltage_V, current_A, temperature_C)))


class _PointwiseResistorCell(ResistorCell):
    """A ResistorCell whose segments say they are pointwise (they are closed forms): its
    channel evaluates points ahead and can peek at a step just started."""

    def begin(self, technique, temperature_C: float):
        segment = super().begin(technique, temperature_C)
        segment.pointwise = True
        return segment


_ONE_HOUR_CHARGE = """
  - name: e
    cells: [b]
    steps:
      - kind: loop
        count: 3
        steps:
          - {kind: constant_current, direction: charge, current: 0.1 mA, duration: 20 min,
             record_every: 1 min}
          - {kind: rest, duration: 10 min, record_every: 1 min}
"""


def test_a_step_the_channel_can_peek_at_stores_its_points_in_one_poll(tmp_path, write_yaml):
    """A channel that can peek at a step just started is first polled at the step's end:
    the same points, in one chunk per step instead of two (the point at the start and the
    rest)."""
    stores = {}
    for name, cell in (("polled", ResistorCell()), ("peeked", _PointwiseResistorCell())):
        (tmp_path / name).mkdir()
        stores[name], _ = run(tmp_path / name, write_yaml, _ONE_HOUR_CHARGE,
                              cells={"a": ResistorCell(), "b": cell})
    chunks = {name: [c.step_count for c in store.chunks("b")] for name, store in stores.items()}
    assert chunks["polled"] == [k for k in range(1, 7) for _ in range(2)]
    assert chunks["peeked"] == list(range(1, 7))
    polled, peeked = stores["polled"].read("b"), stores["peeked"].read("b")
    assert polled.keys() == peeked.keys() and len(peeked["test_time_s"]) == 3 * (21 + 11)
    for name in polled:
        assert np.array_equal(polled[name], peeked[name], equal_nan=True), name


def test_a_peeked_point_beyond_a_limit_is_acted_on_when_the_step_starts(tmp_path, write_yaml):
    """A limit the instrument does not watch (temperature: the cell sits at 25 degC), broken
    by a step's first point: the peek finds it, so the step is polled and stopped at its
    start, as it is without a peek."""
    store, _ = run(tmp_path, write_yaml, """
  - name: e
    cells: [b]
    steps:
      - {kind: constant_current, direction: charge, current: 0.1 mA, duration: 1 h,
         record_every: 1 min}
""", cells={"a": ResistorCell(), "b": _PointwiseResistorCell()},
                   head=HEAD.replace("    diameter: 16 mm\nexperiments:",
                                     "    diameter: 16 mm\n    limits: {max_temperature: 20 degC}"
                                     "\nexperiments:"))
    (step,) = store.steps("b")
    assert step["end_reason"] == "safety_limit" and step["ended_t"] == step["started_t"]
    assert store.read("b")["test_time_s"].tolist() == [step["started_t"]]
    trip = next(e for e in store.events("b") if e["kind"] == "safety_trip")
    assert trip["data"]["quantity"] == "temperature"
