"""The VSP-300 driver through easy-biologic's own code, on a fake EClib DLL.

easy-biologic 0.4.0 is imported as on the instrument's PC, its ``ctypes.WinDLL`` the
:class:`FakeEClib` (the patching lives in tests/easy_biologic_fake.py, nowhere else). Everything
between the driver and the DLL is easy-biologic's: its technique file names, its encoding of
each parameter as a TEccParam through BL_DefineSglParameter / Int / Bool, its EccParams, its
ctypes structures, its async get_data and its EcError. So the mapping tests assert what arrives
at BL_LoadTechnique: the ``.ecc`` file, the first/last flags and each parameter's label, DLL type,
value (a single as the float it rounds to) and index. The fake's channels are simulated cells on a
manual clock, so the points are physical: the end-to-end tests compare them with the cells.

Tests of the simulated instrument itself (what it refuses, its "in progress" answer) and of the
driver on Linux without easy-biologic's patching follow at the end.
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from drivers.biologic import VSP300, decode
from drivers.biologic.data import concat
from drivers.biologic.techniques import GEIS, plan
from drivers.biologic.vsp300 import INSTRUMENTS, VSP300Options
from drivers.errors import CapabilityError, DriverError, TransportError
from drivers.points import ChannelState
from drivers.spec import Bench, Setup
from drivers.techniques import (
    ConstantCurrent,
    ConstantVoltage,
    Impedance,
    OpenCircuit,
    Technique,
    VoltageSweep,
)
from simulators.cells import build_cell
from simulators.cells.base import CellModel
from simulators.clock import ManualClock
from simulators.instruments.biologic_device import (
    ChannelInfo,
    DeviceInfo,
    EcError,
    SimBiologicInstrument,
    check_params,
)
from simulators.instruments.eclib_fake import EccParam, FakeEClib, Load, holding

from .easy_biologic_fake import EASY_BIOLOGIC_VERSION, easy_biologic_over, installed_version
from .fakes import ResistorCell

ADDRESS, OTHER = "192.168.1.2", "192.168.1.3"


def blocking_cell() -> CellModel:
    """A steel|electrolyte|steel cell: a double layer to sweep."""
    return build_cell("blocking", "AIOSE", 300e-6, math.pi * 0.008**2)


@dataclass
class Lab:
    """easy-biologic over a fake EClib whose instruments share one manual clock."""

    clock: ManualClock
    eclib: FakeEClib
    easy_biologic: ModuleType

    def instrument(self, address: str = ADDRESS, cell: CellModel | None = None,
                   channels: int = 2, **options: Any) -> SimBiologicInstrument:
        """A VSP-300 (or what ``options`` make of it) at ``address``, ``cell`` on channel 0."""
        instrument = SimBiologicInstrument(self.clock, channels=channels, **options)
        instrument.place(0, cell if cell is not None else ResistorCell())
        self.eclib.instruments[address] = instrument
        return instrument

    def driver(self, address: str = ADDRESS, **kwargs: Any) -> VSP300:
        """The driver as a station builds it: no device factory, so easy-biologic's."""
        vsp = VSP300(address, **kwargs)
        vsp.open()
        return vsp

    def device(self, address: str = ADDRESS) -> Any:
        """easy-biologic's own BiologicDevice, connected."""
        device = self.easy_biologic.BiologicDevice(address, populate_info=False)
        device.connect()
        return device


@pytest.fixture
def lab() -> Iterator[Lab]:
    eclib = FakeEClib({})
    with easy_biologic_over(eclib) as module:
        yield Lab(ManualClock(), eclib, module)


def bench(lab: Lab, cell: CellModel | None = None, **options: Any
          ) -> tuple[SimBiologicInstrument, ManualClock, VSP300]:
    instrument = lab.instrument(cell=cell, **options)
    return instrument, lab.clock, lab.driver()


# -- easy-biologic itself ------------------------------------------------------------------------

def test_easy_biologic_0_4_0_loads_the_fake_where_it_loads_eclib(lab: Lab) -> None:
    assert installed_version() == EASY_BIOLOGIC_VERSION == lab.easy_biologic.__version__
    assert lab.eclib.dll_path is not None and lab.eclib.dll_path.endswith("EClib64.dll")
    assert lab.eclib.technique_dir is not None
    assert (lab.eclib.technique_dir / "peis4.ecc").is_file()   # shipped beside the DLL
    from easy_biologic.lib import ec_lib
    assert ec_lib.BL_GetData.__name__ == "BL_GetData"
    import platform
    assert platform.system() != "Windows"   # patched for the import only


def test_open_connects_loads_firmware_and_reads_each_channel(lab: Lab) -> None:
    lab.instrument(channels=3)
    vsp = lab.driver()
    assert vsp.channel_count == 3 and vsp.model == "VSP-300"
    assert [c.name for c in lab.eclib.calls] == [
        "BL_Connect", "BL_GetChannelsPlugged", "BL_LoadFirmware", "BL_GetChannelInfos",
        "BL_GetChannelInfos", "BL_GetChannelInfos"]
    assert {c.code for c in lab.eclib.calls} == {0}
    vsp.close()
    assert [c.name for c in lab.eclib.calls[-4:]] == [
        "BL_StopChannel", "BL_StopChannel", "BL_StopChannel", "BL_Disconnect"]


