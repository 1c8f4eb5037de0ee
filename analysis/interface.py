"""Interfacial resistance of a Li|SSE|Li cell over days of storage or cycling.

Each spectrum gives (R_b, R_int) by :func:`analysis.transference.interfacial_resistance`; this
module lines them up in time. The input is the run store's spectrum table (``RunStore.read(cell,
"spectrum")``, or a DataFrame with the same columns): every point carries its ``test_time_s`` and
the ``step_count`` of the impedance step that measured it, which is what groups points into
spectra.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike

from analysis.eis import _as_1d_finite
from analysis.errors import AnalysisError
from analysis.transference import interfacial_resistance

# pandas is imported where a frame is made: a run's printed summary with nothing to derive
# loads neither it nor pyarrow (tests/test_startup_imports.py)
if TYPE_CHECKING:
    import pandas as pd

DAY_S = 86400.0
SPECTRUM_COLUMNS = ("frequency_Hz", "z_real_ohm", "z_imag_ohm", "test_time_s", "step_count")
TABLE_COLUMNS = ("step_count", "time_s", "day", "r_bulk_ohm", "r_interface_ohm")


def interfacial_resistance_over_time(
    spectra: Mapping[str, ArrayLike] | pd.DataFrame,
    *,
    t0_s: float | None = None,
    on_error: Literal["raise", "skip"] = "raise",
    frequency_range_Hz: tuple[float, float] | None = None,
    fit_fraction: float = 0.25,
    valley_tolerance: float = 0.05,
) -> pd.DataFrame:
    """One row per spectrum, in time order: ``step_count``, ``time_s``, ``day``, ``r_bulk_ohm``,
    ``r_interface_ohm``.

    - A spectrum's time is its earliest ``test_time_s`` (when the sweep began; a sweep lasts
      minutes, the trend days).
    - ``day`` = (time - t0) / 86400 s, with ``t0_s`` defaulting to the first spectrum's time, so
      the first spectrum is day 0. Pass the assembly time as ``t0_s`` to count from there.
    - A spectrum without a usable arc raises :class:`AnalysisError` naming its step, or with
      ``on_error="skip"`` is left out (a report should still show the others).
    - The arc options are passed to :func:`~analysis.transference.interfacial_resistance`.
    """
    import pandas as pd

    if on_error not in ("raise", "skip"):
        raise AnalysisError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    missing = [c for c in SPECTRUM_COLUMNS if c not in spectra]
    if missing:
        raise AnalysisError(f"the spectrum table lacks the columns {missing}")
    columns = {c: _as_1d_finite(spectra[c], c) for c in SPECTRUM_COLUMNS}
    sizes = {c: a.size for c, a in columns.items()}
    if len(set(sizes.values())) != 1:
        raise AnalysisError(f"the spectrum columns differ in length: {sizes}")
    step = columns["step_count"]
    rows = []
    for key in np.unique(step):
        sel = step == key
        try:
            r_bulk, r_int = interfacial_resistance(
                columns["frequency_Hz"][sel], columns["z_real_ohm"][sel],
                columns["z_imag_ohm"][sel], frequency_range_Hz=frequency_range_Hz,
                fit_fraction=fit_fraction, valley_tolerance=valley_tolerance,
            )
        except AnalysisError as exc:
            if on_error == "skip":
                continue
            raise AnalysisError(f"spectrum of step {int(key)}: {exc}") from exc
        rows.append((int(key), float(columns["test_time_s"][sel].min()), r_bulk, r_int))
    table = pd.DataFrame(rows, columns=["step_count", "time_s", "r_bulk_ohm", "r_interface_ohm"])
    table = table.sort_values("time_s", kind="stable").reset_index(drop=True)
    if t0_s is None:
        t0_s = float(table["time_s"].iloc[0]) if len(table) else 0.0
    elif not np.isfinite(t0_s):
        raise AnalysisError(f"t0_s must be finite, got {t0_s!r}")
    table["day"] = (table["time_s"] - t0_s) / DAY_S
    return table.astype({"step_count": np.int64})[list(TABLE_COLUMNS)]


def sqrt_time_growth(day: ArrayLike, r_interface_ohm: ArrayLike) -> tuple[float, float]:
    """Fit R_int = R_0 + g sqrt(day) by least squares; return (R_0 in Ohm, g in Ohm/sqrt(day)).

    The parabolic law of a passivation layer growing by diffusion through itself, the form
    ``physics.md`` gives for Li|AIOSE|Li (134.5 + 4.61 sqrt(t/day)). Days before 0 are refused
    (the square root has no meaning there).
    """
    days = _as_1d_finite(day, "day")
    r_int = _as_1d_finite(r_interface_ohm, "r_interface_ohm")
    if days.size != r_int.size:
        raise AnalysisError(f"day and r_interface_ohm differ in length ({days.size}, {r_int.size})")
    if np.any(days < 0):
        raise AnalysisError(f"day must be >= 0, got {days.min()!r}")
    root = np.sqrt(days)
    if np.unique(root).size < 2:
        raise AnalysisError("a sqrt(time) fit needs at least 2 distinct times")
    g, r0 = np.polyfit(root, r_int, 1)
    return float(r0), float(g)
