"""Every input file goes through one reader: regular files only, within a size limit.

/dev/zero, /dev/urandom, a named pipe, a symbolic-link loop, a folder or a path ending in a
separator given as a protocol, a station or a spectrum: exit 2 with the path and the reason,
no traceback, no hang, no unbounded read.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.input_files import UnreadableFile, read_input_file
from sequencer.cli import app

from .conftest import QUICKSTART

runner = CliRunner()
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX special files")


def cellseq(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def specials(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Special files, each with the reason the reader must give."""
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    (tmp_path / "loop-a.yaml").symlink_to(tmp_path / "loop-b.yaml")
    (tmp_path / "loop-b.yaml").symlink_to(tmp_path / "loop-a.yaml")
    (tmp_path / "folder.yaml").mkdir()
    return {
        "dev-zero": (Path("/dev/zero"), "is a character device, not a regular file"),
        "dev-urandom": (Path("/dev/urandom"), "is a character device, not a regular file"),
        "link-to-zero": (tmp_path / "zero.yaml", "is a character device, not a regular file"),
        "fifo": (fifo, "is a named pipe (FIFO), not a regular file"),
        "link-loop": (tmp_path / "loop-a.yaml", "is a loop of symbolic links"),
        "folder": (tmp_path / "folder.yaml", "is a directory, not a file"),
        "missing": (tmp_path / "missing.yaml", "no such file"),
    }


KINDS = ["dev-zero", "dev-urandom", "link-to-zero", "fifo", "link-loop", "folder", "missing"]


@posix_only
@pytest.mark.parametrize("kind", KINDS)
def test_the_reader_refuses_what_is_not_a_regular_file(specials, kind):
    path, reason = specials[kind]
    with pytest.raises(UnreadableFile) as info:
        read_input_file(path, 1000)
    assert info.value.reason == reason
    assert str(info.value) == f"{path}: {reason}"


def test_the_reader_reads_within_the_limit_and_refuses_beyond(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_bytes(b"x" * 100)
    assert read_input_file(path, 100) == b"x" * 100
    with pytest.raises(UnreadableFile, match=r"is 100 bytes; the limit is 99 bytes"):
        read_input_file(path, 99)


def test_a_string_path_with_a_trailing_separator_is_refused(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("campaign: t\n")
    with pytest.raises(UnreadableFile, match="ends with a path separator"):
        read_input_file(f"{path}/", 1000)


def test_a_nul_in_a_path_is_refused(tmp_path):
    with pytest.raises(UnreadableFile, match="contains a NUL character"):
        read_input_file(f"{tmp_path}/a\0b.yaml", 1000)


@posix_only
@pytest.mark.parametrize("kind", KINDS)
def test_validate_refuses_special_files(specials, kind):
    path, reason = specials[kind]
    result = cellseq("validate", path)
    assert result.exit_code == 2, result.output
    assert f"{path}: {reason}" in result.output
    assert "Traceback" not in result.output


@posix_only
@pytest.mark.parametrize("kind", KINDS)
def test_plan_refuses_special_station_files(specials, kind):
    path, reason = specials[kind]
    result = cellseq("plan", QUICKSTART, "--station", path)
    assert result.exit_code == 2, result.output
    assert f"{path}: {reason}" in result.output


@posix_only
@pytest.mark.parametrize("kind", KINDS)
def test_analyze_eis_refuses_special_files(specials, kind):
    path, reason = specials[kind]
    result = cellseq("analyze", "eis", path, "--thickness", "300um", "--diameter", "16mm")
    assert result.exit_code == 2, result.output
    assert f"{path}: {reason}" in result.output


@pytest.mark.parametrize("args", [
    ("validate", "{q}/"),
    ("plan", "{q}", "--station", "{q}/"),
    ("analyze", "eis", "{q}/", "--thickness", "300um", "--diameter", "16mm"),
])
def test_a_path_with_a_trailing_slash_is_refused(tmp_path, args):
    copy = tmp_path / "q.yaml"
    copy.write_bytes(QUICKSTART.read_bytes())
    result = cellseq(*(a.format(q=copy) for a in args))
    assert result.exit_code == 2, result.output
    assert "ends with a path separator" in result.output


def test_a_protocol_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"campaign: t\n" + b"# padding\n" * 300_000)
    result = cellseq("validate", path)
    assert result.exit_code == 2
    assert "huge.yaml: is 3,000,012 bytes; the limit is 2,097,152 bytes (2 MiB)" in result.output
