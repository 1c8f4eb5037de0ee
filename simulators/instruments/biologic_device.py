"""A stand-in for easy-biologic's ``BiologicDevice`` whose channels are simulated cells.

:class:`SimBiologicInstrument` is the instrument on the bench: each channel is a
:class:`~simulators.instruments.channel.SimChannel` with a cell, and runs what was started on it
by the clock, whoever is connected, as the real one runs techniques in firmware; so a new driver
can re-attach to a channel an earlier one started. :class:`BiologicDeviceStandIn` is one
connection to it with BiologicDevice's method names, signatures and data shapes: ctypes
``DeviceInfo``, ``ChannelInfo``, ``CurrentValues`` and ``DataInfo``; ``get_data`` (async, as
easy-biologic's) returning ``TechData(data, info, values)`` with a 1000-word buffer (333 OCV
rows, 71 spectrum rows per call), ``t_high``/``t_low`` time words counted in the technique's
timebase, IEEE-754 singles, and PEIS/GEIS as process 0 (the DC hold) then process 1.

It refuses what the instrument refuses (the EC-Lab Development Package guide, section 7): a
technique file the VMP-300 family does not have (easy-biologic's file-name rule applied), a
parameter name the technique does not know or a required one missing, a value whose Python type
selects the wrong DLL type, a duration beyond timebase * 2**31, an auto or out-of-channel
I_Range where the technique needs a fixed one, a GEIS amplitude above 50 % of its range.
A load the instrument would take but our driver never sends (several currents in one CP, a
linear EIS sweep, N_Cycles, ...) is refused as :class:`NotSimulatedError`. Everything accepted
is turned back into our technique objects and run: a mapping that survives the round trip is
the mapping the driver meant.

It answers at once, so a driver over it under the sequencer's trio clock should have
``blocking_io = False``: trio's clock can be read only from the trio thread, not from the
worker threads blocking drivers are called in.
"""

from __future__ import annotations

import ctypes
import math
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drivers.biologic.vsp300 import CONTROL_RANGE_V, rated_capabilities
from drivers.clock import Clock
from drivers.errors import CapabilityError, DriverError
from drivers.points import ChannelState, Points
from drivers.techniques import (
    ConstantCurrent,
    ConstantVoltage,
    Impedance,
    OpenCircuit,
    Technique,
    VoltageSweep,
)
from simulators.cells.base import CellModel
from simulators.instruments.channel import SimChannel

_INT, _SGL = ctypes.c_int32, ctypes.c_float


def _fields(kind: Any, *names: str) -> tuple[tuple[str, Any], ...]:
    return tuple((name, kind) for name in names)


class DeviceInfo(ctypes.Structure):
    _fields_ = _fields(_INT, "DeviceCode", "RAMSize", "CPU", "NumberOfChannels",
                       "NumberOfSlots", "FirmwareVersion", "FirmwareDate_yyyy", "FirmwareDate_mm",
                       "FirmwareDate_dd", "HTdisplayOn", "NbOfConnectedPC")


class ChannelInfo(ctypes.Structure):
    _fields_ = _fields(_INT, "Channel", "BoardVersion", "BoardSerialNumber", "FirmwareCode",
                       "FirmwareVersion", "XilinxVersion", "AmpCode", "NbAmps", "Lcboard",
                       "Zboard", "RESERVED", "RESERVED_2", "MemSize", "MemFilled", "State",
                       "MaxIRange", "MinIRange", "MaxBandwidth", "NbOfTechniques")


class CurrentValues(ctypes.Structure):
    _fields_ = (("State", _INT), ("MemFilled", _INT), *_fields(
        _SGL, "TimeBase", "Ewe", "EweRangeMin", "EweRangeMax", "Ece", "EceRangeMin",
        "EceRangeMax"), ("Eoverflow", _INT), ("I", _SGL), ("IRange", _INT), ("Ioverflow", _INT),
        *_fields(_SGL, "ElapsedTime", "Freq", "Rcomp"), *_fields(_INT, "Saturation", "OptErr",
                                                                  "OptPos"))


class DataInfo(ctypes.Structure):
    _fields_ = (*_fields(_INT, "IRQskipped", "NbRows", "NbCols", "TechniqueIndex", "TechniqueID",
                         "ProcessIndex", "loop"), ("StartTime", ctypes.c_double),
                ("MuxPad", _INT))


TechData = namedtuple("TechData", ["data", "info", "values"])
TechParams = namedtuple("TechParams", ["technique", "parameters"])
BUFFER_WORDS = 1000
STOP, RUN = 0, 1
VMP300_FAMILY = frozenset({12, 16, 20, 21, 27, 32})   # DeviceInfo.DeviceCode


