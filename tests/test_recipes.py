"""The README's recipes dry-run and give the results their files describe."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.report import make_report
from sequencer.runner import run_simulated
from store import RunStore

RECIPES = Path(__file__).resolve().parents[1] / "protocols" / "recipes"


def test_the_drive_cycle_passes_the_profiles_charge_and_keeps_the_profile(tmp_path):
    for name in ("drive_cycle.yaml", "drive_cycle.csv"):
        shutil.copy(RECIPES / name, tmp_path / name)
    text = (tmp_path / "drive_cycle.yaml").read_text().replace("count: 20", "count: 3")
    (tmp_path / "drive_cycle.yaml").write_text(text)
    outcome = run_simulated(tmp_path / "drive_cycle.yaml", tmp_path / "run", seed=1)
    assert not outcome.faulted
    store = RunStore.open(tmp_path / "run")
    rows = [r for r in store.steps("ncm811-drive") if r["kind"] == "profile"]
    assert len(rows) == 3 and all(r["end_reason"] == "duration" for r in rows)
    frame = pd.DataFrame(store.read("ncm811-drive"))
    profile = pd.read_csv(RECIPES / "drive_cycle.csv")
    t = profile.iloc[:, 0].to_numpy(float)
    i = profile.iloc[:, 1].to_numpy(float) * 1e-3
    expected_C = np.trapezoid(i, t)
    fine = np.linspace(0, t[-1], 100 * len(t))     # |I| of the interpolated profile
    throughput_C = np.trapezoid(np.abs(np.interp(fine, t, i)), fine)
    for row in rows:
        pts = frame[frame["step_count"] == row["step_count"]]
        net = (pts["charge_Ah"].iloc[-1] - pts["charge_Ah"].iloc[0]) - \
            (pts["discharge_Ah"].iloc[-1] - pts["discharge_Ah"].iloc[0])
        assert net * 3600 == pytest.approx(expected_C, rel=0.01)
        thrown = (pts["charge_Ah"].iloc[-1] - pts["charge_Ah"].iloc[0]) + \
            (pts["discharge_Ah"].iloc[-1] - pts["discharge_Ah"].iloc[0])
        assert thrown * 3600 == pytest.approx(throughput_C, rel=0.02)
    kept = tmp_path / "run" / "protocol" / "drive_cycle.csv"
    assert kept.read_bytes() == (RECIPES / "drive_cycle.csv").read_bytes()


def test_hppc_at_three_temperatures_gives_resistances_per_soc_direction_and_temperature(
        tmp_path):
    text = (RECIPES / "hppc_three_temperatures.yaml").read_text() \
        .replace("levels: 5", "levels: 2").replace("rest: 30 min", "rest: 5 min")
    (tmp_path / "p.yaml").write_text(text)
    outcome = run_simulated(tmp_path / "p.yaml", tmp_path / "run", seed=2)
    assert not outcome.faulted
    summary = json.loads(make_report(tmp_path / "run")[0].read_text())
    ohm = [r for r in summary["results"] if r["quantity"] == "pulse_resistance"
           and r["unit"] == "Ohm" and r["value"] is not None]
    keys = {(r["conditions"]["temperature_degC"], r["conditions"]["direction"],
             r["conditions"]["time_s"]) for r in ohm}
    assert keys == {(t, d, s) for t in (10, 25, 40) for d in ("charge", "discharge")
                    for s in (0.1, 1.0, 10.0)}
    socs = {r["conditions"]["temperature_degC"]: sorted({round(r["conditions"]["soc_percent"])
                                                       for r in ohm
                                                       if r["conditions"]["temperature_degC"]
                                                       == t}) for t in (10, 25, 40)
            for r in ohm}
    assert all(len(v) == 2 for v in socs.values())
    mean = {t: np.mean([r["value"] for r in ohm if r["conditions"]["temperature_degC"] == t])
            for t in (10, 25, 40)}
    assert mean[10] > mean[25] > mean[40]      # a warmer cell conducts better
