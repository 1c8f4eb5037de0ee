"""What a driver can be asked to run, in the instrument's terms: SI floats, signed currents.

Drivers never see protocol files; the sequencer turns protocol steps into these. Every
time-series technique carries a hard time limit (``duration_s``) so no step runs unbounded.
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