EC_ERRORS = {-4: "ERR_GEN_INVALIDPARAMETERS", -6: "ERR_GEN_FUNCTIONFAILED",
             -12: "ERR_GEN_FUNCTIONINPROGRESS", -13: "ERR_GEN_CHANNEL_RUNNING",
             -400: "ERR_TECH_ECCFILENOTEXISTS"}


class EcError(Exception):
    """What easy-biologic raises for a negative EClib return code (``value``)."""

    def __init__(self, value: int, detail: str = "") -> None:
        self.value = value
        super().__init__(f"{EC_ERRORS[value]} ({value})" + (f": {detail}" if detail else ""))


class NotSimulatedError(Exception):
    """A load the instrument would accept but this stand-in does not simulate."""


# -- what each technique takes (guide section 7, VMP-300 column) ----------------------------------

@dataclass(frozen=True)
class _Spec:
    technique_id: int
    timebase_s: float
    params: dict[str, tuple[type, bool]]   # name -> (Python type of its DLL type, per step)
    steps_from: str | None = None          # "Step_number" (steps - 1), "Scan_number" (scans - 1)
    most_steps: int = 1
    fixed_i_range: bool = False
    optional: frozenset[str] = frozenset()


def _p(kind: type, names: str, per_step: bool = False) -> dict[str, tuple[type, bool]]:
    return {name: (kind, per_step) for name in names.split()}


_HARDWARE = _p(int, "I_Range E_Range Bandwidth") | _p(float, "tb")
_TESTS = _p(int, "Test1_Config Test2_Config Test3_Config Exit_Cond", True) \
    | _p(float, "Test1_Value Test2_Value Test3_Value", True)
_CP = _p(float, "Current_step Duration_step", True) | _p(bool, "vs_initial", True) \
    | _p(int, "Step_number N_Cycles") | _p(float, "Record_every_dT Record_every_dE")
_CA = _p(float, "Voltage_step Duration_step", True) | _p(bool, "vs_initial", True) \
    | _p(int, "Step_number N_Cycles") | _p(float, "Record_every_dT Record_every_dI")
_EIS = _p(bool, "vs_initial vs_final Correction sweep") | _p(int, "Step_number Frequency_number"
                                                             " Average_N_times") \
    | _p(float, "Duration_step Record_every_dT Initial_frequency Final_frequency Wait_for_steady")
_SCAN = _p(float, "Voltage_step Scan_Rate", True) | _p(bool, "vs_initial", True) \
    | _p(int, "Scan_number N_Cycles") | _p(float, "Record_every_dE Begin_measuring_I"
                                                 " End_measuring_I")
SPECS: dict[str, _Spec] = {
    "ocv4.ecc": _Spec(100, 20e-6, _p(float, "Rest_time_T Record_every_dE Record_every_dT")),
    "cp4.ecc": _Spec(102, 21e-6, _CP, "Step_number", 99, fixed_i_range=True),
    "ca4.ecc": _Spec(101, 21e-6, _CA, "Step_number", 99),
    "cplimit4.ecc": _Spec(155, 34e-6, _CP | _TESTS, "Step_number", 20, fixed_i_range=True),
    "calimit4.ecc": _Spec(157, 34e-6, _CA | _TESTS, "Step_number", 20),
    "peis4.ecc": _Spec(104, 24e-6, _EIS | _p(float, "Initial_Voltage_step Final_Voltage_step"
                                             " Record_every_dI Amplitude_Voltage"),
                       optional=frozenset({"sweep"})),
    "geis4.ecc": _Spec(107, 24e-6, _EIS | _p(float, "Initial_Current_step Final_Current_step"
                                             " Record_every_dE Amplitude_Current"),
                       fixed_i_range=True, optional=frozenset({"sweep"})),
    "vscan4.ecc": _Spec(124, 50e-6, _SCAN, "Scan_number", 100),
    "vscanlimit4.ecc": _Spec(158, 60e-6, _SCAN | _TESTS, "Scan_number", 20),
}
#: Files the VMP-300 family has that this stand-in does not run.
NOT_SIMULATED_FILES = frozenset({"cv4.ecc", "loop4.ecc", "iscan4.ecc", "iscanlimit4.ecc",
                                 "seisp4.ecc", "seisg4.ecc", "mp4.ecc", "pzir4.ecc", "gzir4.ecc"})
_DURATIONS = ("Rest_time_T", "Duration_step")
#: The instrument receives values as singles (7 significant digits): a current at a range's
#: full scale may arrive a few parts in 1e8 above it.
SINGLE_TOLERANCE = 1 + 1e-6


def technique_file(name: str, device_code: int) -> str:
    """easy-biologic 0.4's rule: on the VMP-300 family a "4" is appended unless the name ends
    in "4", then ".ecc" unless it ends so; lower case."""
    if device_code in VMP300_FAMILY and not name.endswith("4"):
        name += "4"
    if not name.endswith(".ecc"):
        name += ".ecc"
    return name.lower()


