"""A run directory holds the whole protocol: resume reads only its copies; a refused resume
changes nothing; a run killed before it committed anything resumes from the beginning."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from protocols import ProtocolError, load_campaign
from sequencer.cell_run import ResumeRefused
from sequencer.cli import app
from sequencer.locks import hold_run_dir
from sequencer.runner import RunDirError, resume_run, run_simulated
from sequencer.status import run_status
from store import DB_NAME, RunStore
from tests.conftest import QUICKSTART
from tests.runs import arm_power_cut, assert_no_duplicates, assert_same_data, crash, data

TOP = """
campaign: split
include: [parts/cells.yaml, parts/experiments/cycling.yaml, ../shared/rest.yaml]
"""
CELLS = """
campaign: split
cells:
  - id: ncm-1
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}
"""
CYCLING = """
campaign: split
experiments:
  - name: cycling
    cells: [ncm-1]
    steps:
      - kind: loop
        count: 3
        steps:
          - {kind: constant_current, direction: charge, current: 0.5C, until_voltage: 4.3 V,
             record_every: 60 s}
          - {kind: constant_current, direction: discharge, current: 0.5C,
             until_voltage: 3.0 V, record_every: 60 s}
"""
REST = """
campaign: split
experiments:
  - name: rest
    cells: [ncm-1]
    steps:
      - {kind: rest, duration: 2 h, record_every: 10 min}
