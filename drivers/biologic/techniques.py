"""Our techniques as EC-Lab techniques: the ``*4.ecc`` file and the parameter dict to load.

Facts from the EC-Lab Development Package user's guide (section 7, VMP-300 family column) and
easy-biologic 0.4.0. The rules every dict follows:

- names are EC-Lab's, case-sensitive (the DLL refuses a name it does not know);
- each value has the Python type of its DLL parameter: easy-biologic picks
  ``BL_DefineSglParameter`` / ``Int`` / ``Bool`` from ``type(value)``, so a single is a
  ``float`` (never an ``int`` or a numpy scalar), an integer an ``int``, a boolean a ``bool``;
- units are SI: V, A, s, Hz, and V/s for scan rates; 0 switches a record criterion off;
- per-step parameters are lists, one entry per step (easy-biologic sends entry k as index k).

One technique is loaded per step, at index 0. The exception is a rest longer than ocv4 can count
(``Rest_time_T`` is at most timebase * 2**31, 11.9 h): a chain of ocv4 techniques. Only
techniques without per-step lists are chained, because easy-biologic 0.4 offsets the indices of
a chained technique's list entries by the technique's index.

cv4.ecc is not used. Its five fixed potentials [Ei, E1, E2, Ei, Ef] revisit Ei between cycles,
and the guide gives its Scan_Rate in mV/s while easy-biologic (after hardware tests, its issue
#5) and BioLogic's own examples pass V/s. vscan4.ecc takes our sweep path vertex by vertex, with
a scan rate documented in V/s (guide 7.7.2), so an LSV and a CV are one mapping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from drivers.errors import CapabilityError
from drivers.techniques import (
    ConstantCurrent,
    ConstantVoltage,
    Impedance,
    OpenCircuit,
    Technique,
    VoltageSweep,
)

ParamValue = bool | int | float | list[bool] | list[int] | list[float]

OCV, CA, CP = "ocv4.ecc", "ca4.ecc", "cp4.ecc"
CALIMIT, CPLIMIT = "calimit4.ecc", "cplimit4.ecc"
PEIS, GEIS = "peis4.ecc", "geis4.ecc"
VSCAN, VSCANLIMIT = "vscan4.ecc", "vscanlimit4.ecc"

#: Timebase of each technique on the VMP-300 family (guide, section 7). A step or rest lasts at
#: most timebase * 2**31: ocv4 11.9 h, cp4/ca4 12.5 h, cplimit4/calimit4 20.3 h.
TIMEBASE_S = {OCV: 20e-6, CA: 21e-6, CP: 21e-6, CALIMIT: 34e-6, CPLIMIT: 34e-6,
              PEIS: 24e-6, GEIS: 24e-6, VSCAN: 50e-6, VSCANLIMIT: 60e-6}
#: Most steps (or vertices, for the scans) one technique holds.
MAX_STEPS = {CA: 99, CP: 99, CALIMIT: 20, CPLIMIT: 20, VSCAN: 100, VSCANLIMIT: 20}
#: Most ocv4 techniques chained for one long rest (238 h); a guess that stays clear of
#: ERR_TECH_MEMFULL, not a documented limit.
MAX_OCV_CHAIN = 20

IRANGE_AUTO = 12        # the I_Range constant for auto-ranging
ERANGE_10V = 2          # +-10 V: the channel's whole control window, as its capabilities say
EXIT_NEXT_TECHNIQUE = 1  # Exit_Cond when a limit test is met: leave the technique
#: The part of each potential step over which the scans average the current (1 = 100 %).
MEASURE_I_FROM, MEASURE_I_TO = 0.5, 1.0


def i_range_full_scale_A(index: int) -> float:
    """I_Range 0 is 100 pA, each next range ten times more, 10 is 1 A."""
    return 100e-12 * 10.0**index


def fixed_i_range(peak_A: float, allowed: range) -> int:
    """The most sensitive range that holds ``peak_A`` (techniques that forbid auto-range)."""
    for index in allowed:
        if peak_A <= i_range_full_scale_A(index) * (1 + 1e-9):
            return index
    raise CapabilityError(f"current {peak_A:.4g} A is beyond the channel's largest I range"
                          f" ({i_range_full_scale_A(allowed[-1]):g} A)")


def limit_test(variable: Literal["E", "I"], compare: Literal["<=", ">="],
               logic_and: bool = False) -> int:
    """A limit test's configuration word: bit 0 active, bit 1 logic (1 = AND), bits 2-4 the
    comparison (1 = ">="), bits 5 and up the variable (E = 0, I = 3)."""
    return 1 | (int(logic_and) << 1) | ((compare == ">=") << 2) | ({"E": 0, "I": 3}[variable] << 5)


Test = tuple[int, float]   # (configuration word, value)


@dataclass(frozen=True)
class EccLoad:
    """One technique as ``BiologicDevice.load_technique`` takes it."""

    file: str
    params: dict[str, ParamValue]

    @property
    def name(self) -> str:
        """What to pass to easy-biologic: the file name without ``.ecc``. Its
        ``technique_file`` appends "4" to any name not ending in "4" on the VMP-300 family, so
        "ocv4.ecc" itself would become "ocv4.ecc4.ecc"."""
        return self.file.removesuffix(".ecc")


def plan(technique: Technique, i_ranges: range) -> tuple[EccLoad, ...]:
    """The techniques to load, in order, for one of ours; :class:`CapabilityError` for what
    the VMP-300 family cannot hold. ``i_ranges`` are the channel's I_Range indices."""
    if isinstance(technique, OpenCircuit):
        return open_circuit(technique)
    if isinstance(technique, Impedance):
        return (impedance(technique, i_ranges),)
    if isinstance(technique, ConstantCurrent):
        return (constant_current(technique, i_ranges),)
    if isinstance(technique, ConstantVoltage):
        return (constant_voltage(technique),)
    if isinstance(technique, VoltageSweep):
        return (voltage_sweep(technique),)
    raise CapabilityError(f"the VSP-300 driver cannot run {type(technique).__name__}")


