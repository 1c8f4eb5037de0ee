"""Constant power, constant resistance, CSV profiles and the end conditions of ``until``: each
runs on the simulated cycler and ends with a reason naming what ended it; a real instrument
that cannot run one refuses it before anything is sent; a bad profile file is refused naming
its line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from drivers.errors import CapabilityError
from drivers.interfaces import ChannelCapabilities
from drivers.techniques import ConstantCurrent, EndConditions, OpenCircuit
from sequencer.cli import app
from sequencer.runner import run_simulated
from simulators.cells import build_cell
from simulators.clock import ManualClock
from simulators.instruments import CYCLER_CAPABILITIES, VSP300_CAPABILITIES
from simulators.instruments.channel import SimChannel
from store import RunStore

HEAD = """campaign: modes
cells:
  - id: ncm-1
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}
    limits: {max_voltage: 4.45 V, min_voltage: 2.5 V, max_current: 5 mA}
experiments:
  - name: modes
    cells: [ncm-1]
    steps:
      - {kind: cccv_charge, current: C/2, voltage: 4.1 V, until_current: C/20}
"""
CAPACITY_AH = 1.9e-3 * 1e4 * np.pi * 0.006 ** 2 * 0.2   # g/m^2 * m^2 * Ah/g


def run(tmp_path, steps: str, name: str = "p.yaml"):
    path = tmp_path / name
    path.write_text(HEAD + steps, encoding="utf-8")
    outcome = run_simulated(path, tmp_path / "run", seed=3)
    store = RunStore.open(tmp_path / "run")
    frame = pd.DataFrame(store.read("ncm-1"))
    rows = store.steps("ncm-1")
    return outcome, frame, rows


def last_step(frame, rows):
    row = rows[-1]
    return row, frame[frame["step_count"] == row["step_count"]]


def test_constant_power_draws_p_over_v_and_ends_on_its_voltage(tmp_path):
    outcome, frame, rows = run(tmp_path, "      - {kind: constant_power, direction: discharge,"
                                         " power: 2 mW, until_voltage: 3.5 V}\n")
    assert not outcome.faulted
    row, pts = last_step(frame, rows)
    assert row["end_reason"] == "voltage"
    v, i = pts["voltage_V"].to_numpy(), pts["current_A"].to_numpy()
    assert (i < 0).all()                                   # discharge: negative current
    assert np.median(np.abs(v * i)) == pytest.approx(2e-3, rel=0.02)
    assert v[-1] == pytest.approx(3.5, abs=0.02)
    assert abs(i[-1]) > abs(i[1])                          # the current grows as V falls


def test_constant_resistance_draws_v_over_r(tmp_path):
    outcome, frame, rows = run(tmp_path, "      - {kind: constant_resistance, resistance:"
                                         " 4000 ohm, duration: 20 min}\n")
    assert not outcome.faulted
    row, pts = last_step(frame, rows)
    assert row["end_reason"] == "duration"
    v, i = pts["voltage_V"].to_numpy(), pts["current_A"].to_numpy()
    assert np.median(np.abs(i * 4000 / v)) == pytest.approx(1.0, rel=0.02)
    assert (i < 0).all()


@pytest.mark.parametrize(("until", "reason"), [
    ("{charge: 0.05 mAh}", "charge"),
    ("{soc: 15 %}", "soc"),
    ("{step_time: 7 min}", "step_time"),
])
def test_a_constant_current_ends_on_charge_soc_or_step_time(tmp_path, until, reason):
    outcome, frame, rows = run(tmp_path, "      - {kind: constant_current, direction:"
                                         " discharge, current: C/5, until_voltage: 2.8 V,"
                                         f" until: {until}}}\n")
    assert not outcome.faulted
    row, pts = last_step(frame, rows)
    assert row["end_reason"] == reason
    passed_Ah = pts["discharge_Ah"].iloc[-1] - pts["discharge_Ah"].iloc[0]
    t = pts["step_time_s"].iloc[-1]
    expected = {"charge": (passed_Ah, 0.05e-3), "soc": (passed_Ah, 0.15 * CAPACITY_AH),
                "step_time": (t, 420.0)}[reason]
    assert expected[0] == pytest.approx(expected[1], rel=0.01)


def test_a_rest_ends_when_dv_dt_has_settled_and_a_hold_when_di_dt_has(tmp_path):
    outcome, frame, rows = run(tmp_path, """\
      - {kind: constant_current, direction: discharge, current: 1C, duration: 10 min}
      - {kind: rest, duration: 5 h, until: {dV_dt: 1 mV/min, slope_window: 60 s}}
      - {kind: constant_voltage, voltage: 3.9 V, duration: 5 h,
         until: {dI_dt: 0.2 uA/min, slope_window: 60 s}}
