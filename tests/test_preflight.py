"""Pre-flight: every voltage and current a technique commands is checked against its channel when
the plan is made, limits included after unit conversion; station cells the protocol does not
name are left alone, visibly."""

from __future__ import annotations

import typing
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from drivers.errors import CapabilityError
from drivers.interfaces import ChannelCapabilities
from drivers.ranges import within
from drivers.techniques import (
    ConstantCurrent,
    ConstantPower,
    ConstantResistance,
    ConstantVoltage,
    Impedance,
    OpenCircuit,
    Profile,
    Technique,
    VoltageSweep,
    commanded,
)
from protocols.units import kelvin_to_celsius
from sequencer.cli import app
from sequencer.locks import claimed_channels
from sequencer.runner import prepare
from simulators.instruments import CYCLER_CAPABILITIES, VSP300_CAPABILITIES

HEAD = """campaign: t
cells:
  - {id: s1, kind: blocking, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
  - id: f1
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}
    limits: {max_voltage: 4.45 V, min_voltage: 2.5 V}
experiments:
  - name: e
    cells: [CELL]
    steps:
"""


def validate(write_yaml, steps: str, cell: str = "s1") -> tuple[int, str]:
    path = write_yaml(HEAD.replace("CELL", cell) + steps)
    result = CliRunner().invoke(app, ["validate", str(path)])
    return result.exit_code, result.output


@pytest.mark.parametrize(("step", "message"), [
    ("{kind: lsv, vertex: 15 V, scan_rate: 0.1 mV/s}",
     "vertex 15 V is outside the channel's control range -10..10 V"),
    ("{kind: cv, vertices: [1 V, -12 V], scan_rate: 1 mV/s}",
     "vertices[1] -12 V is outside the channel's control range -10..10 V"),
    ("{kind: lsv, start: 11 V, vertex: 2 V, scan_rate: 0.1 mV/s}",
     "start 11 V is outside the channel's control range -10..10 V"),
    ("{kind: lsv, vertex: 5 V, scan_rate: 0.1 mV/s, until_current_density: 10 A/cm^2}",
     "current limit 20.11 A exceeds the channel's range of +-0.5 A"),
    ("{kind: chronoamperometry, voltage: 10.5 V, duration: 1 h}",
     "voltage 10.5 V is outside the channel's control range -10..10 V"),
    ("{kind: geis, f_start: 1 MHz, f_end: 1 Hz, amplitude: 0.2 A, bias: 0.1 A}",
     "GEIS amplitude 0.2 A (+ bias 0.1 A) exceeds half the channel's current range (0.25 A)"),
], ids=["lsv-vertex", "cv-vertex", "lsv-start", "lsv-current-limit", "hold", "geis"])
def test_values_beyond_the_channel_are_refused_at_validate_with_file_and_line(write_yaml, step,
                                                                              message):
    code, output = validate(write_yaml, f"      - {step}\n")
    assert code == 2
    assert output == f"error: protocol.yaml:16: experiments[0].steps[0]: cell s1: {message}\n"


@pytest.mark.parametrize(("step", "message"), [
    ("{kind: chronoamperometry, voltage: 6 V, vs: ocv, duration: 1 h}",
     "voltage vs open circuit +6 V reaches 10.45 V with the cell at 4.45 V (its voltage"
     " limit), outside the channel's control range -10..10 V"),
    ("{kind: chronoamperometry, voltage: -13 V, vs: ocv, duration: 1 h}",
     "voltage vs open circuit -13 V reaches -10.5 V with the cell at 2.5 V (its voltage"
     " limit), outside the channel's control range -10..10 V"),
    ("{kind: peis, f_start: 1 MHz, f_end: 1 Hz, amplitude: 6 V}",
     "PEIS amplitude +6 V reaches 10.45 V with the cell at 4.45 V (its voltage limit), outside"
     " the channel's control range -10..10 V"),
], ids=["hold-above", "hold-below", "peis-amplitude"])
def test_voltages_relative_to_open_circuit_are_checked_from_the_cells_limits(write_yaml, step,
                                                                            message):
    code, output = validate(write_yaml, f"      - {step}\n", cell="f1")
    assert code == 2 and f"cell f1: {message}" in output, output