def open_circuit(t: OpenCircuit) -> tuple[EccLoad, ...]:
    rests = _split(t.duration_s, OCV, MAX_OCV_CHAIN, "rest")
    return tuple(EccLoad(OCV, {"Rest_time_T": rest, "Record_every_dE": _off(t.record_dV_V),
                               "Record_every_dT": float(t.record_dt_s), "E_Range": ERANGE_10V})
                 for rest in rests)


def impedance(t: Impedance, i_ranges: range) -> EccLoad:
    """PEIS at open circuit (0 V vs. the initial potential) or GEIS around ``bias_A``. The
    sweep is logarithmic, EC-Lab's default, so ``sweep`` is left out (easy-biologic 0.4's PEIS
    program crashes on it). Frequency_number counts every frequency: N per decade over D
    decades is N*D + 1, the count of ``t.frequencies_Hz()``."""
    common: dict[str, ParamValue] = {
        "Duration_step": 0.0, "Step_number": 0, "Record_every_dT": 0.0,
        "Initial_frequency": float(t.f_start_Hz), "Final_frequency": float(t.f_end_Hz),
        "Frequency_number": len(t.frequencies_Hz()), "Average_N_times": int(t.average),
        "Correction": False, "Wait_for_steady": 0.0, "E_Range": ERANGE_10V,
    }
    if not t.galvanostatic:
        return EccLoad(PEIS, {
            "vs_initial": True, "vs_final": True, "Initial_Voltage_step": 0.0,
            "Final_Voltage_step": 0.0, "Record_every_dI": 0.0,
            "Amplitude_Voltage": float(t.amplitude_V), "I_Range": IRANGE_AUTO, **common})
    # GEIS needs a fixed I range whose half holds the amplitude, and which holds the bias too
    peak = max(2 * t.amplitude_A, t.amplitude_A + abs(t.bias_A))
    return EccLoad(GEIS, {
        "vs_initial": False, "vs_final": False, "Initial_Current_step": float(t.bias_A),
        "Final_Current_step": float(t.bias_A), "Record_every_dE": 0.0,
        "Amplitude_Current": float(t.amplitude_A), "I_Range": fixed_i_range(peak, i_ranges),
        **common})


def constant_current(t: ConstantCurrent, i_ranges: range) -> EccLoad:
    """CP, or CPLIMIT when the firmware must watch the voltage. The limit is a test on Ewe in
    the direction the current drives it (">=" charging, "<=" discharging); a short is |Ewe|
    falling below ``short_below_V``, watched only after ``settle_s``, so a CPLIMIT with a short
    test has a first step of ``settle_s`` without it. Both tests leave the technique."""
    i_range = fixed_i_range(abs(t.current_A), i_ranges)   # CP forbids auto-range
    charging = t.current_A > 0
    limit: list[Test] = []
    if t.until_voltage_V is not None and t.current_A != 0:
        limit.append((limit_test("E", ">=" if charging else "<="), float(t.until_voltage_V)))
    phases: list[tuple[float, list[Test]]] = [(t.duration_s, limit)]
    if t.short_below_V is not None and t.current_A != 0 and t.settle_s < t.duration_s:
        short = (limit_test("E", "<=" if charging else ">="),
                 float(t.short_below_V if charging else -t.short_below_V))
        settle = max(t.settle_s, 0.0)
        phases = [(settle, limit), (t.duration_s - settle, [*limit, short])] if settle > 0 \
            else [(t.duration_s, [*limit, short])]
    tested = any(tests for _, tests in phases)
    file = CPLIMIT if tested else CP
    steps = [(d, tests) for duration, tests in phases
             for d in _split(duration, file, MAX_STEPS[file], "step")]
    if len(steps) > MAX_STEPS[file]:
        raise CapabilityError(f"{t.duration_s:g} s of constant current needs {len(steps)}"
                              f" {file} steps; it holds {MAX_STEPS[file]}")
    n = len(steps)
    params: dict[str, ParamValue] = {
        "Current_step": [float(t.current_A)] * n, "vs_initial": [False] * n,
        "Duration_step": [d for d, _ in steps], "Step_number": n - 1,
        "Record_every_dT": float(t.record_dt_s), "Record_every_dE": _off(t.record_dV_V),
        "N_Cycles": 0,
    }
    if tested:
        params.update(_tests([tests for _, tests in steps]))
    params.update(I_Range=i_range, E_Range=ERANGE_10V)
    return EccLoad(file, params)