""")
    assert not outcome.faulted
    rest, hold = rows[-2], rows[-1]
    assert rest["end_reason"] == "dV_dt" and hold["end_reason"] == "dI_dt"
    for row, column, level in ((rest, "voltage_V", 1e-3 / 60), (hold, "current_A",
                                                                 0.2e-6 / 60)):
        pts = frame[frame["step_count"] == row["step_count"]]
        t, y = pts["step_time_s"].to_numpy(), pts[column].to_numpy()
        assert t[-1] < 5 * 3600 - 1
        late = np.abs(np.interp(t[-1] - 60, t, y) - y[-1]) / 60
        early = np.abs(np.interp(60, t, y) - np.interp(0, t, y)) / 60
        assert late <= 1.3 * level < early       # settled at its end, not at its start


def test_temperature_conditions_end_a_step_when_the_cell_crosses_them():
    clock = ManualClock()
    channel = SimChannel("ch", clock, CYCLER_CAPABILITIES, np.random.default_rng(0))
    cell = build_cell("symmetric_li", "AIOSE", 300e-6, 2e-4)
    channel.connect(cell, lambda t: 25.0 + np.asarray(t) / 60.0)   # 1 K/min
    ends = EndConditions(temperature_above_C=35.0)
    channel.start(OpenCircuit(duration_s=3600, record_dt_s=10, ends=ends))
    clock.advance(4000)
    readout = channel.poll()
    assert readout.end_reason == "temperature_above"
    assert readout.points.time_s[-1] == pytest.approx(600, abs=1.0)


def test_instruments_that_cannot_run_a_mode_or_a_condition_refuse_it():
    from drivers.techniques import ConstantPower
    cp = ConstantPower(power_W=-1e-3, duration_s=60, record_dt_s=1, peak_current_A=4e-4)
    with pytest.raises(CapabilityError, match="ConstantPower is not available"):
        VSP300_CAPABILITIES.check(cp)
    CYCLER_CAPABILITIES.check(cp)
    charge = ConstantCurrent(current_A=-1e-4, duration_s=60, record_dt_s=1,
                             ends=EndConditions(charge_Ah=1e-6))
    with pytest.raises(CapabilityError, match=r"cannot end a step on charge \(it ends steps"
                                              r" on: none\)"):
        VSP300_CAPABILITIES.check(charge)
    assert not ChannelCapabilities(1, -5, 5, techniques=frozenset({"ConstantCurrent"})
                                   ).offers(charge)


STATION = """station: bench
instruments:
  smu: {driver: keithley2450, address: "TCPIP0::192.0.2.9::inst0::INSTR"}
cells:
  ncm-1: {instrument: smu, channel: 0}