def test_voltages_relative_to_open_circuit_pass_within_the_limits_or_without_them(write_yaml):
    ok = "      - {kind: chronoamperometry, voltage: 5 V, vs: ocv, duration: 1 h}\n" \
         "      - {kind: peis, f_start: 1 MHz, f_end: 1 Hz, amplitude: 10 mV}\n"
    assert validate(write_yaml, ok, cell="f1")[0] == 0
    assert validate(write_yaml, ok.replace("5 V", "9 V"), cell="s1")[0] == 0   # no limits


def test_a_cell_whose_limits_a_channel_cannot_hold_is_refused():
    caps = ChannelCapabilities(max_current_A=0.1, min_voltage_V=0.0, max_voltage_V=5.0)
    with pytest.raises(CapabilityError, match=r"^the cell may sit at -1 V \(its voltage limit\),"
                                              r" outside the channel's range 0\.\.5 V$"):
        caps.check(OpenCircuit(60, 1), (-1.0, 1.0))
    caps.check(OpenCircuit(60, 1), (0.0, 4.5))
    caps.check(OpenCircuit(60, 1))                  # unknown window: nothing to check


def test_every_technique_says_what_it_commands_and_pre_flight_fails_on_one_it_does_not_know():
    samples = [OpenCircuit(60, 1), Impedance(1e5, 1, 0.01, 5),
               Impedance(1e5, 1, 0.0, 5, galvanostatic=True, amplitude_A=1e-4, bias_A=3e-4),
               ConstantCurrent(-0.01, 60, 1, until_voltage_V=2.8),
               ConstantVoltage(4.2, 60, 1), ConstantVoltage(0.01, 60, 1, vs_ocv=True),
               VoltageSweep((4.0, 2.0), 1e-3, 1, start_V=3.0),
               ConstantPower(-2e-3, 60, 1, peak_current_A=8e-4, until_voltage_V=2.5),
               ConstantResistance(100.0, 60, 1, peak_current_A=0.045),
               Profile("current", (0.0, 10.0), (1e-3, -2e-3), 1, peak_current_A=2e-3,
                       min_voltage_V=2.8, peak_label="c.csv:3")]
    assert commanded(samples[-3]) == type(commanded(samples[0]))(
        voltages_V=(("until_voltage", 2.5),), currents_A=(("peak current", -8e-4),))
    assert commanded(samples[-2]).currents_A == (("peak current", -0.045),)
    assert commanded(samples[-1]) == type(commanded(samples[0]))(
        voltages_V=(("min_voltage", 2.8),), currents_A=(("c.csv:3 current", 2e-3),))
    assert {type(t) for t in samples} == set(typing.get_args(Technique))
    assert [commanded(t) for t in samples][1:5] == [
        type(commanded(samples[0]))(from_ocv_V=(("PEIS amplitude", -0.01),
                                                ("PEIS amplitude", 0.01))),
        type(commanded(samples[0]))(from_ocv_V=(("open-circuit voltage", 0.0),),
                                    currents_A=(("GEIS bias - amplitude", 3e-4 - 1e-4),
                                                ("GEIS bias + amplitude", 3e-4 + 1e-4))),
        type(commanded(samples[0]))(voltages_V=(("until_voltage", 2.8),),
                                    currents_A=(("current", -0.01),)),
        type(commanded(samples[0]))(voltages_V=(("voltage", 4.2),)),
    ]
    assert commanded(samples[6]).voltages_V == (("start", 3.0), ("vertices[0]", 4.0),
                                                 ("vertices[1]", 2.0))

    @dataclass(frozen=True)
    class Pulse:   # a technique pre-flight was never taught
        current_A: float

    with pytest.raises(TypeError, match="Pulse does not say what it commands"):
        commanded(Pulse(1.0))  # type: ignore[arg-type]
    with pytest.raises(CapabilityError, match=r"^Pulse: pre-flight has no rule for this"):
        ChannelCapabilities(1.0, -1.0, 1.0).check(Pulse(1.0))  # type: ignore[arg-type]


