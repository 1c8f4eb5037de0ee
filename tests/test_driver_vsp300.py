"""The VSP-300 driver: its exact technique mapping, end to end over the stand-in, and Linux.

Mapping tests talk to a scripted BiologicDevice that expects an exact, ordered list of calls
(the parameter dicts compared with their Python types, since easy-biologic picks the DLL type
from them) and asserts every call was used. End-to-end tests run the driver over
:class:`SimBiologicInstrument`, whose channels are simulated cells on a manual clock.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from drivers.biologic import VSP300, decode
from drivers.biologic.techniques import GEIS, plan
from drivers.errors import CapabilityError, DriverError
from drivers.points import ChannelState
from drivers.techniques import (
    ConstantCurrent,
    ConstantVoltage,
    Impedance,
    OpenCircuit,
    VoltageSweep,
)
from simulators.cells import build_cell
from simulators.clock import ManualClock
from simulators.instruments.biologic_device import (
    EcError,
    SimBiologicInstrument,
    check_params,
)

from .fakes import ResistorCell

ADDRESS = "192.168.1.2"


# -- a scripted device: the exact calls, in order -------------------------------------------------

def typed(value: Any) -> Any:
    """A value with the Python type of every scalar in it: True must not pass for 1."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


class ScriptedDevice:
    """A BiologicDevice that expects ``(method, args, reply)`` calls in this order."""

    def __init__(self, script: list[tuple[str, tuple[Any, ...], Any]], channels: int = 1,
                 device_code: int = 20) -> None:
        self.info = SimpleNamespace(DeviceCode=device_code)
        self.plugged = [k < channels for k in range(16)]
        self._script = list(script)

    def expect(self, method: str, *args: Any) -> Any:
        assert self._script, f"unexpected call {method}{args}"
        want, want_args, reply = self._script.pop(0)
        assert (method, typed(args)) == (want, typed(want_args))
        return reply

    def assert_all_used(self) -> None:
        assert not self._script, f"calls never made: {self._script}"

    def connect(self) -> None:
        return self.expect("connect")

    def disconnect(self) -> None:
        return self.expect("disconnect")

    def channel_info(self, ch: int) -> Any:
        return self.expect("channel_info", ch)

    def load_technique(self, ch: int, technique: str, params: dict[str, Any], index: int = 0,
                       last: bool = True) -> None:
        return self.expect("load_technique", ch, technique, params, index, last)

    def start_channel(self, ch: int) -> None:
        return self.expect("start_channel", ch)

    def stop_channel(self, ch: int) -> None:
        return self.expect("stop_channel", ch)

    async def get_data(self, ch: int) -> Any:
        return self.expect("get_data", ch)


def info(max_i_range: int = 10, zboard: int = 1, state: int = 0) -> SimpleNamespace:
    return SimpleNamespace(MaxIRange=max_i_range, MinIRange=5, Zboard=zboard, State=state)


def opened(*calls: tuple[str, tuple[Any, ...], Any], channel_info: Any = None
           ) -> tuple[VSP300, ScriptedDevice]:
    device = ScriptedDevice([("connect", (), None), ("channel_info", (0,), channel_info or info()),
                             *calls])
    vsp = VSP300(ADDRESS, device_factory=lambda address, **kw: device)
    vsp.open()
    return vsp, device


def loads(technique: Any, *expected: tuple[str, dict[str, Any]]) -> None:
    """Starting ``technique`` loads exactly ``expected`` (name, params), then starts."""
    n = len(expected)
    calls = [("load_technique", (0, name, params, k, k == n - 1), None)
             for k, (name, params) in enumerate(expected)]
    vsp, device = opened(*calls, ("start_channel", (0,), None))
    vsp.channel(0).start(technique)
    device.assert_all_used()


TESTS_OFF = {"Test2_Config": [0], "Test2_Value": [0.0], "Test3_Config": [0], "Test3_Value": [0.0]}


# -- (a) the mapping, call by call ---------------------------------------------------------------

def test_open_circuit_is_ocv4_with_rest_time_and_record_criteria():
    loads(OpenCircuit(duration_s=3600.0, record_dt_s=10.0, record_dV_V=0.005),
          ("ocv4", {"Rest_time_T": 3600.0, "Record_every_dE": 0.005, "Record_every_dT": 10.0,
                    "E_Range": 2}))