def i_range_full_scale_A(index: int) -> float:
    return 100e-12 * 10.0**index


def check_params(file: str, params: dict[str, Any], min_i_range: int,
                 max_i_range: int) -> dict[str, Any]:
    """The parameters as the instrument takes them (per-step ones as lists), or EcError."""
    spec = SPECS[file]
    known = spec.params | _HARDWARE

    def bad(detail: str) -> EcError:
        return EcError(-4, f"{file}: {detail}")

    unknown = sorted(set(params) - set(known))
    if unknown:
        raise bad(f"unknown parameter(s) {unknown}")
    missing = sorted(set(spec.params) - set(params) - spec.optional)
    if missing:
        raise bad(f"missing parameter(s) {missing}")
    out: dict[str, Any] = {}
    for name, value in params.items():
        kind, per_step = known[name]
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not per_step:
            raise bad(f"{name} takes one value, got a list")
        for v in values:
            if type(v) is not kind:
                raise bad(f"{name} must be a {kind.__name__} (easy-biologic picks the DLL type"
                          f" from the Python type), got {type(v).__name__} {v!r}")
        out[name] = values if per_step else value
    if spec.steps_from is not None:
        n = out[spec.steps_from] + (1 if spec.steps_from == "Step_number" else 2)
        if not 1 <= n <= spec.most_steps:
            raise bad(f"{spec.steps_from} {out[spec.steps_from]} gives {n} steps; 1 to"
                      f" {spec.most_steps} fit")
        for name, value in out.items():
            if known[name][1] and len(value) != n:
                raise bad(f"{name} has {len(value)} entries for {n} steps")
    _check_values(out, spec, bad)
    _check_i_range(out, spec, min_i_range, max_i_range, bad)
    return out


def _check_values(p: dict[str, Any], spec: _Spec, bad: Callable[[str], EcError]) -> None:
    longest = spec.timebase_s * 2**31
    for name, value in p.items():
        values = value if isinstance(value, list) else [value]
        if name.startswith("Record_every") and min(values) < 0:
            raise bad(f"{name} must be >= 0, got {value}")
        if name in _DURATIONS and not all(0 <= v <= longest for v in values):
            raise bad(f"{name} {value} must be within 0..{longest:.0f} s (timebase * 2**31)")
    for name in ("Frequency_number", "Average_N_times"):
        if name in p and p[name] < 1:
            raise bad(f"{name} must be >= 1, got {p[name]}")
    for name in ("Begin_measuring_I", "End_measuring_I"):
        if name in p and not 0 <= p[name] <= 1:
            raise bad(f"{name} must be within 0..1, got {p[name]}")
    if "Scan_Rate" in p and min(p["Scan_Rate"][1:]) <= 0:
        raise bad(f"Scan_Rate must be > 0 (the first entry is ignored), got {p['Scan_Rate']}")
    if "Exit_Cond" in p and not set(p["Exit_Cond"]) <= {0, 1, 2}:
        raise bad(f"Exit_Cond must be 0, 1 or 2, got {p['Exit_Cond']}")
    for step, configs in enumerate(zip(*(p.get(f"Test{k}_Config", []) for k in (1, 2, 3)),
                                       strict=True)):
        tests = [decode_test(c) for c in configs]
        if any(c and t is None for c, t in zip(configs, tests, strict=True)):
            raise bad(f"step {step}: test configuration {configs} is not a valid word")
        active = [t is not None for t in tests]
        if (active[1] and not active[0]) or (active[2] and not all(active[:2])):
            raise bad(f"step {step}: a test is active while an earlier one is not ({configs})")
    if p.get("E_Range", 0) not in (0, 1, 2, 3) or p.get("Bandwidth", 1) not in range(1, 10):
        raise bad(f"E_Range {p.get('E_Range')} / Bandwidth {p.get('Bandwidth')} out of range")


def _check_i_range(p: dict[str, Any], spec: _Spec, lowest: int, highest: int,
                   bad: Callable[[str], EcError]) -> None:
    i_range = p.get("I_Range")
    if i_range is None:
        if spec.fixed_i_range:
            raise bad("I_Range is required: auto-range is not allowed")
        return
    if i_range == 12:
        if spec.fixed_i_range:
            raise bad("I_Range 12 (auto) is not allowed: this technique needs a fixed range")
        return
    if not lowest <= i_range <= highest:
        raise bad(f"I_Range {i_range} is not one of this channel's ranges {lowest}..{highest}")
    full = i_range_full_scale_A(i_range)
    amplitude = p.get("Amplitude_Current")
    if amplitude is not None and amplitude > 0.5 * full * SINGLE_TOLERANCE:
        raise bad(f"Amplitude_Current {amplitude:g} A exceeds 50 % of I_Range {i_range}"
                  f" ({full:g} A)")
    steps = p.get("Current_step", [])
    if steps and max(abs(i) for i in steps) > full * SINGLE_TOLERANCE:
        raise bad(f"Current_step {steps} A is beyond I_Range {i_range} ({full:g} A)")


