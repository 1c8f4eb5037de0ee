"""Resume: a run cut at random moments and resumed gives what an uninterrupted run gives
(the power cut: tests/runs.py)."""

from __future__ import annotations

import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sequencer.cell_run import ResumeRefused
from sequencer.locks import LockError, hold_run_dir
from sequencer.runner import RunDirError, resume_run, run_simulated
from store import RunStore, StoreError
from tests.conftest import QUICKSTART, ROOT
from tests.runs import (
    PowerCut,
    arm_power_cut,
    assert_no_duplicates,
    assert_same_data,
    crash,
    data,
)


@pytest.fixture
def power_cut(monkeypatch):
    return arm_power_cut(monkeypatch)


_crash, _data = crash, data
_assert_same_data, _assert_no_duplicates = assert_same_data, assert_no_duplicates


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    run_simulated(QUICKSTART, run_dir, seed=3)
    return _data(run_dir)


def test_a_run_cut_at_random_moments_resumes_to_the_uninterrupted_result(
        tmp_path, power_cut, reference):
    counter = power_cut(None)
    run_simulated(QUICKSTART, tmp_path / "count", seed=3)
    commits = counter["count"]
    assert commits > 50
    rng = random.Random(7)
    for n in sorted(rng.sample(range(2, commits), 4)):
        run_dir = tmp_path / f"cut-{n}"
        power_cut(n)
        _crash(QUICKSTART, run_dir, seed=3)
        assert _data(run_dir)["status"] == "running"   # as the crash left it
        power_cut(None)
        resume_run(run_dir)
        resumed = _data(run_dir)
        _assert_same_data(reference, resumed)
        _assert_no_duplicates(resumed)
        assert resumed["status"] == "completed"
        assert {s["state"] for s in resumed["states"]} == {"completed"}
        kinds = [e["kind"] for e in resumed["events"]]
        assert kinds.count("run_interrupted") == 1 and kinds.count("run_resumed") == 1
        for once in ("experiment_started", "experiment_finished"):
            assert kinds.count(once) == 2, (n, once)   # two experiments, each once
        shutil.rmtree(run_dir)


def test_a_run_cut_twice_resumes_twice(tmp_path, power_cut, reference):
    run_dir = tmp_path / "run"
    power_cut(40)
    _crash(QUICKSTART, run_dir, seed=3)
    power_cut(60)
    with pytest.raises(BaseException) as info:
        resume_run(run_dir)
    assert isinstance(info.value, PowerCut) or "closed database" in str(info.value)
    power_cut(None)
    resume_run(run_dir)
    resumed = _data(run_dir)
    _assert_same_data(reference, resumed)
    assert [e["kind"] for e in resumed["events"]].count("run_interrupted") == 2


ONE_CELL = """
campaign: resume-policies
cells:
  - id: ncm811-1
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}
experiments:
  - name: steps
    cells: [ncm811-1]
    steps:
      - {kind: rest, duration: 3 h, record_every: 60 s}
      - {kind: constant_current, direction: charge, current: 0.1C, until_voltage: 4.3 V,
         record_every: 60 s}
      - {kind: rest, duration: 10 min}
"""


def _cut_inside(tmp_path: Path, power_cut, protocol: Path, kind: str) -> tuple[Path, dict]:
    """Cut the run while a step of ``kind`` has recorded points (the dry run polls hourly)."""
    for n in range(2, 40):
        run_dir = tmp_path / f"cut-{n}"
        power_cut(n)
        _crash(protocol, run_dir, seed=3)
        steps = _data(run_dir)["steps"]
        if steps and steps[-1]["ended_t"] is None and steps[-1]["kind"] == kind:
            store = RunStore.open(run_dir)
            last = store.last_point(steps[-1]["id"])
            store.close()
            if last is not None and last["step_time_s"] > 0:
                return run_dir, steps[-1]
        shutil.rmtree(run_dir)
    raise AssertionError(f"no cut fell inside a {kind} step")


def test_a_timed_step_continues_for_its_remaining_time_when_the_instrument_lost_power(
        tmp_path, power_cut, write_yaml):
    run_dir, step = _cut_inside(tmp_path, power_cut, write_yaml(ONE_CELL), "rest")
    power_cut(None)
    resume_run(run_dir, kept_running=False)
    run = _data(run_dir)
    rows = [s for s in run["steps"] if s["cell"] == "ncm811-1"
            and s["step_count"] == step["step_count"]]
    assert len(rows) == 1 and rows[0]["end_reason"] == "duration"
    series = run["data"]["ncm811-1", "series"]
    mine = series["step_count"] == step["step_count"]
    step_time = series["step_time_s"][mine]
    assert np.all(np.diff(step_time) > 0)
    assert step_time[-1] == pytest.approx(3 * 3600.0)    # the protocol's 3 h, in all
    assert "step_resumed" in [e["kind"] for e in run["events"]]
    _assert_no_duplicates(run)


def test_a_limit_terminated_step_starts_again_when_the_instrument_lost_power(
        tmp_path, power_cut, write_yaml):
    run_dir, step = _cut_inside(tmp_path, power_cut, write_yaml(ONE_CELL), "constant_current")
    power_cut(None)
    resume_run(run_dir, kept_running=False)
    run = _data(run_dir)
    rows = [s for s in run["steps"] if s["cell"] == "ncm811-1"
            and s["step_count"] == step["step_count"]]
    assert [r["end_reason"] for r in rows] == ["interrupted", "voltage"]
    assert "step_restarted" in [e["kind"] for e in run["events"]]
    _assert_no_duplicates(run)
    assert run["status"] == "completed"