"""
SEED = 4


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def split(tmp_path) -> Path:
    """A campaign of four files: the top in lab/, two below it, one in a sibling folder
    (included with ``--allow-outside-includes``: the copies keep the places of all four)."""
    _write(tmp_path, {"lab/campaign.yaml": TOP, "lab/parts/cells.yaml": CELLS,
                      "lab/parts/experiments/cycling.yaml": CYCLING,
                      "shared/rest.yaml": REST})
    return tmp_path / "lab" / "campaign.yaml"


@pytest.fixture
def power_cut(monkeypatch):
    return arm_power_cut(monkeypatch)


def _files(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run directory, by relative path (to see that nothing changed)."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != ".cellseq.lock"}


def test_the_loader_lists_every_file_with_the_bytes_it_parsed(split):
    campaign = load_campaign(split, allow_outside_includes=True)
    assert [f.lexical for f in campaign.files] == [
        split, split.parent / "parts" / "cells.yaml",
        split.parent / "parts" / "experiments" / "cycling.yaml",
        split.parent.parent / "shared" / "rest.yaml"]
    assert [f.reference for f in campaign.files] == [
        None, "parts/cells.yaml", "parts/experiments/cycling.yaml", "../shared/rest.yaml"]
    assert [f.data for f in campaign.files] == [f.path.read_bytes() for f in campaign.files]


def test_every_file_is_copied_at_its_relative_place_with_its_hash(split, tmp_path):
    run_dir = tmp_path / "run"
    run_simulated(split, run_dir, SEED, allow_outside_includes=True)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    expected = {"protocol/lab/campaign.yaml": TOP, "protocol/lab/parts/cells.yaml": CELLS,
                "protocol/lab/parts/experiments/cycling.yaml": CYCLING,
                "protocol/shared/rest.yaml": REST}
    assert manifest["protocol"]["file"] == "protocol/lab/campaign.yaml"
    assert manifest["files"] == [
        {"path": path, "sha256": hashlib.sha256(text.encode()).hexdigest()}
        for path, text in expected.items()]
    for path, text in expected.items():
        assert (run_dir / path).read_text(encoding="utf-8") == text


def test_a_killed_campaign_resumes_from_its_copies_after_the_originals_moved_and_changed(
        split, tmp_path, power_cut):
    reference = tmp_path / "reference"
    run_simulated(split, reference, SEED, allow_outside_includes=True)
    run_dir = tmp_path / "run"
    counter = power_cut(None)
    run_simulated(split, tmp_path / "count", SEED, allow_outside_includes=True)
    power_cut(counter["count"] // 2)
    crash(split, run_dir, SEED, allow_outside_includes=True)
    power_cut(None)
    # the originals are edited, then moved away: the resume must not notice
    cycling = split.parent / "parts" / "experiments" / "cycling.yaml"
    cycling.write_text(CYCLING.replace("count: 3", "count: 7"), encoding="utf-8")
    (tmp_path / "shared" / "rest.yaml").unlink()
    shutil.move(tmp_path / "lab", tmp_path / "moved")
    resume_run(run_dir)
    resumed = data(run_dir)
    assert_same_data(data(reference), resumed)
    assert_no_duplicates(resumed)
    assert resumed["status"] == "completed"


def test_a_tampered_copy_is_refused_naming_it_and_nothing_changes(split, tmp_path, power_cut):
    run_dir = tmp_path / "run"
    power_cut(15)   # of 25 commits
    crash(split, run_dir, SEED, allow_outside_includes=True)
    power_cut(None)
    copy = run_dir / "protocol" / "lab" / "parts" / "experiments" / "cycling.yaml"
    copy.write_text(CYCLING.replace("count: 3", "count: 4"), encoding="utf-8")
    before = _files(run_dir)
    with pytest.raises(RunDirError, match=r"cycling\.yaml has been changed since the run"):
        resume_run(run_dir)
    copy.unlink()
    with pytest.raises(RunDirError, match=r"cycling\.yaml is missing"):
        resume_run(run_dir)
    del before["protocol/lab/parts/experiments/cycling.yaml"]
    assert _files(run_dir) == before
    assert run_status(run_dir)["status"] == "interrupted"


def test_a_changed_station_copy_or_manifest_is_refused(tmp_path, power_cut):
    run_dir = tmp_path / "run"
    power_cut(30)
    crash(QUICKSTART, run_dir, SEED)
    power_cut(None)
    station = run_dir / "station.yaml"
    original = station.read_text()
    station.write_text(original.replace("channels: 6", "channels: 5"))
    with pytest.raises(RunDirError, match=r"station\.yaml has been changed"):
        resume_run(run_dir)
    station.write_text(original)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["seed"] = 99
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunDirError, match=r"manifest\.json is not the manifest of the run"):
        resume_run(run_dir)


def test_an_include_by_absolute_path_is_refused_before_anything_is_made(tmp_path):
    _write(tmp_path, {"cells.yaml": CELLS, "exp.yaml": REST})
    top = tmp_path / "top.yaml"
    top.write_text(f"campaign: split\ninclude: [{tmp_path / 'cells.yaml'}, exp.yaml]\n")
    with pytest.raises(ProtocolError, match=r"is an absolute path"):
        run_simulated(top, tmp_path / "run", SEED)
    with pytest.raises(RunDirError, match=r"cells\.yaml is named by an absolute path"):
        run_simulated(top, tmp_path / "run", SEED, allow_outside_includes=True)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["station.yaml", "manifest.json", "run.log", "run.sqlite-wal",
                                  "run.sqlite"])
def test_a_protocol_named_like_a_run_file_overwrites_nothing(tmp_path, name):
    protocol = tmp_path / "in" / name
    protocol.parent.mkdir()
    protocol.write_bytes(QUICKSTART.read_bytes())
    run_dir = tmp_path / "run"
    run_simulated(protocol, run_dir, SEED)
    assert (run_dir / "protocol" / name).read_bytes() == QUICKSTART.read_bytes()
    assert json.loads((run_dir / "manifest.json").read_text())["seed"] == SEED
    assert "run_completed" in (run_dir / "run.log").read_text()
    assert run_status(run_dir)["status"] == "completed"


# -- killed before anything was committed ------------------------------------------------------

@pytest.fixture(scope="module")
def quickstart_reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    run_simulated(QUICKSTART, run_dir, SEED)
    return data(run_dir)


def test_a_run_killed_before_its_first_commit_resumes_from_the_beginning(
        tmp_path, power_cut, quickstart_reference):
    """The store exists, with the run's metadata, and nothing else (killed, or its disk full,
    before the first commit of its data)."""
    run_dir = tmp_path / "run"
    power_cut(1)
    crash(QUICKSTART, run_dir, SEED)
    power_cut(None)
    store = RunStore.open(run_dir)
    try:
        meta = store.meta()
        assert {"manifest", "cells", "experiments", "expected"} <= set(meta)
        assert store.cell_states() == [] and store.steps() == []
    finally:
        store.close()
    resume_run(run_dir)
    resumed = data(run_dir)
    assert_same_data(quickstart_reference, resumed)
    assert resumed["status"] == "completed"
    kinds = [e["kind"] for e in resumed["events"]]
    assert kinds.count("run_resumed") == 1 and kinds.count("run_started") == 1


def test_a_run_stopped_by_a_full_disk_at_its_first_commit_resumes_from_the_beginning(
        tmp_path, power_cut, quickstart_reference, monkeypatch):
    import sqlite3

    from store import StoreError

    original = RunStore._before_commit

    def full(self: RunStore) -> None:
        # SQLite's error on a full disk, as the commit writes the simulators' snapshot (a cap
        # on the page count would not do: a dry run's first commit fits in the free space of
        # its store's first 64 KiB pages)
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(RunStore, "_before_commit", full)
    run_dir = tmp_path / "run"
    with pytest.raises(StoreError, match="cannot write the run store"):
        run_simulated(QUICKSTART, run_dir, SEED)
    monkeypatch.setattr(RunStore, "_before_commit", original)   # space again
    store = RunStore.open(run_dir)
    try:
        assert store.cell_states() == [] and store.steps() == []   # nothing but metadata
    finally:
        store.close()
    resume_run(run_dir)
    assert_same_data(quickstart_reference, data(run_dir))


def test_a_run_killed_before_its_store_existed_resumes_from_the_beginning(
        tmp_path, quickstart_reference, monkeypatch):
    run_dir = tmp_path / "run"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt   # as if SIGKILLed while the store was being made

    monkeypatch.setattr(RunStore, "create", killed)
    with pytest.raises(KeyboardInterrupt):
        run_simulated(QUICKSTART, run_dir, SEED)
    monkeypatch.undo()
    assert (run_dir / "manifest.json").is_file() and not (run_dir / DB_NAME).exists()
    resume_run(run_dir)
    assert_same_data(quickstart_reference, data(run_dir))


def test_a_directory_holding_only_a_lock_file_takes_a_new_run(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".cellseq.lock").touch()   # what a run killed at once leaves
    run_simulated(QUICKSTART, run_dir, SEED)
    assert run_status(run_dir)["status"] == "completed"


def test_a_directory_cut_off_while_being_prepared_says_so(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "protocol").mkdir(parents=True)
    with pytest.raises(RunDirError, match="cut off while the directory was being prepared"):
        resume_run(run_dir)


# -- a refused resume changes nothing ----------------------------------------------------------

@pytest.fixture
def interrupted(tmp_path, power_cut) -> Path:
    run_dir = tmp_path / "run"
    power_cut(40)
    crash(QUICKSTART, run_dir, SEED)
    power_cut(None)
    return run_dir


def _assert_interrupted(run_dir: Path, before: dict[str, bytes]) -> None:
    assert _files(run_dir) == before
    st = run_status(run_dir)
    assert st["status"] == "interrupted"
    assert {c["state"] for c in st["cells"]} <= {"interrupted", "completed"}


def test_a_resume_refused_for_a_missing_cell_changes_nothing(interrupted, monkeypatch):
    from simulators.lab import SimLab

    before = _files(interrupted)
    restore = SimLab.restore

    def unplugged(self, snap, kept_running=True):
        restore(self, snap, kept_running)
        for inst in self.instruments.values():
            for ch in inst.channels():
                ch.disconnect()

    monkeypatch.setattr(SimLab, "restore", unplugged)
    with pytest.raises(ResumeRefused):
        resume_run(interrupted)
    _assert_interrupted(interrupted, before)
    monkeypatch.undo()
    resume_run(interrupted)
    assert run_status(interrupted)["status"] == "completed"


def test_a_resume_refused_for_an_instrument_that_fails_to_open_changes_nothing(
        interrupted, monkeypatch):
    from drivers.errors import TransportError
    from simulators.instruments.potentiostat import SimPotentiostat

    def unreachable(self):
        raise TransportError("connection refused")

    monkeypatch.setattr(SimPotentiostat, "open", unreachable)
    before = _files(interrupted)
    result = CliRunner().invoke(app, ["resume", str(interrupted), "--no-report"])
    assert result.exit_code == 2 and "connection refused" in result.output
    assert "Traceback" not in result.output
    _assert_interrupted(interrupted, before)


def test_a_resume_refused_for_a_held_lock_changes_nothing(interrupted):
    before = _files(interrupted)
    with hold_run_dir(interrupted):
        result = CliRunner().invoke(app, ["resume", str(interrupted), "--no-report"])
        assert result.exit_code == 2 and "in use" in result.output
    _assert_interrupted(interrupted, before)


def test_a_resume_with_a_run_log_that_is_a_folder_is_refused(interrupted):
    (interrupted / "run.log").unlink()
    (interrupted / "run.log").mkdir()
    before = _files(interrupted)
    result = CliRunner().invoke(app, ["resume", str(interrupted), "--no-report"])
    assert result.exit_code == 2 and "run.log is not a file" in result.output
    _assert_interrupted(interrupted, before)


# -- output paths ------------------------------------------------------------------------------

def test_out_below_a_file_and_out_that_is_a_file_exit_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out, message in ((blocker / "run", "a file stands in its path"),
                         (blocker, "a file is in its place")):
        result = CliRunner().invoke(app, ["run", str(QUICKSTART), "--sim", "--out", str(out),
                                          "--no-report"])
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output
    assert blocker.read_text() == "x"


def test_a_lock_folder_that_is_a_file_exits_2(tmp_path, monkeypatch):
    blocker = tmp_path / "locks"
    blocker.write_text("x")
    monkeypatch.setenv("CELLSEQ_LOCK_DIR", str(blocker))
    from sequencer.locks import LockError, lock_dir

    with pytest.raises(LockError, match=r"CELLSEQ_LOCK_DIR=.*locks is not a folder"):
        lock_dir()
