"""A cell's analysis is made once: kept in report/cells under a key of its data, its
description and the code, taken by the next report only while that key holds, and made while
the run goes on by a process beside it (analysis.while_running)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis.cell_cache import CELLS_DIR, LIBRARIES
from analysis.report import make_report
from analysis.while_running import AnalysisBeside, _RunSide
from sequencer.cli import app
from sequencer.runner import resume_run, run_simulated
from tests.runs import arm_power_cut, crash, data

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "protocols" / "examples" / "quickstart.yaml"
CELLS = ["aiose-blocking-1", "ncm811-1"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("kept") / "run"
    run_simulated(QUICKSTART, run_dir, seed=3)
    return run_dir


@pytest.fixture
def run(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of the finished run with no report yet."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def _written(run_dir: Path) -> dict[str, bytes]:
    report = run_dir / "report"
    files = [report / "summary.json", report / "index.html",
             *sorted((report / "figures").iterdir())]
    return {p.name: p.read_bytes() for p in files}


def _entry(run_dir: Path, cell: str) -> Path:
    return run_dir / "report" / CELLS_DIR / cell / "entry.json"


def _ohmic_values(run_dir: Path) -> list[float]:
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    return [r["value"] for r in summary["results"] if r["cell"] == "aiose-blocking-1"]


def test_a_second_report_takes_every_cell_kept_and_writes_the_same_files(run: Path):
    first = make_report(run)
    assert first.reused == [] and first.cells == len(CELLS)
    cold = _written(run)
    assert all(_entry(run, cell).is_file() for cell in CELLS)
    again = make_report(run)
    assert sorted(again.reused) == sorted(CELLS)
    assert _written(run) == cold   # summary.json, index.html and every PNG, byte for byte
    fresh = make_report(run, fresh=True)
    assert fresh.reused == [] and _written(run) == cold


def test_a_kept_analysis_is_what_the_report_takes_until_the_cells_data_changes(run: Path):
    make_report(run)
    entry = _entry(run, "aiose-blocking-1")
    kept = json.loads(entry.read_text())
    for r in kept["results"]:
        r["value"] = 12345.0   # what only the kept entry says
    entry.write_text(json.dumps(kept))
    assert set(_ohmic_values(run)) != {12345.0}
    assert make_report(run).reused == CELLS and set(_ohmic_values(run)) == {12345.0}

    # the cell's data changes (one of its steps ends otherwise): its kept analysis is stale
    with sqlite3.connect(run / "run.sqlite") as db:
        db.execute("UPDATE steps SET ended_t = ended_t + 1 WHERE id = (SELECT MAX(id) FROM"
                   " steps WHERE cell = 'aiose-blocking-1')")
    again = make_report(run)
    assert again.reused == ["ncm811-1"]
    assert 12345.0 not in _ohmic_values(run)


@pytest.mark.parametrize("damage", ["not json", "other key", "figure missing",
                                    "figure elsewhere", "bad result"])
def test_a_kept_analysis_that_does_not_hold_is_made_again(run: Path, damage: str):
    make_report(run)
    cold = _written(run)
    entry = _entry(run, "ncm811-1")
    kept = json.loads(entry.read_text())
    if damage == "not json":
        entry.write_text("{\"format\": 1, \"key\"")
    elif damage == "other key":
        entry.write_text(json.dumps(kept | {"key": "0" * 32}))
    elif damage == "figure missing":
        (entry.parent / kept["figures"][0][2]).unlink()
    elif damage == "figure elsewhere":   # an entry names only its own figures
        kept["figures"][0][2] = "../../../run.sqlite"
        entry.write_text(json.dumps(kept))
    else:
        kept["results"][0]["quantity"] = "no_such_quantity"
        entry.write_text(json.dumps(kept))
    again = make_report(run)
    assert again.reused == ["aiose-blocking-1"]
    assert _written(run) == cold
    assert json.loads(entry.read_text())["key"] == json.loads(
        _entry(run, "ncm811-1").read_text())["key"]   # kept anew


def test_report_says_which_cells_it_took_and_fresh_takes_none(run: Path):
    runner = CliRunner()
    first = runner.invoke(app, ["report", str(run)])
    assert first.exit_code == 0, first.output
    assert "taken from" not in first.output
    second = runner.invoke(app, ["report", str(run)])
    assert second.exit_code == 0, second.output
    assert "2 of 2 cells' analyses taken from" in second.output
    assert "--fresh makes them again" in second.output
    fresh = runner.invoke(app, ["report", str(run), "--fresh"])
    assert fresh.exit_code == 0 and "taken from" not in fresh.output


def test_cells_are_analysed_beside_a_run_once_their_experiments_have_finished(run: Path):
    # the cycling experiment looks unfinished: its finishing event is not in the store yet
    with sqlite3.connect(run / "run.sqlite") as db:
        db.execute("DELETE FROM events WHERE kind = 'experiment_finished' AND message ="
                   " 'formation'")
    with AnalysisBeside(run, start_after_s=0.0) as beside:
        entry = _entry(run, "aiose-blocking-1")
        deadline = time.monotonic() + 120
        while not entry.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert beside.started
    assert entry.is_file()
    assert not _entry(run, "ncm811-1").exists()   # its experiment has not finished
    made = make_report(run)
    assert made.reused == ["aiose-blocking-1"]


def test_the_report_stops_the_process_beside_the_run_before_it_reads(run: Path):
    stopped: list[bool] = []

    def settle() -> None:   # the process beside the run keeps every cell, then stops
        with AnalysisBeside(run, start_after_s=0.0):
            deadline = time.monotonic() + 120
            while not all(_entry(run, c).is_file() for c in CELLS) and \
                    time.monotonic() < deadline:
                time.sleep(0.1)
        stopped.append(True)

    made = make_report(run, settle=settle)
    assert stopped == [True]
    assert sorted(made.reused) == sorted(CELLS)


def test_a_run_that_ended_hands_its_cells_over_to_the_report(run: Path, finished_run: Path,
                                                              tmp_path: Path):
    cold_run = Path(shutil.copytree(finished_run, tmp_path / "cold"))
    make_report(cold_run)
    with AnalysisBeside(run, start_after_s=0.0) as beside:
        deadline = time.monotonic() + 120
        while not beside.on_a_cell and time.monotonic() < deadline:
            time.sleep(0.01)
        assert beside.on_a_cell
        beside.run_ended()   # it finishes the cell it is on, takes no other, and ends
        made = make_report(run, settle=lambda: beside.finish(timeout_s=120))
        assert beside._process is not None
        assert beside._process.returncode == 0   # it ended by itself: not stopped
    assert made.reused   # the cell it was on, kept whole and taken
    assert made.cells == len(CELLS)
    assert not list((run / "report" / CELLS_DIR).rglob("*.tmp"))
    assert _written(run) == _written(cold_run)


def test_a_process_beside_the_run_on_no_cell_when_the_run_ends_is_stopped_at_once(run: Path):
    with AnalysisBeside(run, start_after_s=0.0) as beside:
        deadline = time.monotonic() + 60
        while not beside.started and time.monotonic() < deadline:
            time.sleep(0.01)
        beside.run_ended()   # while it is still loading: nothing to wait for
        made = make_report(run, settle=lambda: beside.finish(timeout_s=600))
        assert beside._process is not None
        assert beside._process.returncode == -signal.SIGTERM
    assert made.reused == [] and made.cells == len(CELLS)


def test_a_short_run_gets_no_process_beside_it(tmp_path: Path):
    with AnalysisBeside(tmp_path / "run", start_after_s=60.0) as beside:
        run_simulated(QUICKSTART, tmp_path / "run", seed=3)
    assert not beside.started


def test_the_code_key_names_installed_libraries_and_follows_matplotlibrc(tmp_path: Path):
    for library in LIBRARIES:   # a name no distribution has would leave its version out
        assert version(library)
    rc = tmp_path / "matplotlibrc"
    rc.write_text("lines.linewidth: 3\n")
    keys = [subprocess.run([sys.executable, "-c", "from analysis.cell_cache import code_key;"
                            " print(code_key())"], capture_output=True, text=True, check=True,
                           env={**os.environ, **extra}).stdout
            for extra in ({}, {"MATPLOTLIBRC": str(rc)})]
    assert keys[0] != keys[1]


def test_what_was_kept_before_a_power_cut_holds_after_the_resume(tmp_path: Path, monkeypatch,
                                                                 finished_run: Path):
    cut = arm_power_cut(monkeypatch)
    counter = cut(None)
    run_simulated(QUICKSTART, tmp_path / "count", seed=3)
    run_dir = tmp_path / "run"
    for n in range(counter["count"] - 1, 1, -1):   # the last cut with one experiment done
        shutil.rmtree(run_dir, ignore_errors=True)
        cut(n)
        crash(QUICKSTART, run_dir, seed=3)
        finished = {e["message"] for e in data(run_dir)["events"]
                    if e["kind"] == "experiment_finished"}
        if finished == {"conductivity"}:
            break
    assert finished == {"conductivity"}
    cut(None)
    with AnalysisBeside(run_dir, start_after_s=0.0):   # beside the run that was cut
        entry = _entry(run_dir, "aiose-blocking-1")
        deadline = time.monotonic() + 120
        while not entry.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
    assert entry.is_file() and not _entry(run_dir, "ncm811-1").exists()
    resume_run(run_dir)
    made = make_report(run_dir)
    assert made.reused == ["aiose-blocking-1"]   # the resume did not touch its data
    cold_run = Path(shutil.copytree(finished_run, tmp_path / "cold"))
    make_report(cold_run)
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    cold = json.loads((cold_run / "report" / "summary.json").read_text())
    assert summary["results"] == cold["results"]


def test_the_process_beside_the_run_hears_that_the_run_ended_or_that_its_process_went():
    for said in (b"ended\n", b""):
        read_end, write_end = os.pipe()
        with os.fdopen(read_end, "rb", buffering=0) as stdin:
            side = _RunSide(stdin)
            assert side.going_on() and not side.wait(0.05)   # nothing said yet
            if said:
                os.write(write_end, said)
            os.close(write_end)   # the run's process went: end of file
            assert side.wait(5.0) and not side.going_on()
            assert side.wait(0.0)   # and stays so
