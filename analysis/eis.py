"""Impedance spectra to bulk resistance, conductivity and activation energy.

Spectra arrive as three arrays (frequency, Re Z, Im Z) with Z = Re + j Im: capacitive arcs have
Im Z < 0, cable inductance gives Im Z > 0 at the highest frequencies.

The bulk resistance is the high-frequency real-axis intercept (``docs/physics.md``, "Robust
bulk resistance"): model-free, so it does not depend on a circuit fit converging. A bounded circuit
fit is the cross-check and lives elsewhere. The intercept is R_b only where the spectrum reaches the
real axis at its top; what a run reports decides that first (``analysis.eis_bulk``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

from analysis.errors import AnalysisError

#: Boltzmann constant, eV/K (exact SI value 1.380649e-23 J/K over e, to 10 digits).
BOLTZMANN_eV_PER_K = 8.617333262e-5
#: 0 degC in kelvin.
ZERO_CELSIUS_K = 273.15

_FloatArray = npt.NDArray[np.float64]


def bulk_resistance(frequency_Hz: ArrayLike, z_real_ohm: ArrayLike, z_imag_ohm: ArrayLike) -> float:
    """Re Z where Im Z first crosses zero from inductive to capacitive, going down in frequency.

    Rules, in order:

    - the points are sorted by frequency, highest first (input order does not matter);
    - a single point whose sign of Im Z differs from both neighbours is noise and is ignored
      when locating the crossing (a lone flip is what noise does near Im Z = 0);
    - if the spectrum does not start inductive (Im Z <= 0 at the highest frequency), or never
      leaves the inductive side, Im Z has no sign change at the high-frequency end, and the result
      is Re Z at the highest frequency;
    - otherwise Re Z is linearly interpolated between the two points bracketing the crossing.
      Where ignoring a lone flip leaves the neighbouring raw points on the same side, straight
      lines of Re Z and Im Z against log f are fitted over the four points around the crossing
      instead, and Re Z is read where the Im Z line is zero.

    Only the first crossing counts: a later inductive excursion (low-frequency loops, drift)
    says nothing about the bulk.
    """
    freq, real, imag = _sorted_spectrum(frequency_Hz, z_real_ohm, z_imag_ohm)
    with np.errstate(all="ignore"):
        intercept = _intercept(freq, real, imag)
    if not np.isfinite(intercept):
        raise AnalysisError(
            "the high-frequency intercept is not a finite number (values near the limits of "
            "floating point?)"
        )
    return intercept


def _intercept(freq: _FloatArray, real: _FloatArray, imag: _FloatArray) -> float:
    sign = _without_lone_flips(np.sign(imag))
    if sign[0] <= 0:
        return float(real[0])
    not_inductive = np.flatnonzero(sign <= 0)
    if not_inductive.size == 0:
        return float(real[0])
    i = int(not_inductive[0])
    if imag[i] == 0.0:
        return float(real[i])
    if imag[i - 1] > 0.0 > imag[i]:
        t = imag[i - 1] / (imag[i - 1] - imag[i])
        return float(real[i - 1] + t * (real[i] - real[i - 1]))
    return _local_fit_crossing(freq, real, imag, i)


#: An arc before the blocking spike counts when it rises this much (relative to Re Z) above
#: the valley that follows it.
ARC_MIN_FRACTION = 0.02


def blocking_total_resistance(
    frequency_Hz: ArrayLike, z_real_ohm: ArrayLike, z_imag_ohm: ArrayLike
) -> float | None:
    """The total ionic resistance (bulk + grain boundaries) of a membrane between blocking
    electrodes, or None when the spectrum shows no arc before the blocking spike (then the
    bulk intercept is the total).

    Going down in frequency, -Im Z of a ceramic falls from the grain-boundary arc to a valley
    and rises again along the blocking spike, a CPE line Re Z = R_total + cot(n pi/2) (-Im Z).
    The spike is extrapolated back to the real axis: a straight-line fit of Re Z against
    -Im Z over its points between 2x and 20x the valley's -Im Z. (Re Z at the valley itself
    would be short by the arc's unfinished tail.)
    """
    _freq, real, imag = _sorted_spectrum(frequency_Hz, z_real_ohm, z_imag_ohm)
    y = -imag
    valley = int(np.argmin(y))
    if valley == 0 or y[valley] <= 0:
        return None
    # an arc rises above its valley by a share of Re Z, however much the bulk arc's tail
    # lifts the valley (a ceramic near 30-80 degC: the arc's top only 1.3x the valley)
    if y[:valley].max() - y[valley] < ARC_MIN_FRACTION * abs(real[valley]):
        return None   # a wiggle of noise at the top of the window, not an arc
    after = slice(valley, None)
    spike = (y[after] >= 2 * y[valley]) & (y[after] <= 20 * y[valley])
    if np.count_nonzero(spike) < 3:
        return float(real[valley])
    _slope, intercept = np.polyfit(y[after][spike], real[after][spike], 1)
    return float(intercept)


def conductivity_S_per_m(r_bulk_ohm: float, thickness_m: float, area_m2: float) -> float:
    """Ionic conductivity sigma = d / (S R_b), in S/m (multiply by 10 for mS/cm).

    SI in, SI out, so no unit factor hides in the formula; reports convert at the edge.
    """
    for name, value in (
        ("r_bulk_ohm", r_bulk_ohm),
        ("thickness_m", thickness_m),
        ("area_m2", area_m2),
    ):
        if not np.isfinite(value) or value <= 0:
            raise AnalysisError(f"{name} must be a positive finite number, got {value!r}")
    with np.errstate(all="ignore"):   # numpy floats: an overflow is checked below, not raised
        sigma = np.float64(thickness_m) / (np.float64(area_m2) * np.float64(r_bulk_ohm))
    if not np.isfinite(sigma) or sigma <= 0:
        raise AnalysisError(
            f"d / (S R) = {thickness_m!r} / ({area_m2!r} * {r_bulk_ohm!r}) is not a finite "
            "positive conductivity; check the units of the thickness, area and resistance"
        )
    return float(sigma)


def arrhenius_fit(temperatures_C: ArrayLike, conductivities: ArrayLike) -> tuple[float, float]:
    """Fit sigma = sigma0 * exp(-Ea / (k T)); return (Ea in eV, sigma0 in the unit of the input).

    This is the form the simulators use (``physics.md``: one form everywhere). It is a straight
    line ln(sigma) = ln(sigma0) - (Ea / k) (1 / T), fitted by ordinary least squares, so every
    point has the same relative weight. Fitting the other common form, sigma T = A exp(-Ea / kT),
    to the same data gives an Ea larger by about kT (0.026-0.03 eV near room temperature).
    """
    temps = _as_1d_finite(temperatures_C, "temperatures_C")
    sigma = _as_1d_finite(conductivities, "conductivities")
    if temps.shape != sigma.shape:
        raise AnalysisError(
            f"temperatures_C and conductivities differ in length ({temps.size} vs {sigma.size})"
        )
    if np.unique(temps).size < 2:
        raise AnalysisError(
            f"an Arrhenius fit needs at least 2 distinct temperatures, got {temps.tolist()}"
        )
    if np.any(sigma <= 0):
        raise AnalysisError(f"conductivities must be positive, got {sigma.tolist()}")
    kelvin = temps + ZERO_CELSIUS_K
    if np.any(kelvin <= 0):
        raise AnalysisError(f"temperatures_C must be above -273.15, got {temps.tolist()}")
    slope, intercept = np.polyfit(1.0 / kelvin, np.log(sigma), 1)
    return float(-slope * BOLTZMANN_eV_PER_K), float(np.exp(intercept))


def _sorted_spectrum(
    frequency_Hz: ArrayLike, z_real_ohm: ArrayLike, z_imag_ohm: ArrayLike
) -> tuple[_FloatArray, _FloatArray, _FloatArray]:
    """Validated arrays sorted by frequency, highest first (stable, so ties keep their order)."""
    freq = _as_1d_finite(frequency_Hz, "frequency_Hz")
    real = _as_1d_finite(z_real_ohm, "z_real_ohm")
    imag = _as_1d_finite(z_imag_ohm, "z_imag_ohm")
    if not freq.size == real.size == imag.size:
        raise AnalysisError(
            "frequency_Hz, z_real_ohm and z_imag_ohm differ in length "
            f"({freq.size}, {real.size}, {imag.size})"
        )
    if freq.size == 0:
        raise AnalysisError("the spectrum is empty")
    if np.any(freq <= 0):
        raise AnalysisError(f"frequency_Hz must be positive, smallest is {freq.min()!r}")
    order = np.argsort(-freq, kind="stable")
    return freq[order], real[order], imag[order]


def _without_lone_flips(sign: _FloatArray) -> _FloatArray:
    """Signs with every interior point that disagrees with two agreeing neighbours overruled.

    Decided on the original signs, so two adjacent flips (a real feature, or noise too large to
    call a flip) are kept. The end points have one neighbour and are never overruled.
    """
    cleaned = sign.copy()
    if sign.size >= 3:
        left, mid, right = sign[:-2], sign[1:-1], sign[2:]
        cleaned[1:-1] = np.where(left == right, left, mid)
    return cleaned


def _local_fit_crossing(freq: _FloatArray, real: _FloatArray, imag: _FloatArray, i: int) -> float:
    """Re Z where a line of Im Z vs log f crosses zero, over the points i-2 .. i+1."""
    lo, hi = max(i - 2, 0), min(i + 2, freq.size)
    x = np.log10(freq[lo:hi])
    im_slope, im_offset = np.polyfit(x, imag[lo:hi], 1)
    re_slope, re_offset = np.polyfit(x, real[lo:hi], 1)
    if im_slope == 0.0:
        x0 = float(x.mean())
    else:
        x0 = float(np.clip(-im_offset / im_slope, x.min(), x.max()))
    return float(re_offset + re_slope * x0)


def _as_1d_finite(values: ArrayLike, name: str) -> _FloatArray:
    """A 1-D float array, refusing NaN and inf (they would silently poison a sort or a fit)."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(f"{name} must be numbers: {exc}") from exc
    if array.ndim != 1:
        raise AnalysisError(f"{name} must be one-dimensional, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise AnalysisError(f"{name} contains NaN or inf, first at index {int(bad[0])}")
    return array
