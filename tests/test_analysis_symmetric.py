"""Overpotential, critical current density and short-circuit time of Li|SSE|Li cells, on
plating/stripping series built by hand with known plateaus and known shorts."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import AnalysisError
from analysis.symmetric import (
    critical_current_density,
    critical_current_density_from_steps,
    current_segments,
    half_cycles,
    overpotential,
    overpotential_by_current_density,
    short_circuit_time,
)

AREA_M2 = 2.0106e-4  # 16 mm disc
AREA_CM2 = AREA_M2 * 1e4
R_B, R_SHORT, RISE_S = 25.7, 2.0, 20.0
HALF_S, DT_S = 1800.0, 10.0
# physics.md: plateau overpotentials at 0.15, 0.35, 0.45, 0.65 mA/cm^2.
PAPER = {0.15: 0.0347, 0.35: 0.0538, 0.45: 0.0671, 0.65: 0.1078}


def linear_eta(j: float) -> float:
    """physics.md's linear fit: 7.6 mV + 146 Ohm cm^2 * j."""
    return 0.0076 + 0.146 * j


def plating_series(
    levels: list[tuple[float, float, int]],
    *,
    short_at: tuple[int, float] | None = None,
    rest_s: float = 0.0,
    noise_V: float = 0.0,
    seed: int = 1,
):
    """(t, V, I, steps) for half cycles at (j mA/cm^2, plateau V, cycles) levels.

    Each half cycle: V rises from the ohmic drop |I| R_b to the plateau with a 20 s time constant,
    with the sign of the current (plating first). ``short_at = (half cycle, seconds into it)``:
    from then on |V| collapses to |I| R_short (2 s time constant) and stays shorted. Optional
    rests between half cycles. Also returns step records like ``RunStore.steps``.
    """
    rng = np.random.default_rng(seed)
    t_parts, v_parts, i_parts, steps = [], [], [], []
    clock, half, shorted_since = 0.0, 0, None
    for j, eta, cycles in levels:
        current = j * 1e-3 * AREA_CM2
        for _ in range(2 * cycles):
            sign = 1.0 if half % 2 == 0 else -1.0
            tt = np.arange(0.0, HALF_S + DT_S / 2, DT_S)
            ohmic = current * R_B
            mag = ohmic + (eta - ohmic) * (1 - np.exp(-tt / RISE_S))
            if shorted_since is None and short_at is not None and short_at[0] == half:
                shorted_since = clock + short_at[1]
            if shorted_since is not None:
                since = clock + tt - shorted_since
                v_short = current * R_SHORT
                collapsed = v_short + (mag - v_short) * np.exp(-np.maximum(since, 0) / 2.0)
                mag = np.where(since > 0, collapsed, mag)
            steps.append({"step_count": len(steps) + 1, "kind": "constant_current",
                          "started_t": clock, "ended_t": clock + HALF_S, "end_reason": "duration",
                          "params": {"current_A": sign * current, "duration_s": HALF_S}})
            t_parts.append(clock + tt)
            v_parts.append(sign * mag + noise_V * rng.standard_normal(tt.size))
            i_parts.append(np.full(tt.size, sign * current))
            clock += HALF_S
            half += 1
            if rest_s:
                tr = np.arange(0.0, rest_s + DT_S / 2, DT_S)
                t_parts.append(clock + tr)
                v_parts.append(noise_V * rng.standard_normal(tr.size))
                i_parts.append(np.zeros(tr.size))
                clock += rest_s
    return np.concatenate(t_parts), np.concatenate(v_parts), np.concatenate(i_parts), steps


def ramp(
    start: float = 0.1, stop: float = 1.5, step: float = 0.1
) -> list[tuple[float, float, int]]:
    n = round((stop - start) / step) + 1
    return [(j, linear_eta(j), 1) for j in np.round(start + step * np.arange(n), 10)]


# -- segments and half cycles ---------------------------------------------------------------


def test_current_segments_split_on_sign_level_and_rest():
    current = [0, 0, 1, 1, 1, -1, -1, 2, 2.04, 2, 0, 0.005, -3]
    got = [(s.start, s.stop, s.current_A) for s in current_segments(current)]
    assert got == [(0, 2, 0.0), (2, 5, 1.0), (5, 7, -1.0), (7, 10, 2.0), (10, 12, 0.0),
                   (12, 13, -3.0)]


def test_half_cycles_skip_rests_and_alternate():
    t, v, i, _ = plating_series([(0.35, PAPER[0.35], 3)], rest_s=600.0)
    table = half_cycles(t, v, i)
    assert len(table) == 6
    assert np.all(np.sign(table["current_A"]) == [1, -1, 1, -1, 1, -1])
    assert np.all(np.sign(table["plateau_V"]) == np.sign(table["current_A"]))
    assert table["overpotential_V"].to_numpy() == pytest.approx(PAPER[0.35], rel=1e-9)


# -- overpotential -------------------------------------------------------------------------


def test_overpotential_is_the_plateau_with_seeded_noise():
    t, v, i, _ = plating_series([(0.35, PAPER[0.35], 10)], noise_V=0.5e-3, seed=5)
    assert overpotential(t, v, i) == pytest.approx(PAPER[0.35], abs=0.1e-3)


