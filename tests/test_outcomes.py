"""How a run ended, said the same everywhere: the run's status, ``cellseq status`` (table and
JSON), summary.json's ``run`` block, the report's banner, the printed summary and the exit
code; and ``run --check``, the dry run as a CI gate."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sequencer.cli import CELL_FAULTED, CHECK_FAILED, app
from sequencer.status import run_outcome
from store import RunStore

from .conftest import QUICKSTART, ROOT

runner = CliRunner()

FULL_CELL = """
  - id: {id}
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {{material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}}
    limits: {{max_voltage: {max_voltage}, min_voltage: 2.5 V, max_current: 5 mA}}
"""
# two cells whose ids differ only at the end; one's voltage limit lies below the charge's end
TWO_CELLS = """
campaign: limits
cells:
{cells}
experiments:
  - name: formation
    cells: [lfp-gr-cell-one, lfp-gr-cell-two]
    steps:
      - kind: loop
        count: 2
        steps:
          - {{kind: constant_current, direction: charge, current: 0.5C, until_voltage: 4.3 V,
             record_every: 60 s}}
          - {{kind: rest, duration: 30 min}}
          - {{kind: constant_current, direction: discharge, current: 0.5C,
             until_voltage: 2.8 V, record_every: 60 s}}
"""


def two_cells(tmp_path, first_limit: str = "4.2 V", second_limit: str = "4.45 V"):
    cells = FULL_CELL.format(id="lfp-gr-cell-one", max_voltage=first_limit) + \
        FULL_CELL.format(id="lfp-gr-cell-two", max_voltage=second_limit)
    path = tmp_path / "limits.yaml"
    path.write_text(TWO_CELLS.format(cells=cells), encoding="utf-8")
    return path


def cellseq(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_the_run_status_is_completed_only_when_every_cell_completed():
    assert run_outcome(["completed", "completed"]) == "completed"
    assert run_outcome(["completed", "faulted"]) == "completed_with_faults"
    assert run_outcome(["faulted", "faulted"]) == "faulted"


def test_a_run_with_a_faulted_cell_says_so_everywhere(tmp_path):
    out = tmp_path / "run"
    result = cellseq("run", two_cells(tmp_path), "--sim", "--out", out)
    assert result.exit_code == CELL_FAULTED
    printed = result.output
    assert "limits: completed_with_faults" in printed
    # The tripping reading lies past 4.2 V by less than the digits shown: the message says the
    # limit was reached rather than "4.2 V beyond the limit 4.2 V".
    assert re.search(r"faulted: lfp-gr-cell-one in formation: safety limit: voltage reached the"
                     r"\s+limit 4\.2 V", printed)
    assert "run completed_with_faults: cells that faulted: lfp-gr-cell-one" in printed

    status = json.loads(cellseq("status", out, "--json").output)
    assert status["status"] == "completed_with_faults" and status["faulted"] == ["lfp-gr-cell-one"]
    states = {c["cell"]: (c["state"], c["fault"]) for c in status["cells"]}
    assert states["lfp-gr-cell-two"] == ("completed", None)
    assert states["lfp-gr-cell-one"][0] == "faulted"
    fault = states["lfp-gr-cell-one"][1]
    assert re.match(r"safety limit: voltage reached the limit 4\.2 V at [\d.]+ s", fault)

    summary = json.loads((out / "report" / "summary.json").read_text())
    run = summary["run"]
    assert run["status"] == "completed_with_faults" and run["faulted"] == ["lfp-gr-cell-one"]
    assert {c["cell"]: (c["state"], c["fault"]) for c in run["cells"]} == states
    assert [(g["cell"], g["experiment"]) for g in run["not_derived"]] == [
        ("lfp-gr-cell-one", "formation")]
    assert "cut short at step 2 (constant_current)" in run["not_derived"][0]["reason"]

    html = (out / "report" / "index.html").read_text()
    banner = html[html.index('<div class="outcome banner"'):]
    banner = banner[:banner.index("</div>")]
    assert "Run completed with faults: 1 of 2 cells did not complete" in banner
    assert "<strong>lfp-gr-cell-one</strong> faulted in formation: safety limit" in banner

    log = (out / "run.log").read_text()
    assert "run_completed_with_faults: all experiments done; 1 of 2 cells faulted:" \
        " lfp-gr-cell-one" in log
    assert "run_completed:" not in log

    plain = cellseq("status", out)
    assert "status completed_with_faults" in plain.output
    assert f"faulted: lfp-gr-cell-one: {fault}" in " ".join(plain.output.split())


def test_a_run_whose_every_cell_faulted_is_faulted_with_its_faults_in_the_report(tmp_path):
    out = tmp_path / "run"
    result = cellseq("run", two_cells(tmp_path, "4.2 V", "4.2 V"), "--sim", "--out", out)
    assert result.exit_code == CELL_FAULTED
    assert "limits: faulted" in result.output and "completed" not in result.output.split(
        "\n")[0]
    assert "no derived results" in result.output
    assert json.loads(cellseq("status", out, "--json").output)["status"] == "faulted"
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["run"]["status"] == "faulted"
    assert sorted(summary["run"]["faulted"]) == ["lfp-gr-cell-one", "lfp-gr-cell-two"]
    html = (out / "report" / "index.html").read_text()
    assert "Run faulted: 2 of 2 cells did not complete" in html
    assert html.count("</strong> faulted in formation: ") == 2 and "safety" in html
    # a finished run has nothing to resume, faulted or not
    again = cellseq("resume", out)
    assert again.exit_code == 2 and "holds a finished run (faulted)" in again.output


def test_the_report_of_a_run_whose_process_died_calls_it_interrupted(tmp_path):
    out = tmp_path / "run"
    assert cellseq("run", QUICKSTART, "--sim", "--out", out, "--no-report").exit_code == 0
    store = RunStore.open(out, readonly=False)
    try:
        with store.transaction():   # as a crash leaves it: running, no process
            store.set_meta("status", "running")
            store.set_cell_state("ncm811-1", "running", 100.0)
    finally:
        store.close()
    result = cellseq("report", out)
    assert result.exit_code == 0, result.output
    run = json.loads((out / "report" / "summary.json").read_text())["run"]
    assert run["status"] == "interrupted"
    assert {c["cell"]: c["state"] for c in run["cells"]}["ncm811-1"] == "interrupted"
    assert "run interrupted: see the banner at the top of the report" in result.output


# -- run --check --------------------------------------------------------------------------------

CHECKED = """
campaign: checked
cells:
  - {{id: aiose-1, kind: blocking, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}}
{extra_cells}
experiments:
  - name: conductivity
    cells: [aiose-1]
    expected:   # the paper's value (Chem. Mater. 2025)
      - {{quantity: ionic_conductivity, cell: aiose-1, value: {sigma}, unit: {unit},
         conditions: {{temperature_degC: 25}}}}
    steps:
      - {{kind: set_temperature, target: 25 degC, tolerance: 0.5 K, hold: 10 min, timeout: 3 h}}
      - {{kind: peis, f_start: 1 MHz, f_end: 1 Hz, amplitude: 10 mV, points_per_decade: 5}}
{extra_experiments}
"""
FAULTING = """
  - name: formation
    cells: [lfp-gr-cell-one]
    expected:
      - {quantity: discharge_capacity, cell: lfp-gr-cell-one, value: 180, unit: mAh/g,
         conditions: {cycle: 1}}
    steps:
      - {kind: constant_current, direction: charge, current: 0.5C, until_voltage: 4.3 V}
      - {kind: constant_current, direction: discharge, current: 0.5C, until_voltage: 2.8 V}
