"""Interfacial resistance over 20 days: R_int = 134.5 + 4.61 sqrt(t / day) (physics.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import AnalysisError
from analysis.interface import interfacial_resistance_over_time, sqrt_time_growth
from tests.test_analysis_transference import WINDOW_HZ, li_sse_li

R0, GROWTH, DAY_S = 134.5, 4.61, 86400.0
DAYS = [0.0, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0]
ASSEMBLED_S = 3600.0  # the first spectrum is taken an hour after assembly


def store_spectra(days=DAYS, noise: float = 0.0, seed: int = 4) -> dict[str, np.ndarray]:
    """Columns as ``RunStore.read(cell, "spectrum")``: one impedance step per day, its points
    1 s apart from the sweep's start (highest frequency first)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, list[np.ndarray]] = {
        k: [] for k in ("frequency_Hz", "z_real_ohm", "z_imag_ohm", "test_time_s", "step_count")
    }
    for step, day in enumerate(days, start=1):
        z = li_sse_li(WINDOW_HZ, R0 + GROWTH * np.sqrt(day))
        z = z * (1 + noise * rng.standard_normal(z.size))
        columns["frequency_Hz"].append(WINDOW_HZ)
        columns["z_real_ohm"].append(z.real)
        columns["z_imag_ohm"].append(z.imag)
        columns["test_time_s"].append(ASSEMBLED_S + day * DAY_S + np.arange(z.size))
        columns["step_count"].append(np.full(z.size, 2 * step))
    return {k: np.concatenate(v) for k, v in columns.items()}


def test_r_int_per_spectrum_and_day():
    table = interfacial_resistance_over_time(store_spectra())
    assert list(table.columns) == ["step_count", "time_s", "day", "r_bulk_ohm", "r_interface_ohm"]
    assert table["day"].to_numpy() == pytest.approx(DAYS, abs=1e-12)
    assert table["step_count"].tolist() == [2 * k for k in range(1, len(DAYS) + 1)]
    expected = R0 + GROWTH * np.sqrt(DAYS)
    assert table["r_interface_ohm"].to_numpy() == pytest.approx(expected, rel=2e-3)
    assert table["r_interface_ohm"].iloc[-1] == pytest.approx(155.1, abs=0.3)
    assert table["r_bulk_ohm"].to_numpy() == pytest.approx(25.7, abs=0.1)


def test_days_count_from_a_given_origin():
    table = interfacial_resistance_over_time(store_spectra(), t0_s=0.0)
    assert table["day"].to_numpy() == pytest.approx(np.array(DAYS) + ASSEMBLED_S / DAY_S)


def test_a_dataframe_in_any_order_works():
    frame = pd.DataFrame(store_spectra()).sample(frac=1.0, random_state=2)
    table = interfacial_resistance_over_time(frame)
    assert table["day"].to_numpy() == pytest.approx(DAYS, abs=1e-12)


def test_sqrt_time_growth_recovers_the_law_with_noise():
    table = interfacial_resistance_over_time(store_spectra(noise=0.002, seed=8))
    r0, g = sqrt_time_growth(table["day"], table["r_interface_ohm"])
    assert r0 == pytest.approx(R0, rel=0.01)
    assert g == pytest.approx(GROWTH, rel=0.05)


def test_a_spectrum_without_an_arc_is_named_or_skipped():
    data = store_spectra()
    broken = data["step_count"] == 6
    data["z_imag_ohm"] = np.where(broken, 0.0, data["z_imag_ohm"])
    with pytest.raises(AnalysisError, match="step 6"):
        interfacial_resistance_over_time(data)
    table = interfacial_resistance_over_time(data, on_error="skip")
    assert 6 not in table["step_count"].tolist()
    assert len(table) == len(DAYS) - 1


def test_bad_inputs_are_errors():
    data = store_spectra()
    del data["step_count"]
    with pytest.raises(AnalysisError, match="lacks the columns"):
        interfacial_resistance_over_time(data)
    with pytest.raises(AnalysisError, match="at least 2 distinct"):
        sqrt_time_growth([1.0, 1.0], [140.0, 141.0])
    with pytest.raises(AnalysisError, match=">= 0"):
        sqrt_time_growth([-1.0, 1.0], [140.0, 141.0])