def test_a_rest_longer_than_ocv4_counts_is_a_chain_of_ocv4():
    rest = {"Record_every_dE": 0.0, "Record_every_dT": 600.0, "E_Range": 2}
    loads(OpenCircuit(duration_s=20 * 3600.0, record_dt_s=600.0),   # ocv4 counts 11.9 h
          ("ocv4", {"Rest_time_T": 36000.0, **rest}), ("ocv4", {"Rest_time_T": 36000.0, **rest}))


def test_peis_counts_every_frequency_and_leaves_sweep_out():
    params = {"vs_initial": True, "vs_final": True, "Initial_Voltage_step": 0.0,
              "Final_Voltage_step": 0.0, "Record_every_dI": 0.0, "Amplitude_Voltage": 0.01,
              "I_Range": 12, "Duration_step": 0.0, "Step_number": 0, "Record_every_dT": 0.0,
              "Initial_frequency": 1e6, "Final_frequency": 0.1, "Frequency_number": 71,
              "Average_N_times": 2, "Correction": False, "Wait_for_steady": 0.0, "E_Range": 2}
    loads(Impedance(f_start_Hz=1e6, f_end_Hz=0.1, amplitude_V=0.01, points_per_decade=10,
                    average=2), ("peis4", params))
    assert "sweep" not in params   # 7 decades at 10 per decade: 7 * 10 + 1 = 71


def test_geis_takes_the_smallest_fixed_range_twice_the_amplitude():
    loads(Impedance(1e5, 0.1, 0.0, 10, galvanostatic=True, amplitude_A=1e-3, bias_A=0.0),
          ("geis4", {"vs_initial": False, "vs_final": False, "Initial_Current_step": 0.0,
                     "Final_Current_step": 0.0, "Record_every_dE": 0.0,
                     "Amplitude_Current": 1e-3, "I_Range": 8, "Duration_step": 0.0,
                     "Step_number": 0, "Record_every_dT": 0.0, "Initial_frequency": 1e5,
                     "Final_frequency": 0.1, "Frequency_number": 61, "Average_N_times": 1,
                     "Correction": False, "Wait_for_steady": 0.0, "E_Range": 2}))


def cc(current: float, until: float | None, steps: list[float], tests: dict[str, Any],
       i_range: int, file: str = "cplimit4") -> tuple[str, dict[str, Any]]:
    n = len(steps)
    return file, {"Current_step": [current] * n, "vs_initial": [False] * n,
                  "Duration_step": steps, "Step_number": n - 1, "Record_every_dT": 30.0,
                  "Record_every_dE": 0.0, "N_Cycles": 0, **tests, "I_Range": i_range,
                  "E_Range": 2}


def test_charge_to_a_voltage_is_cplimit_testing_ewe_upwards():
    loads(ConstantCurrent(current_A=3.5e-4, duration_s=36000.0, record_dt_s=30.0,
                          until_voltage_V=4.2),
          cc(3.5e-4, 4.2, [36000.0], {"Test1_Config": [5], "Test1_Value": [4.2], **TESTS_OFF,
                                      "Exit_Cond": [1]}, i_range=7))


def test_discharge_to_a_voltage_tests_ewe_downwards():
    loads(ConstantCurrent(current_A=-3.5e-4, duration_s=36000.0, record_dt_s=30.0,
                          until_voltage_V=3.0),
          cc(-3.5e-4, 3.0, [36000.0], {"Test1_Config": [1], "Test1_Value": [3.0], **TESTS_OFF,
                                       "Exit_Cond": [1]}, i_range=7))


def test_a_long_charge_is_split_into_steps_the_timer_holds():
    loads(ConstantCurrent(current_A=1e-3, duration_s=30 * 3600.0, record_dt_s=30.0,
                          until_voltage_V=4.2),
          cc(1e-3, 4.2, [54000.0, 54000.0],
             {"Test1_Config": [5, 5], "Test1_Value": [4.2, 4.2], "Test2_Config": [0, 0],
              "Test2_Value": [0.0, 0.0], "Test3_Config": [0, 0], "Test3_Value": [0.0, 0.0],
              "Exit_Cond": [1, 1]}, i_range=7))


