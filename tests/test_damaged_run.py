"""A damaged run directory: every command exits 2 naming the run, what is damaged and what is
still readable, or works where the damage does not concern it; export and report salvage
every intact chunk; no command makes the damage worse; none gives a traceback."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sequencer.cli import app
from sequencer.runner import run_simulated
from store import DB_NAME, SERIES_COLUMNS, RunStore
from tests.conftest import QUICKSTART
from tests.runs import arm_power_cut, crash

CELL = "ncm811-1"


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> Path:
    """A quickstart run cut by a power cut halfway: its store as a crash leaves it."""
    run_dir = tmp_path_factory.mktemp("stopped") / "run"
    with pytest.MonkeyPatch.context() as mp:
        arm_power_cut(mp)(400)   # of about 450 commits: both cells have data
        crash(QUICKSTART, run_dir, seed=2)
    return run_dir


def _sql(run_dir: Path, *statements: str) -> None:
    conn = sqlite3.connect(run_dir / DB_NAME, isolation_level=None)
    try:
        for sql in statements:
            conn.execute(sql)
    finally:
        conn.close()


def _a_chunk(run_dir: Path) -> tuple[int, int, bytes]:
    """(id, point count, blob) of a chunk of the full cell in the middle of its data."""
    conn = sqlite3.connect(run_dir / DB_NAME)
    try:
        rows = conn.execute("SELECT id, n, data FROM chunks WHERE cell = ? AND kind = 'series'"
                            " AND n > 4 ORDER BY id", (CELL,)).fetchall()
    finally:
        conn.close()
    return rows[len(rows) // 2]


def _patch_file(run_dir: Path, edit: Callable[[bytearray, int], None], blob: bytes) -> None:
    """Edit the store file's bytes where a chunk's blob is (page size from the header)."""
    path = run_dir / DB_NAME
    raw = bytearray(path.read_bytes())
    at = raw.find(blob[:256])
    assert at > 0
    edit(raw, at)
    path.write_bytes(bytes(raw))


def flip_bits(run_dir: Path) -> int:
    _, n, blob = _a_chunk(run_dir)

    def flip(raw: bytearray, at: int) -> None:
        raw[at + 100] ^= 0x10
    _patch_file(run_dir, flip, blob)
    return n


def zero_page(run_dir: Path) -> int:
    _, _, blob = _a_chunk(run_dir)
    page = int.from_bytes((run_dir / DB_NAME).read_bytes()[16:18], "big")
    page = 65536 if page == 1 else page   # SQLite's header writes its largest page size as 1

    def zero(raw: bytearray, at: int) -> None:
        start = at // page * page
        raw[start:start + page] = bytes(page)
    _patch_file(run_dir, zero, blob)
    return -1   # which rows the page held is not known here


def truncate_blob(run_dir: Path) -> int:
    chunk_id, n, _ = _a_chunk(run_dir)
    _sql(run_dir, f"UPDATE chunks SET data = substr(data, 1, 100) WHERE id = {chunk_id}")
    return n


def wrong_count(run_dir: Path) -> int:
    chunk_id, n, _ = _a_chunk(run_dir)
    _sql(run_dir, f"UPDATE chunks SET n = n + 1 WHERE id = {chunk_id}")
    return n


def json_column(table: str, column: str, where: str) -> Callable[[Path], int]:
    def damage(run_dir: Path) -> int:
        _sql(run_dir, f"UPDATE {table} SET {column} = '{{\"broken' WHERE {where}")
        return 0
    damage.__name__ = f"{table}.{column}"
    return damage


def drop(table: str) -> Callable[[Path], int]:
    def damage(run_dir: Path) -> int:
        _sql(run_dir, f"DROP TABLE {table}")
        return 0
    damage.__name__ = f"drop {table}"
    return damage


def not_a_database(run_dir: Path) -> int:
    path = run_dir / DB_NAME
    raw = bytearray(path.read_bytes())
    raw[:100] = bytes(100)
    path.write_bytes(bytes(raw))
    return 0


def as_folder(name: str) -> Callable[[Path], int]:
    def damage(run_dir: Path) -> int:
        path = run_dir / name
        path.unlink(missing_ok=True)
        path.mkdir()
        return 0
    damage.__name__ = f"{name} is a folder"
    return damage


#: damage, what the messages name, and the exit codes of status, export, report and resume
#: (status reads only the run's metadata, cell states, point counts and journal; export only
#: the cell states and chunks; report everything but the journal, the cell states for each
#: cell's outcome; resume checks everything).
CASES = [
    (flip_bits, "does not match its checksum", (0, 2, 2, 2)),
    (zero_page, "malformed", (2, 2, 2, 2)),
    (truncate_blob, "blob holds", (0, 2, 2, 2)),
    (wrong_count, "blob holds", (0, 2, 2, 2)),
    (json_column("meta", "value", "key = 'cells'"), "meta 'cells' does not parse",
     (2, 0, 2, 2)),
    (json_column("cell_state", "checkpoint", f"cell = '{CELL}'"), "checkpoint does not parse",
     (2, 2, 2, 2)),
    (json_column("cell_state", "last", f"cell = '{CELL}'"), "last values does not parse",
     (2, 2, 2, 2)),
    (json_column("events", "data", "id = 3"), "events row 3: data does not parse",
     (2, 0, 0, 2)),
    (json_column("steps", "params", "id = 2"), "steps row 2: params does not parse",
     (0, 0, 2, 2)),
    (drop("events"), "table events is missing", (2, 2, 2, 2)),
    (drop("chunks"), "table chunks is missing", (2, 2, 2, 2)),
    (not_a_database, "cannot be read as a run store", (2, 2, 2, 2)),
    (as_folder(".cellseq.lock"), "not a lock file", (2, 0, 0, 2)),
    (as_folder("run.log"), "run.log is not a file", (0, 0, 0, 2)),
]


def _store_bytes(run_dir: Path) -> dict[str, str]:
    """The store's content: the file and its write-ahead log (an empty log, which a reader
    may leave, holds nothing)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in run_dir.iterdir() if p.name in (DB_NAME, f"{DB_NAME}-wal")
            and p.stat().st_size}


