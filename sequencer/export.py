"""Export a run to CSV or Parquet with Battery Data Format style column names (with units)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from drivers.errors import CellseqError
from sequencer.run_files import RUN_FILES
from sequencer.store import STORE_FILES, RunStore
from sequencer.store_rows import StoreDamaged
from sequencer.store_survey import survey

#: Store column -> Battery Data Format style name.
BDF_NAMES = {
    "test_time_s": "Test Time / s",
    "step_time_s": "Step Time / s",
    "utc_s": "Unix Time / s",
    "voltage_V": "Voltage / V",
    "current_A": "Current / A",
    "temperature_C": "Temperature T1 / degC",
    "charge_Ah": "Charging Capacity / Ah",
    "discharge_Ah": "Discharging Capacity / Ah",
    "charge_Wh": "Charging Energy / Wh",
    "discharge_Wh": "Discharging Energy / Wh",
    "cycle": "Cycle Count / 1",
    "step_count": "Step Count / 1",
    "step_index": "Step Index / 1",
    "frequency_Hz": "Frequency / Hz",
    "z_real_ohm": "Z Real / Ohm",
    "z_imag_ohm": "Z Imag / Ohm",
}
FORMATS = ("csv", "parquet")


class ExportError(CellseqError):
    """The export cannot be written where it was asked to go."""


def frame(store: RunStore, cell: str, kind: str = "series",
          damage: list[str] | None = None) -> pd.DataFrame:
    """One cell's time series (``series``) or impedance points (``spectrum``), BDF names;
    with ``damage``, damaged chunks are left out and listed there."""
    columns = store.read(cell, kind, damage)
    df = pd.DataFrame({BDF_NAMES[k]: v for k, v in columns.items()})
    return df[[BDF_NAMES[k] for k in BDF_NAMES if BDF_NAMES[k] in df.columns]]


@dataclass(frozen=True)
class Exported:
    """What an export wrote, and what it could not (damaged rows left out, renamed files)."""

    paths: list[Path]
    damage: list[str]
    readable: list[str]
    notes: list[str]


def export_run(run_dir: Path, fmt: str, out_dir: Path | None = None) -> Exported:
    """Write ``<cell>.<fmt>`` (time series) and ``<cell>-eis.<fmt>`` (impedance) per cell.

    The store is opened read-only and checked first (a missing run creates nothing). A
    damaged store is salvaged: every intact chunk is written, and what was left out is
    returned as ``damage``. Two files that would have one name (a cell ``X-eis`` beside
    cell ``X``'s spectra; names differing only in case, on a disk that ignores case) are
    told apart by ``~2`` (a character no cell id has), never written over each other."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    try:
        store = RunStore.open(run_dir, integrity=True, salvage=True)
    except StoreDamaged:   # not even its tables can be listed
        raise StoreDamaged(survey(run_dir).message(run_dir)) from None
    try:
        damage = list(store.damage)
        cells = sorted(set(store.cells(damage)) | set(store.chunk_cells(damage)))
        out_dir = _output_folder(run_dir, out_dir or run_dir / "export")
        targets, notes = _file_names(cells, fmt)
        written, points = [], 0
        for (cell, kind), name in targets.items():
            df = frame(store, cell, kind, damage)
            if df.empty:
                continue
            path = out_dir / name
            _write(df, path, fmt, run_dir)
            written.append(path)
            points += len(df)
    finally:
        store.close()
    readable = [f"{points} points of {len(cells)} cells written"]
    return Exported(written, damage, readable, notes)


def export_cycles(run_dir: Path, fmt: str, out_dir: Path | None = None) -> Exported:
    """Write ``cycles.<fmt>``: one row per cycle and cell (``analysis.cycle_export``: cycle,
    tag, capacities and energies, coulombic efficiency, mean voltages, end reasons,
    temperature and C-rate). A cell called ``cycles`` keeps its own file name; the table then
    gets ``cycles~2``."""
    from analysis.cycle_export import cycle_table
    from analysis.errors import AnalysisError

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    try:
        table, damage, notes = cycle_table(run_dir)
    except StoreDamaged:   # not even its tables can be listed
        raise StoreDamaged(survey(run_dir).message(run_dir)) from None
    except AnalysisError as exc:
        raise ExportError(f"cannot make the cycle table of {run_dir}: {exc}") from None
    out_dir = _output_folder(run_dir, out_dir or run_dir / "export")
    stem, k = "cycles", 1
    taken = {str(c).casefold() for c in table["Cell"].unique()}
    while stem.casefold() in taken or f"{stem}-eis".casefold() in taken:
        k += 1
        stem = f"cycles~{k}"
    if k > 1:
        notes = [*notes, f"the cycle table goes to {stem}.{fmt}: cycles.{fmt} is a cell's file"]
    path = out_dir / f"{stem}.{fmt}"
    _write(table, path, fmt, run_dir)
    readable = [f"{len(table)} cycles of {table['Cell'].nunique()} cells written"]
    return Exported([path], list(dict.fromkeys(damage)), readable, notes)


def _output_folder(run_dir: Path, out_dir: Path) -> Path:
    """The folder to write into, made if missing; refused if it is not a folder or is one
    of the run's own."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"--to {out_dir}: not a folder (a file is in its place)")
    if _is_run_file(run_dir, out_dir):
        raise ExportError(f"--to {out_dir}: a part of the run directory itself; choose"
                          " another folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ExportError(f"--to {out_dir}: cannot be made, a file stands in its path"
                          ) from None
    except OSError as exc:
        raise ExportError(f"cannot make the folder {out_dir}: {exc.strerror or exc}"
                          ) from None
    return out_dir


def _file_names(cells: list[str], fmt: str) -> tuple[dict[tuple[str, str], str], list[str]]:
    """Each (cell, kind)'s file name, from the cell ids alone, none the same as another."""
    names: dict[tuple[str, str], str] = {}
    taken: set[str] = set()
    notes = []
    for kind, suffix in (("series", ""), ("spectrum", "-eis")):
        for cell in cells:
            stem, k = f"{cell}{suffix}", 1
            while f"{stem}.{fmt}".casefold() in taken:
                k += 1
                stem = f"{cell}{suffix}~{k}"
            if k > 1:
                notes.append(f"{cell}'s {kind} goes to {stem}.{fmt}: {cell}{suffix}.{fmt} is"
                             " another cell's file")
            taken.add(f"{stem}.{fmt}".casefold())
            names[cell, kind] = f"{stem}.{fmt}"
    return names, notes


def _write(df: pd.DataFrame, path: Path, fmt: str, run_dir: Path) -> None:
    """Write whole or not at all (a temporary name, then renamed)."""
    if _is_run_file(run_dir, path):
        raise ExportError(f"{path} is one of the run's own files; it is not written over")
    if path.is_dir():
        raise ExportError(f"cannot write {path}: a folder is in its place")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if fmt == "csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None


def _is_run_file(run_dir: Path, path: Path) -> bool:
    """Whether ``path`` is (or is inside) one of the files a run directory is made of."""
    own = [run_dir / name for name in (*STORE_FILES, *RUN_FILES)]
    try:
        target = path.resolve()
        return any(target == p.resolve() or target.is_relative_to(p.resolve()) for p in own)
    except OSError:
        return False
