"""Chemical diffusion coefficients from galvanostatic intermittent titration (GITT).

Weppner-Huggins, in the form ``physics.md`` gives:

    D = (4 / (pi tau)) (m V_M / (M S))^2 (dE_s / dE_tau)^2

with tau the pulse duration, dE_s the change of the equilibrium (end-of-rest) voltage across the
pulse and dE_tau the voltage change during the pulse without the IR drop. The length scale
L = m V_M / (M S) is the thickness the active material would have as a dense layer over the
electrode area S (m / M mol of it, V_M m^3 per mol): the electrode-level diffusion length. Using a
particle radius instead gives a different, also common, D; :func:`gitt_diffusion` takes L directly
for that.

Validity. The formula is the short-time (semi-infinite) solution: it holds only while the pulse
is short against the diffusion time, tau << L^2 / D, and then E is a straight line in sqrt(t)
during the pulse. A longer pulse gives a D that is too low (several times so at tau ~ 3 L^2/D),
with nothing in the number to show it. Each pulse is therefore checked the two ways the
literature uses, and ``valid`` is False, with the reasons in ``validity``, when either fails:

- tau D / L^2 <= :data:`MAX_TAU_D_OVER_L2`, with D the derived value. Since D is proportional to
  L^2, this ratio is (4 / pi) (dE_s / dE_tau)^2 whatever L is used: one check for every basis.
- E against sqrt(t) is straight: R^2 of the line >= :data:`MIN_SQRT_FIT_R2`, and the slope over
  the second half of the pulse (in sqrt(t)) is within :data:`MAX_SLOPE_CHANGE` of the slope over
  the first half (a finite particle bends the line upwards as its centre starts to fill).

Input: one cell's time series (time, voltage, current; positive = charge) through a GITT: current
pulses separated by rests. Pulses and rests are found from the current alone
(:func:`analysis.symmetric.current_segments`). SI throughout: D in m^2/s (1 m^2/s = 1e4 cm^2/s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike

from analysis.errors import AnalysisError
from analysis.symmetric import _series, current_segments

# pandas is imported where a frame is made: a run's printed summary with nothing to derive
# loads neither it nor pyarrow (tests/test_startup_imports.py)
if TYPE_CHECKING:
    import pandas as pd

GITT_COLUMNS = (
    "pulse", "start_s", "tau_s", "current_A", "e_rest_before_V", "e_rest_after_V", "dE_s_V",
    "dE_tau_V", "sqrt_fit_r2", "diffusion_m2_s", "tau_d_over_l2", "sqrt_slope_change",
    "valid", "validity",
)

#: tau D / L^2 above this: the pulse is not short against the diffusion time. For a plane the
#: semi-infinite solution is exact to 0.1 % up to 0.2 (the reflected term is 2 ierfc(1/sqrt(0.2)));
#: beyond, D comes out low, and D low makes the ratio low too, so the limit is not tightened
#: further by the bias it detects.
MAX_TAU_D_OVER_L2 = 0.2
#: R^2 of E against sqrt(t) during the pulse below this: not the straight line the formula needs.
MIN_SQRT_FIT_R2 = 0.99
#: |slope(second half) / slope(first half) - 1| above this: E bends away from sqrt(t).
MAX_SLOPE_CHANGE = 0.25


def gitt_length_scale(
    active_mass_kg: float,
    molar_volume_m3_per_mol: float,
    molar_mass_kg_per_mol: float,
    area_m2: float,
) -> float:
    """L = m V_M / (M S) in m: the active material's volume spread as a dense layer over S."""
    for name, value in (("active_mass_kg", active_mass_kg),
                        ("molar_volume_m3_per_mol", molar_volume_m3_per_mol),
                        ("molar_mass_kg_per_mol", molar_mass_kg_per_mol), ("area_m2", area_m2)):
        if not (np.isfinite(value) and value > 0):
            raise AnalysisError(f"{name} must be a positive finite number, got {value!r}")
    return float(active_mass_kg * molar_volume_m3_per_mol / (molar_mass_kg_per_mol * area_m2))


