"""Coulombic efficiency of Li plating/stripping on Cu (Li||Cu cells).

Convention: the working electrode is the Cu foil, and positive current is current into the working
electrode (the store's "charge"). So plating Li onto Cu is a negative current, counted by the
cumulative ``Discharging Capacity / Ah``, and stripping it off again is a positive current, counted
by ``Charging Capacity / Ah``. A cycle plates first, then strips (to a cut-off voltage, about 1 V
vs Li): what does not come back was lost to SEI and dead Li.

Two definitions, and reports must say which (``physics.md``, "Coulombic efficiency"):

- average CE = sum Q_strip / sum Q_plate over the cycles (:func:`average_ce`), the number the
  paper quotes (96.31 % over 100 cycles at 0.5 mA/cm^2); a charge-weighted mean, not the mean of
  the per-cycle ratios.
- Adams/Aurbach reservoir CE = (n Q_C + Q_S) / (n Q_C + Q_T) (:func:`reservoir_ce`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from analysis.cycling import cycle_table
from analysis.errors import AnalysisError

# pandas is imported where a frame is made: a run's printed summary with nothing to derive
# loads neither it nor pyarrow (tests/test_startup_imports.py)
if TYPE_CHECKING:
    import pandas as pd

PLATING_COLUMNS = ("cycle", "plated_Ah", "stripped_Ah", "coulombic_efficiency")


def plating_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cycle: ``plated_Ah``, ``stripped_Ah`` and ``coulombic_efficiency`` =
    stripped / plated (a fraction; NaN where nothing was plated).

    ``df`` is the exported time series (Battery Data Format names, as
    :func:`analysis.cycling.cycle_table` takes it). Per-cycle charges are the growth of the
    cumulative counters within the cycle, cycle 0 (outside any loop) left out, exactly as in
    :func:`~analysis.cycling.cycle_table`; only the names and the ratio are Li||Cu's.
    """
    import pandas as pd

    table = cycle_table(df)
    plated = table["discharge_capacity_Ah"].to_numpy()
    stripped = table["charge_capacity_Ah"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ce = np.where(plated > 0, stripped / plated, np.nan)
    return pd.DataFrame({"cycle": table["cycle"].to_numpy(), "plated_Ah": plated,
                         "stripped_Ah": stripped, "coulombic_efficiency": ce})[
        list(PLATING_COLUMNS)
    ]


def average_ce(df: pd.DataFrame, *, first_cycle: int = 1, last_cycle: int | None = None) -> float:
    """sum Q_strip / sum Q_plate over cycles ``first_cycle`` .. ``last_cycle`` (inclusive), as a
    fraction.

    Charge-weighted: a short cycle (a strip that hit its cut-off early) counts by its charge. Use
    ``first_cycle`` to leave out formation cycles (the first plating on fresh Cu builds the SEI
    and is usually reported apart).
    """
    table = plating_table(df)
    keep = table["cycle"] >= first_cycle
    if last_cycle is not None:
        keep &= table["cycle"] <= last_cycle
    table = table[keep]
    plated = float(table["plated_Ah"].sum())
    if not plated > 0:
        raise AnalysisError(
            f"no Li was plated in cycles {first_cycle}..{last_cycle or 'end'}; CE is undefined"
        )
    return float(table["stripped_Ah"].sum()) / plated


def reservoir_ce(q_c: float, q_s: float, q_t: float, n: int) -> float:
    """Adams/Aurbach reservoir CE = (n Q_C + Q_S) / (n Q_C + Q_T), as a fraction.

    The protocol: plate a reservoir Q_T onto Cu, strip and plate Q_C ``n`` times, then strip
    everything left (Q_S, to the cut-off). All charge in is n Q_C + Q_T, all charge out
    n Q_C + Q_S. Charges in any one unit (they cancel); n >= 1 cycles.
    """
    for name, value in (("q_c", q_c), ("q_s", q_s), ("q_t", q_t)):
        if not np.isfinite(value) or value < 0:
            raise AnalysisError(f"{name} must be a finite charge >= 0, got {value!r}")
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise AnalysisError(f"n must be a whole number of cycles >= 1, got {n!r}")
    if not q_t > 0:
        raise AnalysisError(f"q_t (the reservoir) must be positive, got {q_t!r}")
    return float((n * q_c + q_s) / (n * q_c + q_t))