def test_the_timeout_reaches_eclib_in_whole_seconds(lab: Lab) -> None:
    lab.instrument()
    setup = Setup("vsp", ADDRESS, 2, VSP300Options(timeout_s=2.5))
    vsp = INSTRUMENTS[0].build(setup, Bench(lab.clock))   # as a station builds it
    vsp.open()
    assert lab.eclib.timeouts_s == [3]
    # what the driver works around: easy-biologic hands the timeout to ctypes.c_uint8
    raw = lab.easy_biologic.BiologicDevice(ADDRESS, timeout=2.5, populate_info=False)
    with pytest.raises(TypeError):
        raw.connect()


def test_an_instrument_outside_the_vmp300_family_is_refused_and_disconnected(lab: Lab) -> None:
    lab.instrument(device_code=5)
    with pytest.raises(DriverError, match=r"device code 5, not one of the VMP-300 family"):
        lab.driver()
    assert [c.name for c in lab.eclib.calls][-1] == "BL_Disconnect"
    assert lab.eclib.codes("BL_Disconnect") == [0]


def test_eclab_firmware_on_the_instrument_is_named_not_hidden(lab: Lab) -> None:
    """easy-biologic's connect reads ``err.value`` from an EcError that has none: the
    AttributeError it raises would hide the DLL's answer."""
    lab.instrument()
    lab.eclib.fail_next("BL_LoadFirmware", -9)
    with pytest.raises(DriverError, match=r"connect failed: ERR_GEN_ECLAB_LOADED \(-9\)"):
        lab.driver()
    assert lab.eclib.codes("BL_Disconnect") == [0]   # the half-open connection is closed


# -- (a) the mapping, as BL_LoadTechnique receives it ---------------------------------------------

def dll_type(value: Any) -> str:
    """The DLL type easy-biologic picks from a Python value."""
    kinds = {bool: "bool", int: "int", float: "single"}
    assert type(value) in kinds, f"{value!r} has no DLL type"
    return kinds[type(value)]


def as_sent(params: dict[str, Any], technique_index: int) -> dict[str, list[tuple[Any, ...]]]:
    """Each parameter as TEccParam records (type, value, index): a single as the float it
    rounds to; entry k of a list at index technique_index + k, as easy-biologic numbers them."""
    out = {}
    for name, value in params.items():
        values = value if isinstance(value, list) else [value]
        out[name] = [(dll_type(v), float(np.float32(v)) if dll_type(v) == "single" else v,
                      technique_index + k) for k, v in enumerate(values)]
    return out


def received(load: Load) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for p in load.params:
        out.setdefault(p.name, []).append((p.type, p.value, p.index))
    return {name: sorted(records, key=lambda r: r[2]) for name, records in out.items()}


def loads(lab: Lab, technique: Technique, *expected: tuple[str, dict[str, Any]],
          cell: CellModel | None = None) -> None:
    """Starting ``technique`` loads exactly ``expected`` (file, params) on channel 0, in
    order, then starts the channel; the instrument takes every one."""
    lab.instrument(cell=cell)
    lab.driver().channel(0).start(technique)
    n = len(expected)
    got = lab.eclib.loads
    assert [(g.channel, g.file, g.first, g.last, g.code) for g in got] == \
        [(0, file, k == 0, k == n - 1, 0) for k, (file, _) in enumerate(expected)]
    for k, (g, (_, params)) in enumerate(zip(got, expected, strict=True)):
        assert received(g) == as_sent(params, k)
    assert lab.eclib.codes("BL_StartChannel") == [0]


TESTS_OFF = {"Test2_Config": [0], "Test2_Value": [0.0], "Test3_Config": [0], "Test3_Value": [0.0]}


def test_open_circuit_is_ocv4_with_rest_time_and_record_criteria(lab: Lab) -> None:
    loads(lab, OpenCircuit(duration_s=3600.0, record_dt_s=10.0, record_dV_V=0.005),
          ("ocv4.ecc", {"Rest_time_T": 3600.0, "Record_every_dE": 0.005,
                        "Record_every_dT": 10.0, "E_Range": 2}))


def test_a_rest_longer_than_ocv4_counts_is_a_chain_of_ocv4(lab: Lab) -> None:
    """easy-biologic numbers the parameters of technique k from k: harmless for ocv4, whose
    parameters are single values, which is why only ocv4 is chained."""
    rest = {"Record_every_dE": 0.0, "Record_every_dT": 600.0, "E_Range": 2}
    loads(lab, OpenCircuit(duration_s=20 * 3600.0, record_dt_s=600.0),   # ocv4 counts 11.9 h
          ("ocv4.ecc", {"Rest_time_T": 36000.0, **rest}),
          ("ocv4.ecc", {"Rest_time_T": 36000.0, **rest}))
    assert {p.index for p in lab.eclib.loads[1].params} == {1}


def test_peis_counts_every_frequency_and_leaves_sweep_out(lab: Lab) -> None:
    params = {"vs_initial": True, "vs_final": True, "Initial_Voltage_step": 0.0,
              "Final_Voltage_step": 0.0, "Record_every_dI": 0.0, "Amplitude_Voltage": 0.01,
              "I_Range": 12, "Duration_step": 0.0, "Step_number": 0, "Record_every_dT": 0.0,
              "Initial_frequency": 1e6, "Final_frequency": 0.1, "Frequency_number": 71,
              "Average_N_times": 2, "Correction": False, "Wait_for_steady": 0.0, "E_Range": 2}
    loads(lab, Impedance(f_start_Hz=1e6, f_end_Hz=0.1, amplitude_V=0.01, points_per_decade=10,
                         average=2), ("peis4.ecc", params))
    assert "sweep" not in params   # 7 decades at 10 per decade: 7 * 10 + 1 = 71