def gitt_diffusion(
    t_s: ArrayLike,
    voltage_V: ArrayLike,
    current_A: ArrayLike,
    *,
    length_m: float | None = None,
    active_mass_kg: float | None = None,
    molar_volume_m3_per_mol: float | None = None,
    molar_mass_kg_per_mol: float | None = None,
    area_m2: float | None = None,
    ir_drop: Literal["sqrt_fit", "first_point"] = "sqrt_fit",
    rest_tail_fraction: float = 0.05,
    rest_fraction: float = 0.01,
    rtol: float = 0.05,
) -> pd.DataFrame:
    """One row per pulse with a rest before and after it; D = (4 / (pi tau)) L^2 (dE_s/dE_tau)^2.

    The length scale L: either ``length_m`` (a particle radius, or L computed elsewhere), or
    ``active_mass_kg``, ``molar_volume_m3_per_mol``, ``molar_mass_kg_per_mol`` and ``area_m2``,
    from which L = m V_M / (M S) (:func:`gitt_length_scale`); not both. Per pulse:

    - tau = time of the pulse's last point minus its first (the store records both ends of a
      step);
    - the equilibrium voltage at the end of a rest is its mean over the last
      ``rest_tail_fraction`` of the rest's duration (noise averages out; the voltage has settled
      there); dE_s = E(rest after) - E(rest before);
    - dE_tau without the IR drop, ``ir_drop="sqrt_fit"`` (default): a straight line of E against
      sqrt(t - t_start) through the pulse's points after its first, dE_tau = slope * sqrt(tau).
      Its intercept is E just after the IR step, so neither the IR drop nor a first sample taken
      before the current settled enters; the line also averages the noise. ``"first_point"``:
      dE_tau = E(last point) - E(first point), the first point taken as after the IR step.
    - ``sqrt_fit_r2`` is the R^2 of that line (NaN with "first_point"): near 1 when the
      semi-infinite-diffusion assumption behind the formula holds; ``sqrt_slope_change`` the
      relative change of its slope from the first to the second half of the pulse;
    - ``tau_d_over_l2`` = tau D / L^2 = (4 / pi) (dE_s / dE_tau)^2;
    - ``valid``: both checks of the module docstring pass; else ``validity`` says which failed
      and by how much (empty when valid). The D of an invalid pulse is still given (too low,
      as a rule): the caller decides how to mark it.

    dE_s and dE_tau are signed (both negative on discharge); D uses their squared ratio.
    """
    import pandas as pd

    t, v, i = _series(t_s, voltage_V, current_A)
    length_m = _length(length_m, active_mass_kg, molar_volume_m3_per_mol, molar_mass_kg_per_mol,
                       area_m2)
    if ir_drop not in ("sqrt_fit", "first_point"):
        raise AnalysisError(f"ir_drop must be 'sqrt_fit' or 'first_point', got {ir_drop!r}")
    if not 0 < rest_tail_fraction <= 1:
        raise AnalysisError(f"rest_tail_fraction must be in (0, 1], got {rest_tail_fraction!r}")
    segments = current_segments(i, rest_fraction=rest_fraction, rtol=rtol)
    rows = []
    for k in range(1, len(segments) - 1):
        before, pulse, after = segments[k - 1], segments[k], segments[k + 1]
        if pulse.current_A == 0.0 or before.current_A != 0.0 or after.current_A != 0.0:
            continue
        tp, vp = t[pulse.start:pulse.stop], v[pulse.start:pulse.stop]
        tau = float(tp[-1] - tp[0])
        if tau <= 0:
            continue
        e_before = _rest_end(t, v, before.start, before.stop, rest_tail_fraction)
        e_after = _rest_end(t, v, after.start, after.stop, rest_tail_fraction)
        if ir_drop == "sqrt_fit":
            if tp.size < 3:
                raise AnalysisError(
                    f"the pulse at t = {tp[0]:g} s has {tp.size} points; a sqrt(t) line needs 3"
                )
            root = np.sqrt(tp[1:] - tp[0])
            slope, offset = np.polyfit(root, vp[1:], 1)
            residual = vp[1:] - (offset + slope * root)
            spread = float(np.sum((vp[1:] - vp[1:].mean()) ** 2))
            r2 = 1.0 - float(np.sum(residual**2)) / spread if spread > 0 else np.nan
            de_tau = float(slope * np.sqrt(tau))
            bend = _slope_change(root, vp[1:])
        else:
            r2 = np.nan
            de_tau = float(vp[-1] - vp[0])
            bend = _slope_change(np.sqrt(tp - tp[0]), vp)
        de_s = e_after - e_before
        if de_tau == 0:
            raise AnalysisError(f"the pulse at t = {tp[0]:g} s does not change the voltage")
        d = 4.0 / (np.pi * tau) * length_m**2 * (de_s / de_tau) ** 2
        ratio = 4.0 / np.pi * (de_s / de_tau) ** 2
        problems = _validity(ratio, r2, bend)
        rows.append((len(rows), float(tp[0]), tau, pulse.current_A, e_before, e_after, de_s,
                     de_tau, r2, float(d), float(ratio), bend, not problems,
                     "; ".join(problems)))
    return pd.DataFrame(rows, columns=list(GITT_COLUMNS)).astype({"pulse": np.int64,
                                                                   "valid": bool})