def test_short_detection_waits_for_the_settling_step():
    loads(ConstantCurrent(current_A=1e-4, duration_s=3600.0, record_dt_s=30.0,
                          short_below_V=0.005, settle_s=60.0),
          cc(1e-4, None, [60.0, 3540.0],
             {"Test1_Config": [0, 1], "Test1_Value": [0.0, 0.005], "Test2_Config": [0, 0],
              "Test2_Value": [0.0, 0.0], "Test3_Config": [0, 0], "Test3_Value": [0.0, 0.0],
              "Exit_Cond": [1, 1]}, i_range=6))


def test_constant_current_without_limits_is_plain_cp():
    loads(ConstantCurrent(current_A=1e-3, duration_s=600.0, record_dt_s=30.0),
          cc(1e-3, None, [600.0], {}, i_range=7, file="cp4"))


def test_cv_hold_to_a_current_is_calimit_with_the_abs_current_pair():
    loads(ConstantVoltage(voltage_V=4.2, duration_s=7200.0, record_dt_s=60.0,
                          until_abs_current_A=5e-5),
          ("calimit4", {"Voltage_step": [4.2], "vs_initial": [False], "Duration_step": [7200.0],
                        "Step_number": 0, "Record_every_dT": 60.0, "Record_every_dI": 0.0,
                        "N_Cycles": 0, "Test1_Config": [99], "Test1_Value": [5e-5],
                        "Test2_Config": [103], "Test2_Value": [-5e-5], "Test3_Config": [0],
                        "Test3_Value": [0.0], "Exit_Cond": [1], "I_Range": 12, "E_Range": 2}))


def test_hold_vs_ocv_without_limit_is_plain_ca_relative_to_the_initial_potential():
    loads(ConstantVoltage(voltage_V=0.01, duration_s=600.0, record_dt_s=1.0, record_dI_A=1e-6,
                          vs_ocv=True),
          ("ca4", {"Voltage_step": [0.01], "vs_initial": [True], "Duration_step": [600.0],
                   "Step_number": 0, "Record_every_dT": 1.0, "Record_every_dI": 1e-6,
                   "N_Cycles": 0, "I_Range": 12, "E_Range": 2}))


SCAN = {"N_Cycles": 0, "Begin_measuring_I": 0.5, "End_measuring_I": 1.0}


def test_lsv_is_vscan_from_open_circuit_with_the_rate_in_volts_per_second():
    loads(VoltageSweep(vertices_V=(5.0,), scan_rate_V_s=0.001, record_dt_s=0.5),
          ("vscan4", {"Voltage_step": [0.0, 5.0], "vs_initial": [True, False],
                      "Scan_Rate": [0.001, 0.001], "Scan_number": 0, "Record_every_dE": 0.0005,
                      **SCAN, "I_Range": 12, "E_Range": 2}))


def test_lsv_to_a_current_is_vscanlimit():
    loads(VoltageSweep(vertices_V=(5.0,), scan_rate_V_s=0.001, record_dt_s=0.5,
                       until_abs_current_A=1e-4, start_V=3.0),
          ("vscanlimit4", {"Voltage_step": [3.0, 5.0], "vs_initial": [False, False],
                           "Scan_Rate": [0.001, 0.001], "Scan_number": 0,
                           "Record_every_dE": 0.0005, **SCAN, "Test1_Config": [101, 101],
                           "Test1_Value": [1e-4, 1e-4], "Test2_Config": [97, 97],
                           "Test2_Value": [-1e-4, -1e-4], "Test3_Config": [0, 0],
                           "Test3_Value": [0.0, 0.0], "Exit_Cond": [1, 1], "I_Range": 12,
                           "E_Range": 2}))


def test_cv_is_vscan_through_every_vertex_of_every_cycle():
    loads(VoltageSweep(vertices_V=(4.5, 2.5), scan_rate_V_s=0.002, record_dt_s=0.5, cycles=2),
          ("vscan4", {"Voltage_step": [0.0, 4.5, 2.5, 4.5, 2.5],
                      "vs_initial": [True, False, False, False, False],
                      "Scan_Rate": [0.002] * 5, "Scan_number": 3, "Record_every_dE": 0.001,
                      **SCAN, "I_Range": 12, "E_Range": 2}))


