"""A step whose voltage cut-off lies at or beyond its cell's safety limit is planned, with a
warning that validate, plan and run print and a run keeps in run.log and summary.json."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sequencer.cli import app
from sequencer.plan import prepare

from .conftest import QUICKSTART, ROOT

runner = CliRunner()

PROTOCOL = """
campaign: limits
cells:
  - id: ncm-1
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {{material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}}
    limits: {{max_voltage: {max_voltage}, min_voltage: {min_voltage}, max_current: 5 mA}}
experiments:
  - name: cycling
    cells: [ncm-1]
    steps:
      - kind: loop
        count: {count}
        steps:
          - {{kind: cccv_charge, current: 0.5C, voltage: 4.2 V, until_current: C/20}}
          - {{kind: rest, duration: 10 min}}
          - {{kind: cc_discharge, current: 0.5C, until_voltage: 2.8 V}}
"""


def protocol(tmp_path, max_voltage: str = "4.45 V", min_voltage: str = "2.5 V",
             count: int = 2):
    path = tmp_path / "limits.yaml"
    path.write_text(PROTOCOL.format(max_voltage=max_voltage, min_voltage=min_voltage,
                                    count=count), encoding="utf-8")
    return path


def warnings_in(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("warning:")]


def test_a_charge_cut_off_above_max_voltage_warns_once_per_step_however_many_cycles(tmp_path):
    result = runner.invoke(app, ["validate", str(protocol(tmp_path, max_voltage="3.9 V",
                                                          count=500))])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output
    lines = warnings_in(result.output)
    # the CC part's cut-off and the CV hold of one written step: one line, not one per cycle
    assert len(lines) == 1, result.output
    line = lines[0]
    written = 1 + PROTOCOL.splitlines().index(
        "          - {{kind: cccv_charge, current: 0.5C, voltage: 4.2 V, until_current: C/20}}")
    for said in (f"limits.yaml:{written}:", "'cycling'", "step 2 (cccv_charge)", "cell ncm-1",
                 "max_voltage of 3.9 V", "will fault at 3.9 V before the step's 4.2 V"):
        assert said in line, line


def test_a_discharge_cut_off_below_min_voltage_warns(tmp_path):
    result = runner.invoke(app, ["plan", str(protocol(tmp_path, min_voltage="3 V"))])
    assert result.exit_code == 0, result.output
    lines = warnings_in(result.output)
    assert len(lines) == 1, result.output
    assert "step 4 (cc_discharge)" in lines[0] and "cut-off 2.8 V is below the cell's"\
        " min_voltage of 3 V" in lines[0] and "before the step's 2.8 V cut-off" in lines[0]


def test_a_limit_at_the_cut_off_warns_that_an_overshoot_faults(tmp_path):
    plan = prepare(protocol(tmp_path, max_voltage="4.2 V"))
    assert [(w.step, w.cell, w.limit, w.limit_V) for w in plan.warnings] == [
        (2, "ncm-1", "max_voltage", 4.2)]
    assert "is at the cell's max_voltage of 4.2 V" in str(plan.warnings[0])
    assert plan.to_json()["warnings"] == [str(plan.warnings[0])]


def test_protocols_inside_their_limits_give_no_warning(tmp_path):
    for path in (QUICKSTART, ROOT / "protocols" / "aiose" / "campaign.yaml",
                 protocol(tmp_path)):
        assert prepare(path).warnings == (), path
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == 0 and not warnings_in(result.output), result.output


def test_a_run_prints_the_warning_and_keeps_it_in_run_log_and_summary(tmp_path):
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["run", "--sim", str(protocol(tmp_path, max_voltage="3.9 V",
                                                              count=1)),
                                 "--out", str(run_dir)])
    assert result.exit_code == 1, result.output   # the cell faults, as warned
    lines = warnings_in(result.output)
    assert len(lines) == 1 and "cell ncm-1" in lines[0], result.output
    assert result.output.index(lines[0]) < result.output.index("run directory:")
    warning = lines[0].removeprefix("warning: ")
    assert warning in (run_dir / "run.log").read_text(encoding="utf-8")
    summary = json.loads((run_dir / "report" / "summary.json").read_text(encoding="utf-8"))
    assert f"warning: {warning}" in summary["notes"]
    # said once before the run: the printed summary's notes do not repeat it...
    assert "note: warning:" not in result.output
    # ...which `report`, that printed nothing before, does
    reported = runner.invoke(app, ["report", str(run_dir)])
    assert "note: warning: " + warning[:40] in " ".join(reported.output.split())