def decode_test(config: int) -> tuple[str, str, bool] | None:
    """(variable, comparison, AND) of an active test word, None if inactive or malformed."""
    variable, compare = {0: "E", 1: "AUX1", 2: "AUX2", 3: "I"}.get(config >> 5), (config >> 2) & 7
    if not config & 1 or variable is None or compare > 1:
        return None
    return variable, ">=" if compare else "<=", bool(config & 2)


# -- loaded parameters back to our techniques -------------------------------------------------

def to_technique(loads: list[tuple[str, dict[str, Any]]]) -> tuple[Technique, np.ndarray]:
    """Our technique for what is loaded, and when each chained technique starts (s)."""
    if len(loads) > 1:
        if {f for f, _ in loads} != {"ocv4.ecc"}:
            raise NotSimulatedError("only ocv4.ecc chains are simulated")
        rests = [p["Rest_time_T"] for _, p in loads]
        if len({(p["Record_every_dT"], p["Record_every_dE"]) for _, p in loads}) > 1:
            raise NotSimulatedError("chained ocv4 techniques with different record criteria")
        first = _ocv(loads[0][1])
        return OpenCircuit(sum(rests), first.record_dt_s, first.record_dV_V), \
            np.concatenate(([0.0], np.cumsum(rests)[:-1]))
    file, p = loads[0]
    if p.get("N_Cycles", 0) != 0:
        raise NotSimulatedError(f"{file}: N_Cycles > 0 (repeating the technique)")
    return _CONVERTERS[file](p), np.zeros(1)


def _ocv(p: dict[str, Any]) -> OpenCircuit:
    return OpenCircuit(p["Rest_time_T"], _record_dt(p), p["Record_every_dE"] or None)


def _cp(p: dict[str, Any]) -> ConstantCurrent:
    current = _same(p["Current_step"], "Current_step")
    if any(p["vs_initial"]):
        raise NotSimulatedError("currents relative to the initial one")
    until: set[float | None] = set()
    short: dict[int, float] = {}
    for step, tests in enumerate(_steps_tests(p)):
        found: float | None = None
        for variable, compare, logic_and, value in tests:
            if variable != "E" or logic_and or current == 0:
                raise NotSimulatedError(f"CP test {variable} {compare} {value} (AND: {logic_and})"
                                        f" at {current} A")
            if (compare == ">=") == (current > 0):
                found = value
            else:
                short[step] = value if current > 0 else -value
        until.add(found)
    first_short = min(short, default=len(p["Duration_step"]))
    if len(until) > 1 or set(short) != set(range(first_short, len(p["Duration_step"]))) \
            or len(set(short.values())) > 1:
        raise NotSimulatedError(f"CP limits differ between steps: {until}, short {short}")
    extra: dict[str, Any] = {}
    if short:   # a firmware limit is absolute: no relative short rule in the instrument
        extra = {"short_below_V": short[first_short],
                 "settle_s": sum(p["Duration_step"][:first_short]),
                 "short_collapse_fraction": None}
    return ConstantCurrent(current, sum(p["Duration_step"]), _record_dt(p),
                           until.pop() if until else None, p["Record_every_dE"] or None, **extra)


def _ca(p: dict[str, Any]) -> ConstantVoltage:
    until: float | None = None
    tests = _steps_tests(p)
    if any(tests):
        until = _abs_current_limit(tests, (("I", "<=", True), ("I", ">=", True)), "CA")
    return ConstantVoltage(_same(p["Voltage_step"], "Voltage_step"), sum(p["Duration_step"]),
                           _record_dt(p), until, p["Record_every_dI"] or None,
                           vs_ocv=_same(p["vs_initial"], "vs_initial"))


def _eis(p: dict[str, Any]) -> Impedance:
    if p.get("sweep"):
        raise NotSimulatedError("linear frequency spacing (sweep=True)")
    if p["Duration_step"] != 0:
        raise NotSimulatedError("a DC hold before the impedance sweep")
    f0, f1, n = p["Initial_frequency"], p["Final_frequency"], p["Frequency_number"]
    decades = abs(math.log10(f0 / f1)) if f0 > 0 and f1 > 0 and f0 != f1 else 0.0
    per_decade = round((n - 1) / decades) if decades else 0
    galvanostatic = "Amplitude_Current" in p
    technique = Impedance(f0, f1, p.get("Amplitude_Voltage", 0.0), max(per_decade, 1),
                          average=p["Average_N_times"], galvanostatic=galvanostatic,
                          amplitude_A=p.get("Amplitude_Current", 0.0),
                          bias_A=p.get("Initial_Current_step", 0.0))
    if not decades or len(technique.frequencies_Hz()) != n:
        raise NotSimulatedError(f"Frequency_number {n} is not N*decades+1 for a whole N"
                                f" ({f0:g} to {f1:g} Hz)")
    if not galvanostatic and (not p["vs_initial"] or p["Initial_Voltage_step"] != 0):
        raise NotSimulatedError("PEIS away from open circuit (0 V vs. initial)")
    if galvanostatic and p["vs_initial"]:
        raise NotSimulatedError("GEIS bias relative to the initial current")
    return technique