@pytest.mark.parametrize("technique", [
    Impedance(1e5, 1.0, 0.01, 10),                                   # no impedance board
    ConstantCurrent(current_A=0.2, duration_s=10.0, record_dt_s=1.0),  # beyond the 100 mA range
    VoltageSweep(vertices_V=(1.0, 0.0), scan_rate_V_s=0.01, record_dt_s=1.0, cycles=60),
])
def test_what_the_channel_cannot_run_is_refused_before_anything_is_sent(technique):
    vsp, device = opened(channel_info=info(max_i_range=9, zboard=0))
    with pytest.raises(CapabilityError):
        vsp.channel(0).start(technique)
    device.assert_all_used()


def test_stop_always_calls_stop_channel():
    vsp, device = opened(("stop_channel", (0,), None), ("stop_channel", (0,), None))
    vsp.channel(0).stop()
    vsp.channel(0).stop()
    device.assert_all_used()


def test_an_instrument_outside_the_vmp300_family_is_refused_and_disconnected():
    device = ScriptedDevice([("connect", (), None), ("disconnect", (), None)], device_code=5)
    with pytest.raises(DriverError, match=r"device code 5, not one of the VMP-300 family"):
        VSP300(ADDRESS, device_factory=lambda address, **kw: device).open()
    device.assert_all_used()


def test_decode_reads_time_words_start_time_and_the_wide_scan_layout():
    tb = 50e-6
    ticks = [5 * 2**32 + 7, 2**32 - 1]
    rows = [[t >> 32, t & 0xFFFFFFFF, *np.array([0.5, 1e-3, 3.25], np.float32).view(np.uint32),
             2] for t in ticks]
    block = decode([w for row in rows for w in row],
                   SimpleNamespace(NbRows=2, NbCols=6, TechniqueID=124, ProcessIndex=0,
                                   TechniqueIndex=0, StartTime=100.0), tb)
    points = block.points()
    assert points.time_s == pytest.approx([100 + tb * ticks[0], 100 + tb * ticks[1]])
    assert points.voltage_V == pytest.approx([3.25, 3.25])
    assert points.current_A == pytest.approx([1e-3, 1e-3], rel=1e-6)   # singles


# -- (b) end to end over the stand-in ------------------------------------------------------------

def bench(cell: Any = None, **kwargs: Any) -> tuple[SimBiologicInstrument, ManualClock, VSP300]:
    clock = ManualClock()
    instrument = SimBiologicInstrument(clock, channels=2, **kwargs)
    instrument.place(0, cell if cell is not None else ResistorCell())
    vsp = VSP300(ADDRESS, device_factory=instrument.device)
    vsp.open()
    return instrument, clock, vsp


def test_peis_spectrum_matches_the_cell_with_a_capacitive_arc_below_zero():
    cell = ResistorCell(r_ohm=10.0)
    _, clock, vsp = bench(cell)
    ch = vsp.channel(0)
    ch.start(Impedance(f_start_Hz=1e5, f_end_Hz=0.1, amplitude_V=0.01, points_per_decade=10))
    clock.advance(1000)
    r = ch.poll()
    assert (r.state, r.end_reason, len(r.points)) == (ChannelState.DONE, "completed", 61)
    p = r.points
    assert p.z_real_ohm is not None and p.z_imag_ohm is not None and p.frequency_Hz is not None
    z = p.z_real_ohm + 1j * p.z_imag_ohm
    assert z == pytest.approx(cell.impedance(p.frequency_Hz, 25.0), rel=0.01)
    assert p.z_imag_ohm[-1] < -1000 and p.frequency_Hz[0] == pytest.approx(1e5)
    assert p.time_s == pytest.approx(np.cumsum(
        Impedance(1e5, 0.1, 0.01, 10).point_durations_s()), abs=1e-3)


def test_a_charge_ends_at_its_voltage_limit_in_firmware():
    cell = ResistorCell(v0=3.0, k_V_per_C=1.0, r_ohm=10.0)
    instrument, clock, vsp = bench(cell)
    ch = vsp.channel(0)
    # V = 3 + 0.01 t + 0.1 reaches 3.6 V at t = 50 s
    ch.start(ConstantCurrent(current_A=0.01, duration_s=1000, record_dt_s=7, until_voltage_V=3.6))
    clock.advance(20)
    assert ch.poll().state is ChannelState.RUNNING
    clock.advance(2000)
    r = ch.poll()
    assert (r.state, r.end_reason) == (ChannelState.DONE, "voltage")
    assert r.points.time_s[-1] == pytest.approx(50.0, abs=1e-4)
    assert r.points.voltage_V[-1] == pytest.approx(3.6, abs=1e-3)
    assert cell.charge_C == pytest.approx(0.5)
    assert ("load_technique", 0) in instrument.calls


