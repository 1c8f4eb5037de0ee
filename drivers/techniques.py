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
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # numpy only where a spectrum's points are worked out: not to plan a run
    import numpy as np

EIS_PERIODS = 2.0
EIS_MIN_POINT_S = 0.25
EIS_SETTLE_S = 0.1
#: A short circuit (see :mod:`drivers.short_circuit`): |V| below this fraction of the largest
#: |V| the step has shown. A liquid cell's 0.18 V falls to ~0.012 V (7 %), a solid one's 0.4 V
#: to a few mV; a plateau that drifts, or a nucleation peak that relaxes, stays far above 20 %.
SHORT_COLLAPSE_FRACTION = 0.2


#: Every end condition a step may give, by the end reason it records.
END_CONDITIONS = ("charge", "soc", "step_time", "dV_dt", "dI_dt", "temperature_above",
                  "temperature_below")


@dataclass(frozen=True)
class EndConditions:
    """Conditions that end a time-series technique besides its own limits, as cycler firmware
    offers them (each None: not watched). The end reason names the condition that ended it:

    ``charge``: |charge passed in the step| reached ``charge_Ah``; ``soc``: the same, with the
    charge given as a share of the cell's capacity (``soc_charge_Ah``); ``step_time``: the step
    ran ``step_time_s``; ``dV_dt`` / ``dI_dt``: |dV/dt| or |dI/dt| fell to the value (a
    relaxation or a hold that has settled), watched after ``slope_window_s``;
    ``temperature_above`` / ``temperature_below``: the cell's temperature crossed the value.
    """

    charge_Ah: float | None = None
    soc_charge_Ah: float | None = None
    step_time_s: float | None = None
    dV_dt_V_s: float | None = None
    dI_dt_A_s: float | None = None
    temperature_above_C: float | None = None
    temperature_below_C: float | None = None
    #: the slopes are taken over this window (s), and not before it has passed
    slope_window_s: float = 10.0

    def names(self) -> tuple[str, ...]:
        """The end reasons these conditions can give."""
        pairs = (("charge", self.charge_Ah), ("soc", self.soc_charge_Ah),
                 ("step_time", self.step_time_s), ("dV_dt", self.dV_dt_V_s),
                 ("dI_dt", self.dI_dt_A_s), ("temperature_above", self.temperature_above_C),
                 ("temperature_below", self.temperature_below_C))
        return tuple(name for name, value in pairs if value is not None)


@dataclass(frozen=True)
class OpenCircuit:
    duration_s: float
    record_dt_s: float
    record_dV_V: float | None = None   # also record when V moved this much (EC-Lab's dE)
    ends: EndConditions | None = None


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
        import numpy as np

        f = self.frequencies_Hz()
        return self.average * np.maximum(EIS_PERIODS / f, EIS_MIN_POINT_S) + EIS_SETTLE_S

    def frequencies_Hz(self) -> np.ndarray:
        """Log-spaced, ends included: N points per decade give N*decades+1 points (as EC-Lab)."""
        import numpy as np

        return np.logspace(math.log10(self.f_start_Hz), math.log10(self.f_end_Hz),
                           self.frequency_count())

    def sweep_duration_s(self) -> float:
        """The whole sweep's time: :meth:`point_durations_s` summed (equal to rounding),
        worked out without numpy, for the plan's estimate of every spectrum."""
        n = self.frequency_count()
        start, end = math.log10(self.f_start_Hz), math.log10(self.f_end_Hz)
        step = (end - start) / (n - 1)
        frequencies = [10.0 ** (start + k * step) for k in range(n - 1)] + [10.0 ** end]
        return math.fsum(self.average * max(EIS_PERIODS / f, EIS_MIN_POINT_S) + EIS_SETTLE_S
                         for f in frequencies)

    def frequency_count(self) -> int:
        """How many frequencies the sweep measures (without numpy: the plan bounds a step's
        points with it)."""
        decades = abs(math.log10(self.f_start_Hz / self.f_end_Hz))
        return max(2, round(self.points_per_decade * decades) + 1)


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
    ends: EndConditions | None = None


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
    ends: EndConditions | None = None


@dataclass(frozen=True)
class ConstantPower:
    """Constant power; positive power charges (I = P / V, as the sign of a current). Ends at
    ``until_voltage_V`` (crossed upwards when charging, downwards when discharging) or after
    ``duration_s``. ``peak_current_A``: the largest |I| it can draw, P over the lowest voltage
    the cell may reach during the step (what pre-flight checks against the channel)."""

    power_W: float
    duration_s: float
    record_dt_s: float
    peak_current_A: float
    until_voltage_V: float | None = None
    record_dV_V: float | None = None
    ends: EndConditions | None = None


@dataclass(frozen=True)
class ConstantResistance:
    """A constant load: the cell discharges through ``resistance_ohm`` (I = -V / R). Ends when
    the voltage falls to ``until_voltage_V`` or after ``duration_s``. ``peak_current_A``: the
    highest voltage the cell may sit at over R."""

    resistance_ohm: float
    duration_s: float
    record_dt_s: float
    peak_current_A: float
    until_voltage_V: float | None = None
    record_dV_V: float | None = None
    ends: EndConditions | None = None


@dataclass(frozen=True)
class Profile:
    """A current or power profile: ``values`` (A or W, positive charges) at ``times_s`` (from
    0, increasing), linearly interpolated between them; lasts until the last time. Ends early
    when the voltage leaves ``min_voltage_V``..``max_voltage_V`` (reason ``voltage``).
    ``peak_current_A``: the largest |I| it draws (for a power profile, |P| over the lowest
    voltage the cell may reach); ``peak_label``: where that is written (``file.csv:12``)."""

    quantity: str                    # "current" or "power"
    times_s: tuple[float, ...]
    values: tuple[float, ...]
    record_dt_s: float
    peak_current_A: float
    min_voltage_V: float | None = None
    max_voltage_V: float | None = None
    peak_label: str = "profile"
    record_dV_V: float | None = None
    ends: EndConditions | None = None

    @property
    def duration_s(self) -> float:
        return float(self.times_s[-1])


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


Technique = (OpenCircuit | Impedance | ConstantCurrent | ConstantVoltage | VoltageSweep
             | ConstantPower | ConstantResistance | Profile)
#: Techniques that drive a current the cell's voltage decides, or follow a table: a cycler's
#: firmware runs them; the simulators run them as a chain of short constant currents.
DrivenTechnique = ConstantPower | ConstantResistance | Profile


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
        case ConstantPower() | ConstantResistance():
            until = technique.until_voltage_V
            sign = 1.0 if isinstance(technique, ConstantPower) and technique.power_W > 0 else -1.0
            return Commanded(voltages_V=(("until_voltage", until),) if until is not None else (),
                             currents_A=(("peak current", sign * technique.peak_current_A),))
        case Profile():
            limits = tuple((name, v) for name, v in (("min_voltage", technique.min_voltage_V),
                                                     ("max_voltage", technique.max_voltage_V))
                           if v is not None)
            return Commanded(voltages_V=limits, currents_A=(
                (f"{technique.peak_label} current", technique.peak_current_A),))
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
