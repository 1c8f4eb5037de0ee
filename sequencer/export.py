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
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.text import counted
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
    import pandas as pd
    import pyarrow as pa

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
            parts = batches(store, cell, kind, damage,
                            rows=CSV_BATCH_ROWS if fmt == "csv" else None)
            rows = _write_batches(parts, path, fmt, run_dir)
            if rows:
                written.append(path)
                points += rows
    finally:
        store.close()
    readable = [f"{counted(points, 'point')} of {counted(len(cells), 'cell')} written"]
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
    readable = [f"{counted(len(table), 'cycle')} of {counted(table['Cell'].nunique(), 'cell')}"
                " written"]
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


#: Rows per batch of a CSV export: a batch is held three times over while it is rounded and
#: formatted (its columns, their rounded copies, its text), by up to :data:`CSV_WORKERS` at once.
CSV_BATCH_ROWS = 32_768
#: Threads rounding and formatting CSV batches (numpy and pyarrow run without the GIL).
CSV_WORKERS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                  else os.cpu_count() or 1)


def _write_batches(parts: Iterator[dict[str, np.ndarray]], path: Path, fmt: str,
                   run_dir: Path) -> int:
    """Write the batches as one file, whole or not at all (a temporary name, then renamed);
    nothing when there are none. Returns the rows written.

    The batches are read in this thread while others encode the ones before: CSV batches
    are rounded and formatted on every core and their text written in order; a Parquet row
    group is written (by one thread, so in order) while the next batch is read."""
    if _is_run_file(run_dir, path):
        raise ExportError(f"{path} is one of the run's own files; it is not written over")
    tmp = path.with_name(f".{path.name}.tmp")
    writer: _CsvWriter | _ParquetWriter | None = None
    rows = 0
    workers = CSV_WORKERS if fmt == "csv" else 1
    pool = ThreadPoolExecutor(max_workers=workers)
    pending: deque[Future[Any]] = deque()
    try:
        for part in parts:
            if writer is None:
                if path.is_dir():
                    raise ExportError(f"cannot write {path}: a folder is in its place")
                writer = _CsvWriter(tmp, list(part)) if fmt == "csv" else \
                    _ParquetWriter(tmp, part)
            pending.append(pool.submit(writer.encode, part))
            rows += len(next(iter(part.values())))
            while len(pending) > workers:
                writer.write(pending.popleft().result())
        while pending:
            assert writer is not None
            writer.write(pending.popleft().result())
        if writer is not None:
            writer.close()
            writer = None
            os.replace(tmp, path)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if writer is not None:
            with contextlib.suppress(OSError):
                writer.close()
        if tmp.exists():
            with contextlib.suppress(OSError):
                tmp.unlink()
    return rows


def _table(part: dict[str, np.ndarray]) -> pa.Table:
    """A batch as an Arrow table, its columns' buffers shared with numpy (not copied). NaN
    (no temperature probe in no chamber) is a missing value: an empty CSV field, a null in
    Parquet.

    The store's float64 and int64 columns are made from their buffers, not by
    ``pa.array(values, from_pandas=True)``: that imports pandas to ask whether the values are
    a Series (a fifth of a second of CPU) and builds a validity bitmap for every column; here
    a bitmap is made only for a column that has NaN. The table is the same (float64 and int64
    fields, NaN as null); another type goes through ``pa.array``."""
    import pyarrow as pa

    return pa.table({name: _array(values) for name, values in part.items()})


def _array(values: np.ndarray) -> pa.Array:
    """One column as an Arrow array sharing its buffer."""
    import numpy as np
    import pyarrow as pa

    if values.dtype == np.float64:
        values = np.ascontiguousarray(values, dtype=np.float64)   # native byte order
        missing = np.isnan(values)
        nulls = int(np.count_nonzero(missing))
        valid = pa.py_buffer(np.packbits(~missing, bitorder="little")) if nulls else None
        return pa.Array.from_buffers(pa.float64(), len(values),
                                     [valid, pa.py_buffer(values)], null_count=nulls)
    if values.dtype == np.int64:
        values = np.ascontiguousarray(values, dtype=np.int64)
        return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)],
                                     null_count=0)
    return pa.array(values, from_pandas=True)


#: The Parquet files' compression. Measured on a cycling run's columns (10 M rows, one
#: thread, CPU time of the writing, median of 5): snappy alone 0.87 s and 528 MB, none 0.80 s
#: and 802 MB. With the floats byte-stream split (each float's bytes stored by position, so
#: the exponents and leading mantissa bytes, which change slowly, sit together): snappy
#: 0.77 s and 307 MB, lz4 0.83 s and 278 MB, zstd level 1 1.03 s and 268 MB, none 0.77 s and
#: 802 MB. Snappy with the split writes with the least CPU a file 40 % smaller than snappy
#: alone. pyarrow (and pandas through it) has read byte-stream-split columns since 0.17
#: (2020), parquet-mr (Spark) since 1.12; Parquet's lz4 has two framings that older readers
#: confuse.
CODEC = "snappy"


class _ParquetWriter:
    """A Parquet file with a row group per batch: the counts dictionary-encoded, the floats
    byte-stream split, snappy-compressed (:data:`CODEC`)."""

    def __init__(self, path: Path, first: dict[str, np.ndarray]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _table(first).schema
        # dictionary encoding only where values repeat (the counts): tried on every float
        # column it costs three times the writing and saves nothing
        whole = [f.name for f in schema if pa.types.is_integer(f.type)]
        floats = [f.name for f in schema if pa.types.is_floating(f.type)]
        self._writer = pq.ParquetWriter(path, schema, use_dictionary=whole,
                                        use_byte_stream_split=floats, compression=CODEC)

    def encode(self, part: dict[str, np.ndarray]) -> None:
        """Write the batch's row group (one thread calls this: the groups stay in order)."""
        self._writer.write_table(_table(part))

    def write(self, _: None) -> None:
        """Nothing left to do: :meth:`encode` wrote the row group."""

    def close(self) -> None:
        self._writer.close()


class _CsvWriter:
    """CSV lines under a header of bare column names (as pandas writes them: ``Test Time /
    s``, unquoted; the names hold no comma nor quote), each number at its column's
    resolution (:data:`store.resolution.CSV_RESOLUTION`), formatted by pyarrow."""

    def __init__(self, path: Path, names: list[str]) -> None:
        import pyarrow.csv as pa_csv

        self._options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
        self._file = open(path, "wb")   # noqa: SIM115 - closed by close()
        try:
            self._file.write((",".join(names) + "\n").encode())
        except BaseException:
            self._file.close()
            raise

    def encode(self, part: dict[str, np.ndarray]) -> pa.Buffer:
        """A batch's lines (any thread may call this)."""
        import pyarrow as pa
        import pyarrow.csv as pa_csv

        rounded = {name: CSV_RESOLUTION[name].round(values) if name in CSV_RESOLUTION
                   else values for name, values in part.items()}
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(_table(rounded), sink, self._options)
        return sink.getvalue()

    def write(self, lines: pa.Buffer) -> None:
        """Append a batch's lines (in the order the batches were read)."""
        self._file.write(lines)

    def close(self) -> None:
        self._file.close()


def _is_run_file(run_dir: Path, path: Path) -> bool:
    """Whether ``path`` is (or is inside) one of the files a run directory is made of."""
    own = [run_dir / name for name in (*STORE_FILES, *RUN_FILES)]
    try:
        target = path.resolve()
        return any(target == p.resolve() or target.is_relative_to(p.resolve()) for p in own)
    except OSError:
        return False