def _scan(p: dict[str, Any]) -> VoltageSweep:
    vertices, relative = p["Voltage_step"], p["vs_initial"]
    if any(relative[1:]) or (relative[0] and vertices[0] != 0):
        raise NotSimulatedError("vertices relative to the initial potential (other than a"
                                " start at 0 V vs. initial)")
    rate = _same(p["Scan_Rate"][1:], "Scan_Rate")
    if p["Record_every_dE"] <= 0:
        raise NotSimulatedError("a scan that records on nothing (Record_every_dE 0)")
    until: float | None = None
    tests = _steps_tests(p)
    if any(tests):
        until = _abs_current_limit(tests, (("I", ">=", False), ("I", "<=", False)), "VSCAN")
    return VoltageSweep(tuple(vertices[1:]), rate, p["Record_every_dE"] / rate,
                        until_abs_current_A=until,
                        start_V=None if relative[0] else vertices[0])


_CONVERTERS: dict[str, Callable[[dict[str, Any]], Technique]] = {
    "ocv4.ecc": _ocv, "cp4.ecc": _cp, "cplimit4.ecc": _cp, "ca4.ecc": _ca, "calimit4.ecc": _ca,
    "peis4.ecc": _eis, "geis4.ecc": _eis, "vscan4.ecc": _scan, "vscanlimit4.ecc": _scan}


def _steps_tests(p: dict[str, Any]) -> list[list[tuple[str, str, bool, float]]]:
    """Per step, its active tests as (variable, comparison, AND, value)."""
    if "Test1_Config" not in p:
        return []
    out = []
    for step in range(len(p["Test1_Config"])):
        tests = []
        for k in (1, 2, 3):
            test = decode_test(p[f"Test{k}_Config"][step])
            if test is not None:
                tests.append((*test, p[f"Test{k}_Value"][step]))
        out.append(tests)
    return out


def _abs_current_limit(tests: list[list[tuple[str, str, bool, float]]],
                       shape: tuple[tuple[str, str, bool], ...], what: str) -> float:
    """The limit of a |I| test written as a pair of tests on I at +limit and -limit, the same
    on every step."""
    shapes = {tuple((v, c, a) for v, c, a, _ in step) for step in tests}
    if shapes != {shape}:
        raise NotSimulatedError(f"{what} tests other than the |I| pair {shape}: {tests}")
    limits = {step[0][3] for step in tests} | {-step[1][3] for step in tests}
    if len(limits) != 1:
        raise NotSimulatedError(f"{what} |I| tests at differing limits: {tests}")
    return limits.pop()


def _same(values: list[Any], name: str) -> Any:
    if len(set(values)) != 1:
        raise NotSimulatedError(f"{name} differs between steps: {values}")
    return values[0]


def _record_dt(p: dict[str, Any]) -> float:
    if p["Record_every_dT"] <= 0:
        raise NotSimulatedError("recording without a time criterion (Record_every_dT 0)")
    return float(p["Record_every_dT"])


# -- the instrument and its connections ------------------------------------------------------

@dataclass
class _Block:
    index: int           # TechniqueIndex
    process: int
    start_s: float       # DataInfo.StartTime
    rows: np.ndarray     # (n, NbCols) uint32


@dataclass
class _Bay:
    """One channel of the instrument."""

    sim: SimChannel
    cell: CellModel | None = None
    temperature: Callable[[np.ndarray], np.ndarray] | None = None
    loads: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    complete: bool = False
    running: bool = False
    file: str = ""
    technique: Technique | None = None
    starts: np.ndarray = field(default_factory=lambda: np.zeros(1))
    t_start: float = 0.0
    t_seen: float = 0.0
    last: tuple[float, float, float] | None = None   # V, I, frequency of the last point
    pending: list[_Block] = field(default_factory=list)
    overflow: tuple[int, int] = (0, 0)               # Eoverflow, Ioverflow
    to_lose: int = 0
    skipped: int = 0