"""


@pytest.mark.parametrize(("step", "message"), [
    ("{kind: constant_power, direction: discharge, power: 1 mW, until_voltage: 3 V}",
     "ConstantPower is not available on this channel"),
    ("{kind: constant_current, direction: discharge, current: C/5, until_voltage: 3 V,"
     " until: {charge: 0.1 mAh}}", "cannot end a step on charge"),
])
def test_a_real_smu_refuses_them_at_plan_naming_the_step(tmp_path, monkeypatch, step,
                                                         message):
    monkeypatch.setenv("CELLSEQ_LOCK_DIR", str(tmp_path / "locks"))
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + f"      - {step}\n", encoding="utf-8")
    (tmp_path / "st.yaml").write_text(STATION, encoding="utf-8")
    result = CliRunner().invoke(app, ["plan", str(path), "--station",
                                      str(tmp_path / "st.yaml")])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert "Traceback" not in result.output
    assert "p.yaml:" in text and "steps[1]" in text and message in text


# -- profiles ---------------------------------------------------------------------------------

PROFILE_STEP = ("      - {kind: profile, file: cycle.csv, quantity: QUANTITY, min_voltage: 2.8 V,"
                " max_voltage: 4.3 V}\n")


def test_a_current_profile_is_followed_and_passes_its_integral(tmp_path):
    t = np.arange(0, 301, 5.0)
    i_mA = -0.6 * np.abs(np.sin(t / 40)) + 0.1
    lines = ["time (s),current (mA)"] + [f"{a:g},{b:.5f}" for a, b in zip(t, i_mA, strict=True)]
    (tmp_path / "cycle.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    outcome, frame, rows = run(tmp_path, PROFILE_STEP.replace("QUANTITY", "current"))
    assert not outcome.faulted
    row, pts = last_step(frame, rows)
    assert row["end_reason"] == "duration"
    ts, cur = pts["step_time_s"].to_numpy(), pts["current_A"].to_numpy()
    assert ts[-1] == pytest.approx(300)
    net = (pts["charge_Ah"].iloc[-1] - pts["charge_Ah"].iloc[0]) - \
        (pts["discharge_Ah"].iloc[-1] - pts["discharge_Ah"].iloc[0])
    assert net * 3600 == pytest.approx(np.trapezoid(i_mA * 1e-3, t), rel=0.01)
    inside = (ts > 2) & (ts < 298)
    assert np.abs(cur[inside] - np.interp(ts[inside], t, i_mA * 1e-3)).max() < 0.05e-3
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    copy = tmp_path / "run" / "protocol" / "cycle.csv"
    assert copy.read_bytes() == (tmp_path / "cycle.csv").read_bytes()
    import hashlib
    listed = {e["path"]: e["sha256"] for e in manifest["files"]}
    assert listed["protocol/cycle.csv"] == hashlib.sha256(copy.read_bytes()).hexdigest()


def test_a_power_profile_draws_its_power(tmp_path):
    (tmp_path / "cycle.csv").write_text("time [min],power [mW]\n0,-1\n2,-1\n4,-2\n",
                                        encoding="utf-8")
    outcome, frame, rows = run(tmp_path, PROFILE_STEP.replace("QUANTITY", "power"))
    assert not outcome.faulted
    _, pts = last_step(frame, rows)
    ts = pts["step_time_s"].to_numpy()
    p = (pts["voltage_V"] * pts["current_A"]).to_numpy()
    wanted = np.interp(ts, [0, 120, 240], [-1e-3, -1e-3, -2e-3])
    inside = (ts > 2) & (ts < 238)
    assert np.abs(p[inside] / wanted[inside] - 1).max() < 0.03


@pytest.mark.parametrize(("csv", "where", "message"), [
    (None, "p.yaml:", "profile file 'cycle.csv' does not exist"),
    ("time (s),current (mA)\n0,1\n5,2\n5,3\n", "cycle.csv:4", "time 5 does not increase"),
    ("time (s),current (mA)\n0,1\n5,abc\n", "cycle.csv:3", "'abc' is not a finite number"),
    ("time (s),current (mA)\n0,1\n5,nan\n", "cycle.csv:3", "'nan' is not a finite number"),
    ("time (s),current (mA)\n0,1\n5,\n", "cycle.csv:3", "the current is empty"),
    ("time,current\n0,1\n5,2\n", "cycle.csv:1", "gives no unit"),
    ("time (s),current (mA)\n0,1\n5,-9\n", "cycle.csv:3", "above the cell's max_current"),
    ("time (s),current (mV)\n0,1\n5,2\n", "cycle.csv:1", "expected a current"),
    ("time (s),current (mA)\n1,1\n5,2\n", "cycle.csv:2", "must start at time 0"),
])
def test_a_bad_profile_file_is_refused_naming_its_line(tmp_path, csv, where, message):
    if csv is not None:
        (tmp_path / "cycle.csv").write_text(csv, encoding="utf-8")
    (tmp_path / "p.yaml").write_text(HEAD + PROFILE_STEP.replace("QUANTITY", "current"),
                                     encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "p.yaml")])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert "Traceback" not in result.output
    assert where in text and message in text


def test_a_profile_too_large_or_outside_the_folder_is_refused(tmp_path, monkeypatch):
    import protocols.loader as loader
    monkeypatch.setattr(loader, "MAX_PROFILE_BYTES", 40)
    (tmp_path / "cycle.csv").write_text("time (s),current (mA)\n" + "".join(
        f"{k},1\n" for k in range(20)), encoding="utf-8")
    (tmp_path / "p.yaml").write_text(HEAD + PROFILE_STEP.replace("QUANTITY", "current"),
                                     encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "p.yaml")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "the limit is 40 bytes" in " ".join(result.output.split())
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "p.yaml").write_text(HEAD + PROFILE_STEP.replace("QUANTITY", "current").replace(
        "cycle.csv", "../cycle.csv"), encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(sub / "p.yaml")])
    assert result.exit_code == 2
    assert "leads outside the protocol's folder" in " ".join(result.output.split())
