"""The command line as a user meets it: exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sequencer.cli import app

from .conftest import QUICKSTART, ROOT

runner = CliRunner()


def cellseq(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_validate_quickstart():
    result = cellseq("validate", QUICKSTART)
    assert result.exit_code == 0, result.output
    assert "valid: campaign 'quickstart', 2 cells, 2 experiments" in result.output


@pytest.mark.parametrize(("text", "expected"), [
    ("campaign: t\ncells: [\n", "t.yaml:3: invalid YAML"),
    ("campaign: t\n", "t.yaml: cells: the campaign has no cells"),
    ("cells: []\n", "t.yaml:1: missing required field 'campaign'"),
    ("campaign: t\nbogus: 1\n", "t.yaml:2: bogus: unknown key 'bogus'"),
])
@pytest.mark.parametrize("verb", ["validate", "run"])
def test_bad_protocols_exit_2_with_file_and_line(tmp_path, text, expected, verb):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    args = [verb, path] + (["--sim", "--out", tmp_path / "run"] if verb == "run" else [])
    result = cellseq(*args)
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()   # nothing created, nothing run


def test_missing_file_exits_2():
    result = cellseq("validate", "no/such/file.yaml")
    assert result.exit_code == 2 and "no such file" in result.output


def test_run_needs_a_station(tmp_path):
    result = cellseq("run", QUICKSTART, "--out", tmp_path / "r")
    assert result.exit_code == 2 and "use --sim" in result.output


def test_status_of_a_folder_that_is_not_a_run(tmp_path):
    result = cellseq("status", tmp_path)
    assert result.exit_code == 2 and "is not a cellseq run directory" in result.output


def test_bad_option_values_exit_2(tmp_path):
    assert cellseq("run", QUICKSTART, "--sim", "--seed", "-3").exit_code == 2
    assert cellseq("export", tmp_path, "--format", "xlsx").exit_code == 2


def test_schema_is_json_with_every_step_kind():
    result = cellseq("schema")
    assert result.exit_code == 0
    schema = json.loads(result.output)
    kinds = {d["properties"]["kind"]["const"] for name, d in schema["$defs"].items()
             if "kind" in d.get("properties", {}) and "const" in d["properties"]["kind"]}
    assert {"set_temperature", "rest", "peis", "constant_current", "constant_voltage",
            "loop"} <= kinds


def test_the_installed_entry_point_reports_errors_without_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("campaign: t\ncells:\n  - id: x\n    kind: blocking\n    electrolyte: A\n"
                    "    thickness: 3 mA\n    diameter: 16 mm\nexperiments: []\n")
    proc = subprocess.run([sys.executable, "-m", "sequencer", "validate", str(path)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 2
    assert "bad.yaml:6: cells[0].thickness: expected a length, got '3 mA' (a current)" in \
        proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_analyze_eis_on_a_real_spectrum():
    path = ROOT / "tests" / "data" / "autoeis" / "test_data.csv"
    result = cellseq("analyze", "eis", path, "--thickness", "300um", "--area", "2.01cm2",
                     "--no-fit")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    [spectrum] = doc["spectra"]       # a file of one spectrum gives a list of one
    r_b = spectrum["bulk_resistance_ohm"]
    assert spectrum["index"] == 1 and spectrum["points"] == 67 and spectrum["fit"] is None
    assert spectrum["ionic_conductivity_mS_cm"] == pytest.approx(0.03 / (2.01 * r_b) * 1e3)
    assert "by its name" in " ".join(doc["read_as"])


def test_analyze_eis_fit_with_a_chosen_circuit_and_window():
    """The BioLogic thin-film spectrum is one arc on a resistor: with that circuit the fit's R0
    and the model read by the intercept rule agree, and the window is honoured."""
    path = ROOT / "tests" / "data" / "impedance_py" / "exampleDataBioLogic.mpt"
    result = cellseq("analyze", "eis", path, "--thickness", "300um", "--diameter", "16mm",
                     "--circuit", "R0-p(R1,CPE1)", "--f-max", "1kHz")
    assert result.exit_code == 0, result.output
    fit = json.loads(result.output)["spectra"][0]["fit"]
    assert fit["circuit"] == "R0-p(R1,CPE1)" and fit["parameters_at_bounds"] == []
    assert fit["model_intercept_ohm"] == pytest.approx(fit["bulk_resistance_ohm"], rel=0.02)
    assert fit["parameters"]["R1"] == pytest.approx(48.0, rel=0.05)
    narrow = cellseq("analyze", "eis", path, "--thickness", "300um", "--diameter", "16mm",
                     "--circuit", "R0-p(R1,CPE1)", "--f-min", "0.1Hz")
    assert narrow.exit_code == 0, narrow.output
    assert json.loads(narrow.output)["spectra"][0]["fit"]["parameters"] != fit["parameters"]


@pytest.mark.parametrize(("args", "message"), [
    (["--thickness", "3mA", "--area", "2cm2"], "--thickness: expected a length, got '3 mA'"),
    (["--thickness", "300um"], "a conductivity needs both --thickness and --area"),
    (["--diameter", "16mm", "--area", "2cm2"], "give --area or --diameter, not both"),
    (["--thickness", "300um", "--area", "2cm2", "--f-min", "3mV"],
     "--f-min: expected a frequency, got '3 mV'"),
    (["--thickness", "300um", "--area", "2cm2", "--circuit", "R1-p(R2,CPE1)"], "has no R0"),
    (["--thickness", "300um", "--area", "2cm2", "--circuit", "R0-p(R1"], "--circuit"),
    (["--thickness", "300um", "--area", "2cm2", "--f-min", "1MHz"], "distinct frequencies"),
    (["--thickness", "300um", "--area", "2cm2", "--no-fit", "--circuit", "R0-C1"],
     "drop --no-fit"),
])
def test_analyze_eis_bad_arguments_exit_2(args, message):
    path = ROOT / "tests" / "data" / "autoeis" / "test_data.csv"
    result = cellseq("analyze", "eis", path, *args)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


def test_analyze_eis_unreadable_file_exits_2(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n")
    result = cellseq("analyze", "eis", path, "--thickness", "300um", "--diameter", "16mm")
    assert result.exit_code == 2 and "notes.txt" in result.output
    assert "Traceback" not in result.output


def _paced_cycling(tmp_path):
    """The paper's symmetric cycling, to be run paced at 5e5 (its 1202 h in about 9 s):
    unpaced, the dry run may end before a test sees it running with points committed. At that
    pace a 30 ms stall of a loaded machine is 4 h of virtual time, a chamber soak's whole
    timeout, so its soaks are given 1000 h."""
    import yaml

    doc = yaml.safe_load((ROOT / "protocols" / "aiose" / "symmetric_cycling.yaml").read_text())
    for experiment in doc["experiments"]:
        for step in experiment["steps"]:
            if step["kind"] == "set_temperature":
                step["timeout"] = "1000 h"
    protocol = tmp_path / "symmetric_cycling.yaml"
    protocol.write_text(yaml.safe_dump(doc))
    return protocol


def test_ctrl_c_once_pauses_between_steps_and_twice_stops_with_outputs_off(tmp_path):
    """Real SIGINTs to a running `cellseq run`: the first holds every cell at its next step
    boundary, the second stops: exit 130, no traceback, cells aborted."""
    import signal
    import time

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "sequencer", "run",
                             str(_paced_cycling(tmp_path)),
                             "--sim", "--out", str(out), "--no-report", "--speed", "5e5"],
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    log = out / "run.log"

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 60
        while not log.exists() or text not in log.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, text
            time.sleep(0.05)

    wait_for("step_started")
    proc.send_signal(signal.SIGINT)
    wait_for(" paused")
    time.sleep(0.5)
    first = json.loads(cellseq("status", out, "--json").output)
    cpu_before = _cpu_seconds(proc.pid)
    time.sleep(1.0)
    second = json.loads(cellseq("status", out, "--json").output)
    if cpu_before is not None:   # a paused run waits; it does not spin
        assert _cpu_seconds(proc.pid) - cpu_before < 0.3
    assert {c["state"] for c in second["cells"]} == {"paused"}
    assert [c["points"] for c in first["cells"]] == [c["points"] for c in second["cells"]]
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "every output is off" in stderr
    doc = json.loads(cellseq("status", out, "--json").output)
    assert doc["status"] == "interrupted"
    assert {c["state"] for c in doc["cells"]} == {"aborted"}
    assert "interrupted by the user (Ctrl-C)" in log.read_text()


def test_progress_bars_follow_run_time_and_stay_off_without_a_terminal(tmp_path):
    from rich.console import Console

    from sequencer.progress import TerminalProgress
    from sequencer.runner import run_simulated

    with (tmp_path / "tty.txt").open("w") as tty:
        bars = TerminalProgress(Console(file=tty, force_terminal=True, width=120))
        run_simulated(ROOT / "protocols" / "aiose" / "ccd.yaml", tmp_path / "run", 1,
                      progress=bars)
    shown = (tmp_path / "tty.txt").read_text()
    assert "critical-current-density" in shown
    (task,) = bars._bars.tasks
    assert task.completed == task.total            # ended: the bar is full
    quiet = cellseq("run", ROOT / "protocols" / "aiose" / "ccd.yaml", "--sim", "--out",
                    tmp_path / "quiet", "--no-report")
    assert quiet.exit_code == 0 and "critical-current-density  " not in quiet.output


def test_status_reads_a_run_while_another_process_writes_it(tmp_path):
    import time

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "sequencer", "run",
                             str(_paced_cycling(tmp_path)),
                             "--sim", "--out", str(out), "--no-report", "--speed", "5e5"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen_running = False
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if (out / "run.sqlite").exists():
            result = cellseq("status", out, "--json")
            assert result.exit_code == 0, result.output
            doc = json.loads(result.output)
            if doc["status"] == "running" and any(c["points"] for c in doc["cells"]):
                seen_running = True
                running = [c for c in doc["cells"] if c["state"] == "running"]
                assert all(c["step_kind"] and c["last"] for c in running)
        time.sleep(0.05)
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert seen_running
    assert json.loads(cellseq("status", out, "--json").output)["status"] == "completed"


def _cpu_seconds(pid: int) -> float | None:
    """CPU time a process has used, where /proc tells (Linux)."""
    import os

    stat = f"/proc/{pid}/stat"
    if not os.path.exists(stat):
        return None
    with open(stat) as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
