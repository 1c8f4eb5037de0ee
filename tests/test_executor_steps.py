"""Executor behaviour of compound steps, conditional loops and firmware criteria."""

from __future__ import annotations

import numpy as np
import pytest

from .fakes import FadingCell, ResistorCell, ShortingCell
from .test_executor import run


def test_plating_stripping_stops_at_the_short(tmp_path, write_yaml):
    store, _ = run(tmp_path, write_yaml, """
  - name: ps
    cells: [b]
    steps:
      - {kind: plating_stripping, current_density: 0.35 mA/cm^2, half_cycle: 30 min,
         cycles: 100}
      - {kind: rest, duration: 10 min}
""", cells={"a": ResistorCell(), "b": ShortingCell(short_after_s=5 * 3600 + 900)})
    steps = store.steps("b")
    ends = [s["end_reason"] for s in steps]
    # 5 full cycles, then the short 15 min into the 11th half cycle, then the rest
    assert ends == ["duration"] * 10 + ["short", "duration"]
    assert steps[-2]["cycle"] == 6
    short_end = steps[-2]["ended_t"] - steps[-2]["started_t"]
    assert short_end == pytest.approx(900, abs=2)
    loop_end = [e for e in store.events("b") if e["kind"] == "loop_ended"]
    assert len(loop_end) == 1 and "a short circuit" in loop_end[0]["message"]


def test_ccd_ramp_ends_at_the_first_short(tmp_path, write_yaml):
    store, _ = run(tmp_path, write_yaml, """
  - name: ccd
    cells: [b]
    steps:
      - {kind: ccd_ramp, start: 0.1 mA/cm^2, increment: 0.1 mA/cm^2, maximum: 2 mA/cm^2,
         half_cycle: 30 min}
""", cells={"a": ResistorCell(), "b": ShortingCell(short_after_s=3 * 3600 + 600)})
    steps = store.steps("b")
    assert [s["end_reason"] for s in steps][-1] == "short"
    assert len(steps) == 7                        # levels 0.1, 0.2, 0.3 and the 4th's start
    currents = [s["params"]["current_A"] for s in steps]
    assert currents[6] == pytest.approx(0.4e-3 * 2.0106, rel=1e-3)


def test_loop_until_capacity_retention(tmp_path, write_yaml):
    store, _ = run(tmp_path, write_yaml, """
  - name: fade
    cells: [b]
    steps:
      - kind: loop
        count: 50
        until: {capacity_retention_below: 75 %}
        steps:
          - {kind: constant_current, direction: charge, current: 1 mA, until_voltage: 3.5 V,
             duration: 10 h}
          - {kind: constant_current, direction: discharge, current: 1 mA, until_voltage: 3.0 V,
             duration: 10 h}
""", cells={"a": ResistorCell(), "b": FadingCell(v0=3.0, k_V_per_C=0.5, r_ohm=0.0)})
    cycles = {s["cycle"] for s in store.steps("b")}
    assert cycles == {1, 2, 3, 4, 5}   # 1/1.1^4 = 68 % < 75 % after cycle 5
    (ended,) = [e for e in store.events("b") if e["kind"] == "loop_ended"]
    assert "capacity retention 68.3 % fell below 75 %" in ended["message"]


def test_every_n_iterations(tmp_path, write_yaml):
    store, _ = run(tmp_path, write_yaml, """
  - name: eis-every
    cells: [a]
    steps:
      - kind: loop
        count: 5
        steps:
          - {kind: peis, f_start: 100 kHz, f_end: 1 Hz, amplitude: 10 mV, every: 2}
          - {kind: rest, duration: 10 min}
""")
    kinds = [(s["kind"], s["cycle"]) for s in store.steps("a")]
    assert [c for k, c in kinds if k == "peis"] == [1, 3, 5]
    assert len([k for k, _ in kinds if k == "rest"]) == 5


def test_chronoamperometry_until_steady(tmp_path, write_yaml):
    store, _ = run(tmp_path, write_yaml, """
  - name: ca
    cells: [a]
    steps:
      - kind: chronoamperometry
        voltage: 10 mV
        vs: ocv
        duration: 10 h
        record_every: 1 s
        until_steady: {relative_change: 0.1 %, window: 5 min}
""")
    (step,) = store.steps("a")
    assert step["end_reason"] == "steady"
    assert step["ended_t"] - step["started_t"] == pytest.approx(300, abs=1)
    d = store.read("a")
    assert np.median(d["current_A"]) == pytest.approx(0.01 / 10.0, rel=1e-3)  # 10 mV / 10 Ohm


def test_recording_by_dv(tmp_path, write_yaml):
    store, _ = run(tmp_path, write_yaml, """
  - name: dv
    cells: [b]
    steps:
      - {kind: constant_current, direction: charge, current: 1 mA, duration: 1000 s,
         record_every: 1000 s, record_dV: 50 mV}
""", cells={"b": ResistorCell(v0=3.0, k_V_per_C=1.0, r_ohm=0.0), "a": ResistorCell()})
    d = store.read("b")
    # V rises 1 mV/s from 3 V to 4 V: the start and a point at each 50 mV step (the last
    # one is the end itself)
    assert len(d["test_time_s"]) == 21
    assert np.diff(d["voltage_V"]) == pytest.approx(np.full(20, 0.05), abs=2e-3)
