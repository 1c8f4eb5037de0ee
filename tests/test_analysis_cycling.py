"""Per-cycle capacities from a hand-built time series whose answers are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import AnalysisError, capacity_retention, cycle_table

DT_S = 36.0


def time_series(segments: list[tuple[int, float, float]]) -> pd.DataFrame:
    """Rows for (cycle, current_A, duration_s) segments, sampled every 36 s.

    Each step's first sample is 36 s into it, so every cycle's first row already carries capacity:
    a cycle table that differenced only within the cycle's own rows would come out short.
    """
    rows: list[dict[str, float]] = []
    test_time = charged = discharged = 0.0
    for step_count, (cycle, current, duration) in enumerate(segments, start=1):
        for k in range(1, round(duration / DT_S) + 1):
            test_time += DT_S
            if current > 0:
                charged += current * DT_S / 3600
            else:
                discharged += -current * DT_S / 3600
            rows.append(
                {
                    "Test Time / s": test_time,
                    "Step Time / s": k * DT_S,
                    "Voltage / V": 3.7,
                    "Current / A": current,
                    "Cycle Count / 1": cycle,
                    "Step Count / 1": step_count,
                    "Step Index / 1": step_count if cycle == 0 else 3 + step_count % 3,
                    "Charging Capacity / Ah": charged,
                    "Discharging Capacity / Ah": discharged,
                    "Temperature T1 / degC": 25.0,
                }
            )
    return pd.DataFrame(rows)


# Cycle 0: rest, then a 0.25 Ah pre-charge outside any loop (must not count).
# Cycles 1-3: charge 1.0 Ah, rest, discharge 0.99, 0.98, 0.97 Ah.
SEGMENTS = [(0, 0.0, 720.0), (0, 0.5, 1800.0)]
for _cycle, _discharge_s in ((1, 3564.0), (2, 3528.0), (3, 3492.0)):
    SEGMENTS += [(_cycle, 1.0, 3600.0), (_cycle, 0.0, 360.0), (_cycle, -1.0, _discharge_s)]
ACTIVE_MASS_KG = 5e-3


@pytest.fixture
def series() -> pd.DataFrame:
    return time_series(SEGMENTS)


def test_capacities_and_efficiency_per_cycle(series: pd.DataFrame):
    table = cycle_table(series, ACTIVE_MASS_KG)
    assert table["cycle"].tolist() == [1, 2, 3]
    assert table["cycle"].dtype == np.int64
    assert table["charge_capacity_Ah"].tolist() == pytest.approx([1.0, 1.0, 1.0], rel=1e-12)
    assert table["discharge_capacity_Ah"].tolist() == pytest.approx([0.99, 0.98, 0.97], rel=1e-12)
    assert table["coulombic_efficiency"].tolist() == pytest.approx([0.99, 0.98, 0.97], rel=1e-12)
    assert table["discharge_capacity_mAh_g"].tolist() == pytest.approx([198.0, 196.0, 194.0])
    assert table["charge_capacity_mAh_g"].tolist() == pytest.approx([200.0, 200.0, 200.0])


def test_column_order_follows_the_contract(series: pd.DataFrame):
    assert list(cycle_table(series, ACTIVE_MASS_KG).columns) == [
        "cycle",
        "charge_capacity_Ah",
        "discharge_capacity_Ah",
        "coulombic_efficiency",
        "discharge_capacity_mAh_g",
        "charge_capacity_mAh_g",
    ]


def test_without_mass_there_are_no_specific_capacities(series: pd.DataFrame):
    assert "discharge_capacity_mAh_g" not in cycle_table(series, None).columns
    assert "discharge_capacity_mAh_g" not in cycle_table(series).columns


def test_capacity_retention(series: pd.DataFrame):
    table = cycle_table(series, None)
    assert capacity_retention(table) == pytest.approx(100 * 0.97 / 0.99, rel=1e-12)
    assert capacity_retention(table.iloc[1:]) == pytest.approx(100 * 0.97 / 0.98, rel=1e-12)


def test_rows_out_of_time_order_give_the_same_table(series: pd.DataFrame):
    shuffled = series.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(cycle_table(shuffled, None), cycle_table(series, None))


def test_a_slice_of_a_test_starts_from_its_first_row(series: pd.DataFrame):
    # A slice starting at cycle 2's first row loses only that row's 36 s of charge.
    table = cycle_table(series[series["Cycle Count / 1"] >= 2], None)
    assert table["cycle"].tolist() == [2, 3]
    assert table["charge_capacity_Ah"].tolist() == pytest.approx([0.99, 1.0], rel=1e-12)


def test_a_cycle_with_no_charge_has_nan_efficiency():
    table = cycle_table(time_series([(1, -1.0, 360.0), (2, 1.0, 360.0), (2, -1.0, 180.0)]), None)
    assert math.isnan(table["coulombic_efficiency"].iloc[0])
    assert table["coulombic_efficiency"].iloc[1] == pytest.approx(0.5)


def test_no_loop_gives_an_empty_table():
    table = cycle_table(time_series([(0, 1.0, 360.0)]), 1e-3)
    assert len(table) == 0
    assert list(table.columns[:4]) == [
        "cycle",
        "charge_capacity_Ah",
        "discharge_capacity_Ah",
        "coulombic_efficiency",
    ]


def test_missing_columns_are_named(series: pd.DataFrame):
    with pytest.raises(AnalysisError, match=r"lacks the columns \['Discharging Capacity / Ah'\]$"):
        cycle_table(series.drop(columns="Discharging Capacity / Ah"), None)


def test_a_decreasing_counter_is_refused(series: pd.DataFrame):
    broken = series.copy()
    broken.loc[200, "Charging Capacity / Ah"] = 0.0
    with pytest.raises(AnalysisError, match=r"^'Charging Capacity / Ah' decreases at row 200"):
        cycle_table(broken, None)


def test_nan_is_refused(series: pd.DataFrame):
    broken = series.copy()
    broken.loc[10, "Discharging Capacity / Ah"] = np.nan
    with pytest.raises(AnalysisError, match=r"^'Discharging Capacity / Ah' has NaN or inf"):
        cycle_table(broken, None)


@pytest.mark.parametrize("mass", [0.0, -1e-3, math.nan])
def test_bad_mass_is_refused(series: pd.DataFrame, mass: float):
    with pytest.raises(AnalysisError, match=r"^active_mass_kg must be a positive number"):
        cycle_table(series, mass)


def test_retention_needs_a_first_discharge():
    empty = cycle_table(time_series([(0, 1.0, 360.0)]), None)
    with pytest.raises(AnalysisError, match=r"at least one cycle$"):
        capacity_retention(empty)
    charge_only = cycle_table(time_series([(1, 1.0, 360.0)]), None)
    with pytest.raises(AnalysisError, match=r"retention is undefined$"):
        capacity_retention(charge_only)
