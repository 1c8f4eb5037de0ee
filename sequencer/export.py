"""Export a run to CSV or Parquet with Battery Data Format style column names (with units).

The frames (one per cell and kind, the names and their order) are the store's
(:mod:`store.frames`); this module decides where they go and writes them a batch of chunks at
a time (a Parquet row group, a block of CSV lines), so an export's memory follows one batch
however long the run. CSV numbers are written at the instruments' resolution
(:mod:`store.resolution`), Parquet keeps the stored float64.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from drivers.errors import CellseqError
from sequencer.run_files import RUN_FILES
from store.frames import batches
from store.resolution import CSV_RESOLUTION
from store.rows import StoreDamaged
from store.run_store import RunStore
from store.schema import STORE_FILES
from store.survey import survey

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

FORMATS = ("csv", "parquet")


class ExportError(CellseqError):
    """The export cannot be written where it was asked to go."""


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
            path = out_dir / name
            rows = _write_batches(batches(store, cell, kind, damage), path, fmt, run_dir)
            if rows:
                written.append(path)
                points += rows
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


def _write_batches(parts: Iterator[dict[str, np.ndarray]], path: Path, fmt: str,
                   run_dir: Path) -> int:
    """Write the batches as one file, whole or not at all (a temporary name, then renamed);
    nothing when there are none. Returns the rows written."""
    import pyarrow as pa

    if _is_run_file(run_dir, path):
        raise ExportError(f"{path} is one of the run's own files; it is not written over")
    tmp = path.with_name(f".{path.name}.tmp")
    writer = None
    rows = 0
    # one batch is written (pyarrow, without the GIL) while the next is read and rounded
    pool = ThreadPoolExecutor(max_workers=1)
    writing: Future[None] | None = None
    try:
        for part in parts:
            if fmt == "csv":
                part = {name: CSV_RESOLUTION[name].round(values) if name in CSV_RESOLUTION
                        else values for name, values in part.items()}
            # NaN (no temperature probe in no chamber) is a missing value: an empty CSV field
            table = pa.table({name: pa.array(values, from_pandas=True)
                              for name, values in part.items()})
            if writer is None:
                if path.is_dir():
                    raise ExportError(f"cannot write {path}: a folder is in its place")
                writer = _writer(tmp, fmt, table.schema)
            if writing is not None:
                writing.result()
            writing = pool.submit(writer.write_table, table)
            rows += table.num_rows
        if writing is not None:
            writing.result()
        if writer is not None:
            writer.close()
            writer = None
            os.replace(tmp, path)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        pool.shutdown(wait=True)
        if writer is not None:
            with contextlib.suppress(OSError):
                writer.close()
        if tmp.exists():
            with contextlib.suppress(OSError):
                tmp.unlink()
    return rows


def _writer(path: Path, fmt: str, schema: pa.Schema) -> _CsvWriter | pq.ParquetWriter:
    """A streaming writer: CSV lines under a header, or Parquet with a row group per batch."""
    import pyarrow as pa

    if fmt == "csv":
        return _CsvWriter(path, schema)
    import pyarrow.parquet as pq

    # dictionary encoding only where values repeat (the counts): tried on every float column
    # it costs three times the writing and saves nothing
    whole = [f.name for f in schema if pa.types.is_integer(f.type)]
    return pq.ParquetWriter(path, schema, use_dictionary=whole)


class _CsvWriter:
    """pyarrow's CSV writer under a header of bare column names (as pandas writes them:
    ``Test Time / s``, unquoted; the names hold no comma nor quote)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        import pyarrow.csv as pa_csv

        self._file = open(path, "wb")   # noqa: SIM115 - closed by close()
        try:
            self._file.write((",".join(schema.names) + "\n").encode())
            self._csv = pa_csv.CSVWriter(self._file, schema, write_options=pa_csv.WriteOptions(
                include_header=False, quoting_style="none"))
        except BaseException:
            self._file.close()
            raise

    def write_table(self, table: pa.Table) -> None:
        self._csv.write_table(table)

    def close(self) -> None:
        try:
            self._csv.close()
        finally:
            self._file.close()


def _is_run_file(run_dir: Path, path: Path) -> bool:
    """Whether ``path`` is (or is inside) one of the files a run directory is made of."""
    own = [run_dir / name for name in (*STORE_FILES, *RUN_FILES)]
    try:
        target = path.resolve()
        return any(target == p.resolve() or target.is_relative_to(p.resolve()) for p in own)
    except OSError:
        return False
