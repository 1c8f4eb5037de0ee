"""Full and read-only disks: every command exits 2 with the reason, no traceback; a run whose
store could not be created resumes from the beginning once there is space; a run on a
read-only disk can still be looked at.

The read-only tests mount a small tmpfs (root only; skipped elsewhere)."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess

import pytest
from typer.testing import CliRunner

from sequencer.cli import app
from sequencer.runner import resume_run, run_simulated
from sequencer.status import run_status
from store import DB_NAME, RunStore
from store import files as store_files
from tests.conftest import QUICKSTART

FULL = "database or disk is full"


def _clean(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    assert "Traceback" not in result.output


class _FullDisk:
    """A connection whose first script fails as on a full disk."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def executescript(self, script: str) -> None:
        raise sqlite3.OperationalError(FULL)

    def __getattr__(self, name: str):
        return getattr(self._conn, name)


def test_a_store_that_cannot_be_created_exits_2_and_the_run_resumes_from_the_beginning(
        tmp_path, monkeypatch):
    connect = store_files.connect
    monkeypatch.setattr(store_files, "connect",
                        lambda path, readonly, durable=True, **kw: _FullDisk(
                            connect(path, readonly, durable, **kw)))
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(QUICKSTART), "--sim", "--out", str(run_dir),
                                      "--no-report"])
    _clean(result)
    assert result.exit_code == 2 and f"cannot create the run store {run_dir / DB_NAME}" \
        in " ".join(result.output.split()) and FULL in result.output
    assert sorted(p.name for p in run_dir.iterdir()) == [
        ".cellseq.lock", "manifest.json", "protocol", "station.yaml"]   # no half store
    monkeypatch.undo()   # space again
    resume_run(run_dir)
    assert run_status(run_dir)["status"] == "completed"


def test_report_figures_on_a_full_disk_exit_2(tmp_path, monkeypatch):
    from PIL import Image

    run_dir = tmp_path / "run"
    run_simulated(QUICKSTART, run_dir, seed=1)

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)   # where each figure's PNG is made
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    _clean(result)
    assert result.exit_code == 2
    assert "cannot write the report into" in result.output
    assert "No space left on device" in result.output
    result = CliRunner().invoke(app, ["run", str(QUICKSTART), "--sim", "--out",
                                      str(tmp_path / "again")])
    _clean(result)
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "the run ended (completed;" in text and \
        "its report was not made" in text and "No space left on device" in text


def test_export_on_a_full_disk_exits_2_and_leaves_no_half_file(tmp_path, monkeypatch):
    from sequencer import export

    run_dir = tmp_path / "run"
    run_simulated(QUICKSTART, run_dir, seed=1)

    def full(self, lines):
        self._file.write(b"half")   # a first block, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export._CsvWriter, "write", full)
    result = CliRunner().invoke(app, ["export", str(run_dir)])
    _clean(result)
    assert result.exit_code == 2 and "No space left on device" in result.output
    assert list((run_dir / "export").iterdir()) == []


# -- read-only disks ---------------------------------------------------------------------------

@pytest.fixture
def mount(tmp_path):
    """``remount(read_only)`` for a fresh tmpfs at the returned folder."""
    point = tmp_path / "disk"
    point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(point)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")

    def remount(read_only: bool) -> None:
        subprocess.run(["mount", "-o", f"remount,{'ro' if read_only else 'rw'}", str(point)],
                       check=True)
    try:
        yield point, remount
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_run_on_a_read_only_disk_can_be_looked_at_and_is_refused_otherwise(mount):
    point, remount = mount
    run_dir = point / "run"
    run_simulated(QUICKSTART, run_dir, seed=1)
    expected = run_status(run_dir)
    remount(True)
    runner = CliRunner()
    result = runner.invoke(app, ["status", str(run_dir), "--json"])
    _clean(result)
    assert result.exit_code == 0, result.output
    assert run_status(run_dir)["cells"] == expected["cells"]
    for args, said in ((["export", str(run_dir)], "Read-only file system"),
                       (["report", str(run_dir)], "Read-only file system"),
                       (["resume", str(run_dir)], "Read-only file system"),
                       (["run", str(QUICKSTART), "--sim", "--out", str(point / "new")],
                        "Read-only file system")):
        result = runner.invoke(app, args)
        _clean(result)
        assert result.exit_code == 2 and said in result.output, (args[0], result.output)


def test_a_store_with_commits_only_in_its_log_is_read_whole_on_a_read_only_disk(
        mount, tmp_path):
    point, remount = mount
    source = tmp_path / "live"
    source.mkdir()
    store = RunStore.create(source, meta={"status": "running"})
    store._conn.execute("PRAGMA wal_autocheckpoint = 0")
    with store.transaction():
        store.set_meta("status", "interrupted")   # only in the write-ahead log
    run_dir = point / "run"
    run_dir.mkdir()
    for name in (DB_NAME, f"{DB_NAME}-wal"):   # as a crash leaves them, without -shm
        shutil.copyfile(source / name, run_dir / name)
    store.close()
    assert (run_dir / f"{DB_NAME}-wal").stat().st_size > 0
    remount(True)
    copy = RunStore.open(run_dir)
    try:
        assert copy.meta()["status"] == "interrupted"
    finally:
        copy.close()
