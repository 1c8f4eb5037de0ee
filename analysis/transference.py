"""Li+ transference number by the Bruce-Vincent method, and the interfacial arc it needs.

The method (``docs/physics.md``, "Li|AIOSE|Li"): a spectrum of the Li|SSE|Li cell, a small
potentiostatic step dV held until the current is steady, a second spectrum; then

    t+ = I_s (dV - I_0 R_0) / (I_0 (dV - I_s R_s))

with I_0 the initial and I_s the steady current, and R_0, R_s the interfacial resistances (the
mid-frequency arc, not R_b) before and after the hold.

Spectra arrive as in :mod:`analysis.eis`: three arrays with Z = Re + j Im, capacitive arcs at
Im Z < 0. The Li|SSE|Li spectrum is R_b - (R_int || CPE_int) - Warburg: a real-axis intercept at
R_b, a depressed arc of diameter R_int, then the diffusion tail. An R || CPE arc is an exact circle
arc in the Nyquist plane whose centre lies below the real axis, and the chord it cuts from the real
axis is R. So R_int is read as that chord of a circle fitted to the arc's points; no circuit fit
(scipy is not a dependency) and no guess of the CPE exponent.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

from analysis.eis import _as_1d_finite, _sorted_spectrum, bulk_resistance
from analysis.errors import AnalysisError

_FloatArray = npt.NDArray[np.float64]

#: Fewest arc points a circle is fitted to (three define one; more make it a fit).
MIN_ARC_POINTS = 5


def interfacial_resistance(
    frequency_Hz: ArrayLike,
    z_real_ohm: ArrayLike,
    z_imag_ohm: ArrayLike,
    *,
    frequency_range_Hz: tuple[float, float] | None = None,
    fit_fraction: float = 0.25,
    valley_tolerance: float = 0.05,
) -> tuple[float, float]:
    """(R_b, R_int) in Ohm of a Li|SSE|Li spectrum.

    - R_b is the high-frequency real-axis intercept, :func:`analysis.eis.bulk_resistance` (the
      package's one definition of the bulk resistance).
    - R_int is the real-axis chord of a circle fitted (algebraic Kasa fit, least squares on
      x^2 + y^2 + D x + E y + F = 0, with y = -Im Z) to the interfacial arc: for R || CPE that chord
      is exactly R, whatever the depression.
    - The arc is found on -Im Z going down in frequency: it rises to an apex, falls to a valley,
      and the diffusion tail rises again. A rise or fall counts only if it exceeds
      ``valley_tolerance`` times the largest -Im Z (noise does not split an arc). Of the arcs
      found, the one with the highest apex is the interfacial arc; a final rise that never comes
      down (the diffusion tail) is not an arc. If the spectrum ends on the arc's way down, the arc
      ends there.
    - Only points of that arc with -Im Z >= ``fit_fraction`` times its apex are fitted: near the
      ends the neighbouring elements (bulk, grain boundaries, Warburg) bend the arc.
    - ``frequency_range_Hz = (low, high)`` overrides the search and fits the arc points in that
      range: for a ceramic whose grain-boundary arc merges with the interface arc, or a spectrum
      whose diffusion arc is larger than the interface's.

    Raises :class:`AnalysisError` when no arc with at least 5 points is found or the fitted circle
    does not reach the real axis.
    """
    freq, real, imag = _sorted_spectrum(frequency_Hz, z_real_ohm, z_imag_ohm)
    if not 0 < fit_fraction < 1:
        raise AnalysisError(f"fit_fraction must be in (0, 1), got {fit_fraction!r}")
    if not 0 < valley_tolerance < 1:
        raise AnalysisError(f"valley_tolerance must be in (0, 1), got {valley_tolerance!r}")
    r_bulk = bulk_resistance(freq, real, imag)
    y = -imag
    if frequency_range_Hz is not None:
        low, high = sorted(float(f) for f in frequency_range_Hz)
        selected = np.flatnonzero((freq >= low) & (freq <= high))
        where = f"between {low:g} and {high:g} Hz"
    else:
        start, stop = _interfacial_arc(y, valley_tolerance)
        arc = np.arange(start, stop)
        selected = arc[y[arc] >= fit_fraction * y[arc].max()]
        where = f"in the arc from {freq[start]:g} to {freq[stop - 1]:g} Hz"
    if selected.size < MIN_ARC_POINTS:
        raise AnalysisError(
            f"only {selected.size} spectrum points {where}; a circle fit needs {MIN_ARC_POINTS}"
        )
    xc, yc, radius = _kasa_circle(real[selected], y[selected])
    half_chord_sq = radius**2 - yc**2
    if not half_chord_sq > 0:
        raise AnalysisError(
            f"the circle fitted {where} does not reach the real axis (centre {xc:.4g}, "
            f"{yc:.4g} Ohm, radius {radius:.4g} Ohm): the points do not form an arc"
        )
    return r_bulk, float(2.0 * np.sqrt(half_chord_sq))


def transference_number(
    i0_A: float, iss_A: float, dv_V: float, r0_ohm: float, rs_ohm: float
) -> float:
    """Bruce-Vincent t+ = I_s (dV - I_0 R_0) / (I_0 (dV - I_s R_s)).

    R_0, R_s are the interfacial resistances before and after the hold
    (:func:`interfacial_resistance`), not including R_b. The currents must have the sign of dV
    (a negative step is allowed: the formula is unchanged when dV and both currents flip sign).
    The result is not clipped to [0, 1]: a value outside says the inputs are inconsistent, and
    hiding that helps nobody.
    """
    values = {"i0_A": i0_A, "iss_A": iss_A, "dv_V": dv_V, "r0_ohm": r0_ohm, "rs_ohm": rs_ohm}
    for name, value in values.items():
        if not np.isfinite(value):
            raise AnalysisError(f"{name} must be finite, got {value!r}")
    if dv_V == 0 or i0_A == 0 or iss_A == 0:
        raise AnalysisError(f"dv_V, i0_A and iss_A must be non-zero, got {dv_V}, {i0_A}, {iss_A}")
    if not np.sign(i0_A) == np.sign(iss_A) == np.sign(dv_V):
        raise AnalysisError(
            f"i0_A ({i0_A}), iss_A ({iss_A}) and dv_V ({dv_V}) must have the same sign"
        )
    if r0_ohm < 0 or rs_ohm < 0:
        raise AnalysisError(f"r0_ohm and rs_ohm must be >= 0, got {r0_ohm}, {rs_ohm}")
    if np.sign(dv_V - iss_A * rs_ohm) != np.sign(dv_V):
        raise AnalysisError(
            f"I_s R_s = {iss_A * rs_ohm:.4g} V is not smaller than dV = {dv_V:.4g} V: "
            "the steady current cannot flow through the interface alone"
        )
    return float(iss_A * (dv_V - i0_A * r0_ohm) / (i0_A * (dv_V - iss_A * rs_ohm)))


def ca_currents(
    t_s: ArrayLike,
    i_A: ArrayLike,
    *,
    initial: Literal["first", "extrapolate"] = "first",
    initial_points: int = 5,
    t0_s: float = 0.0,
    steady_fraction: float = 0.05,
) -> tuple[float, float]:
    """(I_0, I_s) of a chronoamperometry (potentiostatic hold) trace, in A.

    - ``t_s`` is the time since the step started (the store's ``step_time_s``).
    - I_0 with ``initial="first"`` (default) is the current at the first point: the current the
      cell draws when dV first appears, before concentration gradients build up. With
      ``initial="extrapolate"``, a straight line through the first ``initial_points`` points is
      evaluated at ``t0_s`` (the step start), for traces whose first sample is late or noisy.
    - I_s is the mean current over the last ``steady_fraction`` (default 5 %) of the trace's
      duration, by time (so a burst of dI-triggered samples does not weigh more). The hold must be
      long enough for that window to be steady: the mean does not extrapolate a decay.
    """
    t = _as_1d_finite(t_s, "t_s")
    current = _as_1d_finite(i_A, "i_A")
    if t.size != current.size:
        raise AnalysisError(f"t_s and i_A differ in length ({t.size} vs {current.size})")
    if t.size < 2:
        raise AnalysisError("a chronoamperometry trace needs at least 2 points")
    if np.any(np.diff(t) < 0):
        raise AnalysisError("t_s must be in time order (non-decreasing)")
    if t[-1] <= t[0]:
        raise AnalysisError("the trace has no duration")
    if not 0 < steady_fraction <= 1:
        raise AnalysisError(f"steady_fraction must be in (0, 1], got {steady_fraction!r}")
    if initial == "first":
        i0 = float(current[0])
    elif initial == "extrapolate":
        if initial_points < 2 or initial_points > t.size:
            raise AnalysisError(
                f"initial_points must be between 2 and the trace's {t.size} points, "
                f"got {initial_points}"
            )
        head_t, head_i = t[:initial_points], current[:initial_points]
        if np.ptp(head_t) == 0:
            raise AnalysisError("the first points share one time; nothing to extrapolate from")
        slope, offset = np.polyfit(head_t, head_i, 1)
        i0 = float(offset + slope * t0_s)
    else:
        raise AnalysisError(f"initial must be 'first' or 'extrapolate', got {initial!r}")
    tail = t >= t[-1] - steady_fraction * (t[-1] - t[0])
    return i0, float(np.mean(current[tail]))


def _interfacial_arc(y: _FloatArray, valley_tolerance: float) -> tuple[int, int]:
    """Indices ``start:stop`` (highest frequency first) of the arc with the highest apex."""
    positive = y[y > 0]
    if positive.size == 0:
        raise AnalysisError("the spectrum has no capacitive point (-Im Z > 0): no arc")
    tol = valley_tolerance * float(positive.max())
    arcs: list[tuple[int, int, float]] = []
    n, start = y.size, 0
    while start < n - 1:
        apex = j = start
        while j < n and y[j] >= y[apex] - tol:
            if y[j] > y[apex]:
                apex = j
            j += 1
        if j == n:
            break  # still rising (or flat) at the end: the diffusion tail, not an arc
        valley = k = j
        while k < n and y[k] <= y[valley] + tol:
            if y[k] < y[valley]:
                valley = k
            k += 1
        arcs.append((start, valley + 1, float(y[apex])))
        start = valley
    if not arcs:
        raise AnalysisError("no arc found: -Im Z never rises and falls again")
    start, stop, _ = max(arcs, key=lambda arc: arc[2])
    return start, stop


def _kasa_circle(x: _FloatArray, y: _FloatArray) -> tuple[float, float, float]:
    """Centre (xc, yc) and radius of the algebraic least-squares circle through the points.

    Solves x^2 + y^2 + D x + E y + F = 0 for D, E, F (linear); centre (-D/2, -E/2), radius^2 =
    (D^2 + E^2)/4 - F. Coordinates are shifted to the points' mean first for conditioning.
    """
    x = _as_1d_finite(x, "x")
    y = _as_1d_finite(y, "y")
    mx, my = float(x.mean()), float(y.mean())
    u, w = x - mx, y - my
    design = np.column_stack((u, w, np.ones_like(u)))
    (d, e, f), *_ = np.linalg.lstsq(design, -(u**2 + w**2), rcond=None)
    radius_sq = (d**2 + e**2) / 4.0 - f
    if not radius_sq > 0:
        raise AnalysisError("the arc points are collinear: no circle fits them")
    return mx - d / 2.0, my - e / 2.0, float(np.sqrt(radius_sq))