"""


def checked(tmp_path, sigma: str, unit: str = "mS/cm", faulting: bool = False):
    path = tmp_path / "checked.yaml"
    path.write_text(CHECKED.format(
        sigma=sigma, unit=unit,
        extra_cells=FULL_CELL.format(id="lfp-gr-cell-one", max_voltage="4.2 V") if faulting
        else "", extra_experiments=FAULTING if faulting else ""), encoding="utf-8")
    return path


@pytest.mark.parametrize(("sigma", "unit"), [("0.58", "mS/cm"), ("0.058", "S/m")])
def test_check_passes_when_every_expected_value_holds(tmp_path, sigma, unit):
    result = cellseq("run", checked(tmp_path, sigma, unit), "--sim", "--check", "--no-report",
                     "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "every expected value met (1 checks)" in result.output


def test_check_exits_3_and_prints_each_miss(tmp_path):
    result = cellseq("run", checked(tmp_path, "0.9"), "--sim", "--check", "--no-report", "--out",
                     tmp_path / "run")
    assert result.exit_code == CHECK_FAILED == 3
    assert re.search(r"^missed: conductivity/aiose-1: ionic_conductivity \(basis=bulk,"
                     r" temperature_degC=25(\.0)?\): measured 0\.5\d+ mS/cm,"
                     r" expected 0\.9 mS/cm \+-5 %: fail$",
                     result.output, re.MULTILINE)   # one line per miss, for a CI log
    assert "--check: 1 of 1 expected values missed" in result.output
    # without --check the same run is a success: the check is what the option adds
    plain = cellseq("run", checked(tmp_path, "0.9"), "--sim", "--no-report", "--out",
                    tmp_path / "plain")
    assert plain.exit_code == 0


def test_a_faulted_cell_wins_over_missed_values_and_both_are_printed(tmp_path):
    out = tmp_path / "run"
    result = cellseq("run", checked(tmp_path, "0.9", faulting=True), "--sim", "--check",
                     "--out", out)
    assert result.exit_code == CELL_FAULTED == 1
    assert "missed: conductivity/aiose-1: ionic_conductivity" in result.output
    assert re.search(r"missed: formation/lfp-gr-cell-one: discharge_capacity \(cycle=1\):"
                     r" measured nothing, expected 180 mAh/g \+-5 %: not measured",
                     " ".join(result.output.split()))
    assert "cells that faulted: lfp-gr-cell-one" in result.output
    checks = json.loads((out / "report" / "summary.json").read_text())["checks"]
    assert [c["status"] for c in checks] == ["fail", "not measured"]


def test_check_without_expected_values_says_there_is_nothing_to_compare(tmp_path):
    result = cellseq("run", QUICKSTART, "--sim", "--check", "--no-report", "--out",
                     tmp_path / "run")
    assert result.exit_code == 0
    assert "the protocol declares no expected values" in result.output


def test_expected_units_are_checked_at_load_through_pint(tmp_path):
    assert cellseq("validate", checked(tmp_path, "5.8", "mS / cm")).exit_code == 0
    assert cellseq("validate", checked(tmp_path, "5.8e-4", "S/cm")).exit_code == 0
    result = cellseq("validate", checked(tmp_path, "0.58", "mA"))
    assert result.exit_code == 2
    assert re.search(r"checked\.yaml:\d+: experiments\[0\]\.expected\[0\]\.unit: 'mA' \(a"
                     r" current\) cannot be expressed in 'mS/cm'", result.output)


# -- status, elapsed times, step numbers, wall time --------------------------------------------

def test_status_at_80_columns_keeps_ids_apart_and_states_whole(tmp_path):
    out = tmp_path / "run"
    assert cellseq("run", two_cells(tmp_path), "--sim", "--out", out,
                   "--no-report").exit_code == CELL_FAULTED
    shown = subprocess.run([sys.executable, "-m", "sequencer", "status", str(out)], cwd=ROOT,
                           capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"},
                           check=True).stdout
    lines = shown.splitlines()
    header = next(k for k, line in enumerate(lines) if line.startswith("cell"))
    width, state_end = lines[header].index("state"), lines[header].index("experiment")
    rows: list[list[str]] = []
    table = lines[header:header + 2]
    for line in lines[header + 2:]:
        if not line.strip() or line.startswith("faulted:"):
            break
        table.append(line)
        if line[width:state_end].strip():   # a row starts where its state is
            rows.append([])
        rows[-1].append(line[:width].strip())
    assert "…" not in shown and all(len(line) <= 80 for line in table)
    assert ["".join(r) for r in rows] == ["lfp-gr-cell-one", "lfp-gr-cell-two"]
    assert re.search(r"\bfaulted\b", shown) and re.search(r"\bcompleted\b", shown)


ELAPSED = """
campaign: elapsed
cells:
  - {id: quick, kind: blocking, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
  - {id: slow, kind: blocking, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
experiments:
  - name: quick
    cells: [quick]
    steps:
      - {kind: rest, duration: 30 min, record_every: 5 min}
  - name: slow
    cells: [slow]
    steps:
      - {kind: rest, duration: 3 d, record_every: 1 h}
"""


def test_a_finished_steps_elapsed_time_is_its_own_duration(tmp_path, write_yaml):
    """The quick cell's 30 min step is not 3 days long because the run ended 3 days later."""
    out = tmp_path / "run"
    assert cellseq("run", write_yaml(ELAPSED), "--sim", "--out", out,
                   "--no-report").exit_code == 0
    cells = {c["cell"]: c for c in json.loads(cellseq("status", out, "--json").output)["cells"]}
    assert cells["quick"]["step_elapsed_s"] == pytest.approx(1800.0)
    assert cells["slow"]["step_elapsed_s"] == pytest.approx(3 * 86400.0)


def test_a_step_has_one_number_in_run_log_status_the_export_and_the_plan(tmp_path):
    """Counted from 1, loops before their bodies: the quickstart's formation ends on its 8th
    written step, a rest."""
    out = tmp_path / "run"
    assert cellseq("run", QUICKSTART, "--sim", "--out", out, "--no-report").exit_code == 0
    last = [line for line in (out / "run.log").read_text().splitlines()
            if "step_started [ncm811-1]" in line][-1]
    number = int(re.search(r"formation step (\d+) rest", last)[1])
    cells = {c["cell"]: c for c in json.loads(cellseq("status", out, "--json").output)["cells"]}
    assert (cells["ncm811-1"]["step"], cells["ncm811-1"]["step_kind"]) == (number, "rest")
    assert cellseq("export", out).exit_code == 0
    rows = (out / "export" / "ncm811-1.csv").read_text().splitlines()
    index = rows[0].split(",").index("Step Index / 1")
    assert int(float(rows[-1].split(",")[index])) == number
    plan = json.loads(cellseq("plan", QUICKSTART, "--json").output)
    steps = next(e for e in plan["experiments"] if e["name"] == "formation")["steps"]
    assert steps[number - 1] == {"index": number, "kind": "rest", "label": ""}
    assert [s["index"] for s in steps] == list(range(1, len(steps) + 1)) and number == 8


def test_the_printed_wall_time_is_the_commands(tmp_path):
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sequencer", "run", str(QUICKSTART), "--sim",
                           "--out", str(tmp_path / "run")], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    elapsed = time.perf_counter() - started
    wall, run = (float(x) for x in re.search(
        r"wall time (\d+\.\d+) s \(the run itself (\d+\.\d+) s\)", done.stdout).groups())
    assert run < wall <= elapsed
    assert wall > 0.6 * elapsed   # loading and the report count, not only the run


def test_the_readmes_ci_snippets_validate_and_dry_run_a_protocol_folder(tmp_path):
    """The GitHub Actions and GitLab CI snippets are valid YAML and run the same script; on a
    folder with a file whose expected value is not met, the script validates and dry-runs it,
    prints the miss, keeps the report and fails."""
    import yaml

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## A dry run as a CI gate"):]
    github, gitlab = (yaml.safe_load(block) for block in
                      re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)[:2])
    (step,) = [s for s in github["jobs"]["dry-run"]["steps"] if "validate" in s.get("name", "")]
    script = step["run"]
    assert gitlab["protocols"]["script"][-1].strip() == script.strip()
    assert github["jobs"]["dry-run"]["env"]["PROTOCOLS"] == \
        gitlab["protocols"]["variables"]["PROTOCOLS"]

    folder = tmp_path / "protocols"
    folder.mkdir()
    checked(tmp_path, "0.9").rename(folder / "misses.yaml")
    scripts = Path(sys.executable).parent   # where this environment's cellseq is
    env = {**os.environ, "PROTOCOLS": str(folder),
           "PATH": f"{scripts}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("missed: ") == 1
    assert "missed: conductivity/aiose-1: ionic_conductivity" in done.stderr
    assert f"{folder / 'misses.yaml'}: valid" in done.stdout
    assert (tmp_path / "runs" / "misses" / "report" / "index.html").is_file()


def test_a_trip_names_its_reading_unless_it_rounds_to_the_limit():
    from sequencer.safety import Trip
    assert str(Trip("voltage", 4.5, 4.45, 12.0)) == (
        "voltage 4.5 V beyond the limit 4.45 V at 12.0 s into the step")
    assert str(Trip("voltage", 3.8 + 1e-10, 3.8, 7.25)) == (
        "voltage reached the limit 3.8 V at 7.2 s into the step")