def test_geis_takes_the_smallest_fixed_range_twice_the_amplitude(lab: Lab) -> None:
    loads(lab, Impedance(1e5, 0.1, 0.0, 10, galvanostatic=True, amplitude_A=1e-3, bias_A=0.0),
          ("geis4.ecc", {"vs_initial": False, "vs_final": False, "Initial_Current_step": 0.0,
                         "Final_Current_step": 0.0, "Record_every_dE": 0.0,
                         "Amplitude_Current": 1e-3, "I_Range": 8, "Duration_step": 0.0,
                         "Step_number": 0, "Record_every_dT": 0.0, "Initial_frequency": 1e5,
                         "Final_frequency": 0.1, "Frequency_number": 61, "Average_N_times": 1,
                         "Correction": False, "Wait_for_steady": 0.0, "E_Range": 2}))


def cc(current: float, steps: list[float], tests: dict[str, Any], i_range: int,
       file: str = "cplimit4.ecc") -> tuple[str, dict[str, Any]]:
    n = len(steps)
    return file, {"Current_step": [current] * n, "vs_initial": [False] * n,
                  "Duration_step": steps, "Step_number": n - 1, "Record_every_dT": 30.0,
                  "Record_every_dE": 0.0, "N_Cycles": 0, **tests, "I_Range": i_range,
                  "E_Range": 2}


def test_charge_to_a_voltage_is_cplimit_testing_ewe_upwards(lab: Lab) -> None:
    loads(lab, ConstantCurrent(current_A=3.5e-4, duration_s=36000.0, record_dt_s=30.0,
                               until_voltage_V=4.2),
          cc(3.5e-4, [36000.0], {"Test1_Config": [5], "Test1_Value": [4.2], **TESTS_OFF,
                                 "Exit_Cond": [1]}, i_range=7))


def test_discharge_to_a_voltage_tests_ewe_downwards(lab: Lab) -> None:
    loads(lab, ConstantCurrent(current_A=-3.5e-4, duration_s=36000.0, record_dt_s=30.0,
                               until_voltage_V=3.0),
          cc(-3.5e-4, [36000.0], {"Test1_Config": [1], "Test1_Value": [3.0], **TESTS_OFF,
                                  "Exit_Cond": [1]}, i_range=7))


def test_a_long_charge_is_split_into_steps_the_timer_holds(lab: Lab) -> None:
    loads(lab, ConstantCurrent(current_A=1e-3, duration_s=30 * 3600.0, record_dt_s=30.0,
                               until_voltage_V=4.2),
          cc(1e-3, [54000.0, 54000.0],
             {"Test1_Config": [5, 5], "Test1_Value": [4.2, 4.2], "Test2_Config": [0, 0],
              "Test2_Value": [0.0, 0.0], "Test3_Config": [0, 0], "Test3_Value": [0.0, 0.0],
              "Exit_Cond": [1, 1]}, i_range=7))


def test_short_detection_waits_for_the_settling_step(lab: Lab) -> None:
    loads(lab, ConstantCurrent(current_A=1e-4, duration_s=3600.0, record_dt_s=30.0,
                               short_below_V=0.005, settle_s=60.0),
          cc(1e-4, [60.0, 3540.0],
             {"Test1_Config": [0, 1], "Test1_Value": [0.0, 0.005], "Test2_Config": [0, 0],
              "Test2_Value": [0.0, 0.0], "Test3_Config": [0, 0], "Test3_Value": [0.0, 0.0],
              "Exit_Cond": [1, 1]}, i_range=6))


def test_constant_current_without_limits_is_plain_cp(lab: Lab) -> None:
    loads(lab, ConstantCurrent(current_A=1e-3, duration_s=600.0, record_dt_s=30.0),
          cc(1e-3, [600.0], {}, i_range=7, file="cp4.ecc"))


def test_cv_hold_to_a_current_is_calimit_with_the_abs_current_pair(lab: Lab) -> None:
    loads(lab, ConstantVoltage(voltage_V=4.2, duration_s=7200.0, record_dt_s=60.0,
                               until_abs_current_A=5e-5),
          ("calimit4.ecc", {"Voltage_step": [4.2], "vs_initial": [False],
                            "Duration_step": [7200.0], "Step_number": 0,
                            "Record_every_dT": 60.0, "Record_every_dI": 0.0, "N_Cycles": 0,
                            "Test1_Config": [99], "Test1_Value": [5e-5], "Test2_Config": [103],
                            "Test2_Value": [-5e-5], "Test3_Config": [0], "Test3_Value": [0.0],
                            "Exit_Cond": [1], "I_Range": 12, "E_Range": 2}))


def test_hold_vs_ocv_without_limit_is_plain_ca_relative_to_the_initial_potential(
        lab: Lab) -> None:
    loads(lab, ConstantVoltage(voltage_V=0.01, duration_s=600.0, record_dt_s=1.0,
                               record_dI_A=1e-6, vs_ocv=True),
          ("ca4.ecc", {"Voltage_step": [0.01], "vs_initial": [True], "Duration_step": [600.0],
                       "Step_number": 0, "Record_every_dT": 1.0, "Record_every_dI": 1e-6,
                       "N_Cycles": 0, "I_Range": 12, "E_Range": 2}))


SCAN = {"N_Cycles": 0, "Begin_measuring_I": 0.5, "End_measuring_I": 1.0}


