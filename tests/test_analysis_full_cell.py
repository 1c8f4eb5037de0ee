"""C-rates, rate tables and capacity fade of NCM811|SSE|Li cells on hand-built data: a rate test
whose capacities follow physics.md's closed form, and a fade of 0.036 %/cycle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import AnalysisError, cycle_table
from analysis.full_cell import (
    capacity_fade_per_cycle,
    cycle_c_rates,
    one_c_current_A,
    rate_table,
)
from tests.test_analysis_plating import bdf_series

MASS_KG = 2.149e-6
ONE_C_A = 4.298e-4  # 2.149 mg at 200 mA/g
RATES = [0.1] * 3 + [1.0] * 3 + [3.0] * 3 + [5.0] * 3 + [10.0] * 3 + [0.1] * 3


def capacity_mAh_g(c_rate: float) -> float:
    """physics.md: Q(C) = 207.1 / (1 + (C / 10.36)^1.057) at 25 degC."""
    return 207.1 / (1 + (c_rate / 10.36) ** 1.057)


def rate_test_series() -> pd.DataFrame:
    """Per cycle: charge at 0.5C to 207.1 mAh/g, rest, discharge at the cycle's C-rate to
    Q(C); a formation rest as cycle 0."""
    steps = [(0, 0.0, 600.0)]
    for cycle, rate in enumerate(RATES, start=1):
        charge_Ah = 207.1 * MASS_KG
        discharge_Ah = capacity_mAh_g(rate) * MASS_KG
        steps += [(cycle, 0.5 * ONE_C_A, charge_Ah / (0.5 * ONE_C_A) * 3600),
                  (cycle, 0.0, 600.0),
                  (cycle, -rate * ONE_C_A, discharge_Ah / (rate * ONE_C_A) * 3600)]
    return bdf_series(steps)


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    return rate_test_series()


def test_one_c_current():
    assert one_c_current_A(MASS_KG, 200.0) == pytest.approx(ONE_C_A, rel=1e-12)
    with pytest.raises(AnalysisError, match="active_mass_kg"):
        one_c_current_A(0.0, 200.0)


def test_cycle_c_rates_from_the_discharge_current(series):
    rates = cycle_c_rates(series, ONE_C_A)
    assert rates["cycle"].tolist() == list(range(1, len(RATES) + 1))
    assert rates["c_rate"].tolist() == RATES  # rounded to 3 significant digits: exact
    assert rates["discharge_current_A"].to_numpy() == pytest.approx(np.array(RATES) * ONE_C_A)
    raw = cycle_c_rates(series, ONE_C_A * 1.0001, significant_digits=None)["c_rate"]
    assert raw.iloc[0] == pytest.approx(0.1 / 1.0001, rel=1e-12)


def test_rate_table_blocks_and_capacities(series):
    table = rate_table(cycle_table(series, MASS_KG), cycle_c_rates(series, ONE_C_A))
    assert table["c_rate"].tolist() == pytest.approx([0.1, 1.0, 3.0, 5.0, 10.0, 0.1])
    assert table["first_cycle"].tolist() == [1, 4, 7, 10, 13, 16]
    assert table["last_cycle"].tolist() == [3, 6, 9, 12, 15, 18]
    assert table["cycles"].tolist() == [3] * 6
    expected = [capacity_mAh_g(c) for c in (0.1, 1.0, 3.0, 5.0, 10.0, 0.1)]
    assert table["discharge_capacity_mAh_g"].to_numpy() == pytest.approx(expected, rel=1e-9)
    # physics.md's rate points at 25 degC, within the closed form's fit (a few mAh/g).
    assert table["discharge_capacity_mAh_g"].iloc[:5].to_numpy() == pytest.approx(
        [205.7, 190.5, 163.7, 141.1, 105.5], abs=4.0
    )


def test_rate_table_takes_a_list_or_a_mapping(series):
    cycles = cycle_table(series, MASS_KG)
    from_list = rate_table(cycles, RATES)
    from_map = rate_table(cycles, dict(enumerate(RATES, start=1)))
    pd.testing.assert_frame_equal(from_list, from_map)
    assert len(from_list) == 6


def test_rate_table_refuses_bad_inputs(series):
    cycles = cycle_table(series, MASS_KG)
    with pytest.raises(AnalysisError, match="one per row"):
        rate_table(cycles, RATES[:-1])
    with pytest.raises(AnalysisError, match="no C-rate given for cycles"):
        rate_table(cycles, {1: 0.1})
    with pytest.raises(AnalysisError, match="active_mass_kg"):
        rate_table(cycle_table(series), RATES)


def fade_table(n: int, fade_percent: float, noise: float = 0.0, seed: int = 36) -> pd.DataFrame:
    cycle = np.arange(1, n + 1)
    capacity = 190.5e-3 * MASS_KG * (1 - fade_percent / 100 * (cycle - 1))
    capacity = capacity * (1 + noise * np.random.default_rng(seed).standard_normal(n))
    return pd.DataFrame({"cycle": cycle, "discharge_capacity_Ah": capacity})


@pytest.mark.parametrize("method", ["endpoints", "linear"])
def test_fade_of_a_straight_line(method):
    table = fade_table(501, 0.036)  # 500 cycles after the first: 82 % retention
    assert capacity_fade_per_cycle(table, method=method) == pytest.approx(0.036, rel=1e-9)


def test_the_linear_fit_resists_a_noisy_end_point():
    table = fade_table(501, 0.036, noise=0.003)
    capacity = table["discharge_capacity_Ah"].to_numpy()
    endpoints = 100 * (1 - capacity[-1] / capacity[0]) / 500
    assert capacity_fade_per_cycle(table) == pytest.approx(endpoints, rel=1e-12)
    assert capacity_fade_per_cycle(table, method="linear") == pytest.approx(0.036, abs=0.001)


def test_fade_refuses_bad_tables():
    with pytest.raises(AnalysisError, match="at least 2 cycles"):
        capacity_fade_per_cycle(fade_table(1, 0.0))
    with pytest.raises(AnalysisError, match="method"):
        capacity_fade_per_cycle(fade_table(3, 0.1), method="log")  # type: ignore[arg-type]