# -- limits are inclusive after unit conversion ----------------------------------------------

def test_limits_include_values_a_rounding_error_away():
    assert 10e-6 * 1.0 != 10 * 1e-6   # 1e-05 against 9.999999999999999e-06
    assert within(10 * 1e-6, 1e-5, 7e6) and within(7e6 * (1 + 1e-12), 1e-5, 7e6)
    assert within(kelvin_to_celsius(233.15), -40.0, 100.0)
    assert not within(0.99e-5, 1e-5, 7e6) and not within(-40.01, -40.0, 100.0)
    assert not within(float("nan"), 0.0, 1.0)
    assert within(-1e-15, 0.0, 5.0) and not within(-1e-9, 0.0, 5.0)


def test_values_written_at_a_limit_pass_and_just_beyond_it_are_refused(write_yaml):
    at = """      - {kind: set_temperature, target: -40 degC}
      - {kind: set_temperature, target: 100 degC}
      - {kind: peis, f_start: 7 MHz, f_end: 10 uHz, amplitude: 10 mV}
      - {kind: lsv, start: -10 V, vertex: 10000 mV, scan_rate: 1 V/s}
      - {kind: constant_current, direction: charge, current: 500 mA, duration: 1 min}
"""
    code, output = validate(write_yaml, at)
    assert code == 0, output
    code, output = validate(write_yaml, at.replace("10 uHz", "9.99 uHz")
                            .replace("-40 degC", "-40.1 degC"))
    assert code == 2
    assert "steps[0]: target -40.1 degC is outside the chamber's range -40..100 degC" in output
    assert "steps[2]: cell s1: frequency 9.99e-06 Hz is outside the channel's EIS range" \
        " 1e-05..7e+06 Hz" in output


def test_channels_check_what_they_are_asked_at_start_too():
    with pytest.raises(CapabilityError, match="vertex 12 V is outside"):
        VSP300_CAPABILITIES.check(VoltageSweep((12.0,), 1e-3, 1))
    with pytest.raises(CapabilityError, match="Impedance is not available on this channel"):
        CYCLER_CAPABILITIES.check(Impedance(1e3, 1, 0.01, 5))
    with pytest.raises(CapabilityError, match="cannot hold a voltage relative to the"
                                              " open-circuit voltage"):
        CYCLER_CAPABILITIES.check(ConstantVoltage(0.01, 60, 1, vs_ocv=True))


# -- station cells the protocol does not name -------------------------------------------------

STATION = """station: bench
instruments:
  cyc: {driver: sim.cycler, channels: 4, address: "192.0.2.7"}
cells:
  s1: {instrument: cyc, channel: 0}
  ghost: {instrument: cyc, channel: 2}
"""
NOTE = "note: station cell 'ghost' (cyc channel 2) is not in the protocol: its channel is left" \
       " alone"


def test_a_station_cell_not_in_the_protocol_is_left_alone_with_a_note(tmp_path, write_yaml,
                                                                      monkeypatch):
    monkeypatch.setenv("CELLSEQ_LOCK_DIR", str(tmp_path / "locks"))
    protocol = write_yaml(HEAD.replace("CELL", "s1") + "      - {kind: rest, duration: 1 min}\n")
    station = tmp_path / "st.yaml"
    station.write_text(STATION)
    plan = prepare(protocol, station)
    assert set(plan.station.cells) == {"s1"} and plan.notes == (NOTE.removeprefix("note: "),)
    assert claimed_channels(plan.station) == [("cyc", "192.0.2.7", 0)]   # not the ghost's
    runner = CliRunner()
    planned = runner.invoke(app, ["plan", str(protocol), "--station", str(station)])
    assert planned.exit_code == 0 and NOTE in planned.output
    ran = runner.invoke(app, ["run", str(protocol), "--station", str(station), "--out",
                              str(tmp_path / "run"), "--no-report"])
    assert ran.exit_code == 0, ran.output
    assert NOTE in ran.output and "s1   │ completed" in ran.output
    assert NOTE.removeprefix("note: ") in (tmp_path / "run" / "run.log").read_text()
    assert "ghost" not in (tmp_path / "run" / "station.yaml").read_text()