def test_lsv_is_vscan_from_open_circuit_with_the_rate_in_volts_per_second(lab: Lab) -> None:
    loads(lab, VoltageSweep(vertices_V=(5.0,), scan_rate_V_s=0.001, record_dt_s=0.5),
          ("vscan4.ecc", {"Voltage_step": [0.0, 5.0], "vs_initial": [True, False],
                          "Scan_Rate": [0.001, 0.001], "Scan_number": 0,
                          "Record_every_dE": 0.0005, **SCAN, "I_Range": 12, "E_Range": 2}),
          cell=blocking_cell())


def test_lsv_to_a_current_is_vscanlimit(lab: Lab) -> None:
    loads(lab, VoltageSweep(vertices_V=(5.0,), scan_rate_V_s=0.001, record_dt_s=0.5,
                            until_abs_current_A=1e-4, start_V=3.0),
          ("vscanlimit4.ecc", {"Voltage_step": [3.0, 5.0], "vs_initial": [False, False],
                               "Scan_Rate": [0.001, 0.001], "Scan_number": 0,
                               "Record_every_dE": 0.0005, **SCAN, "Test1_Config": [101, 101],
                               "Test1_Value": [1e-4, 1e-4], "Test2_Config": [97, 97],
                               "Test2_Value": [-1e-4, -1e-4], "Test3_Config": [0, 0],
                               "Test3_Value": [0.0, 0.0], "Exit_Cond": [1, 1], "I_Range": 12,
                               "E_Range": 2}),
          cell=blocking_cell())


def test_cv_is_vscan_through_every_vertex_of_every_cycle(lab: Lab) -> None:
    loads(lab, VoltageSweep(vertices_V=(4.5, 2.5), scan_rate_V_s=0.002, record_dt_s=0.5,
                            cycles=2),
          ("vscan4.ecc", {"Voltage_step": [0.0, 4.5, 2.5, 4.5, 2.5],
                          "vs_initial": [True, False, False, False, False],
                          "Scan_Rate": [0.002] * 5, "Scan_number": 3, "Record_every_dE": 0.001,
                          **SCAN, "I_Range": 12, "E_Range": 2}),
          cell=blocking_cell())


@pytest.mark.parametrize("technique", [
    Impedance(1e5, 1.0, 0.01, 10),                                   # no impedance board
    ConstantCurrent(current_A=0.2, duration_s=10.0, record_dt_s=1.0),  # beyond the 100 mA range
    VoltageSweep(vertices_V=(1.0, 0.0), scan_rate_V_s=0.01, record_dt_s=1.0, cycles=60),
])
def test_what_the_channel_cannot_run_is_refused_before_anything_is_sent(
        lab: Lab, technique: Technique) -> None:
    lab.instrument(max_i_range=9, zboard=False)
    vsp = lab.driver()
    with pytest.raises(CapabilityError):
        vsp.channel(0).start(technique)
    assert lab.eclib.loads == [] and lab.eclib.codes("BL_StartChannel") == []


def test_stop_always_calls_stop_channel(lab: Lab) -> None:
    lab.instrument()
    vsp = lab.driver()
    vsp.channel(0).stop()   # idle: stopped all the same
    vsp.channel(0).stop()
    assert lab.eclib.codes("BL_StopChannel") == [0, 0]


def test_decode_reads_time_words_start_time_and_the_wide_scan_layout() -> None:
    tb = 50e-6
    ticks = [5 * 2**32 + 7, 2**32 - 1]
    rows = [[t >> 32, t & 0xFFFFFFFF, *np.array([0.5, 1e-3, 3.25], np.float32).view(np.uint32),
             2] for t in ticks]
    from types import SimpleNamespace
    block = decode([w for row in rows for w in row],
                   SimpleNamespace(NbRows=2, NbCols=6, TechniqueID=124, ProcessIndex=0,
                                   TechniqueIndex=0, StartTime=100.0), tb)
    points = block.points()
    assert points.time_s == pytest.approx([100 + tb * ticks[0], 100 + tb * ticks[1]])
    assert points.voltage_V == pytest.approx([3.25, 3.25])
    assert points.current_A == pytest.approx([1e-3, 1e-3], rel=1e-6)   # singles


# -- (b) the buffers: easy-biologic's own parser and ours read the same numbers ------------------

def drain(device: Any) -> list[Any]:
    """Every (data, info, values) a channel holds, as easy-biologic's get_data returns them."""
    out = []
    while True:
        data, info, values = asyncio.run(device.get_data(0))
        if info.NbRows == 0:
            return out
        out.append((data, info, values))


SERIES = {"t_high": None, "t_low": None, "voltage": "Ewe", "current": "I", "cycle": "cycle"}
SPECTRUM = {"frequency": "freq", "abs_voltage": "abs_Ewe", "abs_current": "abs_I",
            "impedance_phase": "Phase_Zwe", "voltage": "Ewe", "current": "I", "time": "t"}


