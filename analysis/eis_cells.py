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


class _Problem:
    """The weighted residuals of one circuit against one spectrum, and their Jacobian in
    closed form, in the solver's coordinates (log R, log Q, n, log sigma, log R0).

    Per arc A = R / (1 + R Q s) with s = (j w)^n, D = 1 + R Q s:
    dA/dlog R = R / D^2, dA/dlog Q = -R^2 Q s / D^2, dA/dn = -R^2 Q s ln(j w) / D^2.
    A finite-difference Jacobian costs one model evaluation per parameter and is what a fit
    spent most of its time on; this one shares the powers it needs with the residual.
    """

    def __init__(self, w: np.ndarray, z: _Complex, arcs: int, linear: np.ndarray) -> None:
        self.z, self.arcs, self.linear = z, arcs, linear
        self.weight = 1.0 / np.abs(z)
        self.log_jw = np.log(w) + 0.5j * math.pi      # ln(j w)
        self.warburg = (1 - 1j) / np.sqrt(w)
        # the point last evaluated (its bytes: the solver asks for residuals and Jacobian at
        # each point, and comparing bytes costs less than comparing arrays), its parameters
        self._key: bytes | None = None
        self._p = np.empty(0)
        self._parts: list[tuple[_Complex, _Complex]] = []   # per arc: (s, D)

    def _params(self, x: np.ndarray) -> np.ndarray:
        return np.where(self.linear, x, np.exp(x))

    def _update(self, x: np.ndarray) -> np.ndarray:
        key = np.asarray(x, dtype=np.float64).tobytes()
        if key != self._key:
            p = self._params(x)
            self._parts = []
            for k in range(self.arcs):
                r, q, n = p[1 + 3 * k:4 + 3 * k]
                s = np.exp(n * self.log_jw)
                self._parts.append((s, 1 + r * q * s))
            self._key, self._p = key, p
        return self._p

    def residuals(self, x: np.ndarray) -> np.ndarray:
        p = self._update(x)
        model = np.full(self.z.shape, p[0], dtype=np.complex128)
        for k, (_, d) in enumerate(self._parts):
            model = model + p[1 + 3 * k] / d
        model = model + p[1 + 3 * self.arcs] * self.warburg
        r = (model - self.z) * self.weight
        return np.concatenate([r.real, r.imag])

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        p = self._update(x)
        columns = np.empty((self.z.size, p.size), dtype=np.complex128)
        columns[:, 0] = p[0]
        for k, (s, d) in enumerate(self._parts):
            r, q = p[1 + 3 * k], p[2 + 3 * k]
            d2 = d * d
            columns[:, 1 + 3 * k] = r / d2
            rqs = r * r * q * s / d2
            columns[:, 2 + 3 * k] = -rqs
            columns[:, 3 + 3 * k] = -rqs * self.log_jw
        columns[:, -1] = p[-1] * self.warburg
        columns *= self.weight[:, None]
        return np.concatenate([columns.real, columns.imag])


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
        problem = _Problem(w, z, arcs, linear)
        with np.errstate(all="ignore"):
            try:
                sol = least_squares(problem.residuals, x0, jac=problem.jacobian,
                                    bounds=(lo, hi), method="trf", x_scale="jac",
                                    max_nfev=2000)
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
