"""Electronic conductivity from DC polarisation of a blocking cell (Hebb-Wagner, ion-blocking
electrodes on both sides).

A constant voltage V across SS | electrolyte | SS first charges the double layers (ions move
until they pile up at the blocking electrodes); once they have, only electrons cross the
membrane, and the steady current gives

    sigma_e = I_ss d / (V S)

(d the membrane's thickness, S its area). The steady current is the mean over the last part of
the hold; the hold must have reached it: a current still falling there is refused, with how much
it fell, rather than reported as a conductivity it only bounds from above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from analysis.eis import _as_1d_finite
from analysis.errors import AnalysisError

#: The steady current is the mean over this last share of the hold's duration ...
STEADY_FRACTION = 0.1
#: ... and is steady when it differs from the mean over the share before by at most this much
#: (relative), or by the current's noise (three standard errors), whichever is larger.
MAX_DRIFT = 0.05


@dataclass(frozen=True)
class Polarisation:
    sigma_S_per_m: float
    steady_current_A: float
    voltage_V: float
    drift: float          # relative change of the current between the last two windows


def electronic_conductivity(t_s: ArrayLike, current_A: ArrayLike, voltage_V: ArrayLike,
                            thickness_m: float, area_m2: float) -> Polarisation:
    """sigma_e = I_ss d / (V S) of a potentiostatic hold; V is the mean measured voltage over
    the same window as I_ss (SI in, S/m out)."""
    t = _as_1d_finite(t_s, "t_s")
    i = _as_1d_finite(current_A, "current_A")
    v = _as_1d_finite(voltage_V, "voltage_V")
    if not t.size == i.size == v.size:
        raise AnalysisError(f"t_s, current_A and voltage_V differ in length"
                            f" ({t.size}, {i.size}, {v.size})")
    for name, value in (("thickness_m", thickness_m), ("area_m2", area_m2)):
        if not (np.isfinite(value) and value > 0):
            raise AnalysisError(f"{name} must be a positive number, got {value!r}")
    if t.size < 10 or not t[-1] > t[0]:
        raise AnalysisError(f"a polarisation needs 10 points or more over a duration, got"
                            f" {t.size}")
    span = t[-1] - t[0]
    last = t >= t[-1] - STEADY_FRACTION * span
    before = (t >= t[-1] - 2 * STEADY_FRACTION * span) & ~last
    if np.count_nonzero(last) < 3 or np.count_nonzero(before) < 3:
        raise AnalysisError("too few points at the end of the hold to tell a steady current")
    i_ss, i_before = float(np.mean(i[last])), float(np.mean(i[before]))
    v_hold = float(np.mean(v[last]))
    if v_hold == 0 or i_ss == 0 or np.sign(i_ss) != np.sign(v_hold):
        raise AnalysisError(f"no electronic current: {i_ss:.3g} A at {v_hold:.3g} V")
    drift = abs(i_before - i_ss) / abs(i_ss)
    noise = 3 * float(np.std(i[last]) / np.sqrt(np.count_nonzero(last)) +
                      np.std(i[before]) / np.sqrt(np.count_nonzero(before)))
    if drift > MAX_DRIFT and abs(i_before - i_ss) > noise:
        raise AnalysisError(f"the current is not steady at the end of the hold: it changed by"
                            f" {100 * drift:.3g} % over the last {2 * STEADY_FRACTION:.0%} of"
                            " it (hold longer, or until_steady)")
    sigma = i_ss * thickness_m / (v_hold * area_m2)
    return Polarisation(float(sigma), i_ss, v_hold, float(drift))