@pytest.mark.parametrize(("technique", "fields"), [
    (OpenCircuit(duration_s=2000.0, record_dt_s=1.0), "OCV"),         # 2001 rows: 7 buffers
    (ConstantCurrent(current_A=1e-3, duration_s=400.0, record_dt_s=1.0), "CP"),
    (ConstantVoltage(voltage_V=3.01, duration_s=400.0, record_dt_s=1.0), "CA"),
    (ConstantVoltage(voltage_V=3.01, duration_s=400.0, record_dt_s=1.0,
                     until_abs_current_A=1e-6), "CALIMIT"),
    (Impedance(f_start_Hz=1e5, f_end_Hz=0.01, amplitude_V=0.01, points_per_decade=12), "PEIS"),
    (Impedance(1e5, 0.1, 0.0, 10, galvanostatic=True, amplitude_A=1e-4), "GEIS"),
])
def test_easy_biologics_parser_and_the_drivers_decoder_agree_on_every_buffer(
        lab: Lab, technique: Technique, fields: str) -> None:
    from easy_biologic.lib import data_parser
    lab.instrument()
    device = lab.device()
    loads_ = plan(technique, range(5, 11))
    for k, load in enumerate(loads_):
        device.load_technique(0, load.name, dict(load.params), k, k == len(loads_) - 1)
    device.start_channel(0)
    lab.clock.advance(2500.0)
    buffers = drain(device)
    assert len(buffers) >= (7 if fields == "OCV" else 1)
    rows = 0
    for data, info, values in buffers:
        ours = decode(data, info, values.TimeBase).columns
        layout = getattr(data_parser.SP300_Fields, fields)
        theirs = data_parser.parse(data, info, fields=layout)
        assert len(theirs) == info.NbRows == len(ours["time_s"])
        rows += info.NbRows
        names = SPECTRUM if info.ProcessIndex == 1 else SERIES
        for field in theirs[0]._fields:
            if names.get(field) is None:
                continue
            column = ours["time_s" if field == "time" else names[field]]
            assert np.array_equal(column, [getattr(r, field) for r in theirs]), field
        if info.ProcessIndex == 0:
            times = [data_parser.calculate_time(r.t_high, r.t_low, info, values) for r in theirs]
            assert ours["time_s"] == pytest.approx(times, rel=1e-12, abs=1e-12)
    blocks = [decode(data, info, values.TimeBase) for data, info, values in buffers]
    spectrum = isinstance(technique, Impedance)
    points = concat([b.points() for b in blocks if b.is_spectrum == spectrum])
    if spectrum:
        assert len(points) == len(technique.frequencies_Hz())
        z = points.z_real_ohm + 1j * points.z_imag_ohm
        # the simulated channel's noise: 0.1 % on |Z|
        assert z == pytest.approx(ResistorCell().impedance(points.frequency_Hz, 25.0), rel=5e-3)
    else:
        assert rows == len(points) == (2001 if fields == "OCV" else 401)
        assert points.time_s == pytest.approx(np.arange(len(points)), abs=1e-4)


def test_easy_biologic_cannot_parse_cplimit_or_vscan_which_the_driver_decodes(lab: Lab) -> None:
    """easy-biologic 0.4's TechniqueId knows neither 155 (CPLIMIT) nor 124 (VSCAN): the
    driver's own decoder is the one that reads a limited charge or a sweep."""
    from easy_biologic.lib import data_parser
    lab.instrument()
    device = lab.device()
    load, = plan(ConstantCurrent(current_A=1e-3, duration_s=100.0, record_dt_s=10.0,
                                 until_voltage_V=4.2), range(5, 11))
    device.load_technique(0, load.name, dict(load.params))
    device.start_channel(0)
    lab.clock.advance(200.0)
    (data, info, values), = drain(device)
    with pytest.raises(ValueError, match="155 is not a valid TechniqueId"):
        data_parser.parse(data, info, fields=data_parser.SP300_Fields.CPLIMIT)
    points = decode(data, info, values.TimeBase).points()
    assert points.time_s == pytest.approx(np.arange(0, 101, 10.0), abs=1e-4)
    # the simulated channel's noise: 50 uV
    assert points.voltage_V == pytest.approx(3.0 + 1e-3 * points.time_s + 1e-2, abs=3e-4)


# -- (c) end to end: the driver, easy-biologic, the fake DLL, simulated cells ---------------------

def test_peis_spectrum_matches_the_cell_with_a_capacitive_arc_below_zero(lab: Lab) -> None:
    cell = ResistorCell(r_ohm=10.0)
    _, clock, vsp = bench(lab, cell)
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


def test_geis_spectrum_matches_the_cell(lab: Lab) -> None:
    cell = ResistorCell(r_ohm=10.0)
    _, clock, vsp = bench(lab, cell)
    ch = vsp.channel(0)
    ch.start(Impedance(1e5, 0.1, 0.0, 10, galvanostatic=True, amplitude_A=1e-4))
    clock.advance(1000)
    r = ch.poll()
    assert (r.state, len(r.points)) == (ChannelState.DONE, 61)
    p = r.points
    z = p.z_real_ohm + 1j * p.z_imag_ohm
    assert z == pytest.approx(cell.impedance(p.frequency_Hz, 25.0), rel=0.01)


def test_a_charge_ends_at_its_voltage_limit_in_firmware(lab: Lab) -> None:
    cell = ResistorCell(v0=3.0, k_V_per_C=1.0, r_ohm=10.0)
    _, clock, vsp = bench(lab, cell)
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
    assert lab.eclib.loads[-1].file == "cplimit4.ecc"


def test_stop_calls_stop_channel_and_the_channel_stops(lab: Lab) -> None:
    _, clock, vsp = bench(lab)
    ch = vsp.channel(0)
    ch.start(OpenCircuit(duration_s=3600.0, record_dt_s=10.0))
    clock.advance(100)
    ch.stop()
    assert lab.eclib.calls[-1].name == "BL_StopChannel"
    assert (ch.poll().state, ch.poll().end_reason) == (ChannelState.IDLE, "stopped")
    assert lab.device().channel_info(0).State == 0   # the instrument says so too
    ch.stop()
    assert lab.eclib.codes("BL_StopChannel") == [0, 0]