def test_stop_calls_stop_channel_and_the_channel_stops():
    instrument, clock, vsp = bench()
    ch = vsp.channel(0)
    ch.start(OpenCircuit(duration_s=3600.0, record_dt_s=10.0))
    clock.advance(100)
    ch.stop()
    assert instrument.calls[-1] == ("stop_channel", 0)
    assert (ch.poll().state, ch.poll().end_reason) == (ChannelState.IDLE, "stopped")
    other = instrument.device(ADDRESS, populate_info=False)
    other.connect()
    assert other.channel_info(0).State == 0   # the instrument says so too
    ch.stop()
    assert instrument.calls[-1] == ("stop_channel", 0)


def test_capabilities_come_from_channel_info():
    _, _, vsp = bench(max_i_range=9, zboard=False)
    caps = vsp.channel(1).capabilities
    assert (caps.max_current_A, caps.eis_min_Hz) == (pytest.approx(0.1), None)
    assert "Impedance" not in caps.techniques
    assert vsp.channel_count == 2 and vsp.model == "VSP-300"
    _, _, full = bench()
    assert full.channel(0).capabilities.max_current_A == 0.5   # 1 A range, 500 mA amplifier
    with pytest.raises(CapabilityError, match="channels"):
        full.channel(2)


def test_a_long_step_counts_time_past_the_low_word():
    _, clock, vsp = bench()
    ch = vsp.channel(0)
    ch.start(ConstantCurrent(current_A=1e-6, duration_s=60 * 3600.0, record_dt_s=3600.0))
    clock.advance(61 * 3600.0)
    r = ch.poll()
    # 60 h in 21 us ticks is 2.4 * 2**32: t_high reaches 2
    assert (r.state, r.end_reason) == (ChannelState.DONE, "duration")
    assert r.points.time_s == pytest.approx(np.arange(61) * 3600.0, abs=1e-4)


def test_a_long_rest_is_one_step_across_the_chained_ocv4():
    _, clock, vsp = bench()
    ch = vsp.channel(0)
    ch.start(OpenCircuit(duration_s=30 * 3600.0, record_dt_s=3600.0))
    clock.advance(31 * 3600.0)
    r = ch.poll()
    assert (r.state, r.end_reason) == (ChannelState.DONE, "duration")
    assert r.points.time_s == pytest.approx(np.arange(31) * 3600.0, abs=1e-4)


def test_a_steady_hold_is_ended_by_the_driver():
    instrument, clock, vsp = bench()
    ch = vsp.channel(0)
    ch.start(ConstantVoltage(voltage_V=3.5, duration_s=1000.0, record_dt_s=10.0,
                             steady_rel=0.01, steady_window_s=50.0))
    clock.advance(500)
    r = ch.poll()
    assert (r.state, r.end_reason) == (ChannelState.DONE, "steady")
    assert r.points.time_s[-1] == pytest.approx(50.0, abs=1e-4)
    assert instrument.calls[-1] == ("stop_channel", 0)


def test_a_liquid_cells_short_is_ended_by_the_driver_where_the_firmware_sees_only_a_floor():
    """The firmware tests |Ewe| against the absolute floor (5 mV) only; a liquid cell shorts to
    12 mV from 0.18 V, and the driver, applying the relative rule to the points it polls,
    stops the channel and ends the step "short"."""
    area = math.pi * 0.008**2
    cell = build_cell("symmetric_li", "LiPF6-EC-DEC-EMC", 25e-6, area)
    instrument, clock, vsp = bench(cell)
    ch = vsp.channel(0)
    ch.start(ConstantCurrent(current_A=3.0e-3 * area * 1e4, duration_s=600.0, record_dt_s=5.0,
                             short_below_V=0.005, settle_s=60.0))
    clock.advance(700)
    r = ch.poll()
    assert (r.state, r.end_reason) == (ChannelState.DONE, "short")
    v = np.abs(r.points.voltage_V)
    assert v.min() > 0.005 and v.max() > 0.15
    assert r.points.time_s[-1] < 100.0
    assert instrument.calls[-1] == ("stop_channel", 0)   # the driver, not the firmware


