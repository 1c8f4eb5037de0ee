"""Full cells (cathode | SSE | Li): C-rates, rate capability and capacity fade per cycle.

Built on :func:`analysis.cycling.cycle_table`: the per-cycle table (``cycle``,
``discharge_capacity_Ah``, and with an active mass ``discharge_capacity_mAh_g``) is the input of
the rate and fade functions, so they apply to any slice of it (after formation, one rate block).

C-rate convention: the 1C current is the active mass times the nominal specific capacity
(``physics.md``: 200 mA/g for NCM811, so 2.149 mg -> 0.430 mA), and a cycle's C-rate is its
discharge current over that 1C current. Charge and discharge can run at different rates; the
discharge rate is the one a rate-capability plot is about.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from analysis.cycling import CYCLE
from analysis.errors import AnalysisError

CURRENT = "Current / A"
RATE_COLUMNS = (
    "block", "c_rate", "first_cycle", "last_cycle", "cycles", "discharge_capacity_mAh_g",
)


def one_c_current_A(active_mass_kg: float, specific_capacity_mAh_g: float) -> float:
    """The 1C current in A: m q / 1 h. mAh/g = Ah/kg, so kg times Ah/kg over one hour is A."""
    for name, value in (("active_mass_kg", active_mass_kg),
                        ("specific_capacity_mAh_g", specific_capacity_mAh_g)):
        if not (np.isfinite(value) and value > 0):
            raise AnalysisError(f"{name} must be a positive finite number, got {value!r}")
    return float(active_mass_kg * specific_capacity_mAh_g)


def cycle_c_rates(
    df: pd.DataFrame, one_c_current_A: float, *, significant_digits: int | None = 3
) -> pd.DataFrame:
    """Each cycle's discharge C-rate: columns ``cycle``, ``discharge_current_A`` (a magnitude),
    ``c_rate``.

    ``df`` is the exported time series (Battery Data Format names, as ``cycle_table`` takes it).
    The discharge current is the median |I| of the cycle's rows with I < 0: a constant-current
    discharge's set point, not pulled down by a CV tail or up by a spike. A cycle without
    discharge rows gets NaN. ``c_rate`` is rounded to ``significant_digits`` (default 3, so
    0.0999 -> 0.0999 but 0.09999999 -> 0.1: set points are round numbers, the ratio of two
    floats is not); None keeps it unrounded. Cycle 0 (outside any loop) is left out.
    """
    missing = [c for c in (CYCLE, CURRENT) if c not in df.columns]
    if missing:
        raise AnalysisError(f"the time series lacks the columns {missing}")
    if not (np.isfinite(one_c_current_A) and one_c_current_A > 0):
        raise AnalysisError(f"one_c_current_A must be positive, got {one_c_current_A!r}")
    if significant_digits is not None and significant_digits < 1:
        raise AnalysisError(f"significant_digits must be >= 1, got {significant_digits}")
    cycle = df[CYCLE].to_numpy(dtype=np.float64)
    current = df[CURRENT].to_numpy(dtype=np.float64)
    if not (np.all(np.isfinite(cycle)) and np.all(np.isfinite(current))):
        raise AnalysisError(f"{CYCLE!r} and {CURRENT!r} must not hold NaN or inf")
    rows = []
    for number in np.unique(cycle[cycle > 0]):
        discharge = current[(cycle == number) & (current < 0)]
        magnitude = float(np.median(-discharge)) if discharge.size else math.nan
        rate = magnitude / one_c_current_A
        if significant_digits is not None and np.isfinite(rate):
            rate = _round_significant(rate, significant_digits)
        rows.append((int(number), magnitude, rate))
    return pd.DataFrame(rows, columns=["cycle", "discharge_current_A", "c_rate"]).astype(
        {"cycle": np.int64}
    )


def rate_table(
    table: pd.DataFrame,
    c_rates: pd.DataFrame | Mapping[int, float] | Sequence[float],
    *,
    rtol: float = 0.02,
) -> pd.DataFrame:
    """Mean discharge capacity per block of consecutive cycles at one C-rate.

    - ``table`` is a cycle table with ``discharge_capacity_mAh_g`` (``cycle_table(df, mass)``).
    - ``c_rates``: :func:`cycle_c_rates`' frame (matched on ``cycle``), a mapping cycle -> C-rate,
      or one C-rate per row of ``table``. Cycles whose C-rate is NaN (no discharge) are left out.
    - Consecutive cycles whose C-rates agree within ``rtol`` form a block, so the return to 0.1C
      at the end of a rate test is its own row (the recovery the plot shows), not averaged into the
      first 0.1C block.

    Columns: ``block`` (0, 1, ...), ``c_rate`` (the block's mean), ``first_cycle``,
    ``last_cycle``, ``cycles``, ``discharge_capacity_mAh_g`` (the block's mean).
    """
    for column in ("cycle", "discharge_capacity_mAh_g"):
        if column not in table.columns:
            raise AnalysisError(
                f"the cycle table lacks {column!r}; build it with cycle_table(df, active_mass_kg)"
            )
    if not 0 <= rtol < 1:
        raise AnalysisError(f"rtol must be in [0, 1), got {rtol!r}")
    cycles = table["cycle"].to_numpy()
    rates = _rates_for(cycles, c_rates)
    capacity = table["discharge_capacity_mAh_g"].to_numpy(dtype=np.float64)
    keep = np.isfinite(rates)
    cycles, rates, capacity = cycles[keep], rates[keep], capacity[keep]
    if np.any(rates <= 0):
        raise AnalysisError(f"C-rates must be positive, got {rates[rates <= 0].tolist()}")
    block = np.zeros(rates.size, dtype=np.int64)
    for k in range(1, rates.size):
        same = abs(rates[k] - rates[k - 1]) <= rtol * max(rates[k], rates[k - 1])
        block[k] = block[k - 1] + (0 if same else 1)
    frame = pd.DataFrame({"block": block, "cycle": cycles, "c_rate": rates,
                          "capacity": capacity})
    out = frame.groupby("block", sort=True).agg(
        c_rate=("c_rate", "mean"),
        first_cycle=("cycle", "min"),
        last_cycle=("cycle", "max"),
        cycles=("cycle", "size"),
        discharge_capacity_mAh_g=("capacity", "mean"),
    )
    return out.reset_index()[list(RATE_COLUMNS)]


def capacity_fade_per_cycle(
    table: pd.DataFrame,
    *,
    method: Literal["endpoints", "linear"] = "endpoints",
    column: str = "discharge_capacity_Ah",
) -> float:
    """Capacity lost per cycle, in percent of the first cycle's discharge capacity (positive =
    fade).

    - ``"endpoints"`` (default): (100 % - retention) / (n - 1), with retention = last / first of
      the n cycles in ``table`` (as :func:`analysis.cycling.capacity_retention`); n - 1 is the
      number of cycle-to-cycle steps between them. The usual literature number ("0.036 %/cycle
      over 500 cycles").
    - ``"linear"``: minus the slope of a least-squares line of capacity against cycle number, over
      the first cycle's measured capacity, times 100: every cycle counts, so one noisy end point
      does not set the result.

    Slice ``table`` first to measure from another reference cycle. ``column`` may name a specific
    capacity column instead; the result is the same, being relative.
    """
    if column not in table.columns or "cycle" not in table.columns:
        raise AnalysisError(f"capacity fade needs a cycle table with 'cycle' and {column!r}")
    if len(table) < 2:
        raise AnalysisError(f"capacity fade needs at least 2 cycles, got {len(table)}")
    capacity = table[column].to_numpy(dtype=np.float64)
    cycle = table["cycle"].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(capacity)):
        raise AnalysisError(f"{column!r} has NaN or inf")
    first = float(capacity[0])
    if not first > 0:
        raise AnalysisError(f"the first cycle's capacity is {first!r}; fade is undefined")
    if method == "endpoints":
        return float(100.0 * (1.0 - capacity[-1] / first) / (len(capacity) - 1))
    if method == "linear":
        if np.unique(cycle).size < 2:
            raise AnalysisError("a linear fade fit needs at least 2 distinct cycle numbers")
        slope = np.polyfit(cycle, capacity, 1)[0]
        return float(-100.0 * slope / first)
    raise AnalysisError(f"method must be 'endpoints' or 'linear', got {method!r}")


def _rates_for(
    cycles: np.ndarray, c_rates: pd.DataFrame | Mapping[int, float] | Sequence[float]
) -> np.ndarray:
    """One C-rate (float, NaN allowed) per cycle of the table."""
    if isinstance(c_rates, pd.DataFrame):
        if not {"cycle", "c_rate"} <= set(c_rates.columns):
            raise AnalysisError("a C-rate frame needs the columns 'cycle' and 'c_rate'")
        c_rates = dict(zip(c_rates["cycle"].astype(int), c_rates["c_rate"], strict=True))
    if isinstance(c_rates, Mapping):
        absent = [int(c) for c in cycles if int(c) not in c_rates]
        if absent:
            raise AnalysisError(f"no C-rate given for cycles {absent[:10]}")
        return np.array([float(c_rates[int(c)]) for c in cycles], dtype=np.float64)
    rates = np.asarray(c_rates, dtype=np.float64)
    if rates.shape != cycles.shape:
        raise AnalysisError(
            f"{rates.size} C-rates for {cycles.size} cycles; give one per row of the table"
        )
    return rates


def _round_significant(value: float, digits: int) -> float:
    if value == 0:
        return 0.0
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))