def test_resume_refuses_when_a_cell_is_missing(tmp_path, power_cut, monkeypatch):
    run_dir = tmp_path / "run"
    power_cut(60)
    _crash(QUICKSTART, run_dir, seed=3)
    power_cut(None)
    before = _data(run_dir)
    from simulators.lab import SimLab

    restore = SimLab.restore

    def restore_without_the_full_cell(self, snap, kept_running=True):
        restore(self, snap, kept_running)
        for inst in self.instruments.values():
            for ch in inst.channels():
                if ch.connected and ch.read_voltage() > 2:   # the NCM811 cell
                    ch.disconnect()

    monkeypatch.setattr(SimLab, "restore", restore_without_the_full_cell)
    with pytest.raises(ResumeRefused, match=r"ncm811-1 reads 5\.000 V"):
        resume_run(run_dir)
    after = _data(run_dir)
    assert after["steps"] == before["steps"]          # nothing was started
    for key, cols in before["data"].items():
        assert len(after["data"][key]["test_time_s"]) == len(cols["test_time_s"])


def test_resume_refuses_a_completed_run_and_a_busy_one(tmp_path):
    run_dir = tmp_path / "run"
    run_simulated(QUICKSTART, run_dir, seed=1)
    with pytest.raises(RunDirError, match="completed"):
        resume_run(run_dir)
    with hold_run_dir(run_dir), pytest.raises(LockError, match="in use"):
        resume_run(run_dir)
    with pytest.raises(RunDirError, match="not a cellseq run directory"):
        resume_run(tmp_path / "nowhere")


# Long enough (about 3 s of dry run on an idle machine, 1.6 M points) that the kill lands after
# the first durable commit (made at least every second) and before the run ends.
LONG = ONE_CELL.replace("""      - {kind: rest, duration: 10 min}
""", """      - kind: loop
        count: 3000
        steps:
          - {kind: constant_current, direction: discharge, current: 1C, until_voltage: 3.0 V,
             record_every: 10 s}
          - {kind: constant_current, direction: charge, current: 1C, until_voltage: 4.3 V,
             record_every: 10 s}
""")


def _points(run_dir: Path) -> int:
    store = RunStore.open(run_dir)
    try:
        return store.point_count()
    finally:
        store.close()


def _cellseq(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sequencer", *args], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_cellseq_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path, write_yaml):
    protocol = write_yaml(LONG)
    reference = tmp_path / "reference"
    run_simulated(protocol, reference, seed=5)
    run_dir = tmp_path / "killed"
    proc = _cellseq("run", str(protocol), "--sim", "--seed", "5", "--out", str(run_dir),
                    "--no-report")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:   # wait for data, then kill in the middle of the run
        if (run_dir / "run.sqlite").exists() and _points(run_dir) > 20_000:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it was killed: LONG is too short"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    status = _cellseq("status", str(run_dir))
    out, _ = status.communicate(timeout=60)
    assert "interrupted" in out and "cellseq resume" in out
    resumed = _cellseq("resume", str(run_dir), "--no-report")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    expected, got = _data(reference), _data(run_dir)
    _assert_same_data(expected, got)
    _assert_no_duplicates(got)
    assert [e["kind"] for e in got["events"]].count("run_interrupted") == 1


def test_cli_resume_of_a_bad_directory_exits_2_without_a_traceback(tmp_path):
    proc = _cellseq("resume", str(tmp_path / "missing"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "not a cellseq run directory" in err and "Traceback" not in err


@pytest.mark.parametrize("failure", ["disk full", "read-only"])
def test_a_store_that_cannot_be_written_stops_the_run_cleanly_and_it_resumes(
        tmp_path, power_cut, reference, failure):
    """The disk fills up (SQLite's page limit) or turns read-only mid-run: a clean stop with a
    message, outputs off, nothing committed lost; once writable again, resume completes it to
    the uninterrupted result."""
    counter = power_cut(None)
    original = RunStore._before_commit

    def failing(self: RunStore) -> None:
        if counter["count"] == 40:
            if failure == "disk full":
                pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
                self._conn.execute(f"PRAGMA max_page_count = {pages}")
            else:
                self._conn.execute("PRAGMA query_only = ON")
        original(self)

    from unittest import mock
    run_dir = tmp_path / "run"
    stopped_channels = []
    from simulators.instruments.channel import SimChannel
    stop = SimChannel.stop

    def recording_stop(self):
        stopped_channels.append(self.name)
        stop(self)

    with mock.patch.object(RunStore, "_before_commit", failing), \
            mock.patch.object(SimChannel, "stop", recording_stop), \
            pytest.raises(StoreError, match="cannot write the run store"):
        run_simulated(QUICKSTART, run_dir, seed=3)
    assert len(set(stopped_channels)) >= 2       # every cell's output was turned off
    power_cut(None)
    resume_run(run_dir)
    resumed = _data(run_dir)
    _assert_same_data(reference, resumed)
    _assert_no_duplicates(resumed)
    assert resumed["status"] == "completed"


def test_cli_reports_a_full_disk_without_a_traceback(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from sequencer.cli import app

    def full(self: RunStore) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(RunStore, "_before_commit", full)
    result = CliRunner().invoke(app, ["run", str(QUICKSTART), "--sim", "--out",
                                      str(tmp_path / "run"), "--no-report"])
    assert result.exit_code == 2
    assert "database or disk is full" in result.output and "resumed" in result.output
    assert "Traceback" not in result.output
