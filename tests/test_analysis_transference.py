"""Bruce-Vincent transference number and the interfacial arc, on data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis import AnalysisError
from analysis.transference import ca_currents, interfacial_resistance, transference_number

# physics.md, Li|AIOSE|Li: R_b 25.7, R_0 134.5, R_s 140, t+ 0.66, dV 10 mV.
R_B, R_0, R_S, T_PLUS, DV = 25.7, 134.5, 140.0, 0.66, 0.010
Q_INT, N_INT = 3e-6, 0.85
WINDOW_HZ = np.logspace(math.log10(3e6), -1, 76)  # 3 MHz - 0.1 Hz, 10 points per decade


def li_sse_li(
    frequency_Hz: np.ndarray,
    r_int: float = R_0,
    *,
    r_d: float = R_B * (1 - T_PLUS) / T_PLUS,
    tau_w: float = 9000.0,
    sigma_w: float = 0.0,
    inductance: float = 0.0,
    r_gb: float = 0.0,
) -> np.ndarray:
    """R_b - (R_int || CPE) - finite Warburg (as the simulator), optionally a semi-infinite
    Warburg (a visible diffusion tail), cable inductance and a grain-boundary arc."""
    w = 2 * np.pi * frequency_Hz
    z = R_B + r_int / (1 + r_int * Q_INT * (1j * w) ** N_INT) + 1j * w * inductance
    if r_gb:
        z = z + r_gb / (1 + r_gb * 1.5e-7 * (1j * w) ** 0.85)
    if r_d:
        s = np.sqrt(1j * w * tau_w)
        z = z + r_d * np.tanh(s) / s
    if sigma_w:
        z = z + sigma_w * (1 - 1j) / np.sqrt(w)
    return z


def parts(z: np.ndarray, frequency_Hz: np.ndarray = WINDOW_HZ):
    return frequency_Hz, z.real, z.imag


# -- interfacial_resistance ----------------------------------------------------------------


@pytest.mark.parametrize("r_int", [R_0, R_S, 20.0, 600.0])
def test_the_arc_chord_is_r_int(r_int):
    r_bulk, r_interface = interfacial_resistance(*parts(li_sse_li(WINDOW_HZ, r_int)))
    assert r_interface == pytest.approx(r_int, rel=2e-3)
    # R_b is the high-frequency intercept; the arc's tail adds a few hundredths of an Ohm there.
    assert r_bulk == pytest.approx(R_B, abs=0.1)


def test_input_order_does_not_matter():
    f, re, im = parts(li_sse_li(WINDOW_HZ))
    order = np.random.default_rng(3).permutation(f.size)
    assert interfacial_resistance(f[order], re[order], im[order]) == pytest.approx(
        interfacial_resistance(f, re, im)
    )


def test_a_visible_diffusion_tail_is_cut_off_at_the_valley():
    f = np.logspace(6, -2, 81)
    z = li_sse_li(f, r_d=0.0, sigma_w=30.0)
    assert np.max(-z.imag[f < 1]) > 50  # the tail rises well past the valley
    _, r_interface = interfacial_resistance(*parts(z, f))
    # The Warburg bends the arc's low-frequency side; the chord stays within 1.5 %.
    assert r_interface == pytest.approx(R_0, rel=0.015)


def test_cable_inductance_does_not_disturb_the_arc():
    _, r_interface = interfacial_resistance(*parts(li_sse_li(WINDOW_HZ, inductance=0.5e-6)))
    assert r_interface == pytest.approx(R_0, rel=2e-3)


def test_seeded_noise():
    rng = np.random.default_rng(20240611)
    z = li_sse_li(WINDOW_HZ)
    noisy = z * (1 + 0.003 * (rng.standard_normal(z.size) + 1j * rng.standard_normal(z.size)))
    _, r_interface = interfacial_resistance(*parts(noisy))
    assert r_interface == pytest.approx(R_0, rel=0.01)


def test_a_grain_boundary_arc_is_not_taken_for_the_interface():
    _, r_interface = interfacial_resistance(*parts(li_sse_li(WINDOW_HZ, r_gb=15.0)))
    assert r_interface == pytest.approx(R_0, rel=0.01)


def test_an_explicit_frequency_range_selects_the_arc():
    _, r_interface = interfacial_resistance(
        *parts(li_sse_li(WINDOW_HZ, r_gb=15.0)), frequency_range_Hz=(1e5, 1.0)
    )
    assert r_interface == pytest.approx(R_0, rel=0.01)


def test_no_arc_is_an_error():
    f = WINDOW_HZ
    with pytest.raises(AnalysisError, match="no capacitive point"):
        interfacial_resistance(f, np.full(f.size, 30.0), np.zeros(f.size))
    blocking = 30.0 + 1 / (5e-6 * (2j * np.pi * f) ** 0.85)  # a spike that only rises
    with pytest.raises(AnalysisError, match="no arc"):
        interfacial_resistance(*parts(blocking))
    with pytest.raises(AnalysisError, match="circle fit needs"):
        interfacial_resistance(*parts(li_sse_li(WINDOW_HZ)), frequency_range_Hz=(1e6, 3e6))


# -- transference_number -------------------------------------------------------------------


def consistent_currents(r_s: float = R_S) -> tuple[float, float]:
    """The simulator's I_0 = dV / (R_b + R_0), I_s = t+ dV / (R_b + t+ R_s)."""
    return DV / (R_B + R_0), T_PLUS * DV / (R_B + T_PLUS * r_s)


