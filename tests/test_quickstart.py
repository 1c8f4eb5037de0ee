"""End to end: the quickstart dry run, checked through its store and its exports."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sequencer.cli import app
from store import RunStore

from .conftest import QUICKSTART

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "qs"
    result = runner.invoke(app, ["run", str(QUICKSTART), "--sim", "--seed", "3", "--out",
                                 str(out)])
    assert result.exit_code == 0, result.output
    assert f"run directory: {out}" in result.output
    return out


def test_run_directory_holds_store_protocol_copy_and_manifest(run_dir):
    assert (run_dir / "protocol" / "quickstart.yaml").read_bytes() == QUICKSTART.read_bytes()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["protocol"]["file"] == "protocol/quickstart.yaml"
    assert manifest["files"] == [{"path": "protocol/quickstart.yaml",
                                  "sha256": hashlib.sha256(QUICKSTART.read_bytes()).hexdigest()}]
    assert manifest["seed"] == 3 and manifest["mode"] == "simulated"
    assert len(manifest["protocol"]["sha256"]) == 64
    assert {"python", "numpy", "pydantic", "pint"} <= set(manifest["versions"])
    store = RunStore.open(run_dir)
    try:
        mode = store._conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        store.close()
    assert mode == "wal"
    assert "step_started" in (run_dir / "run.log").read_text()


def test_store_contents_are_physical(run_dir):
    store = RunStore.open(run_dir)
    try:
        states = {s["cell"]: s["state"] for s in store.cell_states()}
        assert states == {"aiose-blocking-1": "completed", "ncm811-1": "completed"}
        # blocking cell: two spectra of 3 MHz..0.1 Hz at 10 per decade (76 points each)
        spec = store.read("aiose-blocking-1", "spectrum")
        assert len(spec["frequency_Hz"]) == 2 * 76
        assert np.all(spec["z_real_ohm"] > 0)
        steps = store.steps("ncm811-1")
        kinds = [s["kind"] for s in steps]
        assert kinds == ["set_temperature", "rest"] + ["constant_current", "constant_voltage",
                                                        "rest", "constant_current", "rest"] * 3
        ends = [s["end_reason"] for s in steps if s["kind"] == "constant_current"]
        assert ends == ["voltage"] * 6
        series = store.read("ncm811-1")
        assert len(series["test_time_s"]) > 1000
        t = series["test_time_s"]
        assert np.all(np.diff(t) >= 0)                  # monotonic per cell; a step's first
        same_step = np.diff(series["step_count"]) == 0  # point shares the previous step's end
        assert np.all(np.diff(t)[same_step] > 0)
        assert series["voltage_V"].min() > 2.7 and series["voltage_V"].max() < 4.4
        assert np.abs(series["current_A"]).max() < 0.5e-3       # 0.1C of a 0.43 mAh cell
        assert np.all(np.abs(series["temperature_C"] - 25) < 1.5)
        assert set(np.unique(series["cycle"])) == {0, 1, 2, 3}
        for name in ("charge_Ah", "discharge_Ah", "charge_Wh", "discharge_Wh"):
            assert np.all(np.diff(series[name]) >= 0)
    finally:
        store.close()


def test_export_has_bdf_columns_with_units(run_dir):
    result = runner.invoke(app, ["export", str(run_dir), "--format", "csv"])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(run_dir / "export" / "ncm811-1.csv")
    for column in ("Test Time / s", "Voltage / V", "Current / A", "Cycle Count / 1",
                   "Step Count / 1", "Temperature T1 / degC", "Discharging Capacity / Ah"):
        assert column in df.columns
    eis = pd.read_csv(run_dir / "export" / "aiose-blocking-1-eis.csv")
    assert {"Frequency / Hz", "Z Real / Ohm", "Z Imag / Ohm"} <= set(eis.columns)


def test_summary_reports_results_derived_from_raw_data(run_dir):
    from analysis.derive import derive

    results = derive(run_dir).results
    sigma = {r.conditions["temperature_degC"]: r.value for r in results
             if r.quantity == "ionic_conductivity"}
    (s25,) = [v for t, v in sigma.items() if abs(t - 25) < 1]
    assert s25 == pytest.approx(0.58, rel=0.03)        # the paper's 0.58 mS/cm
    (s60,) = [v for t, v in sigma.items() if abs(t - 60) < 1]
    assert s60 > 2 * s25                                 # Arrhenius: faster when warm
    capacity = [r.value for r in results if r.quantity == "discharge_capacity"]
    assert len(capacity) == 3
    assert all(v == pytest.approx(207, rel=0.03) for v in capacity)


def test_the_run_ends_with_a_report(run_dir):
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    quantities = {r["quantity"] for r in summary["results"]}
    assert {"bulk_resistance", "ionic_conductivity", "discharge_capacity",
            "coulombic_efficiency"} <= quantities
    page = (run_dir / "report" / "index.html").read_text()
    assert "aiose-blocking-1" in page and "figures/" in page
    assert len(list((run_dir / "report" / "figures").glob("*.png"))) >= 3


def test_status_reads_the_run(run_dir):
    result = runner.invoke(app, ["status", str(run_dir), "--json"])
    assert result.exit_code == 0
    st = json.loads(result.output)
    assert st["status"] == "completed"
    cells = {c["cell"]: c for c in st["cells"]}
    assert cells["ncm811-1"]["cycle"] == 3 and cells["ncm811-1"]["points"] > 1000


def test_same_seed_same_data(tmp_path, run_dir):
    other = tmp_path / "again"
    assert runner.invoke(app, ["run", str(QUICKSTART), "--sim", "--seed", "3", "--out",
                               str(other)]).exit_code == 0
    differ = tmp_path / "differ"
    assert runner.invoke(app, ["run", str(QUICKSTART), "--sim", "--seed", "4", "--out",
                               str(differ)]).exit_code == 0
    a, b, c = (RunStore.open(d) for d in (run_dir, other, differ))
    try:
        for cell in ("aiose-blocking-1", "ncm811-1"):
            for kind in ("series", "spectrum"):
                x, y, z = a.read(cell, kind), b.read(cell, kind), c.read(cell, kind)
                for column in x:
                    if column != "utc_s":   # wall-clock start differs between runs
                        assert np.array_equal(x[column], y[column], equal_nan=True), column
                if len(x["voltage_V"]):
                    assert not np.array_equal(x["voltage_V"], z["voltage_V"])
    finally:
        for s in (a, b, c):
            s.close()


def test_an_existing_run_directory_is_refused(run_dir):
    result = runner.invoke(app, ["run", str(QUICKSTART), "--sim", "--out", str(run_dir)])
    assert result.exit_code == 2 and "exists and is not empty" in result.output


def test_report_can_be_rewritten_on_demand(run_dir):
    (run_dir / "report" / "summary.json").unlink()
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / "report" / "summary.json").read_text())["results"]