def test_lsv_on_a_blocking_cell_sweeps_to_its_vertex():
    cell = build_cell("blocking", "AIOSE", 300e-6, math.pi * 0.008**2)
    _, clock, vsp = bench(cell)
    ch = vsp.channel(0)
    ch.start(VoltageSweep(vertices_V=(1.0,), scan_rate_V_s=0.01, record_dt_s=1.0))
    clock.advance(200)
    r = ch.poll()
    assert (r.state, r.end_reason) == (ChannelState.DONE, "completed")
    assert r.points.voltage_V[-1] == pytest.approx(1.0, abs=1e-3)
    assert r.points.time_s[-1] == pytest.approx(100.0, abs=1e-3)
    assert np.all(r.points.current_A[5:] > 0)   # charging the double layer upwards


def test_a_new_driver_reattaches_to_a_channel_still_running():
    instrument, clock, first = bench(ResistorCell(v0=3.0, k_V_per_C=1.0, r_ohm=10.0))
    technique = ConstantCurrent(current_A=0.01, duration_s=1000, record_dt_s=7,
                                until_voltage_V=3.6)
    first.channel(0).start(technique)
    clock.advance(20)
    assert list(first.channel(0).poll().points.time_s.round(3)) == [0, 7, 14]
    # the sequencer dies here; the instrument runs on
    second = VSP300(ADDRESS, device_factory=instrument.device)
    second.open()
    ch = second.channel(0)
    assert ch.poll().state is ChannelState.RUNNING and ch.running() is None
    assert ch.running_unknown
    with pytest.raises(DriverError, match="already running; stop it first"):
        ch.start(technique)
    ch.adopt(technique)
    assert ch.running() == technique
    clock.advance(100)
    r = ch.poll()
    assert (r.state, r.end_reason) == (ChannelState.DONE, "voltage")
    assert r.points.time_s == pytest.approx([21, 28, 35, 42, 49, 50], abs=1e-4)
    assert ch.read_voltage() == pytest.approx(3.5, abs=1e-3)   # at rest after 0.5 C


def test_lost_points_fault_the_step_but_keep_what_arrived():
    instrument, clock, vsp = bench()
    ch = vsp.channel(0)
    ch.start(OpenCircuit(duration_s=100.0, record_dt_s=10.0))
    instrument.lose_points(0, 3)
    clock.advance(50)
    r = ch.poll()
    assert r.state is ChannelState.FAULT and "skipped 3" in (r.end_reason or "")
    assert list(r.points.time_s.round(3)) == [30, 40, 50]
    assert instrument.calls[-1] == ("stop_channel", 0)


def test_lost_points_can_be_a_warning(caplog):
    instrument, clock, _ = bench()
    vsp = VSP300(ADDRESS, device_factory=instrument.device, lost_points="warn")
    vsp.open()
    ch = vsp.channel(0)
    ch.start(OpenCircuit(duration_s=100.0, record_dt_s=10.0))
    instrument.lose_points(0, 2)
    clock.advance(200)
    r = ch.poll()
    assert (r.state, r.detail) == (ChannelState.DONE, {"irq_skipped": 2.0})
    assert len(r.points) == 9 and "skipped 2" in caplog.text


def test_one_lock_keeps_two_threads_from_overlapping_eclib_calls():
    instrument, clock, vsp = bench(call_latency_s=0.002)
    instrument.place(1, ResistorCell())
    for k in (0, 1):
        vsp.channel(k).start(OpenCircuit(duration_s=1e4, record_dt_s=1.0))
    clock.advance(50)
    errors: list[Exception] = []

    def poll(k: int) -> None:
        try:
            for _ in range(15):
                vsp.channel(k).poll()
        except Exception as exc:   # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=poll, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_the_stand_in_answers_function_in_progress_to_overlapping_calls():
    instrument = SimBiologicInstrument(ManualClock(), channels=1, call_latency_s=0.05)
    device = instrument.device(ADDRESS, populate_info=False)
    device.connect()
    worker = threading.Thread(target=device.get_values, args=(0,))
    worker.start()
    while len(instrument.calls) < 2:    # connect, then the worker's get_values is in progress
        time.sleep(0.001)
    with pytest.raises(EcError, match=r"ERR_GEN_FUNCTIONINPROGRESS \(-12\)"):
        device.channel_info(0)
    worker.join()


