"""The cycles a run prints agree with the cycles its results number: a formation cycle written
before the loops and a check-up written without a loop are cycles too (the executor's loop
counter, shown by ``cellseq status`` as ``loop cycle``, counts neither)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sequencer.cli import app

RATE = """
campaign: rate
cells:
  - id: c1
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}
    limits: {max_voltage: 4.45 V, min_voltage: 2.5 V, max_current: 5 mA}
experiments:
  - name: rate
    cells: [c1]
    steps:
      - {kind: cccv_charge, current: C/5, voltage: 4.3 V, until_current: C/10}
      - {kind: cc_discharge, current: C/5, until_voltage: 2.8 V}
      - kind: loop
        count: 2
        steps:
          - {kind: cccv_charge, current: C/5, voltage: 4.3 V, until_current: C/10}
          - {kind: cc_discharge, current: 1C, until_voltage: 2.8 V}
"""


def _cycles_column(output: str) -> str:
    row = next(line for line in output.splitlines() if line.startswith("│ c1 "))
    return row.split("│")[4].strip()


def test_run_and_report_print_the_cycles_the_results_number(write_yaml, tmp_path):
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--sim", str(write_yaml(RATE)), "--out",
                                      str(run_dir)], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "report" / "summary.json").read_text(encoding="utf-8"))
    numbered = {r["conditions"]["cycle"] for r in summary["results"]
                if r["quantity"] == "discharge_capacity"}
    assert numbered == {1, 2, 3}
    assert _cycles_column(result.output) == "3"
    status = CliRunner().invoke(app, ["status", str(run_dir)], env={"COLUMNS": "120"})
    assert "loop" in status.output and "cycle" in status.output
    assert json.loads(CliRunner().invoke(app, ["status", str(run_dir), "--json"]).output
                      )["cells"][0]["cycle"] == 2   # the loop's iterations, as the data store


def test_report_prints_the_summary_run_prints(write_yaml, tmp_path):
    """``report`` prints what ``run`` printed at its end (the cells, the results table, the
    notes), then where the report is; counts agree with their nouns."""
    protocol = write_yaml(RATE)
    run_dir = tmp_path / "run"
    env = {"COLUMNS": "120"}
    ran = CliRunner().invoke(app, ["run", "--sim", str(protocol), "--out", str(run_dir)],
                             env=env)
    reported = CliRunner().invoke(app, ["report", str(run_dir)], env=env)
    assert reported.exit_code == 0, reported.output
    printed = reported.output.split("report: ")[0]
    assert "derived from the raw data" in printed and "discharge_capacity / mAh/g" in printed
    assert printed == ran.output.split("report: ")[0]
    assert f"summary: {run_dir / 'report' / 'summary.json'}" in reported.output
    valid = CliRunner().invoke(app, ["validate", str(protocol)], env=env)
    assert "1 cell, 1 experiment" in valid.output
    assert "experiment, 1 cell" in (run_dir / "run.log").read_text(encoding="utf-8")
