"""Per-cycle capacities and efficiencies from an exported time series.

The input is one cell's time series with Battery Data Format style columns, as the run store
exports it. The cumulative capacity columns count over the whole test, so a cycle's capacity is
how much they grew during that cycle; differencing is immune to how the steps inside the cycle
are split or sampled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from analysis.errors import AnalysisError

# pandas is imported where a frame is made: a run's printed summary with nothing to derive
# loads neither it nor pyarrow (tests/test_startup_imports.py)
if TYPE_CHECKING:
    import pandas as pd

TEST_TIME = "Test Time / s"
CYCLE = "Cycle Count / 1"
CHARGE_CAPACITY = "Charging Capacity / Ah"
DISCHARGE_CAPACITY = "Discharging Capacity / Ah"

TABLE_COLUMNS = ("cycle", "charge_capacity_Ah", "discharge_capacity_Ah", "coulombic_efficiency")
SPECIFIC_COLUMNS = ("discharge_capacity_mAh_g", "charge_capacity_mAh_g")


def cycle_table(df: pd.DataFrame, active_mass_kg: float | None = None) -> pd.DataFrame:
    """One row per cycle: capacities charged and discharged in it, and their ratio.

    - A cycle's capacity is the growth of the cumulative column from the last row before the
      cycle to its last row, so a cycle whose first sample already carries some capacity loses
      nothing. The first row of ``df`` is the baseline (the data may be a slice of a test).
    - Rows are taken in order of ``Test Time / s`` where that column exists.
    - Cycle 0 (rows outside any loop) is left out; steps run after a loop carry the loop's last
      cycle number (the run store's convention) and count towards it.
    - ``coulombic_efficiency`` = discharge / charge of the same cycle (as a fraction): the
      convention for a cell that charges first in each cycle. NaN where nothing was charged.
    - With ``active_mass_kg``, also ``discharge_capacity_mAh_g`` and ``charge_capacity_mAh_g``
      (Ah/kg, numerically equal to mAh/g).

    Raises :class:`AnalysisError` on missing columns, NaN, or a cumulative column that decreases
    (the counters never go down; a drop means the data was spliced or reset).
    """
    import pandas as pd

    missing = [c for c in (CYCLE, CHARGE_CAPACITY, DISCHARGE_CAPACITY) if c not in df.columns]
    if missing:
        raise AnalysisError(f"the time series lacks the columns {missing}")
    if active_mass_kg is not None and (not np.isfinite(active_mass_kg) or active_mass_kg <= 0):
        raise AnalysisError(f"active_mass_kg must be a positive number, got {active_mass_kg!r}")

    ordered = df.sort_values(TEST_TIME, kind="stable") if TEST_TIME in df.columns else df
    cycle = _finite_column(ordered, CYCLE)
    if np.any(cycle != np.round(cycle)):
        raise AnalysisError(f"{CYCLE!r} must hold whole numbers")
    increments = {
        name: _increments(_finite_column(ordered, column), column)
        for name, column in (
            ("charge_capacity_Ah", CHARGE_CAPACITY),
            ("discharge_capacity_Ah", DISCHARGE_CAPACITY),
        )
    }
    per_row = pd.DataFrame({"cycle": cycle.astype(np.int64), **increments})
    table = (
        per_row[per_row["cycle"] > 0]
        .groupby("cycle", sort=True, as_index=False)
        .sum()
        .astype({"cycle": np.int64})
    )
    charge = table["charge_capacity_Ah"].to_numpy()
    discharge = table["discharge_capacity_Ah"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        table["coulombic_efficiency"] = np.where(charge > 0, discharge / charge, np.nan)
    if active_mass_kg is not None:
        table["discharge_capacity_mAh_g"] = discharge / active_mass_kg
        table["charge_capacity_mAh_g"] = charge / active_mass_kg
    return table.reset_index(drop=True)


def capacity_retention(table: pd.DataFrame) -> float:
    """Discharge capacity of the last cycle over the first, in percent.

    Taken on the table as given, so slice it first to measure from another reference cycle
    (after formation, or within one rate block).
    """
    if "discharge_capacity_Ah" not in table.columns or len(table) == 0:
        raise AnalysisError("capacity retention needs a cycle table with at least one cycle")
    first = float(table["discharge_capacity_Ah"].iloc[0])
    last = float(table["discharge_capacity_Ah"].iloc[-1])
    if not first > 0:
        raise AnalysisError(
            f"the first cycle's discharge capacity is {first!r} Ah; retention is undefined"
        )
    return 100.0 * last / first


def _finite_column(df: pd.DataFrame, column: str) -> np.ndarray:
    """The column as floats, refusing NaN and inf rather than guessing what they meant."""
    values = df[column].to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise AnalysisError(f"{column!r} has NaN or inf, first at row {int(bad[0])} (time order)")
    return values


def _increments(cumulative: np.ndarray, column: str) -> np.ndarray:
    """Growth since the previous row; the first row is the baseline and gets 0."""
    steps = np.diff(cumulative, prepend=cumulative[:1])
    drops = np.flatnonzero(steps < 0)
    if drops.size:
        row = int(drops[0])
        raise AnalysisError(
            f"{column!r} decreases at row {row} (time order): "
            f"{cumulative[row - 1]!r} -> {cumulative[row]!r}; cumulative counters never go down"
        )
    return steps