def test_capabilities_come_from_channel_info(lab: Lab) -> None:
    _, _, vsp = bench(lab, max_i_range=9, zboard=False)
    caps = vsp.channel(1).capabilities
    assert (caps.max_current_A, caps.eis_min_Hz) == (pytest.approx(0.1), None)
    assert "Impedance" not in caps.techniques
    lab.instrument(OTHER)
    full = lab.driver(OTHER)
    assert full.channel(0).capabilities.max_current_A == 0.5   # 1 A range, 500 mA amplifier
    with pytest.raises(CapabilityError, match="channels"):
        full.channel(2)


def test_a_long_step_counts_time_past_the_low_word(lab: Lab) -> None:
    _, clock, vsp = bench(lab)
    ch = vsp.channel(0)
    ch.start(ConstantCurrent(current_A=1e-6, duration_s=60 * 3600.0, record_dt_s=3600.0))
    clock.advance(61 * 3600.0)
    r = ch.poll()
    # 60 h in 21 us ticks is 2.4 * 2**32: t_high reaches 2
    assert (r.state, r.end_reason) == (ChannelState.DONE, "duration")
    assert r.points.time_s == pytest.approx(np.arange(61) * 3600.0, abs=1e-4)


def test_a_long_rest_is_one_step_across_the_chained_ocv4(lab: Lab) -> None:
    _, clock, vsp = bench(lab)
    ch = vsp.channel(0)
    ch.start(OpenCircuit(duration_s=30 * 3600.0, record_dt_s=3600.0))
    clock.advance(31 * 3600.0)
    r = ch.poll()
    assert (r.state, r.end_reason) == (ChannelState.DONE, "duration")
    assert r.points.time_s == pytest.approx(np.arange(31) * 3600.0, abs=1e-4)
    assert [(g.file, g.first, g.last) for g in lab.eclib.loads] == [
        ("ocv4.ecc", True, False), ("ocv4.ecc", False, False), ("ocv4.ecc", False, True)]


def test_a_steady_hold_is_ended_by_the_driver(lab: Lab) -> None:
    _, clock, vsp = bench(lab)
    ch = vsp.channel(0)
    ch.start(ConstantVoltage(voltage_V=3.5, duration_s=1000.0, record_dt_s=10.0,
                             steady_rel=0.01, steady_window_s=50.0))
    clock.advance(500)
    r = ch.poll()
    assert (r.state, r.end_reason) == (ChannelState.DONE, "steady")
    assert r.points.time_s[-1] == pytest.approx(50.0, abs=1e-4)
    assert lab.eclib.calls[-1].name == "BL_StopChannel"


def test_a_liquid_cells_short_is_ended_by_the_driver_where_the_firmware_sees_only_a_floor(
        lab: Lab) -> None:
    """The firmware tests |Ewe| against the absolute floor (5 mV) only; a liquid cell shorts to
    12 mV from 0.18 V, and the driver, applying the relative rule to the points it polls,
    stops the channel and ends the step "short"."""
    area = math.pi * 0.008**2
    cell = build_cell("symmetric_li", "LiPF6-EC-DEC-EMC", 25e-6, area)
    _, clock, vsp = bench(lab, cell)
    ch = vsp.channel(0)
    # just above the electrolyte's CCD of 3.0 mA/cm^2: the set value travels as a float32
    ch.start(ConstantCurrent(current_A=3.05e-3 * area * 1e4, duration_s=600.0, record_dt_s=5.0,
                             short_below_V=0.005, settle_s=60.0))
    clock.advance(700)
    r = ch.poll()
    assert (r.state, r.end_reason) == (ChannelState.DONE, "short")
    v = np.abs(r.points.voltage_V)
    assert v.min() > 0.005 and v.max() > 0.15
    assert r.points.time_s[-1] < 100.0
    assert lab.eclib.calls[-1].name == "BL_StopChannel"   # the driver, not the firmware


def test_lsv_on_a_blocking_cell_sweeps_to_its_vertex(lab: Lab) -> None:
    _, clock, vsp = bench(lab, blocking_cell())
    ch = vsp.channel(0)
    ch.start(VoltageSweep(vertices_V=(1.0,), scan_rate_V_s=0.01, record_dt_s=1.0))
    clock.advance(200)
    r = ch.poll()
    assert (r.state, r.end_reason) == (ChannelState.DONE, "completed")
    assert r.points.voltage_V[-1] == pytest.approx(1.0, abs=1e-3)
    assert r.points.time_s[-1] == pytest.approx(100.0, abs=1e-3)
    assert np.all(r.points.current_A[5:] > 0)   # charging the double layer upwards


def test_a_new_driver_reattaches_to_a_channel_still_running(lab: Lab) -> None:
    _, clock, first = bench(lab, ResistorCell(v0=3.0, k_V_per_C=1.0, r_ohm=10.0))
    technique = ConstantCurrent(current_A=0.01, duration_s=1000, record_dt_s=7,
                                until_voltage_V=3.6)
    first.channel(0).start(technique)
    clock.advance(20)
    assert list(first.channel(0).poll().points.time_s.round(3)) == [0, 7, 14]
    # the sequencer dies here; the instrument runs on, and connecting again (which loads the
    # firmware, without forcing it) leaves the running channel alone
    second = lab.driver()
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


