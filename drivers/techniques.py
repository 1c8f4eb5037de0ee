"""What a driver can be asked to run, in the instrument's terms: SI floats, signed currents.

Drivers never see protocol files; the sequencer turns protocol steps into these. Every
time-series technique carries a hard time limit (``duration_s``) so no step runs unbounded.

Every technique also says what it will command (:func:`commanded`): the voltages it sets or
stops at, the voltages it reaches relative to the cell's open-circuit voltage, and the currents
it drives. Pre-flight checks these against a channel before anything is sent, so an LSV to 15 V
on a +-10 V channel is refused when the plan is made, not hours into the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EIS_PERIODS = 2.0
EIS_MIN_POINT_S = 0.25
EIS_SETTLE_S = 0.1
#: A short circuit (see :mod:`drivers.short_circuit`): |V| below this fraction of the largest
#: |V| the step has shown. A liquid cell's 0.18 V falls to ~0.012 V (7 %), a solid one's 0.4 V
#: to a few mV; a plateau that drifts, or a nucleation peak that relaxes, stays far above 20 %.
SHORT_COLLAPSE_FRACTION = 0.2


@dataclass(frozen=True)
class OpenCircuit:
    duration_s: float
    record_dt_s: float
    record_dV_V: float | None = None   # also record when V moved this much (EC-Lab's dE)


@dataclass(frozen=True)
class Impedance:
    """Impedance swept from ``f_start_Hz`` to ``f_end_Hz``: potentiostatic (PEIS, amplitude in
    V around open circuit) or galvanostatic (GEIS, amplitude in A around ``bias_A``)."""

    f_start_Hz: float
    f_end_Hz: float
    amplitude_V: float
    points_per_decade: int
    average: int = 1
    galvanostatic: bool = False
    amplitude_A: float = 0.0
    bias_A: float = 0.0

    def point_durations_s(self) -> np.ndarray:
        """Time each frequency takes: ``EIS_PERIODS`` periods averaged ``average`` times, at
        least ``EIS_MIN_POINT_S``, plus settling (an EC-Lab-like sweep; 3 MHz-0.1 Hz at 10
        points per decade takes about 1.5 min)."""
        f = self.frequencies_Hz()
        return self.average * np.maximum(EIS_PERIODS / f, EIS_MIN_POINT_S) + EIS_SETTLE_S

    def frequencies_Hz(self) -> np.ndarray:
        """Log-spaced, ends included: N points per decade give N*decades+1 points (as EC-Lab)."""
        decades = abs(math.log10(self.f_start_Hz / self.f_end_Hz))
        n = max(2, round(self.points_per_decade * decades) + 1)
        return np.logspace(math.log10(self.f_start_Hz), math.log10(self.f_end_Hz), n)


@dataclass(frozen=True)
class ConstantCurrent:
    """Galvanostatic; positive current charges. Ends at ``until_voltage_V`` (crossed upwards when
    charging, downwards when discharging) or after ``duration_s``."""

    current_A: float
    duration_s: float
    record_dt_s: float
    until_voltage_V: float | None = None
    record_dV_V: float | None = None
    #: a short circuit ends the technique ("short"): with ``short_below_V`` given, |V| below it
    #: or below ``short_collapse_fraction`` of the step's peak |V|, after ``settle_s``
    #: (:mod:`drivers.short_circuit`; None: the absolute floor alone)
    short_below_V: float | None = None
    settle_s: float = 60.0
    short_collapse_fraction: float | None = SHORT_COLLAPSE_FRACTION


@dataclass(frozen=True)
class ConstantVoltage:
    """Potentiostatic hold; ends when |I| <= ``until_abs_current_A`` or after ``duration_s``."""

    voltage_V: float
    duration_s: float
    record_dt_s: float
    until_abs_current_A: float | None = None
    record_dI_A: float | None = None
    #: steady state: |I| changed by less than ``steady_rel`` (a fraction) over ``steady_window_s``
    steady_rel: float | None = None
    steady_window_s: float | None = None
    #: the voltage is relative to the open-circuit voltage measured at the start
    vs_ocv: bool = False


@dataclass(frozen=True)
class VoltageSweep:
    """Linear sweep through ``vertices_V`` at ``scan_rate_V_s`` (LSV: one vertex; CV: several,
    repeated ``cycles`` times), starting from open circuit. Ends early when |I| reaches
    ``until_abs_current_A``."""

    vertices_V: tuple[float, ...]
    scan_rate_V_s: float
    record_dt_s: float
    cycles: int = 1
    until_abs_current_A: float | None = None
    start_V: float | None = None   # None: from the open-circuit voltage


Technique = OpenCircuit | Impedance | ConstantCurrent | ConstantVoltage | VoltageSweep


@dataclass(frozen=True)
class Commanded:
    """The extremes a technique commands, each with a name for messages.

    ``voltages_V``: absolute voltages it sets or stops at (a hold, a vertex, a cut-off).
    ``from_ocv_V``: voltages relative to the cell's open-circuit voltage at the start (0: the
    cell's own voltage, as a rest or a sweep from open circuit sees it; +-amplitude for PEIS).
    ``currents_A``: signed currents it drives, or must reach to end (a sweep's current limit).
    """

    voltages_V: tuple[tuple[str, float], ...] = ()
    from_ocv_V: tuple[tuple[str, float], ...] = ()
    currents_A: tuple[tuple[str, float], ...] = ()


def commanded(technique: Technique) -> Commanded:
    """What ``technique`` will command; TypeError for a technique this function does not know,
    so a new technique cannot pass pre-flight unchecked."""
    match technique:
        case OpenCircuit():
            return Commanded(from_ocv_V=(("open-circuit voltage", 0.0),),
                             currents_A=(("current", 0.0),))
        case Impedance(galvanostatic=True):
            bias, amplitude = technique.bias_A, technique.amplitude_A
            return Commanded(from_ocv_V=(("open-circuit voltage", 0.0),),
                             currents_A=(("GEIS bias - amplitude", bias - amplitude),
                                         ("GEIS bias + amplitude", bias + amplitude)))
        case Impedance():
            return Commanded(from_ocv_V=(("PEIS amplitude", -technique.amplitude_V),
                                         ("PEIS amplitude", technique.amplitude_V)))
        case ConstantCurrent():
            until = technique.until_voltage_V
            return Commanded(voltages_V=(("until_voltage", until),) if until is not None else (),
                             currents_A=(("current", technique.current_A),))
        case ConstantVoltage(vs_ocv=True):
            return Commanded(from_ocv_V=(("voltage vs open circuit", technique.voltage_V),))
        case ConstantVoltage():
            return Commanded(voltages_V=(("voltage", technique.voltage_V),))
        case VoltageSweep():
            many = len(technique.vertices_V) > 1
            vertices = tuple((f"vertices[{k}]" if many else "vertex", v)
                             for k, v in enumerate(technique.vertices_V))
            limit = technique.until_abs_current_A
            currents = (("current limit", limit),) if limit is not None else ()
            if technique.start_V is None:
                return Commanded(voltages_V=vertices, currents_A=currents,
                                 from_ocv_V=(("start at open circuit", 0.0),))
            return Commanded(voltages_V=(("start", technique.start_V), *vertices),
                             currents_A=currents)
        case _:
            raise TypeError(f"{type(technique).__name__} does not say what it commands: add it"
                            " to drivers.techniques.commanded")
