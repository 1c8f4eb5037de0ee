"""High-frequency artefacts of galvanostatic impedance (GEIS), found and left out visibly.

Under current control a potentiostat loses the current at its highest frequencies: the
measured current amplitude falls short of the set one, and the points there spiral (Re Z
negative, or Re Z falling as the frequency falls, which no cell of resistors and capacitors
does: for such a network Re Z never decreases as the frequency decreases). Reading the
intercept from those points gives a bulk resistance that is no such thing.

The rule, applied from the highest frequency down, stops at the first point that is
trustworthy, and everything above it is left out:

- its current amplitude ``|I|`` (where the file has it) is within 20 % of the spectrum's
  median ``|I|``;
- its Re Z is positive;
- over the decade of frequency below it, Re Z does not fall below its own Re Z by more than
  2 % (noise).

It is applied to galvanostatic spectra (the file says GEIS, or the user says so); a
potentiostatic spectrum is read as it is.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: A point whose current amplitude is further than this from the spectrum's median is
#: outside current control.
CURRENT_DEVIATION = 0.2
#: How far Re Z may fall below a point's within the decade below it (noise).
FALL_TOLERANCE = 0.02


def high_frequency_artefacts(frequency_Hz: npt.ArrayLike, z_real_ohm: npt.ArrayLike,
                             current_amplitude_A: npt.ArrayLike | None = None
                             ) -> tuple[npt.NDArray[np.bool_], str]:
    """(points to keep, a note saying what was left out and why; "" when nothing was)."""
    f = np.asarray(frequency_Hz, dtype=np.float64)
    re = np.asarray(z_real_ohm, dtype=np.float64)
    order = np.argsort(-f, kind="stable")
    fs, rs = f[order], re[order]
    controlled = np.ones(f.size, dtype=bool)
    if current_amplitude_A is not None:
        amplitude = np.asarray(current_amplitude_A, dtype=np.float64)[order]
        median = float(np.median(amplitude))
        if median > 0:
            controlled = np.abs(amplitude - median) <= CURRENT_DEVIATION * median
    first = None
    for k in range(f.size):
        if not controlled[k] or rs[k] <= 0:
            continue
        below = (fs[k + 1:] >= fs[k] / 10) & controlled[k + 1:]
        if np.all(rs[k + 1:][below] >= rs[k] * (1 - FALL_TOLERANCE)):
            first = k
            break
    keep = np.ones(f.size, dtype=bool)
    if first is None:
        return keep, ("no part of the high-frequency end passes the galvanostatic artefact"
                      " checks; nothing was left out")
    if first == 0:
        return keep, ""
    keep[order[:first]] = False
    reasons = []
    if not controlled[:first].all():
        reasons.append("current amplitude off the median by more than"
                       f" {CURRENT_DEVIATION:.0%}")
    if (rs[:first] <= 0).any():
        reasons.append("Re Z not positive")
    reasons.append("Re Z falling as the frequency falls")
    return keep, (f"galvanostatic: the {first} highest-frequency point{'s' if first > 1 else ''}"
                  f" (above {fs[first]:.4g} Hz) left out as artefacts ({', '.join(reasons)});"
                  " the intercept is read from the rest")
