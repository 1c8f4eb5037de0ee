"""Stability window from synthetic sweeps: a flat capacitive current plus a decomposition current
that reaches 10 uA/cm^2 exactly at 5.6 V (physics.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis import AnalysisError
from analysis.lsv import stability_window

AREA_M2 = 2.0106e-4
ONSET_V, SLOPE_V = 5.6, 0.05  # decomposition j = 0.1 A/m^2 exp((V - 5.6) / 50 mV)


def sweep(
    v_start: float = 3.0,
    v_top: float = 6.0,
    capacitive_A_m2: float = 0.05,
    noise_A_m2: float = 0.0,
    back_to: float | None = None,
    seed: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """1 mV per point (1 mV/s at 1 s), optionally back down again as a CV."""
    v = np.arange(v_start, v_top + 5e-4, 1e-3)
    j = capacitive_A_m2 + 0.1 * np.exp((v - ONSET_V) / SLOPE_V)
    if back_to is not None:
        down = np.arange(v_top, back_to - 5e-4, -1e-3)[1:]
        v = np.concatenate((v, down))
        j = np.concatenate((j, -capacitive_A_m2 + 0.1 * np.exp((down - ONSET_V) / SLOPE_V)))
    j = j + noise_A_m2 * np.random.default_rng(seed).standard_normal(j.size)
    return v, j * AREA_M2


def test_the_onset_is_where_the_decomposition_current_passes_10_uA_per_cm2():
    assert stability_window(*sweep(), AREA_M2) == pytest.approx(ONSET_V, abs=0.5e-3)


@pytest.mark.parametrize("capacitive", [0.0, 0.09, 0.5])
def test_the_capacitive_baseline_does_not_move_the_onset(capacitive):
    # 0.5 A/m^2 of capacitive current alone would exceed the threshold from the first point.
    assert stability_window(*sweep(capacitive_A_m2=capacitive), AREA_M2) == pytest.approx(
        ONSET_V, abs=0.5e-3
    )


def test_seeded_noise():
    v, i = sweep(noise_A_m2=0.01, seed=5)
    assert stability_window(v, i, AREA_M2) == pytest.approx(ONSET_V, abs=5e-3)


def test_another_threshold():
    # 20 uA/cm^2 is reached ln 2 slopes later.
    got = stability_window(*sweep(), AREA_M2, threshold_A_per_m2=0.2)
    assert got == pytest.approx(ONSET_V + SLOPE_V * math.log(2), abs=0.5e-3)


def test_the_way_back_of_a_cv_is_ignored():
    v, i = sweep(v_top=5.5, back_to=3.0)  # never reaches the onset on the way up
    i[-100:] += 1.0 * AREA_M2  # a large current late on the way back must not count
    with pytest.raises(AnalysisError, match="never exceeds"):
        stability_window(v, i, AREA_M2)
    assert stability_window(*sweep(back_to=3.0), AREA_M2) == pytest.approx(ONSET_V, abs=0.5e-3)


def test_a_single_spike_is_not_the_onset():
    v, i = sweep()
    spike = int(np.argmin(np.abs(v - 4.5)))
    i[spike] += 1.0 * AREA_M2
    assert stability_window(v, i, AREA_M2) == pytest.approx(ONSET_V, abs=0.5e-3)
    assert stability_window(v, i, AREA_M2, consecutive=1) == pytest.approx(4.5, abs=1e-3)


def test_bad_inputs_are_errors():
    v, i = sweep()
    with pytest.raises(AnalysisError, match="differ in length"):
        stability_window(v[:-1], i, AREA_M2)
    with pytest.raises(AnalysisError, match="area_m2"):
        stability_window(v, i, 0.0)
    with pytest.raises(AnalysisError, match="does not go up"):
        stability_window(v[::-1], i[::-1], AREA_M2)