def test_the_rise_is_left_out_of_the_plateau():
    t, v, i, _ = plating_series([(0.35, PAPER[0.35], 2)])
    # The whole half cycle includes the rise from the ohmic drop (18 mV), so it averages lower.
    assert overpotential(t, v, i, plateau_fraction=1.0) < PAPER[0.35] - 0.5e-3
    assert overpotential(t, v, i) == pytest.approx(PAPER[0.35], rel=1e-9)


def test_overpotential_by_current_density_reproduces_the_paper():
    levels = [(j, eta, 2) for j, eta in PAPER.items()]
    levels.append((0.35, PAPER[0.35], 1))  # the same set point again later joins its group
    t, v, i, _ = plating_series(levels, noise_V=0.3e-3, seed=9)
    table = overpotential_by_current_density(t, v, i, AREA_M2)
    assert table["current_density_mA_cm2"].to_numpy() == pytest.approx(list(PAPER), rel=1e-9)
    assert table["overpotential_V"].to_numpy() == pytest.approx(list(PAPER.values()), abs=0.2e-3)
    assert table["half_cycles"].tolist() == [4, 6, 4, 4]


def test_half_cycles_after_a_short_are_not_overpotentials():
    t, v, i, _ = plating_series(ramp(), short_at=(20, 60.0))  # level 11 = 1.1 mA/cm^2
    table = overpotential_by_current_density(t, v, i, AREA_M2)
    assert table["current_density_mA_cm2"].max() == pytest.approx(1.0)
    everything = overpotential_by_current_density(t, v, i, AREA_M2, stop_at_short=False)
    assert everything["current_density_mA_cm2"].max() == pytest.approx(1.5)


# -- critical current density --------------------------------------------------------------


def test_ccd_from_the_voltage_collapse():
    t, v, i, _ = plating_series(ramp(), short_at=(20, 60.0), noise_V=0.3e-3)
    assert critical_current_density(t, v, i, AREA_M2) == pytest.approx(1.1, rel=1e-9)


def test_ccd_when_the_short_comes_on_the_way_back():
    t, v, i, _ = plating_series(ramp(), short_at=(21, 300.0))  # the stripping half of 1.1
    assert critical_current_density(t, v, i, AREA_M2) == pytest.approx(1.1, rel=1e-9)


def test_ccd_from_step_records():
    t, v, i, steps = plating_series(ramp(), short_at=(20, 60.0))
    steps[20] = {**steps[20], "end_reason": "short", "ended_t": steps[20]["started_t"] + 66.0}
    assert critical_current_density_from_steps(steps, AREA_M2) == pytest.approx(1.1, rel=1e-9)
    assert critical_current_density(t, v, i, AREA_M2, steps=steps) == pytest.approx(1.1)
    # A short the firmware saw earlier than the voltage shows it wins (and vice versa).
    steps[18] = {**steps[18], "end_reason": "short"}
    assert critical_current_density(t, v, i, AREA_M2, steps=steps) == pytest.approx(1.0)


def test_no_short_is_none():
    t, v, i, steps = plating_series(ramp(stop=1.0))
    assert critical_current_density(t, v, i, AREA_M2, steps=steps) is None
    assert critical_current_density_from_steps(steps, AREA_M2) is None
    assert short_circuit_time(t, v, i, steps=steps) is None


def test_a_short_in_the_first_half_cycle_is_seen():
    t, v, i, _ = plating_series([(1.2, linear_eta(1.2), 2)], short_at=(0, 300.0))
    assert critical_current_density(t, v, i, AREA_M2) == pytest.approx(1.2)
    assert short_circuit_time(t, v, i) == pytest.approx(300.0, abs=DT_S)


# -- short circuit in long cycling ---------------------------------------------------------


def test_short_circuit_time_in_long_cycling():
    # 0.35 mA/cm^2 for 100 cycles with the plateau drifting up 20 % (the reference follows it).
    t, v, i, _ = plating_series([(0.35, PAPER[0.35] * (1 + 0.001 * k), 1) for k in range(100)],
                                short_at=(137, 450.0), noise_V=0.3e-3)
    expected = 137 * HALF_S + 450.0
    assert short_circuit_time(t, v, i) == pytest.approx(expected, abs=2 * DT_S)
    assert short_circuit_time(t, v, i) >= expected


def test_short_circuit_time_prefers_an_earlier_step_record():
    t, v, i, steps = plating_series([(0.35, PAPER[0.35], 50)], short_at=(80, 450.0))
    steps[70] = {**steps[70], "end_reason": "short", "ended_t": 70 * HALF_S + 100.0}
    assert short_circuit_time(t, v, i, steps=steps) == 70 * HALF_S + 100.0


# -- bad input -----------------------------------------------------------------------------


def test_bad_series_are_errors():
    with pytest.raises(AnalysisError, match="differ in length"):
        overpotential([0.0, 1.0], [0.0], [1.0, 1.0])
    with pytest.raises(AnalysisError, match="time order"):
        overpotential([0.0, 2.0, 1.0], [0.1, 0.1, 0.1], [1.0, 1.0, 1.0])
    with pytest.raises(AnalysisError, match="NaN"):
        overpotential([0.0, 1.0], [0.1, np.nan], [1.0, 1.0])
    with pytest.raises(AnalysisError, match="no complete"):
        overpotential([0.0, 1.0], [0.0, 0.0], [0.0, 0.0])
    with pytest.raises(AnalysisError, match="area_m2"):
        overpotential_by_current_density([0.0, 1.0], [0.1, 0.1], [1.0, 1.0], 0.0)