class SimBiologicInstrument:
    """A VMP-300-family instrument with simulated cells on its channels (the VSP-300's limits
    by default: 1 A top range driving +-500 mA, 10 uA bottom range, impedance boards).

    ``device`` is a ``device_factory`` for the driver; ``call_latency_s`` makes every call take
    that long in real time, so calls from two threads overlap as EClib's would (-12).
    """

    def __init__(self, clock: Clock, channels: int = 6, *, seed: int = 0,
                 max_i_range: int = 10, min_i_range: int = 5, zboard: bool = True,
                 device_code: int = 20, max_output_A: float = 0.5,
                 call_latency_s: float = 0.0) -> None:
        self.clock, self.device_code = clock, device_code
        self.min_i_range, self.max_i_range, self.zboard = min_i_range, max_i_range, zboard
        self.call_latency_s = call_latency_s
        caps = rated_capabilities(max_output_A, max_i_range, zboard)   # the driver's ratings
        self._bays = [_Bay(SimChannel(f"biologic/ch{k}", clock, caps, np.random.default_rng(
            np.random.SeedSequence(seed, spawn_key=(k,))))) for k in range(channels)]
        self.calls: list[tuple[str, int | None]] = []   # (method, channel), every connection
        self._busy = threading.Lock()
        self.connections = 0

    def device(self, address: str, timeout: float = 5,
               populate_info: bool = True) -> BiologicDeviceStandIn:
        """A new connection, as ``BiologicDevice(address, timeout, populate_info)``."""
        return BiologicDeviceStandIn(address, timeout, populate_info, instrument=self)

    def place(self, channel: int, cell: CellModel,
              temperature_C: float | Callable[[np.ndarray], np.ndarray] = 25.0) -> None:
        """Wire a cell to a channel, at a fixed temperature or one varying with time."""
        env = temperature_C if callable(temperature_C) \
            else (lambda t, c=float(temperature_C): np.full(np.shape(t), c))
        bay = self._bays[channel]
        bay.cell, bay.temperature = cell, env
        bay.sim.connect(cell, env)

    def lose_points(self, channel: int, n: int) -> None:
        """The next ``n`` points are lost, and reported in DataInfo.IRQskipped."""
        self._bays[channel].to_lose += n

    @property
    def channel_count(self) -> int:
        return len(self._bays)

    @contextmanager
    def dll_call(self, method: str, channel: int | None) -> Iterator[None]:
        """One EClib call: refused with -12 while another is in progress."""
        if not self._busy.acquire(blocking=False):
            raise EcError(-12, f"{method} while another call is in progress")
        try:
            self.calls.append((method, channel))
            if self.call_latency_s:
                time.sleep(self.call_latency_s)
            yield
        finally:
            self._busy.release()

    def bay(self, channel: int) -> _Bay:
        if not 0 <= channel < len(self._bays):
            raise EcError(-4, f"channel {channel} is not plugged")
        return self._bays[channel]

    # -- what the channels do -----------------------------------------------------------------

    def load(self, channel: int, file: str, params: dict[str, Any], index: int,
             last: bool) -> None:
        bay = self.bay(channel)
        if bay.running:
            raise EcError(-13, f"channel {channel} is running")
        if file not in SPECS:
            if file in NOT_SIMULATED_FILES:
                raise NotSimulatedError(f"{file} is not simulated")
            raise EcError(-400, f"no technique file {file!r} for this instrument")
        checked = check_params(file, params, self.min_i_range, self.max_i_range)
        if index == 0:
            bay.loads, bay.complete = [], False
        if index != len(bay.loads) or bay.complete:
            raise EcError(-4, f"technique index {index} after {len(bay.loads)} loaded")
        bay.loads.append((file, checked))
        bay.complete = last

    def start(self, channel: int) -> None:
        bay = self.bay(channel)
        if bay.running:
            raise EcError(-13, f"channel {channel} is running")
        if not bay.loads or not bay.complete:
            raise EcError(-6, f"channel {channel}: no technique loaded (last=True)")
        technique, starts = to_technique(bay.loads)
        try:
            bay.sim.start(technique)
        except CapabilityError as exc:
            raise EcError(-4, str(exc)) from None
        except DriverError as exc:   # no cell on the channel, ...
            raise NotSimulatedError(str(exc)) from None
        now = self.clock.now()
        bay.file, bay.technique, bay.starts = bay.loads[0][0], technique, starts
        bay.running, bay.t_start, bay.t_seen, bay.last = True, now, 0.0, None
        bay.pending, bay.overflow, bay.skipped = [], (0, 0), 0
        if isinstance(technique, Impedance):   # process 0: the DC hold of 0 s, one row
            v = self._ocv(bay)
            self._append(bay, 0, 0, 0.0, self._series_words(bay, np.zeros(1), [v, 0.0]))

    def stop(self, channel: int) -> None:
        bay = self.bay(channel)
        self.pump(bay)
        if bay.running:
            bay.sim.stop()
            bay.running, bay.t_seen = False, self.clock.now() - bay.t_start

    def pump(self, bay: _Bay) -> None:
        """Move what the channel recorded since the last call into its buffer."""
        if not bay.running:
            return
        readout = bay.sim.poll()
        points = readout.points
        if len(points):
            bay.t_seen = float(points.time_s[-1])
            lost = min(bay.to_lose, len(points))
            bay.to_lose, bay.skipped = bay.to_lose - lost, bay.skipped + lost
            points = points.select(np.arange(lost, len(points)))
        if len(points):
            self._record(bay, points)
        if readout.state in (ChannelState.DONE, ChannelState.FAULT):
            bay.running = False
            if readout.end_reason == "compliance":
                high_v = bay.last is not None and abs(bay.last[0]) >= CONTROL_RANGE_V
                bay.overflow = (1, 0) if high_v else (0, 1)

    def _record(self, bay: _Bay, points: Points) -> None:
        assert bay.technique is not None
        if points.frequency_Hz is not None:
            assert points.z_real_ohm is not None and points.z_imag_ohm is not None
            z = points.z_real_ohm + 1j * points.z_imag_ohm
            assert isinstance(bay.technique, Impedance)
            if bay.technique.galvanostatic:
                abs_i = np.full(len(z), bay.technique.amplitude_A)
                abs_v = abs_i * np.abs(z)
            else:
                abs_v = np.full(len(z), bay.technique.amplitude_V)
                abs_i = abs_v / np.abs(z)
            zero = np.zeros(len(z))
            singles = [points.frequency_Hz, abs_v, abs_i, np.angle(z), points.voltage_V,
                       points.current_A, zero, zero, zero, zero, zero, zero, zero,
                       points.time_s]
            self._append(bay, 0, 1, 0.0, np.column_stack([_f32(c) for c in singles]))
            bay.last = (float(points.voltage_V[-1]), float(points.current_A[-1]),
                        float(points.frequency_Hz[-1]))
            return
        index = np.searchsorted(bay.starts, points.time_s, "right") - 1
        for k in np.unique(index):
            sel = index == k
            t = points.time_s[sel] - bay.starts[k]
            columns = [points.voltage_V[sel]]
            if not isinstance(bay.technique, OpenCircuit):
                columns.append(points.current_A[sel])
                if isinstance(bay.technique, VoltageSweep):   # <I> before Ewe
                    columns.reverse()
            self._append(bay, int(k), 0, float(bay.starts[k]),
                         self._series_words(bay, t, columns, cycle=len(columns) == 2))
        bay.last = (float(points.voltage_V[-1]), float(points.current_A[-1]), 0.0)

    def _series_words(self, bay: _Bay, t: np.ndarray, columns: list[Any],
                      cycle: bool = False) -> np.ndarray:
        ticks = np.rint(t / self.timebase(bay)).astype(np.uint64)
        words = [(ticks >> np.uint64(32)).astype(np.uint32),
                 (ticks & np.uint64(0xFFFFFFFF)).astype(np.uint32),
                 *(_f32(np.broadcast_to(np.asarray(c, dtype=float), t.shape)) for c in columns)]
        if cycle:
            words.append(np.zeros(len(t), dtype=np.uint32))
        return np.column_stack(words)

    def _append(self, bay: _Bay, index: int, process: int, start_s: float,
                words: np.ndarray) -> None:
        tail = bay.pending[-1] if bay.pending else None
        if tail is not None and (tail.index, tail.process) == (index, process):
            tail.rows = np.vstack([tail.rows, words])
        else:
            bay.pending.append(_Block(index, process, start_s, words))

    def channel_info(self, channel: int) -> ChannelInfo:
        """The channel as BL_GetChannelInfos describes it: its ranges, board and state."""
        bay = self.bay(channel)
        self.pump(bay)
        return ChannelInfo(Channel=channel, Zboard=int(self.zboard),
                           State=RUN if bay.running else STOP, MaxIRange=self.max_i_range,
                           MinIRange=self.min_i_range, MaxBandwidth=9,
                           NbOfTechniques=len(bay.loads),
                           MemFilled=4 * sum(b.rows.size for b in bay.pending))

    def timebase(self, bay: _Bay) -> float:
        """As the instrument reports it: a single."""
        return float(np.float32(SPECS[bay.file].timebase_s)) if bay.file else 0.0

    def _ocv(self, bay: _Bay) -> float:
        if bay.cell is None or bay.temperature is None:
            return 0.0
        now = np.array([self.clock.now()])
        return float(bay.cell.ocv_V(float(bay.temperature(now)[0])))

    def values(self, bay: _Bay) -> CurrentValues:
        v = CurrentValues()
        v.State = RUN if bay.running else STOP
        v.MemFilled = 4 * sum(b.rows.size for b in bay.pending)
        v.TimeBase = self.timebase(bay)
        v.Ewe = bay.last[0] if bay.running and bay.last else self._ocv(bay)
        v.I = bay.last[1] if bay.running and bay.last else 0.0
        v.Freq = bay.last[2] if bay.last else 0.0
        v.EweRangeMin, v.EweRangeMax = -CONTROL_RANGE_V, CONTROL_RANGE_V
        v.ElapsedTime = self.clock.now() - bay.t_start if bay.running else bay.t_seen
        v.Eoverflow, v.Ioverflow = bay.overflow
        return v

    def take(self, bay: _Bay) -> tuple[Any, DataInfo]:
        """One buffer's worth of the oldest block, as BL_GetData fills it."""
        data, info = (ctypes.c_uint32 * BUFFER_WORDS)(), DataInfo()
        info.IRQskipped, bay.skipped = bay.skipped, 0
        info.TechniqueID = SPECS[bay.file].technique_id if bay.file else 0
        if bay.pending:
            block = bay.pending[0]
            rows = block.rows[: BUFFER_WORDS // block.rows.shape[1]]
            block.rows = block.rows[len(rows):]
            if not len(block.rows):
                bay.pending.pop(0)
            flat = np.ascontiguousarray(rows, dtype=np.uint32).ravel()
            ctypes.memmove(data, flat.ctypes.data, flat.nbytes)
            info.NbRows, info.NbCols = rows.shape
            info.TechniqueIndex, info.ProcessIndex = block.index, block.process
            info.StartTime = block.start_s
        return data, info


class BiologicDeviceStandIn:
    """One connection to a :class:`SimBiologicInstrument`, shaped as easy-biologic 0.4's
    ``BiologicDevice`` (the parts a low-level client uses)."""

    def __init__(self, address: str, timeout: float = 5, populate_info: bool = True, *,
                 instrument: SimBiologicInstrument) -> None:
        self.address, self.timeout = address, timeout
        self._instrument = instrument
        self.idn: int | None = None
        self.info: DeviceInfo | None = None
        self.plugged: list[bool] | None = None
        self.techniques: list[list[TechParams]] | None = None
        if populate_info:
            self.connect()
            self.disconnect()

    def connect(self, bin_file: str | None = None, xlx_file: str | None = None) -> None:
        if self.idn is not None:
            raise RuntimeError("Device already connected.")
        inst = self._instrument
        with inst.dll_call("connect", None):
            inst.connections += 1
            n = inst.channel_count
            self.idn = inst.connections
            self.info = DeviceInfo(DeviceCode=inst.device_code, NumberOfChannels=n,
                                   NumberOfSlots=16, NbOfConnectedPC=inst.connections)
            self.plugged = [k < n for k in range(16)]
            self.techniques = [[] for _ in self.plugged]

    def disconnect(self) -> None:
        self._connected()
        with self._instrument.dll_call("disconnect", None):
            self.idn = self.plugged = self.techniques = None

    def is_connected(self) -> bool:
        return self.idn is not None

    def channel_info(self, ch: int) -> ChannelInfo:
        inst = self._connected()
        with inst.dll_call("channel_info", ch):
            return inst.channel_info(ch)

    def load_technique(self, ch: int, technique: str, params: dict[str, Any], index: int = 0,
                       last: bool = True, types: Any = None) -> None:
        inst = self._connected()
        if types is not None:
            raise NotSimulatedError("parameter casting with types=")
        with inst.dll_call("load_technique", ch):
            assert self.info is not None and self.techniques is not None
            file = technique_file(technique, self.info.DeviceCode)
            inst.load(ch, file, params, index, last)
            if index == 0:
                self.techniques[ch] = []
            self.techniques[ch].append(TechParams(file, params))

    def load_techniques(self, ch: int, techniques: list[str], parameters: list[dict[str, Any]],
                        types: Any = None) -> None:
        for index, (name, params) in enumerate(zip(techniques, parameters, strict=True)):
            self.load_technique(ch, name, params, index, index == len(techniques) - 1, types)

    def start_channel(self, ch: int) -> None:
        inst = self._connected()
        with inst.dll_call("start_channel", ch):
            inst.start(ch)

    def stop_channel(self, ch: int) -> None:
        inst = self._connected()
        with inst.dll_call("stop_channel", ch):
            inst.stop(ch)

    def get_values(self, ch: int) -> CurrentValues:
        inst = self._connected()
        with inst.dll_call("get_values", ch):
            bay = inst.bay(ch)
            inst.pump(bay)
            return inst.values(bay)

    async def get_data(self, ch: int) -> TechData:
        inst = self._connected()
        with inst.dll_call("get_data", ch):
            bay = inst.bay(ch)
            inst.pump(bay)
            data, info = inst.take(bay)
            return TechData(data, info, inst.values(bay))

    def _connected(self) -> SimBiologicInstrument:
        if self.idn is None:
            raise RuntimeError("Device is not connected.")
        return self._instrument


def _f32(values: Any) -> np.ndarray:
    """Singles as the words the buffer holds."""
    return np.asarray(values, dtype=np.float32).view(np.uint32)