def _slope_change(root: np.ndarray, v: np.ndarray) -> float:
    """slope(second half) / slope(first half) - 1 of E against sqrt(t), split at the middle
    of the pulse in sqrt(t); NaN where a half has fewer than 3 points or a flat first half."""
    middle = root[-1] / 2 if root.size else 0.0
    first, second = root <= middle, root > middle
    if np.count_nonzero(first) < 3 or np.count_nonzero(second) < 3:
        return float("nan")
    s1 = np.polyfit(root[first], v[first], 1)[0]
    s2 = np.polyfit(root[second], v[second], 1)[0]
    return float(s2 / s1 - 1.0) if s1 != 0 else float("nan")


def _validity(ratio: float, r2: float, bend: float) -> list[str]:
    """Why the short-time formula does not hold for a pulse (empty: it holds)."""
    problems = []
    if ratio > MAX_TAU_D_OVER_L2:
        problems.append(f"pulse not short against the diffusion time: tau D / L^2 = {ratio:.2g}"
                        f" > {MAX_TAU_D_OVER_L2:g}")
    if np.isfinite(r2) and r2 < MIN_SQRT_FIT_R2:
        problems.append(f"E not linear in sqrt(t) during the pulse: R^2 = {r2:.4f}"
                        f" < {MIN_SQRT_FIT_R2:g}")
    if np.isfinite(bend) and abs(bend) > MAX_SLOPE_CHANGE:
        problems.append(f"E bends away from sqrt(t) during the pulse: its slope changes by"
                        f" {100 * bend:+.0f} % from the first half to the second")
    return problems


def _length(
    length_m: float | None,
    active_mass_kg: float | None,
    molar_volume_m3_per_mol: float | None,
    molar_mass_kg_per_mol: float | None,
    area_m2: float | None,
) -> float:
    """L from exactly one of the two ways to give it."""
    parts = (active_mass_kg, molar_volume_m3_per_mol, molar_mass_kg_per_mol, area_m2)
    if length_m is not None:
        if any(p is not None for p in parts):
            raise AnalysisError("give either length_m or the mass, molar volume, molar mass and "
                                "area, not both")
        if not (np.isfinite(length_m) and length_m > 0):
            raise AnalysisError(f"length_m must be a positive finite number, got {length_m!r}")
        return float(length_m)
    if (active_mass_kg is None or molar_volume_m3_per_mol is None
            or molar_mass_kg_per_mol is None or area_m2 is None):
        raise AnalysisError("give length_m, or all of active_mass_kg, molar_volume_m3_per_mol, "
                            "molar_mass_kg_per_mol and area_m2")
    return gitt_length_scale(active_mass_kg, molar_volume_m3_per_mol, molar_mass_kg_per_mol,
                             area_m2)


def _rest_end(t: np.ndarray, v: np.ndarray, start: int, stop: int, fraction: float) -> float:
    """Mean voltage over the last ``fraction`` of a rest's duration."""
    tt, vv = t[start:stop], v[start:stop]
    return float(np.mean(vv[tt >= tt[-1] - fraction * (tt[-1] - tt[0])]))