def test_consistent_currents_give_t_plus_back_exactly():
    i0, iss = consistent_currents()
    assert i0 == pytest.approx(62.42e-6, abs=0.005e-6)
    assert iss == pytest.approx(55.88e-6, abs=0.005e-6)
    assert transference_number(i0, iss, DV, R_0, R_S) == pytest.approx(T_PLUS, rel=1e-12)


def test_the_papers_rounded_currents_give_0_660():
    assert transference_number(62.42e-6, 55.88e-6, DV, R_0, R_S) == pytest.approx(0.660, abs=1e-3)


def test_a_negative_step_gives_the_same_t_plus():
    i0, iss = consistent_currents()
    assert transference_number(-i0, -iss, -DV, R_0, R_S) == pytest.approx(T_PLUS, rel=1e-12)


def test_t_plus_is_not_clipped():
    # I_s > I_0 without an interface change is inconsistent data; the number says so.
    assert transference_number(50e-6, 60e-6, DV, 100.0, 100.0) > 1


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((62e-6, -55e-6, DV, R_0, R_S), "same sign"),
        ((62e-6, 55e-6, 0.0, R_0, R_S), "non-zero"),
        ((62e-6, 55e-6, DV, -1.0, R_S), ">= 0"),
        ((62e-6, 55e-6, DV, R_0, 200.0), "not smaller than dV"),
        ((math.nan, 55e-6, DV, R_0, R_S), "finite"),
    ],
)
def test_bad_inputs_are_errors(args, match):
    with pytest.raises(AnalysisError, match=match):
        transference_number(*args)


# -- ca_currents ---------------------------------------------------------------------------


def hold_trace(t_s: np.ndarray, noise_A: float = 0.0, seed: int = 7) -> np.ndarray:
    """I(t) = I_s + (I_0 - I_s) exp(-t / tau), tau = 900 s, with seeded white noise."""
    i0, iss = consistent_currents()
    current = iss + (i0 - iss) * np.exp(-t_s / 900.0)
    return current + noise_A * np.random.default_rng(seed).standard_normal(t_s.size)


def test_ca_currents_first_point_and_steady_tail():
    t = np.arange(0.0, 36000.0 + 1, 1.0)  # 10 h, 40 time constants
    i0, iss = ca_currents(t, hold_trace(t, noise_A=10e-9))
    exact_i0, exact_iss = consistent_currents()
    assert i0 == pytest.approx(exact_i0, abs=40e-9)  # one noisy point
    assert iss == pytest.approx(exact_iss, abs=2e-9)  # mean of 1800 points


def test_ca_currents_extrapolates_to_the_step_start():
    t = 0.5 + 2.0 * np.arange(18000)  # first sample half a second late
    i0, _ = ca_currents(t, hold_trace(t), initial="extrapolate")
    assert i0 == pytest.approx(consistent_currents()[0], abs=1e-9)
    assert ca_currents(t, hold_trace(t))[0] < i0  # the first point alone is already decayed


def test_the_steady_window_is_by_time_not_by_points():
    # Dense sampling early (dI-triggered) and sparse late: 5 % of the time is the last 3 points.
    t = np.concatenate((np.arange(0.0, 100.0, 0.01), [200.0, 1000.0, 1900.0, 1950.0, 2000.0]))
    current = np.where(t >= 1900.0, 1.0, 5.0)
    assert ca_currents(t, current)[1] == 1.0


def test_bruce_vincent_end_to_end():
    """Spectra before and after, and the hold in between, give t+ back within 0.005."""
    rng = np.random.default_rng(11)
    spectra = []
    for r_int in (R_0, R_S):
        z = li_sse_li(WINDOW_HZ, r_int)
        spectra.append(z * (1 + 0.001 * rng.standard_normal(z.size)))
    (_, r0), (_, rs) = (interfacial_resistance(*parts(z)) for z in spectra)
    t = np.arange(0.0, 36000.0 + 1, 1.0)
    i0, iss = ca_currents(t, hold_trace(t, noise_A=10e-9))
    assert transference_number(i0, iss, DV, r0, rs) == pytest.approx(T_PLUS, abs=0.005)


def test_ca_currents_refuses_bad_traces():
    with pytest.raises(AnalysisError, match="differ in length"):
        ca_currents([0.0, 1.0], [1.0])
    with pytest.raises(AnalysisError, match="time order"):
        ca_currents([0.0, 2.0, 1.0], [1.0, 1.0, 1.0])
    with pytest.raises(AnalysisError, match="initial must be"):
        ca_currents([0.0, 1.0], [1.0, 1.0], initial="mean")  # type: ignore[arg-type]