def test_a_cell_beyond_the_control_range_is_a_compliance_fault(lab: Lab) -> None:
    """0.2 A through 100 Ohm needs 20 V: the channel overflows at its 10 V (Eoverflow, read
    from CurrentValues as easy-biologic declares it)."""
    _, clock, vsp = bench(lab, ResistorCell(v0=3.0, k_V_per_C=0.0, r_ohm=100.0))
    ch = vsp.channel(0)
    ch.start(ConstantCurrent(current_A=0.2, duration_s=100.0, record_dt_s=1.0))
    clock.advance(10)
    r = ch.poll()
    assert (r.state, r.end_reason) == (ChannelState.FAULT, "compliance")


def test_lost_points_fault_the_step_but_keep_what_arrived(lab: Lab) -> None:
    instrument, clock, vsp = bench(lab)
    ch = vsp.channel(0)
    ch.start(OpenCircuit(duration_s=100.0, record_dt_s=10.0))
    instrument.lose_points(0, 3)
    clock.advance(50)
    r = ch.poll()
    assert r.state is ChannelState.FAULT and "skipped 3" in (r.end_reason or "")
    assert list(r.points.time_s.round(3)) == [30, 40, 50]
    assert lab.eclib.calls[-1].name == "BL_StopChannel"


def test_lost_points_can_be_a_warning(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    instrument = lab.instrument()
    vsp = lab.driver(lost_points="warn")
    ch = vsp.channel(0)
    ch.start(OpenCircuit(duration_s=100.0, record_dt_s=10.0))
    instrument.lose_points(0, 2)
    lab.clock.advance(200)
    r = ch.poll()
    assert (r.state, r.detail) == (ChannelState.DONE, {"irq_skipped": 2.0})
    assert len(r.points) == 9 and "skipped 2" in caplog.text


# -- (d) EClib's "function in progress" -----------------------------------------------------------

def run(target: Any, *args: Any) -> tuple[threading.Thread, list[Any]]:
    """``target(*args)`` in a thread; its result or exception lands in the list."""
    out: list[Any] = []

    def body() -> None:
        try:
            out.append(target(*args))
        except Exception as exc:   # collected for the test's assertions
            out.append(exc)
    thread = threading.Thread(target=body)
    thread.start()
    return thread, out


def test_eclib_answers_function_in_progress_to_an_overlapping_call(lab: Lab) -> None:
    """What easy-biologic leaves to its callers: two threads calling at once."""
    lab.instrument()
    device = lab.device()
    with holding(lab.eclib, "BL_GetCurrentValues") as hold:
        thread, out = run(device.get_values, 0)
        assert hold.entered.wait(5)
        with pytest.raises(Exception, match=r"^ERR_GEN_FUNCTIONINPROGRESS \(-12\)") as raised:
            device.channel_info(0)
        assert type(raised.value).__name__ == "EcError"
    thread.join(5)
    assert out[0].Ewe == pytest.approx(3.0)
    assert lab.eclib.codes("BL_GetChannelInfos") == [-12]


def test_one_lock_for_the_process_keeps_two_instruments_out_of_each_others_calls(
        lab: Lab) -> None:
    """Two instruments, each polled from its own worker thread: the second call waits for the
    first to leave EClib instead of being refused with -12."""
    lab.instrument()
    lab.instrument(OTHER, cell=ResistorCell(v0=3.3))
    one, two = lab.driver(), lab.driver(OTHER)
    with holding(lab.eclib, "BL_GetCurrentValues") as hold:
        first, a = run(one.channel(0).read_voltage)
        assert hold.entered.wait(5)
        second, b = run(two.channel(0).read_voltage)
        second.join(0.2)
        assert second.is_alive() and b == []   # waiting for the lock, not refused by the DLL
    first.join(5)
    second.join(5)
    assert (a, b) == ([pytest.approx(3.0)], [pytest.approx(3.3)])
    assert lab.eclib.codes("BL_GetCurrentValues") == [0, 0]


def test_function_in_progress_from_another_caller_is_a_driver_error_on_a_live_link(
        lab: Lab) -> None:
    lab.instrument()
    vsp = lab.driver()
    lab.eclib.fail_next("BL_GetCurrentValues", -12)
    with pytest.raises(DriverError, match=r"get_values\(0\) failed:"
                       r" ERR_GEN_FUNCTIONINPROGRESS \(-12\)"):
        vsp.channel(0).read_voltage()
    assert vsp.channel(0).read_voltage() == pytest.approx(3.0)
    assert lab.eclib.codes("BL_Connect") == [0]   # not taken for a lost link


# -- (e) a lost link ------------------------------------------------------------------------------

def test_a_lost_link_is_a_transport_error_and_no_point_is_lost_when_it_is_back(
        lab: Lab) -> None:
    _, clock, vsp = bench(lab)
    ch = vsp.channel(0)
    ch.start(OpenCircuit(duration_s=3600.0, record_dt_s=10.0))
    clock.advance(100)
    before = ch.poll().points
    lab.eclib.cut_link(ADDRESS)
    clock.advance(100)
    with pytest.raises(TransportError, match=r"get_data\(0\) failed, the link is lost:"
                       r" ERR_COMM_COMMFAILED \(-200\)"):
        ch.poll()
    with pytest.raises(TransportError, match=r"is not connected: the link was lost during"
                       r" get_data\(0\), and connecting again failed:"
                       r" ERR_COMM_CONNECTIONFAILED \(-201\)"):
        ch.poll()
    lab.eclib.restore_link(ADDRESS)
    clock.advance(100)
    after = ch.poll()                  # through a new connection; the channel ran on
    assert after.state is ChannelState.RUNNING
    assert np.concatenate([before.time_s, after.points.time_s]) == pytest.approx(
        np.arange(0, 301, 10.0), abs=1e-4)
    assert lab.eclib.codes("BL_Connect") == [0, -201, -201, 0]
    assert lab.eclib.codes("BL_Disconnect")[0] == -200   # the dead connection, let go of
    ch.stop()
    assert lab.eclib.codes("BL_StopChannel") == [0]


def test_what_one_poll_drained_before_get_data_failed_comes_with_the_next(lab: Lab) -> None:
    _, clock, vsp = bench(lab)
    ch = vsp.channel(0)
    ch.start(OpenCircuit(duration_s=3600.0, record_dt_s=1.0))
    clock.advance(1000)               # 1001 rows: 333 a buffer
    lab.eclib.fail_next("BL_GetData", -200, skip=1)
    with pytest.raises(TransportError):
        ch.poll()                      # after one buffer came
    r = ch.poll()
    assert r.points.time_s == pytest.approx(np.arange(1001.0), abs=1e-4)
    assert lab.eclib.codes("BL_GetData")[:3] == [0, -200, 0]


def test_a_stop_on_a_dead_link_fails_loudly_and_the_next_connection_stops(lab: Lab) -> None:
    _, _, vsp = bench(lab)
    ch = vsp.channel(0)
    ch.start(OpenCircuit(duration_s=3600.0, record_dt_s=10.0))
    lab.eclib.cut_link(ADDRESS)
    with pytest.raises(TransportError, match=r"stop_channel\(0\) failed, the link is lost"):
        ch.stop()
    lab.eclib.restore_link(ADDRESS)
    ch.stop()
    assert lab.eclib.codes("BL_StopChannel") == [-200, 0]
    assert lab.device().channel_info(0).State == 0


def test_easy_biologic_sees_a_dead_link_through_bl_testconnection(lab: Lab) -> None:
    lab.instrument()
    device = lab.device()
    assert device.is_connected()
    lab.eclib.cut_link(ADDRESS)
    assert not device.is_connected() and device.idn is None   # and forgets the connection
    assert lab.eclib.codes("BL_TestConnection") == [0, -200]


# -- (f) the simulated instrument refuses what the instrument refuses ----------------------------

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


# -- the fake DLL keeps to EClib's prototypes ------------------------------------------------------

def connected_fake() -> tuple[FakeEClib, int]:
    eclib = FakeEClib({ADDRESS: SimBiologicInstrument(ManualClock(), channels=1)})
    idn, info = ctypes.c_int32(), DeviceInfo()
    address = ctypes.create_string_buffer(ADDRESS.encode())
    assert eclib["BL_Connect"](ctypes.byref(address), ctypes.c_uint8(5), ctypes.byref(idn),
                               ctypes.byref(info)) == 0
    assert (info.DeviceCode, info.NumberOfChannels) == (20, 1)
    return eclib, idn.value


def test_the_fake_writes_only_into_memory_the_size_of_the_structure_eclib_fills() -> None:
    eclib, idn = connected_fake()

    class Short(ctypes.Structure):   # a ChannelInfo declared without its two RESERVED words
        _fields_ = [(f"f{k}", ctypes.c_int32) for k in range(17)]

    with pytest.raises(TypeError, match=r"Short is 68 bytes; EClib writes a ChannelInfo of 76"):
        eclib["BL_GetChannelInfos"](idn, ctypes.c_uint8(0), ctypes.byref(Short()))
    with pytest.raises(TypeError, match=r"expected a pointer \(byref\) to ChannelInfo"):
        eclib["BL_GetChannelInfos"](idn, ctypes.c_uint8(0), ChannelInfo())
    info = ChannelInfo()
    assert eclib["BL_GetChannelInfos"](idn, ctypes.c_uint8(0), ctypes.byref(info)) == 0
    assert (info.MaxIRange, info.MinIRange, info.FirmwareCode) == (10, 5, 0)   # no firmware yet
    assert eclib["BL_GetChannelInfos"](idn, ctypes.c_uint8(1), ctypes.byref(info)) == -3
    with pytest.raises(AttributeError, match="function 'BL_GetMessage' not found"):
        eclib["BL_GetMessage"]


def test_the_fake_encodes_parameters_as_eclib_does() -> None:
    eclib, _ = connected_fake()
    param = EccParam()
    assert eclib["BL_DefineSglParameter"](b"Rest_time_T", ctypes.c_float(0.1),
                                          ctypes.c_int32(2), ctypes.byref(param)) == 0
    assert (param.ParamStr, param.ParamType, param.ParamIndex) == (b"Rest_time_T", 2, 2)
    assert param.ParamVal == np.array([0.1], np.float32).view(np.int32)[0]   # the single's bits
    assert eclib["BL_DefineBoolParameter"](b"x" * 64, ctypes.c_bool(True), 0,
                                           ctypes.byref(param)) == -4   # a label too long
    value = ctypes.c_float()
    assert eclib["BL_ConvertNumericIntoSingle"](ctypes.c_uint32(0x40490FDB),
                                                ctypes.byref(value)) == 0
    assert value.value == pytest.approx(math.pi, rel=1e-7)


# -- (g) on Linux, easy-biologic as it is ------------------------------------------------------

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

