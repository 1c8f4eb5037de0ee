"""The Keithley 2450 driver: exact SCPI exchanges, the simulator's SCPI, and end to end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from drivers.errors import CapabilityError, DriverError, TransportError
from drivers.keithley2450 import Keithley2450, Keithley2450Config
from drivers.points import ChannelState, Readout
from drivers.techniques import (
    ConstantCurrent,
    ConstantVoltage,
    Impedance,
    OpenCircuit,
    VoltageSweep,
)
from drivers.transports import ExpectedExchange
from simulators.clock import ManualClock
from simulators.wire import Keithley2450Server
from tests.fakes import ResistorCell

IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04000000,1.7.12b"
Pairs = list[tuple[str | None, str | None]]
NO_ERROR = (":SYST:ERR?", '0,"No error"')
READ_VI = ':READ? "defbuffer1", READ, SOUR'
READ_IV = ':READ? "defbuffer1", SOUR, READ'
OFF = (":OUTP OFF;:OUTP?", "0")
ON = (":OUTP ON;:OUTP?", "1")
OPEN: Pairs = [
    ("*IDN?", IDN), ("*LANG?", "SCPI"), ("*CLS", None), (":OUTP:CURR:SMOD HIMP", None),
    (":OUTP:VOLT:SMOD HIMP", None), (":SOUR:CURR:READ:BACK ON", None),
    (":SOUR:VOLT:READ:BACK ON", None), NO_ERROR, OFF]
CHECK_CC = ":SOUR:FUNC?;:SENS:FUNC?;:SOUR:CURR:LEV?;:SOUR:CURR:VLIM?"
CHECK_CV = ":SOUR:FUNC?;:SENS:FUNC?;:SOUR:VOLT:LEV?;:SOUR:VOLT:ILIM?"


def current_source(vlim: str, level: str) -> Pairs:
    """The exact exchange of a current-source start, as the instrument answers it."""
    check = f'CURR;"VOLT:DC";{float(level):.6E};{float(vlim):.6E}'
    return [(":SOUR:FUNC CURR", None), (':SENS:FUNC "VOLT"', None),
            (f":SOUR:CURR:VLIM {vlim}", None), (f":SOUR:CURR:LEV {level}", None), NO_ERROR,
            (CHECK_CC, check), ON]


def voltage_source(ilim: str, level: str) -> Pairs:
    check = f'VOLT;"CURR:DC";{float(level):.6E};{float(ilim):.6E}'
    return [(":SOUR:FUNC VOLT", None), (':SENS:FUNC "CURR"', None),
            (f":SOUR:VOLT:ILIM {ilim}", None), (f":SOUR:VOLT:LEV {level}", None), NO_ERROR,
            (CHECK_CV, check), ON]


def smu(pairs: Pairs, config: Keithley2450Config | None = None
        ) -> tuple[Keithley2450, ExpectedExchange, ManualClock]:
    link, clock = ExpectedExchange(pairs), ManualClock()
    return Keithley2450(link, clock, config), link, clock


def reading(v: float, i: float) -> str:
    return f"{v:.6E},{i:.6E}"


# -- open and close --------------------------------------------------------------------------
def test_open_checks_identity_and_language_then_selects_high_impedance_off() -> None:
    instrument, link, _ = smu(OPEN)
    with link:
        instrument.open()
        assert instrument.identity == IDN
        assert instrument.channel_count == 1


def test_open_can_reset_first() -> None:
    pairs = [*OPEN[:2], ("*RST", None), *OPEN[2:]]
    instrument, link, _ = smu(pairs, Keithley2450Config(reset_on_open=True))
    with link:
        instrument.open()


def test_open_refuses_another_instrument_and_closes_the_link() -> None:
    instrument, link, _ = smu([("*IDN?", "ACME,SMU-9,1,1")])
    with link, pytest.raises(DriverError,
                             match=r"^\*IDN\? answered 'ACME,SMU-9,1,1': not a Keithley 2450$"):
        instrument.open()
    assert not link.is_open


def test_open_refuses_the_tsp_command_set_with_a_hint() -> None:
    instrument, link, _ = smu([("*IDN?", IDN), ("*LANG?", "TSP")])
    with link, pytest.raises(DriverError, match=r"^\*LANG\? answered 'TSP'.*Command Set\)$"):
        instrument.open()


def test_open_reports_every_queued_error() -> None:
    pairs = [*OPEN[:-2], (":SYST:ERR?", '-113,"Undefined header"'), NO_ERROR]
    instrument, link, _ = smu(pairs)
    with link, pytest.raises(DriverError, match=r'^Keithley 2450 refused the set-up on open:'
                                                r' -113,"Undefined header" \(sent: \*CLS; '):
        instrument.open()


def test_close_turns_the_output_off_then_closes_the_link() -> None:
    instrument, link, _ = smu([*OPEN, OFF])
    with link:
        instrument.open()
        instrument.close()
        assert not link.is_open


def test_there_is_one_channel() -> None:
    instrument, _, _ = smu([])
    with pytest.raises(CapabilityError, match=r"^Keithley 2450 has one channel, 0; not 1$"):
        instrument.channel(1)
    caps = instrument.channel(0).capabilities
    assert (caps.max_current_A, caps.min_voltage_V, caps.max_voltage_V) == (1.05, -21.0, 21.0)


def test_station_limits_must_fit_the_instrument() -> None:
    with pytest.raises(CapabilityError, match=r"^max_current_A 2 A must be in"):
        Keithley2450Config(max_current_A=2.0)


# -- start: each technique's exact configuration ---------------------------------------------
@pytest.mark.parametrize(("technique", "pairs"), [
    (OpenCircuit(60.0, 1.0), current_source("21", "0")),
    (ConstantCurrent(0.5, 3600.0, 10.0, until_voltage_V=4.2), current_source("4.2", "0.5")),
    (ConstantCurrent(-0.5, 3600.0, 10.0, until_voltage_V=2.5), current_source("21", "-0.5")),
    (ConstantCurrent(1e-05, 3600.0, 10.0), current_source("21", "1e-05")),
    (ConstantVoltage(4.2, 3600.0, 10.0), voltage_source("1.05", "4.2")),
    (ConstantVoltage(-0.25, 3600.0, 10.0), voltage_source("1.05", "-0.25")),
], ids=["ocv", "cc-charge", "cc-discharge", "cc-small", "cv", "cv-negative"])
def test_start_configures_with_the_output_off_then_switches_it_on(technique: Any,
                                                                  pairs: Pairs) -> None:
    instrument, link, _ = smu(pairs)
    with link:
        instrument.channel(0).start(technique)


def test_station_limits_narrow_the_compliance() -> None:
    config = Keithley2450Config(max_current_A=0.1, max_voltage_V=5.0)
    instrument, link, _ = smu([*voltage_source("0.1", "4.2"), *current_source("5", "-0.05")],
                              config)
    channel = instrument.channel(0)
    with link:
        channel.start(ConstantVoltage(4.2, 60.0, 1.0))
        channel.stop()   # not open: nothing to send
        channel.start(ConstantCurrent(-0.05, 60.0, 1.0))
        channel.stop()
        with pytest.raises(CapabilityError, match=r"^current 0\.2 A exceeds the channel's"):
            channel.start(ConstantCurrent(0.2, 60.0, 1.0))


def test_a_hold_relative_to_open_circuit_measures_it_first() -> None:
    pairs = [*current_source("21", "0"), (READ_VI, reading(3.3, 0.0)), OFF,
             *voltage_source("1.05", "3.4")]
    instrument, link, _ = smu(pairs)
    with link:
        instrument.channel(0).start(ConstantVoltage(0.1, 60.0, 1.0, vs_ocv=True))


@pytest.mark.parametrize("technique", [
    Impedance(1e5, 1.0, 0.01, 10),
    VoltageSweep((4.0,), 1e-3, 1.0),
], ids=["impedance", "sweep"])
def test_techniques_the_smu_cannot_run_are_refused_before_anything_is_sent(technique: Any
                                                                           ) -> None:
    instrument, link, _ = smu([])
    with link, pytest.raises(CapabilityError, match=r"is not available on this channel \(it"
                                                    r" offers ConstantCurrent, ConstantVoltage,"
                                                    r" OpenCircuit\)$"):
        instrument.channel(0).start(technique)


def test_a_setting_that_did_not_take_is_found_before_the_output_goes_on() -> None:
    lost_level = 'CURR;"VOLT:DC";0.000000E+00;2.100000E+01'
    pairs = [*current_source("4.2", "0.5")[:-2], (CHECK_CC, lost_level)]
    instrument, link, _ = smu(pairs)
    with link, pytest.raises(DriverError, match=r"^:SOUR:FUNC\?;.* answered 'CURR;\"VOLT:DC\";"
                                                r"0\.000000E\+00;2\.100000E\+01' after the"
                                                r" ConstantCurrent configuration; expected CURR,"
                                                r" VOLT, 0\.5, 4\.2$"):
        instrument.channel(0).start(ConstantCurrent(0.5, 60.0, 1.0, until_voltage_V=4.2))


def test_an_output_that_does_not_switch_is_an_error() -> None:
    pairs = [*current_source("21", "0")[:-1], (":OUTP ON;:OUTP?", "0")]
    instrument, link, _ = smu(pairs)
    with link, pytest.raises(DriverError, match=r"^:OUTP ON;:OUTP\? answered '0': the output"
                                                r" did not switch on$"):
        instrument.channel(0).start(OpenCircuit(60.0, 1.0))


def test_a_refused_configuration_never_switches_the_output_on() -> None:
    pairs = [*current_source("21", "0.5")[:4], (":SYST:ERR?", '-222,"Data out of range"'),
             (":SYST:ERR?", '-221,"Settings conflict"'), NO_ERROR]
    instrument, link, _ = smu(pairs)
    with link, pytest.raises(DriverError, match=r'^Keithley 2450 refused the ConstantCurrent'
                                                r' configuration: -222,"Data out of range";'
                                                r' -221,"Settings conflict" \(sent: :SOUR:FUNC'):
        instrument.channel(0).start(ConstantCurrent(0.5, 60.0, 1.0))
    assert instrument.channel(0).poll().state is ChannelState.IDLE


def test_an_unreadable_error_queue_is_an_error() -> None:
    pairs = [*current_source("21", "0.5")[:4], (":SYST:ERR?", "\ufffd\ufffd#")]
    instrument, link, _ = smu(pairs)
    with link, pytest.raises(DriverError, match=r"^:SYST:ERR\? answered an unreadable"):
        instrument.channel(0).start(ConstantCurrent(0.5, 60.0, 1.0))


def test_one_technique_at_a_time() -> None:
    instrument, link, _ = smu(current_source("21", "0"))
    with link:
        instrument.channel(0).start(OpenCircuit(60.0, 1.0))
        with pytest.raises(DriverError, match=r"already running; stop it first$"):
            instrument.channel(0).start(OpenCircuit(60.0, 1.0))


# -- poll: recording and the end criteria ----------------------------------------------------
def run(technique: Any, setup: Pairs, steps: list[tuple[float, str]],
        end: bool = True) -> list[Readout]:
    """Start ``technique``, then poll once after each clock advance with the given reply."""
    read = READ_IV if isinstance(technique, ConstantVoltage) else READ_VI
    pairs = list(setup) + [(read, reply) for _, reply in steps] + ([OFF] if end else [])
    instrument, link, clock = smu(pairs)
    readouts = []
    with link:
        channel = instrument.channel(0)
        channel.start(technique)
        for advance, _ in steps:
            clock.advance(advance)
            readouts.append(channel.poll())
    return readouts


def test_points_are_recorded_every_record_dt() -> None:
    out = run(OpenCircuit(60.0, 1.0), current_source("21", "0"),
              [(0.0, reading(3.0, 0.0)), (0.5, reading(3.01, 0.0)), (0.5, reading(3.02, 0.0))],
              end=False)
    assert [len(r.points) for r in out] == [1, 0, 1]
    assert out[2].points.time_s.tolist() == [1.0]
    assert out[2].points.voltage_V.tolist() == [3.02]
    assert out[0].next_event_s == 1.0 and out[1].next_event_s == 1.0
    assert out[2].next_event_s == 2.0
    assert all(r.state is ChannelState.RUNNING for r in out)


def test_points_are_also_recorded_when_the_voltage_moved() -> None:
    out = run(OpenCircuit(60.0, 30.0, record_dV_V=0.01), current_source("21", "0"),
              [(0.0, reading(3.0, 0.0)), (1.0, reading(3.005, 0.0)), (1.0, reading(3.011, 0.0))],
              end=False)
    assert [len(r.points) for r in out] == [1, 0, 1]


def test_the_time_limit_ends_a_step_with_a_last_point_and_the_output_off() -> None:
    out = run(ConstantCurrent(0.01, 10.0, 100.0, until_voltage_V=4.2),
              current_source("4.2", "0.01"),
              [(0.0, reading(3.1, 0.01)), (9.9, reading(3.2, 0.01)), (0.1, reading(3.21, 0.01))])
    assert [r.state for r in out] == [ChannelState.RUNNING] * 2 + [ChannelState.DONE]
    assert out[-1].end_reason == "duration"
    assert out[-1].points.time_s.tolist() == [10.0]


@pytest.mark.parametrize(("current", "vlim", "until", "v_last", "ends"), [
    (0.01, "4.2", 4.2, 4.19, False),
    (0.01, "4.2", 4.2, 4.1995, True),      # compliance holds V at VLIM within the tolerance
    (0.01, "4.2", 4.2, 4.3, True),
    (-0.01, "21", 2.5, 2.6, False),
    (-0.01, "21", 2.5, 2.5, True),
])
def test_the_cut_off_voltage_ends_a_constant_current_step(current: float, vlim: str,
                                                          until: float, v_last: float,
                                                          ends: bool) -> None:
    out = run(ConstantCurrent(current, 3600.0, 1.0, until_voltage_V=until),
              current_source(vlim, f"{current:g}"),
              [(0.0, reading(3.0, current)), (5.0, reading(v_last, current))], end=ends)
    assert out[-1].end_reason == ("voltage" if ends else None)


def test_a_short_is_seen_only_after_settling() -> None:
    out = run(ConstantCurrent(1e-4, 3600.0, 1.0, short_below_V=0.01, settle_s=60.0),
              current_source("21", "0.0001"),
              [(0.0, reading(0.001, 1e-4)), (30.0, reading(0.001, 1e-4)),
               (31.0, reading(0.001, 1e-4))])
    assert [r.end_reason for r in out] == [None, None, "short"]


def test_a_hold_ends_when_the_current_has_fallen() -> None:
    out = run(ConstantVoltage(4.2, 3600.0, 1.0, until_abs_current_A=0.01),
              voltage_source("1.05", "4.2"),
              [(0.0, reading(4.2, 0.05)), (10.0, reading(4.2, 0.0101)),
               (10.0, reading(4.2, 0.0099))])
    assert [r.end_reason for r in out] == [None, None, "current"]
    assert out[-1].points.current_A.tolist() == [0.0099]


def test_a_hold_ends_when_the_current_is_steady() -> None:
    out = run(ConstantVoltage(0.01, 3600.0, 1.0, steady_rel=0.01, steady_window_s=10.0),
              voltage_source("1.05", "0.01"),
              [(0.0, reading(0.01, 1e-4)), (5.0, reading(0.01, 0.9995e-4)),
               (5.0, reading(0.01, 0.98e-4)), (10.0, reading(0.01, 0.9799e-4))])
    assert [r.end_reason for r in out] == [None, None, None, "steady"]


@pytest.mark.parametrize("reply", [
    "\ufffd\ufffd\x15#?\x7f!~", "3.600000E+00", "3.600000E+00,", "3.6,1e-2,0",
    "3.6,abc", "nan,0.01", "9.9E37,0.01", "3.6,-9.9E+37",
])
def test_an_unreadable_reading_is_an_error_never_a_point(reply: str) -> None:
    instrument, link, _ = smu([*current_source("21", "0"), (READ_VI, reply)])
    with link, pytest.raises(DriverError, match=r'^:READ\? "defbuffer1", READ, SOUR answered'):
        instrument.channel(0).start(OpenCircuit(60.0, 1.0))
        instrument.channel(0).poll()


def test_no_reading_is_a_transport_error() -> None:
    instrument, link, _ = smu([*current_source("21", "0"), (READ_VI, None)])
    with link, pytest.raises(TransportError):
        instrument.channel(0).start(OpenCircuit(60.0, 1.0))
        instrument.channel(0).poll()


def test_poll_when_nothing_runs_and_after_the_end() -> None:
    instrument, link, clock = smu([*current_source("21", "0"), (READ_VI, reading(3.0, 0.0)),
                                   OFF])
    channel = instrument.channel(0)
    with link:
        assert channel.poll().state is ChannelState.IDLE
        channel.start(OpenCircuit(1.0, 1.0))
        clock.advance(2.0)
        assert channel.poll().end_reason == "duration"
        again = channel.poll()
    assert (again.state, again.end_reason, len(again.points)) == (ChannelState.DONE,
                                                                  "duration", 0)


# -- stop ------------------------------------------------------------------------------------
def test_stop_always_sends_output_off_and_can_repeat() -> None:
    instrument, link, _ = smu([*OPEN, *current_source("21", "0"), OFF, OFF])
    channel = instrument.channel(0)
    with link:
        instrument.open()
        channel.start(OpenCircuit(60.0, 1.0))
        channel.stop()
        channel.stop()
    readout = channel.poll()
    assert (readout.state, readout.end_reason) == (ChannelState.IDLE, "stopped")


def test_stop_before_open_sends_nothing() -> None:
    instrument, link, _ = smu([])
    with link:
        instrument.channel(0).stop()


class _DeadLink(ExpectedExchange):
    def write(self, message: str) -> None:
        raise TransportError("TCPIP0::10.0.0.9::5025::SOCKET: write failed: connection reset")


def test_stop_on_a_broken_link_tries_then_raises() -> None:
    link = _DeadLink([])
    instrument = Keithley2450(link, ManualClock())
    instrument._open = True   # as if open() had succeeded before the link died
    with pytest.raises(TransportError, match="connection reset"):
        instrument.channel(0).stop()
    assert instrument.channel(0).poll().state is ChannelState.IDLE


# -- the simulator speaks SCPI as instruments accept it --------------------------------------
@pytest.fixture
def sim() -> Keithley2450Server:
    return Keithley2450Server(ResistorCell(v0=3.0, k_V_per_C=1.0, r_ohm=10.0))


def test_scpi_forms_case_colons_and_joined_commands(sim: Keithley2450Server) -> None:
    for line in ["sour:func curr", ":SOURce:CURRent:LEVel:IMMediate:AMPLitude 0.01",
                 "SOUR:CURR:VLIM 4.2;:OUTPut1:STATe ON", ":sour:curr:vlim 4.1;lev 0.02"]:
        assert sim.respond(line, 0.0) is None
    assert sim.respond("SOUR:CURR?;CURR:VLIM?;:OUTP?;*IDN?", 0.0) == \
        f"2.000000E-02;4.100000E+00;1;{IDN}"
    assert sim.respond("syst:err?", 0.0) == '0,"No error"'


def test_scpi_error_queue(sim: Keithley2450Server) -> None:
    assert sim.respond("BOGUS 1", 0.0) is None
    assert sim.respond("SOUR:CURR 5", 0.0) is None         # beyond 1.05 A
    assert sim.respond("SOUR:CURR", 0.0) is None           # no value
    assert sim.respond("*IDN", 0.0) is None                # a query without its '?'
    assert [sim.respond("SYST:ERR?", 0.0) for _ in range(5)] == [
        '-113,"Undefined header"', '-222,"Data out of range"', '-109,"Missing parameter"',
        '-113,"Undefined header"', '0,"No error"']


def test_sim_compliance_holds_the_voltage_limit(sim: Keithley2450Server) -> None:
    sim.respond(':SOUR:FUNC CURR;:SENS:FUNC "VOLT";:SOUR:CURR:VLIM 3.6;LEV 0.01;:OUTP ON', 0.0)
    assert sim.respond(READ_VI, 20.0) == "3.300000E+00,1.000000E-02"
    assert sim.respond("SOUR:CURR:VLIM:TRIP?", 20.0) == "0"
    assert str(sim.respond(READ_VI, 80.0)).startswith("3.600000E+00,")   # V = 3.1 + 0.01 t hit 3.6
    assert sim.respond("SOUR:CURR:VLIM:TRIP?", 80.0) == "1"


def test_sim_voltage_source_limits_the_current_first(sim: Keithley2450Server) -> None:
    sim.respond(':SOUR:FUNC VOLT;:SENS:FUNC "CURR";:SOUR:VOLT:ILIM 0.05;LEV 4;:OUTP ON', 0.0)
    assert sim.respond(READ_IV, 5.0) == "3.750000E+00,5.000000E-02"   # CC at ILIM
    assert sim.respond("SOUR:VOLT:ILIM:TRIP?", 5.0) == "1"
    assert str(sim.respond(READ_IV, 20.0)).startswith("4.000000E+00,")     # then the hold
    assert sim.respond("SOUR:VOLT:ILIM:TRIP?", 20.0) == "0"


def test_sim_normal_off_state_loads_the_cell_high_impedance_does_not(
        sim: Keithley2450Server) -> None:
    assert sim.measure(10.0) == (3.0, 0.0)                 # power-on HIMP: open circuit
    sim.respond("*RST", 10.0)                              # factory NORMal off state
    v, i = sim.measure(20.0)
    assert v < 3.0 and i == pytest.approx(-0.105)          # discharging at the 10 % limit


# -- end to end: the real driver and transports against the wire simulator ------------------
@pytest.fixture
def server() -> Iterator[Keithley2450Server]:
    with Keithley2450Server(ResistorCell(v0=3.0, k_V_per_C=1.0, r_ohm=10.0), speed=100.0) as srv:
        yield srv


def connect(srv: Keithley2450Server, visa: bool = True, attempts: int = 2) -> Keithley2450:
    address = srv.visa_address if visa else srv.socket_url
    instrument = Keithley2450.from_address(address, srv.clock(), timeout_s=0.2,
                                           attempts=attempts, backoff_s=0.01)
    instrument.open()
    return instrument


def poll_until_done(instrument: Keithley2450, limit_s: float = 5.0) -> list[Readout]:
    readouts = [instrument.channel(0).poll()]
    deadline = time.monotonic() + limit_s
    while readouts[-1].state is ChannelState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.002)
        readouts.append(instrument.channel(0).poll())
    return readouts


@pytest.mark.parametrize("visa", [True, False], ids=["visa", "serial"])
def test_end_to_end_constant_current_charge_ends_at_the_voltage_limit(visa: bool) -> None:
    # V = 3 V + 1 V/C * q + 10 Ohm * 10 mA = 3.1 V + 0.01 V/s * t: the limit 3.6 V at t = 50 s
    # (3.599 V, within the driver's 1 mV tolerance, at 49.9 s). Every poll records a point.
    # At speed 50 the 2 s of slack below are 40 ms of message latency on a busy machine.
    with Keithley2450Server(ResistorCell(v0=3.0, k_V_per_C=1.0, r_ohm=10.0), speed=50.0) as srv:
        _charge_to_the_limit(srv, visa)


def _charge_to_the_limit(server: Keithley2450Server, visa: bool) -> None:
    instrument = connect(server, visa=visa)
    channel = instrument.channel(0)
    channel.start(ConstantCurrent(0.01, 3600.0, 1e-3, until_voltage_V=3.6))
    readouts = poll_until_done(instrument)
    last = readouts[-1]
    assert (last.state, last.end_reason) == (ChannelState.DONE, "voltage")
    t = np.concatenate([r.points.time_s for r in readouts])
    v = np.concatenate([r.points.voltage_V for r in readouts])
    # it ended at the first reading at the limit: none before it, and not before its time
    # (the slack is message latency between the simulator's and the driver's time stamps)
    assert v[-1] == pytest.approx(3.6, abs=1e-3) and np.all(v[:-1] < 3.599)
    assert np.all(np.diff(t) > 0) and np.all(np.diff(v) >= 0)
    assert t[-2] < 49.9 + 2.0 and t[-1] > 49.9 - 2.0
    assert not server.output and server.off_mode["CURR"] == "HIMP"
    assert isinstance(server.cell, ResistorCell)
    charge = server.cell.charge_C
    time.sleep(0.02)                                       # 1 s at open circuit
    server.measure(server.now_s())
    assert server.cell.charge_C == charge                  # HIMP: nothing flows
    assert charge == pytest.approx(0.01 * t[-1], abs=0.02)
    instrument.close()


def test_end_to_end_open_circuit_runs_for_its_duration(server: Keithley2450Server) -> None:
    instrument = connect(server)
    instrument.channel(0).start(OpenCircuit(20.0, 5.0))
    readouts = poll_until_done(instrument)
    assert readouts[-1].end_reason == "duration"
    t = np.concatenate([r.points.time_s for r in readouts])
    v = np.concatenate([r.points.voltage_V for r in readouts])
    assert np.allclose(v, 3.0) and len(v) >= 2 and t[-1] >= 20.0
    assert np.all(np.diff(t[:-1]) >= 5.0 - 1e-9)           # one point per record_dt_s
    instrument.close()


def test_end_to_end_a_refused_setting_keeps_the_output_off(server: Keithley2450Server) -> None:
    instrument = connect(server)
    server.faults.refuse_next('-222,"Data out of range"')
    with pytest.raises(DriverError, match=r'-222,"Data out of range"'):
        instrument.channel(0).start(ConstantCurrent(0.01, 60.0, 1.0))
    assert not server.output
    instrument.close()


def test_end_to_end_garbage_reading_is_an_error_and_stop_still_works(
        server: Keithley2450Server) -> None:
    instrument = connect(server)
    channel = instrument.channel(0)
    channel.start(ConstantCurrent(0.01, 3600.0, 1.0))
    assert server.output
    server.faults.garbage_next()
    with pytest.raises(DriverError, match="expected two numbers"):
        channel.poll()
    channel.stop()
    assert not server.output
    instrument.close()


def test_end_to_end_a_setting_lost_with_the_connection_keeps_the_output_off(
        server: Keithley2450Server) -> None:
    instrument = connect(server, visa=False)
    channel = instrument.channel(0)
    server.faults.drop_next()               # ":SOUR:FUNC CURR" never arrives
    with pytest.raises(DriverError, match=r"^:SOUR:FUNC\?;.* answered 'VOLT;"):
        channel.start(ConstantCurrent(0.01, 3600.0, 1.0))
    assert not server.output
    channel.start(ConstantCurrent(0.01, 3600.0, 1.0))   # the next attempt sets everything
    assert server.output and server.source == "CURR"
    instrument.close()


def test_end_to_end_a_dropped_connection_is_reconnected(server: Keithley2450Server) -> None:
    instrument = connect(server, visa=False)
    channel = instrument.channel(0)
    channel.start(ConstantCurrent(0.01, 3600.0, 1.0))
    server.faults.drop_next()
    assert channel.poll().state is ChannelState.RUNNING
    channel.stop()
    assert not server.output
    instrument.close()


def test_end_to_end_a_slow_reply_is_a_transport_error(server: Keithley2450Server) -> None:
    instrument = connect(server)
    channel = instrument.channel(0)
    channel.start(OpenCircuit(3600.0, 1.0))
    server.faults.delay_replies(1.0)
    began = time.monotonic()
    with pytest.raises(TransportError, match=r"^TCPIP0::127\.0\.0\.1::\d+::SOCKET: no reply"):
        channel.poll()
    assert time.monotonic() - began < 1.0
    server.faults.delay_replies(0.0)
    channel.stop()
    assert not server.output
    instrument.close()


def test_end_to_end_stop_on_a_dead_link_raises_after_trying() -> None:
    with Keithley2450Server(ResistorCell()) as srv:
        instrument = connect(srv, visa=False)
        instrument.channel(0).start(OpenCircuit(3600.0, 1.0))
    began = time.monotonic()
    with pytest.raises(TransportError, match=r"^socket://127\.0\.0\.1:\d+: cannot open"):
        instrument.channel(0).stop()
    assert time.monotonic() - began < 1.0
    assert instrument.channel(0).poll().state is ChannelState.IDLE


def test_a_short_is_a_collapse_relative_to_the_cells_own_voltage() -> None:
    """A liquid cell at 0.18 V shorts to 12 mV, above a 5 mV floor: the driver sees it by the
    one rule every place that ends a constant-current step applies (drivers.short_circuit)."""
    technique = ConstantCurrent(6e-3, 3600.0, 1.0, short_below_V=0.005, settle_s=60.0)
    readings = [(0.0, reading(0.18, 6e-3)), (30.0, reading(0.18, 6e-3)),
                (31.0, reading(0.012, 6e-3))]
    out = run(technique, current_source("21", "0.006"), readings)
    assert [r.end_reason for r in out] == [None, None, "short"]
    floor_only = run(replace(technique, short_collapse_fraction=None),
                     current_source("21", "0.006"), readings, end=False)
    assert [r.end_reason for r in floor_only] == [None, None, None]