def _exported_rows(run_dir: Path) -> int:
    path = run_dir / "export" / f"{CELL}.csv"
    return len(pd.read_csv(path)) if path.is_file() else 0


@pytest.mark.parametrize(("damage", "named", "exits"), CASES,
                         ids=[c[0].__name__ for c in CASES])
def test_a_damaged_run_gives_exit_2_or_works_and_is_never_made_worse(
        stopped, tmp_path, damage, named, exits):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped, run_dir)
    store = RunStore.open(run_dir)
    total = len(store.read(CELL)["test_time_s"])
    store.close()
    lost = damage(run_dir)
    before = _store_bytes(run_dir)
    runner = CliRunner()
    commands = (["status", str(run_dir)], ["export", str(run_dir)],
                ["report", str(run_dir)], ["resume", str(run_dir), "--no-report"])
    for args, code in zip(commands, exits, strict=True):
        result = runner.invoke(app, args)
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            (args[0], result.exception)
        assert result.exit_code == code, (args[0], result.output)
        if code == 2:
            text = " ".join(result.output.split())
            assert named in text and str(run_dir) in text, (args[0], text)
            if "store is damaged" in text:
                assert "Still readable:" in text
    json_result = runner.invoke(app, ["status", str(run_dir), "--json"])
    assert json_result.exit_code == exits[0]
    assert json_result.exception is None or isinstance(json_result.exception, SystemExit)
    assert _store_bytes(run_dir) == before   # looked at, salvaged, refused: never changed
    if lost > 0:   # one chunk lost: export salvaged every other point of the cell
        assert _exported_rows(run_dir) == total - lost
    elif exits[1] == 0 and named != "malformed":
        assert _exported_rows(run_dir) == total


