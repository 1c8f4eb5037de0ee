"""Bulk resistance, conductivity and Arrhenius fits against synthetic data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis import (
    AnalysisError,
    BOLTZMANN_eV_PER_K,
    arrhenius_fit,
    bulk_resistance,
    conductivity_S_per_m,
)

R_S, R_CT, Q_CT, N_CT, L_CABLE = 25.72, 100.0, 2e-5, 0.8, 0.5e-6
WINDOW_HZ = np.logspace(math.log10(3e6), -1, 76)  # 3 MHz - 0.1 Hz, 10 points per decade


def randles_with_inductance(frequency_Hz: np.ndarray) -> np.ndarray:
    """R_s + jwL + (R_ct || CPE): an inductive tail that crosses the axis near 200 kHz."""
    omega = 2 * np.pi * frequency_Hz
    z_cpe = 1 / (Q_CT * (1j * omega) ** N_CT)
    return R_S + 1j * omega * L_CABLE + R_CT * z_cpe / (R_CT + z_cpe)


def exact_intercept() -> float:
    """Re Z where Im Z = 0, by bisection in log f (Im Z falls monotonically through zero there)."""
    lo, hi = 1e3, 1e7
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if randles_with_inductance(np.array([mid]))[0].imag > 0 else (mid, hi)
    return float(randles_with_inductance(np.array([math.sqrt(lo * hi)]))[0].real)


def test_the_intercept_is_not_simply_r_s():
    # Guards the tests below: the arc adds 0.2 Ohm at the crossing, so R_s would be a wrong answer.
    assert exact_intercept() - R_S == pytest.approx(0.208, abs=0.001)


def test_intercept_of_an_inductive_randles_spectrum():
    z = randles_with_inductance(WINDOW_HZ)
    assert bulk_resistance(WINDOW_HZ, z.real, z.imag) == pytest.approx(exact_intercept(), rel=0.01)
    # Linear interpolation at 10 points per decade is in fact far better than 1 %.
    assert bulk_resistance(WINDOW_HZ, z.real, z.imag) == pytest.approx(exact_intercept(), rel=1e-4)


def test_input_order_does_not_matter():
    z = randles_with_inductance(WINDOW_HZ)
    expected = bulk_resistance(WINDOW_HZ, z.real, z.imag)
    ascending = slice(None, None, -1)
    assert bulk_resistance(WINDOW_HZ[ascending], z.real[ascending], z.imag[ascending]) == expected
    shuffled = np.random.default_rng(7).permutation(WINDOW_HZ.size)
    assert bulk_resistance(WINDOW_HZ[shuffled], z.real[shuffled], z.imag[shuffled]) == expected


@pytest.mark.parametrize("seed", range(5))
def test_noisy_spectrum_stays_within_one_percent(seed: int):
    rng = np.random.default_rng(seed)
    z = randles_with_inductance(WINDOW_HZ)
    noise = 0.1 * (rng.standard_normal(z.size) + 1j * rng.standard_normal(z.size))  # 0.1 Ohm
    z = z + noise
    assert bulk_resistance(WINDOW_HZ, z.real, z.imag) == pytest.approx(exact_intercept(), rel=0.01)


def test_spectrum_without_sign_change_gives_re_z_at_the_highest_frequency():
    # Blocking cell: R_b then the double-layer spike; the bulk arc lies above the window.
    omega = 2 * np.pi * WINDOW_HZ
    z = 25.72 + 1 / (5e-6 * (1j * omega) ** 0.85)
    assert np.all(z.imag < 0)
    result = bulk_resistance(WINDOW_HZ, z.real, z.imag)
    assert result == z.real[0]
    assert result == pytest.approx(25.72, rel=2e-3)  # the CPE adds 0.03 Ohm at 3 MHz


def test_all_inductive_spectrum_gives_re_z_at_the_highest_frequency():
    freq = np.array([1e6, 1e5, 1e4])
    assert bulk_resistance(freq, [10.0, 11.0, 12.0], [3.0, 2.0, 1.0]) == 10.0


def test_later_inductive_excursion_is_not_the_bulk_intercept():
    # Starts capacitive; a low-frequency inductive loop must not be taken for the intercept.
    freq = np.array([1e6, 1e5, 1e4, 1e3, 1e2, 1e1])
    real = [20.0, 22.0, 30.0, 40.0, 45.0, 50.0]
    imag = [-1.0, -3.0, -5.0, 2.0, 3.0, -1.0]
    assert bulk_resistance(freq, real, imag) == 20.0


def test_crossing_is_interpolated_between_the_bracketing_points():
    freq = np.array([1e6, 5e5, 2e5, 1e5])
    assert bulk_resistance(freq, [10.0, 11.0, 12.0, 13.0], [2.0, 1.0, -3.0, -5.0]) == 11.25


def test_point_exactly_on_the_axis_is_the_intercept():
    freq = np.array([1e6, 5e5, 2e5, 1e5])
    assert bulk_resistance(freq, [10.0, 11.0, 12.0, 13.0], [2.0, 0.0, -3.0, -5.0]) == 11.0


def test_a_lone_flip_in_the_inductive_tail_is_ignored():
    freq = np.logspace(6, 0, 7)
    real = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0]
    imag = [5.0, 4.0, -0.1, 2.0, 1.0, -1.0, -2.0]  # index 2 is noise
    assert bulk_resistance(freq, real, imag) == pytest.approx(14.5)


def test_noise_straddling_the_crossing_is_fitted_not_taken_at_face_value():
    # Signs + + + - + - - -: the lone flips cancel, and the raw points at the cleaned crossing
    # (indices 3, 4) are on the wrong sides. The local line fit puts the crossing midway.
    freq = np.logspace(6, -1, 8)
    real = 10.0 + np.arange(8.0)
    imag = [3.0, 2.0, 1.0, -0.5, 0.5, -1.0, -2.0, -3.0]
    assert bulk_resistance(freq, real, imag) == pytest.approx(13.5)


def test_a_single_point_is_its_own_intercept():
    assert bulk_resistance([1e6], [12.5], [0.3]) == 12.5


@pytest.mark.parametrize(
    ("freq", "real", "imag", "message"),
    [
        ([], [], [], r"^the spectrum is empty$"),
        ([1e6, 1e5], [1.0], [0.0, 0.0], r"differ in length \(2, 1, 2\)$"),
        ([1e6, np.nan], [1.0, 2.0], [0.0, 0.0], r"^frequency_Hz contains NaN or inf"),
        ([1e6, 0.0], [1.0, 2.0], [0.0, 0.0], r"^frequency_Hz must be positive"),
        ([[1e6]], [[1.0]], [[0.0]], r"^frequency_Hz must be one-dimensional"),
    ],
)
def test_bad_spectra_are_refused(freq, real, imag, message):
    with pytest.raises(AnalysisError, match=message):
        bulk_resistance(freq, real, imag)


def test_analysis_errors_are_value_errors():
    with pytest.raises(ValueError):
        bulk_resistance([], [], [])


def test_aiose_conductivity():
    area_m2 = math.pi * 0.008**2
    sigma = conductivity_S_per_m(25.72, 300e-6, area_m2)
    assert sigma * 10 == pytest.approx(0.58, rel=1e-3)  # S/m -> mS/cm


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_conductivity_refuses_non_positive_inputs(bad: float):
    with pytest.raises(AnalysisError, match=r"^r_bulk_ohm must be a positive finite number"):
        conductivity_S_per_m(bad, 300e-6, 2e-4)


TEMPS_C = np.array([25.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0])


def aiose_sigma(temperatures_C: np.ndarray, ea_eV: float = 0.24) -> np.ndarray:
    """sigma0 exp(-Ea/kT) scaled to 0.58 mS/cm at 25 degC."""
    inv_kt = 1 / (BOLTZMANN_eV_PER_K * (temperatures_C + 273.15))
    inv_kt_25 = 1 / (BOLTZMANN_eV_PER_K * 298.15)
    return 0.58 * np.exp(-ea_eV * (inv_kt - inv_kt_25))


def test_arrhenius_fit_recovers_exact_parameters():
    ea, sigma0 = arrhenius_fit(TEMPS_C, aiose_sigma(TEMPS_C))
    assert ea == pytest.approx(0.24, rel=1e-9)
    assert sigma0 * math.exp(-0.24 / (BOLTZMANN_eV_PER_K * 298.15)) == pytest.approx(0.58)


def test_arrhenius_fit_with_one_percent_noise():
    rng = np.random.default_rng(2025)
    noisy = aiose_sigma(TEMPS_C) * (1 + 0.01 * rng.standard_normal(TEMPS_C.size))
    ea, _ = arrhenius_fit(TEMPS_C, noisy)
    assert ea == pytest.approx(0.24, abs=0.005)


def test_fitting_the_other_form_would_shift_ea_by_about_kt():
    # Documents why the docstring names its form: sigma*T data read as sigma gives Ea - kT.
    ea, _ = arrhenius_fit(TEMPS_C, aiose_sigma(TEMPS_C) / (TEMPS_C + 273.15))
    assert 0.24 - ea == pytest.approx(BOLTZMANN_eV_PER_K * 325, rel=0.02)


@pytest.mark.parametrize(
    ("temps", "sigmas", "message"),
    [
        ([25.0, 25.0], [1.0, 1.1], r"^an Arrhenius fit needs at least 2 distinct temperatures"),
        ([25.0, 30.0], [1.0, 0.0], r"^conductivities must be positive"),
        ([25.0, 30.0], [1.0], r"differ in length \(2 vs 1\)$"),
        ([-300.0, 30.0], [1.0, 2.0], r"^temperatures_C must be above -273.15"),
    ],
)
def test_bad_arrhenius_inputs_are_refused(temps, sigmas, message):
    with pytest.raises(AnalysisError, match=message):
        arrhenius_fit(temps, sigmas)


def _ceramic(f, r_b=34.9, c_geo=3.5e-10, r_gb=11.6, q_gb=1.5e-7, n_gb=0.85, q_dl=1e-5,
             n_dl=0.85):
    """A ceramic between blocking electrodes: the bulk arc (apex ~13 MHz, above the window),
    the grain-boundary arc, the blocking spike."""
    w = 2 * np.pi * f
    bulk = r_b / (1 + 1j * w * r_b * c_geo)
    arc = r_gb / (1 + r_gb * q_gb * (1j * w) ** n_gb)
    return bulk + arc + 1 / (q_dl * (1j * w) ** n_dl)


def test_blocking_total_resistance_extrapolates_the_spike_past_the_grain_boundary_arc():
    from analysis.eis import blocking_total_resistance

    f = np.logspace(np.log10(3e6), -1, 76)
    z = _ceramic(f)
    total = blocking_total_resistance(f, z.real, z.imag)
    assert total == pytest.approx(34.9 + 11.6, rel=0.01)
    hf = bulk_resistance(f, z.real, z.imag)
    assert hf < 40          # the intercept alone misses the grain boundaries


def test_blocking_total_resistance_is_none_without_an_arc():
    from analysis.eis import blocking_total_resistance

    f = np.logspace(np.log10(3e6), -1, 76)
    z = 25.7 + 1 / (5e-6 * (1j * 2 * np.pi * f) ** 0.85)
    assert blocking_total_resistance(f, z.real, z.imag) is None
