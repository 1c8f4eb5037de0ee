"""R_ohm and R_ct of a cell's spectrum: a quick equivalent-circuit fit for spectra by the hundred.

A cell with electrodes (a full cell, a half cell) shows its ohmic resistance (electrolyte,
contacts) where the spectrum meets the real axis, then one or two arcs (an interphase at high
frequency, charge transfer below it) and a diffusion tail. The circuits, in impedance.py's
notation:

- ``R0-p(R1,CPE1)-W1``: one arc;
- ``R0-p(R1,CPE1)-p(R2,CPE2)-W1``: two arcs, kept only where it halves the weighted sum of
  squares (:data:`analysis.eis_fit.ARC_GAIN`), as ``analysis.eis_fit`` chooses its circuits.

R_ohm is R0; R_ct is the resistance of the arc at the lowest frequency (charge transfer is the
slowest of the interfacial processes); ``rmse_rel`` is the fit's quality, the modulus-weighted
misfit (0.01 = 1 %).

Why not impedance.py's fit (``analysis.eis_fit``): it takes 5-15 s per spectrum here, and a
cycling test records hundreds of spectra (EIS every 10 cycles of 1000). This fit solves the same
bounded least-squares problem with SciPy's ``least_squares`` on the closed-form impedance, in
log coordinates, from starts taken from the data: 10-50 ms per spectrum, to the same parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

from analysis.eis import _sorted_spectrum, bulk_resistance
from analysis.eis_fit import ARC_GAIN
from analysis.errors import AnalysisError

#: Starting guesses span this factor either way in the bounded fit (log coordinates).
LOG_SPAN = 12.0
CPE_N_BOUNDS = (0.3, 1.0)

_Complex = npt.NDArray[np.complex128]


@dataclass(frozen=True)
class Arc:
    r_ohm: float
    q: float          # CPE Q in S s^n
    n: float
    f_peak_Hz: float  # where its -Im Z peaks: (R Q)^(-1/n) / 2 pi


@dataclass(frozen=True)
class CellFit:
    circuit: str
    r_ohm: float
    arcs: tuple[Arc, ...]          # from high to low frequency
    warburg_ohm_s_half: float
    rmse_rel: float

    @property
    def r_ct_ohm(self) -> float:
        """The lowest-frequency arc's resistance: charge transfer."""
        return self.arcs[-1].r_ohm


def fit_cell_spectrum(frequency_Hz: ArrayLike, z_real_ohm: ArrayLike,
                      z_imag_ohm: ArrayLike) -> CellFit:
    """The better of the one- and two-arc circuits (see the module docstring)."""
    freq, real, imag = _sorted_spectrum(frequency_Hz, z_real_ohm, z_imag_ohm)
    if freq.size < 10:
        raise AnalysisError(f"a circuit fit needs 10 points or more, the spectrum has {freq.size}")
    z = real + 1j * imag
    one = _fit(freq, z, 1)
    two = _fit(freq, z, 2)
    if two is not None and (one is None or two.rmse_rel**2 < ARC_GAIN * one.rmse_rel**2):
        return two
    if one is None:
        raise AnalysisError("the circuit fit did not converge")
    return one


def _model(p: np.ndarray, w: np.ndarray, arcs: int) -> _Complex:
    z = np.full(w.shape, p[0], dtype=np.complex128)
    for k in range(arcs):
        r, q, n = p[1 + 3 * k:4 + 3 * k]
        z = z + r / (1 + r * q * (1j * w) ** n)
    return z + p[1 + 3 * arcs] * (1 - 1j) / np.sqrt(w)


def _fit(freq: np.ndarray, z: _Complex, arcs: int) -> CellFit | None:
    from scipy.optimize import least_squares

    w = 2 * math.pi * freq
    best: tuple[float, np.ndarray] | None = None
    linear = np.zeros(1 + 3 * arcs + 1, dtype=bool)
    linear[[3 + 3 * k for k in range(arcs)]] = True       # the CPE exponents
    for start in _starts(freq, z, arcs):
        x0 = np.where(linear, start, np.log(start))
        lo = np.where(linear, CPE_N_BOUNDS[0], x0 - LOG_SPAN)
        hi = np.where(linear, CPE_N_BOUNDS[1], x0 + LOG_SPAN)
        x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)

        def residuals(x: np.ndarray) -> np.ndarray:
            r = (_model(np.where(linear, x, np.exp(x)), w, arcs) - z) / np.abs(z)
            return np.concatenate([r.real, r.imag])

        with np.errstate(all="ignore"):
            try:
                sol = least_squares(residuals, x0, bounds=(lo, hi), method="trf",
                                    x_scale="jac", max_nfev=2000)
            except (ValueError, FloatingPointError):
                continue
        cost = float(np.mean(sol.fun**2) * 2)
        if math.isfinite(cost) and (best is None or cost < best[0]):
            best = (cost, np.where(linear, sol.x, np.exp(sol.x)))
    if best is None:
        return None
    cost, p = best
    found = []
    for k in range(arcs):
        r, q, n = (float(v) for v in p[1 + 3 * k:4 + 3 * k])
        found.append(Arc(r, q, n, (r * q) ** (-1 / n) / (2 * math.pi)))
    found.sort(key=lambda a: -a.f_peak_Hz)
    circuit = "R0-" + "-".join(f"p(R{k},CPE{k})" for k in range(1, arcs + 1)) + "-W1"
    return CellFit(circuit, float(p[0]), tuple(found), float(p[-1]), math.sqrt(cost))


def _starts(freq: np.ndarray, z: _Complex, arcs: int) -> list[np.ndarray]:
    """Starting points from the data: R0 from the intercept, the arcs' total from the valley
    before the diffusion tail, their frequency from the top of -Im Z, the Warburg coefficient
    from the lowest frequency."""
    r0 = max(bulk_resistance(freq, z.real, z.imag), 1e-6)
    y = -z.imag
    top = int(np.argmax(y[: max(2, y.size * 3 // 4)]))
    valley = top + int(np.argmin(y[top:]))
    r_arcs = max(float(z.real[valley]) - r0, 1e-3 * r0)
    sigma = max(float(y[-1]) * math.sqrt(2 * math.pi * freq[-1]), 1e-9)
    w_top = 2 * math.pi * float(freq[top])
    n = 0.8
    if arcs == 1:
        return [np.array([r0, r_arcs, 1 / (r_arcs * w_top**n), n, sigma])]
    starts = []
    for share in (0.3, 0.7):
        r1, r2 = share * r_arcs, (1 - share) * r_arcs
        starts.append(np.array([r0, r1, 1 / (r1 * (10 * w_top) ** n), n,
                                r2, 1 / (r2 * (w_top / 3) ** n), n, sigma]))
    return starts