def test_status_names_what_is_damaged_and_what_is_still_readable(stopped, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped, run_dir)
    json_column("events", "data", "id = 3")(run_dir)
    result = CliRunner().invoke(app, ["status", str(run_dir)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert f"run {run_dir}: its store is damaged: events row 3: data does not parse" in text
    assert "Still readable:" in text and "cell states" in text and "points" in text


def test_a_report_of_a_damaged_run_lists_what_it_left_out(stopped, tmp_path):
    import json

    run_dir = tmp_path / "run"
    shutil.copytree(stopped, run_dir)
    n = truncate_blob(run_dir)
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 2 and "Report written" in result.output
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    assert any("blob holds" in d for d in summary["store_damage"])
    assert n > 0


def test_a_run_directory_named_with_uri_characters_is_read(tmp_path):
    run_dir = tmp_path / "run#1?mode=rw%20x"
    run_simulated(QUICKSTART, run_dir, seed=1)
    runner = CliRunner()
    for args in (["status", str(run_dir)], ["export", str(run_dir)],
                 ["report", str(run_dir)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [run_dir.name]   # no stray file


# -- export targets ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def done(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("done") / "run"
    run_simulated(QUICKSTART, run_dir, seed=1)
    return run_dir


@pytest.mark.parametrize("target", ["file", "below a file", "/dev/null"])
def test_export_to_something_that_is_not_a_folder_exits_2(done, tmp_path, target):
    blocker = tmp_path / "file"
    blocker.write_text("keep")
    to = {"file": blocker, "below a file": blocker / "out", "/dev/null": Path("/dev/null")}
    if target == "/dev/null" and not Path("/dev/null").exists():
        pytest.skip("no /dev/null")
    result = CliRunner().invoke(app, ["export", str(done), "--to", str(to[target])])
    assert result.exit_code == 2 and "--to" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert blocker.read_text() == "keep"


def test_export_into_the_run_directory_itself_never_writes_its_files(done):
    result = CliRunner().invoke(app, ["export", str(done), "--to", str(done / "protocol")])
    assert result.exit_code == 2 and "part of the run directory" in result.output


def test_export_of_a_missing_run_creates_nothing(tmp_path):
    result = CliRunner().invoke(app, ["export", str(tmp_path / "no-such-run")])
    assert result.exit_code == 2 and "not a cellseq run directory" in result.output
    assert list(tmp_path.iterdir()) == []


COLLIDING = """
campaign: colliding
cells:
  - {id: X, kind: blocking, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
  - {id: X-eis, kind: blocking, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
experiments:
  - name: eis
    cells: [X, X-eis]
    steps:
      - {kind: peis, f_start: 1 MHz, f_end: 1 Hz, amplitude: 10 mV, points_per_decade: 3}
      - {kind: rest, duration: 10 min, record_every: 60 s}
"""


def test_export_files_of_cells_with_colliding_names_are_kept_apart(tmp_path, write_yaml):
    run_dir = tmp_path / "run"
    run_simulated(write_yaml(COLLIDING), run_dir, seed=1)
    result = CliRunner().invoke(app, ["export", str(run_dir)])
    assert result.exit_code == 0, result.output
    export = run_dir / "export"
    assert sorted(p.name for p in export.iterdir()) == ["X-eis-eis.csv", "X-eis.csv",
                                                        "X-eis~2.csv", "X.csv"]
    assert "Frequency / Hz" in pd.read_csv(export / "X-eis~2.csv").columns   # X's spectra
    assert "Frequency / Hz" not in pd.read_csv(export / "X-eis.csv").columns  # X-eis' series
    assert "X's spectrum goes to X-eis~2.csv" in result.output


def test_a_chunk_row_decodes_only_when_whole():
    """A blob of the right size and checksum decodes; any other gives StoreDamaged."""
    import numpy as np

    from store.rows import StoreDamaged, chunk_crc, decode_chunk

    data = np.arange(20.0).tobytes()
    names = SERIES_COLUMNS[:2]
    assert decode_chunk(data, 10, names, chunk_crc(data), "c").shape == (2, 10)
    for blob, n, crc in ((data[:-8], 10, None), (data, 9, None), (data, 10, 1),
                         ("text", 10, None), (data, True, None), (data, 0, None)):
        with pytest.raises(StoreDamaged):
            decode_chunk(blob, n, names, crc, "c")
