"""The bulk resistance a run reports, or none with the reason: never a number the spectrum does
not support.

The high-frequency intercept (:func:`analysis.eis.bulk_resistance`) is R_b only where the
spectrum has reached the real axis at its top: Im Z crosses zero there (cable inductance), or
-Im Z at the highest frequency is small next to Re Z. A ceramic in the cold has its bulk arc
(apex sigma / (2 pi eps0 eps_r)) down inside the window; at the top frequency the arc is not
finished, -Im Z exceeds Re Z, and Re Z there is a fraction of R_b (a Ta-LLZO pellet at -20 degC:
Re Z at 7 MHz is a quarter of R_b, and falls as it gets colder).

Then the bulk arc is fitted (:func:`analysis.eis_fit.fit_bulk_resistance`, R_b || C_geo plus
what follows) and its R0 is the bulk resistance, when the fit can be trusted: it matches the
points of the bulk arc (from the top of the window down to :data:`ARC_DECADES` decades below the
arc's apex; what happens at lower frequencies does not decide R_b) within :data:`MAX_FIT_RMSE`,
R0 and C0 are not on a bound, and R0 || C0 is the highest-frequency arc
(its apex above the next arc's; a fit that swapped the arcs reports a grain boundary as the
bulk). Otherwise the value is None and the note says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from analysis.eis import _sorted_spectrum, bulk_resistance
from analysis.errors import AnalysisError

#: -Im Z / Re Z at the highest frequency up to which Re Z there is taken as the intercept. For
#: an R || C arc the ratio is omega R C, and Re Z = R / (1 + (omega R C)^2): 1 % short at 0.1.
MAX_TOP_IMAG_RATIO = 0.1
#: The bulk-arc fit is trusted up to this modulus-weighted misfit over the arc (0.03 = 3 %).
MAX_FIT_RMSE = 0.03
#: The bulk arc's points: down to this many decades below its apex (an R || C arc has -Im Z
#: down to 3 % of R there: it is finished).
ARC_DECADES = 1.5

INTERCEPT = "high-frequency real-axis intercept"
ARC_FIT = "bulk-arc fit"


@dataclass(frozen=True)
class BulkReading:
    """``value_ohm`` None only with a ``note``; ``method`` says where a value came from."""

    value_ohm: float | None
    method: str
    note: str = ""


@dataclass(frozen=True)
class _Spectrum:
    frequency_Hz: ArrayLike
    z_real_ohm: ArrayLike
    z_imag_ohm: ArrayLike


def bulk_reading(frequency_Hz: ArrayLike, z_real_ohm: ArrayLike,
                 z_imag_ohm: ArrayLike, *, fit_arc: bool = True) -> BulkReading:
    """The bulk resistance of one spectrum by the rules of the module docstring.

    ``fit_arc=False`` (cells that are not an electrolyte between blocking electrodes) skips the
    bulk-arc fit: their top arc is an interface's or an electrode's, the fit of a bulk circuit
    to it fails after trying every start (seconds a spectrum), and the value is None either
    way, with the note saying where such a cell's ohmic resistance comes from."""
    freq, real, imag = _sorted_spectrum(frequency_Hz, z_real_ohm, z_imag_ohm)
    # Re Z <= 0 at the top is no arc to fit: the intercept, which its callers refuse as such
    ratio = -imag[0] / real[0] if real[0] > 0 else 0.0
    if imag[0] >= 0 or ratio <= MAX_TOP_IMAG_RATIO:
        return BulkReading(bulk_resistance(freq, real, imag), INTERCEPT)
    unresolved = (f"the spectrum has not reached the real axis at its highest frequency"
                  f" ({freq[0]:.3g} Hz: -Im Z / Re Z = {ratio:.2g}), so Re Z there is not the"
                  " bulk resistance")
    if not fit_arc:
        return BulkReading(None, "", f"{unresolved}; a bulk arc is fitted for an electrolyte"
                           " between blocking electrodes only (a cell's ohmic resistance is"
                           " R_ohm of its circuit fit)")
    from analysis.eis_fit import fit_bulk_resistance, predict_impedance

    try:
        fit = fit_bulk_resistance(_Spectrum(freq, real, imag))
    except AnalysisError as exc:
        return BulkReading(None, "", f"{unresolved}, and the bulk arc could not be fitted: {exc}")
    r0, c0 = fit.parameters.get("R0"), fit.parameters.get("C0")
    if c0 is None or r0 is None:
        return BulkReading(None, "", f"{unresolved}, and the fitted circuit {fit.circuit} has no"
                           " bulk arc R0 || C0")
    apex_Hz = 1.0 / (2 * math.pi * r0 * c0)
    problems = []
    r1, q1, n1 = (fit.parameters.get(k) for k in ("R1", "CPE1_0", "CPE1_1"))
    if r1 is not None and q1 is not None and n1 is not None:
        next_apex_Hz = 1.0 / (2 * math.pi * (r1 * q1) ** (1.0 / n1))
        if next_apex_Hz >= apex_Hz:
            problems.append(f"the fitted R0 || C0 (apex {apex_Hz:.3g} Hz) is not the"
                            f" highest-frequency arc (the next peaks at {next_apex_Hz:.3g} Hz)")
    arc = freq >= apex_Hz / 10**ARC_DECADES   # the top point at least (apex below it)
    arc[0] = True
    z = real[arc] + 1j * imag[arc]
    # evaluated on every point: impedance.py's p() fails on a single frequency
    model = predict_impedance(fit.circuit, fit.parameters, freq)[arc]
    misfit = float(np.sqrt(np.mean(np.abs((model - z) / z) ** 2)))
    if misfit > MAX_FIT_RMSE:
        problems.append(f"the fit of {fit.circuit} is off by {100 * misfit:.1f} % over the"
                        " bulk arc")
    stuck = sorted({"R0", "C0"} & set(fit.at_bounds))
    if stuck:
        problems.append(f"{', '.join(stuck)} ended on a bound")
    if problems:
        return BulkReading(None, "", f"{unresolved}, and the bulk arc is not resolved: "
                           + "; ".join(problems) + " (measure to higher frequency, or warmer)")
    return BulkReading(r0, ARC_FIT)


__all__ = ["ARC_DECADES", "ARC_FIT", "INTERCEPT", "MAX_FIT_RMSE", "MAX_TOP_IMAG_RATIO",
           "BulkReading", "bulk_reading"]