# -- the stand-in refuses what the instrument refuses ---------------------------------------

def geis_params(amplitude_A: float) -> dict[str, Any]:
    return plan(Impedance(1e5, 0.1, 0.0, 10, galvanostatic=True, amplitude_A=amplitude_A),
                range(5, 11))[0].params


@pytest.mark.parametrize(("file", "params", "message"), [
    ("ocv4.ecc", {"Rest_time_T": 10.0, "Record_every_dE": 0.0, "Record_every_dT": 1.0,
                  "Rest_time": 1.0}, r"unknown parameter\(s\) \['Rest_time'\]"),
    ("ocv4.ecc", {"Rest_time_T": 10.0, "Record_every_dE": 0.0},
     r"missing parameter\(s\) \['Record_every_dT'\]"),
    ("ocv4.ecc", {"Rest_time_T": 10, "Record_every_dE": 0.0, "Record_every_dT": 1.0},
     r"Rest_time_T must be a float .* got int 10"),
    ("ocv4.ecc", {"Rest_time_T": 50000.0, "Record_every_dE": 0.0, "Record_every_dT": 1.0},
     r"within 0..42950 s"),
    (GEIS, {**geis_params(1e-3), "Amplitude_Current": 6e-3},
     r"Amplitude_Current 0.006 A exceeds 50 % of I_Range 8 \(0.01 A\)"),
    (GEIS, {**geis_params(1e-3), "I_Range": 12}, r"I_Range 12 \(auto\) is not allowed"),
    ("cp4.ecc", {**plan(ConstantCurrent(1e-3, 60.0, 1.0), range(5, 11))[0].params,
                 "Step_number": 1}, r"Current_step has 1 entries for 2 steps"),
])
def test_the_stand_in_refuses_bad_parameters(file, params, message):
    with pytest.raises(EcError, match=message):
        check_params(file, params, min_i_range=5, max_i_range=10)


def test_the_stand_in_refuses_a_full_file_name_as_easy_biologic_would_mangle_it():
    instrument = SimBiologicInstrument(ManualClock(), channels=1)
    device = instrument.device(ADDRESS)
    device.connect()
    load = plan(OpenCircuit(10.0, 1.0), range(5, 11))[0]
    with pytest.raises(EcError, match=r"no technique file 'ocv4.ecc4.ecc'"):
        device.load_technique(0, load.file, load.params)
    device.load_technique(0, load.name, load.params)
    assert device.techniques is not None and device.techniques[0][0].technique == "ocv4.ecc"


def test_every_mapping_passes_the_stand_in_checks():
    for technique in (
        OpenCircuit(1e5, 60.0, 0.001), Impedance(1e6, 0.01, 0.005, 7, average=3),
        Impedance(1e4, 1.0, 0.0, 5, galvanostatic=True, amplitude_A=2e-5, bias_A=1e-5),
        ConstantCurrent(-2e-3, 2e5, 60.0, until_voltage_V=2.5, short_below_V=0.01),
        ConstantVoltage(4.2, 2e5, 60.0, until_abs_current_A=1e-5, vs_ocv=True),
        VoltageSweep((4.5, 2.5, 3.0), 1e-3, 1.0, cycles=3, until_abs_current_A=1e-3),
    ):
        for load in plan(technique, range(5, 11)):
            check_params(load.file, load.params, 5, 10)


# -- (c) on Linux -----------------------------------------------------------------------------

def test_open_without_easy_biologic_says_to_install_the_extra_on_windows():
    with pytest.raises(DriverError, match=r"'biologic' extra") as raised:
        VSP300("USB0").open()
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_easy_biologic_refusing_linux_is_a_clear_driver_error(monkeypatch, tmp_path):
    package = tmp_path / "easy_biologic"
    package.mkdir()
    (package / "__init__.py").write_text(
        "raise OSError('easy_biologic can only be used on Windows.')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "easy_biologic", raising=False)
    with pytest.raises(DriverError, match=(
            r"^the VSP-300 driver needs easy-biologic, which runs only on Windows with BioLogic's"
            r" EClib DLL: install the 'biologic' extra \(pip install 'cellseq\[biologic\]'\) on"
            r" the Windows PC wired to the instrument \(OSError: easy_biologic can only be used"
            r" on Windows\.\)$")) as raised:
        VSP300(ADDRESS).open()
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