def constant_voltage(t: ConstantVoltage) -> EccLoad:
    """CA, or CALIMIT when the hold ends at a small current: |I| <= limit is the pair of tests
    I <= limit AND I >= -limit, so the hold needs no guess of the current's sign. A steady
    state (``steady_rel``) is not a firmware test: the driver watches it while polling."""
    file = CA if t.until_abs_current_A is None else CALIMIT
    durations = _split(t.duration_s, file, MAX_STEPS[file], "step")
    n = len(durations)
    params: dict[str, ParamValue] = {
        "Voltage_step": [float(t.voltage_V)] * n, "vs_initial": [bool(t.vs_ocv)] * n,
        "Duration_step": durations, "Step_number": n - 1,
        "Record_every_dT": float(t.record_dt_s), "Record_every_dI": _off(t.record_dI_A),
        "N_Cycles": 0,
    }
    if t.until_abs_current_A is not None:
        limit = float(t.until_abs_current_A)
        params.update(_tests([[(limit_test("I", "<=", logic_and=True), limit),
                               (limit_test("I", ">=", logic_and=True), -limit)]] * n))
    params.update(I_Range=IRANGE_AUTO, E_Range=ERANGE_10V)
    return EccLoad(file, params)


def voltage_sweep(t: VoltageSweep) -> EccLoad:
    """VSCAN through our path, start -> v1 -> ... -> vn (-> v1 -> ... -> vn per further
    cycle), or VSCANLIMIT when |I| reaching a limit ends it (I >= limit OR I <= -limit). The
    start is 0 V vs. the initial potential (open circuit) unless ``start_V`` is given.
    Scan_Rate is in V/s (guide 7.7.2: "scan rate (V/s) from previous vertex potential"; the
    first entry is ignored). The scans record on dE, so record_dt_s becomes rate * dt."""
    path = list(t.vertices_V)
    if len(path) > 1:
        path += list(t.vertices_V) * (t.cycles - 1)
    file = VSCAN if t.until_abs_current_A is None else VSCANLIMIT
    n = len(path) + 1
    if n > MAX_STEPS[file]:
        raise CapabilityError(f"a sweep through {n} potentials does not fit {file} (at most"
                              f" {MAX_STEPS[file]}); split it into several sweeps")
    from_ocv = t.start_V is None
    rate = float(t.scan_rate_V_s)
    params: dict[str, ParamValue] = {
        "Voltage_step": [0.0 if t.start_V is None else float(t.start_V)]
        + [float(v) for v in path],
        "vs_initial": [from_ocv] + [False] * len(path), "Scan_Rate": [rate] * n,
        "Scan_number": n - 2, "Record_every_dE": rate * float(t.record_dt_s), "N_Cycles": 0,
        "Begin_measuring_I": MEASURE_I_FROM, "End_measuring_I": MEASURE_I_TO,
    }
    if t.until_abs_current_A is not None:
        limit = float(t.until_abs_current_A)
        params.update(_tests([[(limit_test("I", ">="), limit),
                               (limit_test("I", "<="), -limit)]] * n))
    params.update(I_Range=IRANGE_AUTO, E_Range=ERANGE_10V)
    return EccLoad(file, params)


def _tests(per_step: list[list[Test]]) -> dict[str, ParamValue]:
    """Test1..3 configurations and values and the exit condition, one entry per step; unused
    tests are 0 (inactive). A step without tests needs none to leave."""
    out: dict[str, ParamValue] = {}
    for k in range(3):
        out[f"Test{k + 1}_Config"] = [tests[k][0] if k < len(tests) else 0
                                      for tests in per_step]
        out[f"Test{k + 1}_Value"] = [tests[k][1] if k < len(tests) else 0.0
                                     for tests in per_step]
    out["Exit_Cond"] = [EXIT_NEXT_TECHNIQUE] * len(per_step)
    return out


def _split(duration_s: float, file: str, most: int, what: str) -> list[float]:
    """Equal parts no longer than the technique's timer holds (timebase * 2**31)."""
    longest = TIMEBASE_S[file] * 2**31
    n = max(1, math.ceil(float(duration_s) / longest))
    if n > most:
        raise CapabilityError(f"{duration_s:g} s needs {n} {file} {what}s of at most"
                              f" {longest:.0f} s; at most {most} fit")
    return [float(duration_s) / n] * n


def _off(value: float | None) -> float:
    """A record criterion: None is 0.0, which EC-Lab reads as off."""
    return 0.0 if value is None else float(value)
