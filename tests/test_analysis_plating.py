"""Li||Cu coulombic efficiency on series built by hand (average CE 96.31 %, physics.md), and the
Adams/Aurbach reservoir formula against a loss model whose CE is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import AnalysisError
from analysis.plating import average_ce, plating_table, reservoir_ce

CURRENT_A = 1.0e-3  # 0.5 mA/cm^2 on 2 cm^2
PLATE_S = 3600.0  # 1 mAh
DT_S = 60.0


def bdf_series(steps: list[tuple[int, float, float]]) -> pd.DataFrame:
    """Rows for (cycle, current_A, duration_s) steps: every 60 s and at each step's exact end,
    with cumulative counters (charge = positive current = stripping off the Cu working
    electrode; discharge = plating onto it)."""
    rows = []
    clock = charged = discharged = 0.0
    for step_count, (cycle, current, duration) in enumerate(steps, start=1):
        times = np.append(np.arange(0.0, duration, DT_S), duration)
        for k, elapsed in enumerate(times):
            if k:
                dq = abs(current) * (elapsed - times[k - 1]) / 3600
                charged += dq if current > 0 else 0.0
                discharged += dq if current < 0 else 0.0
            rows.append({"Test Time / s": clock + elapsed, "Current / A": current,
                         "Cycle Count / 1": cycle, "Step Count / 1": step_count,
                         "Charging Capacity / Ah": charged,
                         "Discharging Capacity / Ah": discharged})
        clock += duration
    return pd.DataFrame(rows)


def li_cu_steps(efficiencies: np.ndarray, plate_s: np.ndarray | None = None):
    """A rest, then per cycle: plate, strip back a known fraction (to the cut-off), rest."""
    plate_s = np.full(efficiencies.size, PLATE_S) if plate_s is None else plate_s
    steps = [(0, 0.0, 600.0)]
    for cycle, (ce, tp) in enumerate(zip(efficiencies, plate_s, strict=True), start=1):
        steps += [(cycle, -CURRENT_A, tp), (cycle, CURRENT_A, ce * tp), (cycle, 0.0, 300.0)]
    return steps


@pytest.fixture(scope="module")
def efficiencies() -> np.ndarray:
    rng = np.random.default_rng(96)
    ce = 0.9631 + 0.004 * rng.standard_normal(100)
    return ce - ce.mean() + 0.9631  # exactly 96.31 % on average


def test_per_cycle_ce_is_stripped_over_plated(efficiencies):
    table = plating_table(bdf_series(li_cu_steps(efficiencies)))
    assert table["cycle"].tolist() == list(range(1, 101))
    assert table["plated_Ah"].to_numpy() == pytest.approx(1e-3, rel=1e-12)
    assert table["coulombic_efficiency"].to_numpy() == pytest.approx(efficiencies, rel=1e-12)


def test_average_ce_is_96_31_percent(efficiencies):
    assert average_ce(bdf_series(li_cu_steps(efficiencies))) == pytest.approx(0.9631, rel=1e-12)


def test_average_ce_weights_by_charge():
    ce = np.array([0.5, 1.0])
    plate_s = np.array([600.0, 3000.0])
    series = bdf_series(li_cu_steps(ce, plate_s))
    expected = (0.5 * 600 + 1.0 * 3000) / 3600  # 0.9167, not the mean ratio 0.75
    assert average_ce(series) == pytest.approx(expected, rel=1e-12)
    assert average_ce(series, first_cycle=2) == pytest.approx(1.0, rel=1e-12)
    assert average_ce(series, last_cycle=1) == pytest.approx(0.5, rel=1e-12)


def test_nothing_plated_is_an_error():
    series = bdf_series([(1, CURRENT_A, 600.0)])
    assert np.isnan(plating_table(series)["coulombic_efficiency"].iloc[0])
    with pytest.raises(AnalysisError, match="no Li was plated"):
        average_ce(series)


def reservoir_experiment(ce: float, q_t: float, q_c: float, n: int) -> float:
    """Q_S left to strip when each plated coulomb returns a fraction ce when stripped."""
    reservoir = ce * q_t
    for _ in range(n):
        reservoir -= q_c
        assert reservoir > 0
        reservoir += ce * q_c
    return reservoir


@pytest.mark.parametrize("ce", [0.9631, 0.99, 0.999])
def test_reservoir_ce_recovers_the_loss_model(ce):
    q_t, q_c, n = 5.0, 1.0, 10
    q_s = reservoir_experiment(ce, q_t, q_c, n)
    assert reservoir_ce(q_c, q_s, q_t, n) == pytest.approx(ce, rel=1e-12)


def test_reservoir_ce_formula():
    assert reservoir_ce(1.0, 4.2, 5.0, 10) == pytest.approx(14.2 / 15.0)


@pytest.mark.parametrize(
    ("args", "match"),
    [((1.0, 4.0, 5.0, 0), "n must be"), ((1.0, 4.0, 5.0, 2.5), "n must be"),
     ((1.0, 4.0, 0.0, 10), "q_t"), ((-1.0, 4.0, 5.0, 10), "q_c")],
)
def test_reservoir_ce_refuses_bad_inputs(args, match):
    with pytest.raises(AnalysisError, match=match):
        reservoir_ce(*args)
