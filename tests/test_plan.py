"""The plan: expansion of compound steps, pre-flight checks, the schedule."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from drivers.techniques import ConstantCurrent, ConstantVoltage, VoltageSweep
from protocols import ProtocolError, load_campaign
from protocols.steps import Loop, SetTemperature
from sequencer.cli import app
from sequencer.plan import build_plan
from sequencer.station import simulated_station

CELLS = """
campaign: t
cells:
  - {id: s1, kind: symmetric_li, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
  - {id: s2, kind: symmetric_li, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
  - id: f1
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}
experiments:
"""


def plan_of(write_yaml, experiments: str):
    campaign = load_campaign(write_yaml(CELLS + experiments))
    return build_plan(campaign, simulated_station(campaign), "t.yaml")


def problems_of(write_yaml, experiments: str) -> list[str]:
    with pytest.raises(ProtocolError) as info:
        plan_of(write_yaml, experiments)
    return [str(p) for p in info.value.problems]


def test_plating_stripping_expands_to_a_loop_that_ends_on_a_short(write_yaml):
    plan = plan_of(write_yaml, """
  - name: ps
    cells: [s1]
    steps:
      - kind: rest
        duration: 1 h
      - {kind: plating_stripping, current_density: 0.35 mA/cm^2, half_cycle: 30 min,
         cycles: 2400}
""")
    (exp,) = plan.experiments
    _rest, loop = exp.steps
    assert isinstance(loop.step, Loop) and loop.step.count == 2400
    assert loop.step.until.short_circuit
    charge, discharge = loop.children
    # the written step's number, counted from 1 as run.log and status show it
    assert charge.number == loop.number == 2
    tech = charge.techniques["s1"]
    assert isinstance(tech, ConstantCurrent)
    assert tech.current_A == pytest.approx(0.35e-3 * 2.0106, rel=1e-3)
    assert tech.duration_s == 1800 and tech.short_below_V == 0.005
    assert discharge.techniques["s1"].current_A == pytest.approx(-tech.current_A)
    assert exp.estimate_s == pytest.approx(3600 + 2400 * 3600)


def test_ccd_ramp_levels(write_yaml):
    plan = plan_of(write_yaml, """
  - name: ccd
    cells: [s1]
    steps:
      - {kind: ccd_ramp, start: 0.1 mA/cm^2, increment: 0.1 mA/cm^2, maximum: 2 mA/cm^2,
         half_cycle: 30 min}
""")
    (outer,) = plan.experiments[0].steps
    assert isinstance(outer.step, Loop) and outer.step.count == 1
    assert outer.step.until.short_circuit
    assert len(outer.children) == 20
    currents = [level.children[0].techniques["s1"].current_A for level in outer.children]
    assert currents[0] == pytest.approx(0.1e-3 * 2.0106, rel=1e-3)
    assert currents[-1] == pytest.approx(2.0e-3 * 2.0106, rel=1e-3)


def test_cccv_gitt_and_sweeps_become_techniques(write_yaml):
    plan = plan_of(write_yaml, """
  - name: mixed
    cells: [f1]
    steps:
      - {kind: cccv_charge, current: 0.1C, voltage: 4.35 V, until_current: C/50}
      - {kind: gitt, direction: discharge, current: C/10, pulse: 10 min, rest: 1 h,
         until_voltage: 2.8 V}
      - {kind: lsv, vertex: 6 V, scan_rate: 1 mV/s, until_current_density: 50 uA/cm^2}
""")
    exp = plan.experiments[0]
    cc, cv, gitt_loop, lsv = exp.steps
    capacity = 200 * 1.9e-3 * 1.131 * 1e-3   # mAh/g * g/cm^2 * cm^2 -> Ah
    tcc = cc.techniques["f1"]
    assert tcc.current_A == pytest.approx(0.1 * capacity, rel=1e-3)
    assert tcc.until_voltage_V == 4.35
    assert tcc.duration_s == pytest.approx(1.5 * 10 * 3600, rel=1e-3)   # the default limit
    tcv = cv.techniques["f1"]
    assert isinstance(tcv, ConstantVoltage)
    assert tcv.until_abs_current_A == pytest.approx(capacity / 50, rel=1e-3)
    assert gitt_loop.step.until.voltage_limit and gitt_loop.step.count == 1000
    tl = lsv.techniques["f1"]
    assert isinstance(tl, VoltageSweep) and tl.vertices_V == (6.0,)
    assert tl.until_abs_current_A == pytest.approx(50e-6 * 1e4 * 1.131e-4, rel=1e-3)


def test_temperature_sweep_expands_to_soaks_and_blocks(write_yaml):
    plan = plan_of(write_yaml, """
  - name: sweep
    cells: [s1, s2]
    steps:
      - kind: temperature_sweep
        temperatures: [25 degC, 40 degC, 60 degC]
        hold: 20 min
        steps:
          - {kind: peis, f_start: 3 MHz, f_end: 0.1 Hz, amplitude: 10 mV}
""")
    exp = plan.experiments[0]
    soaks = [s.step for s in exp.steps if isinstance(s.step, SetTemperature)]
    assert [round(s.target - 273.15, 2) for s in soaks] == [25, 40, 60]
    assert len(exp.steps) == 6 and exp.chamber is not None
    assert [s.number for s in exp.steps] == [1, 2, 1, 2, 1, 2]


def test_out_of_range_values_are_refused_before_running(write_yaml):
    msgs = problems_of(write_yaml, """
  - name: bad
    cells: [f1]
    steps:
      - {kind: set_temperature, target: 150 degC}
      - {kind: constant_current, direction: charge, current: 2000C, duration: 1 min}
""")
    assert any(m.startswith("protocol.yaml:18: experiments[0].steps[0]: target 150 degC is"
                            " outside the chamber's range") for m in msgs)
    assert any(m.startswith("protocol.yaml:19: experiments[0].steps[1]: cell f1: current")
               and "exceeds the channel's range" in m for m in msgs)


def test_eis_beyond_the_vsp300_range_is_refused(write_yaml):
    msgs = problems_of(write_yaml, """
  - name: bad
    cells: [s1]
    steps:
      - {kind: peis, f_start: 10 MHz, f_end: 0.1 Hz, amplitude: 10 mV}
""")
    assert msgs == ["protocol.yaml:18: experiments[0].steps[0]: cell s1: frequency 1e+07 Hz"
                    " is outside the channel's EIS range 1e-05..7e+06 Hz"]


def test_schedule_runs_disjoint_experiments_in_parallel_and_queues_shared_ones(write_yaml):
    plan = plan_of(write_yaml, """
  - name: a
    cells: [s1]
    steps: [{kind: rest, duration: 2 h}]
  - name: b
    cells: [s2]
    steps: [{kind: rest, duration: 3 h}]
  - name: c
    cells: [s1, s2]
    steps: [{kind: rest, duration: 1 h}]
""")
    a, b, c = plan.experiments
    assert (a.start_s, a.end_s) == (0, 7200)
    assert (b.start_s, b.end_s) == (0, 10800)
    assert (c.start_s, c.end_s) == (10800, 14400)   # waits for both
    assert plan.makespan_s == 14400
    result = CliRunner().invoke(app, ["plan", str(write_yaml(CELLS + """
  - name: a
    cells: [s1]
    steps: [{kind: rest, duration: 2 h}]
""")), "--json"])
    assert result.exit_code == 0
    import json
    doc = json.loads(result.output)
    assert doc["makespan_s"] == 7200
    (e,) = doc["experiments"]
    assert set(e) == {"name", "cells", "resources", "start_s", "end_s", "estimate_s",
                      "bound_s", "steps", "branches", "shares_chamber_with", "waits_for",
                      "c_rate_references"}
    assert e["estimate_s"] == e["bound_s"] == 7200 and doc["makespan_bound_s"] == 7200
    assert e["resources"] == ["vsp300-1/ch0"] or e["resources"][0].startswith("cycler")


def test_station_files_are_validated_like_protocols(tmp_path, write_yaml):
    protocol = write_yaml(CELLS + "  - name: a\n    cells: [s1]\n"
                                  "    steps: [{kind: rest, duration: 1 h}]\n")
    station = tmp_path / "st.yaml"
    station.write_text("station: bench\ninstruments:\n  pot: {driver: sim.potentiostat,"
                       " channels: 2}\ncells:\n  s1: {instrument: pot, channel: 0}\n"
                       "  s2: {instrument: pot, channel: 0}\n")
    result = CliRunner().invoke(app, ["plan", str(protocol), "--station", str(station)])
    assert result.exit_code == 2
    assert "st.yaml:6: cells.s2.channel: pot channel 0 is already used by s1" in result.output
    station.write_text("instruments:\n  pot: {driver: sim.potentiostat, chanels: 2}\ncells: {}\n")
    result = CliRunner().invoke(app, ["plan", str(protocol), "--station", str(station)])
    assert result.exit_code == 2 and "st.yaml:2: instruments.pot.chanels: unknown key" in \
        result.output


def test_problems_in_included_files_name_that_file_and_line(tmp_path):
    (tmp_path / "cells.yaml").write_text(CELLS + """
  - name: deep
    cells: [s1]
    steps:
      - kind: loop
        count: 2
        steps:
          - {kind: rest, duration: 1 h}
          - {kind: peis, f_start: 10 MHz, f_end: 1 Hz, amplitude: 10 mV}
""")
    (tmp_path / "top.yaml").write_text("campaign: top\ninclude: [cells.yaml]\n")
    from sequencer.runner import prepare

    with pytest.raises(ProtocolError) as info:
        prepare(tmp_path / "top.yaml")
    (problem,) = info.value.problems
    assert str(problem).startswith("cells.yaml:22: experiments[0].steps[0].steps[1]: cell s1:"
                                   " frequency 1e+07 Hz is outside")
