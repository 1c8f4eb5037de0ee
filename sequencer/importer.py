"""``cellseq import``: files other software wrote, brought into a run directory.

EC-Lab ``.mpr``/``.mpt`` of any technique, Neware ``.nda``/``.ndax`` and BDF CSV files are read
by :mod:`analysis.readers` and cut into steps by the files' own counters
(:mod:`analysis.readers.steps`); this module writes them into a new run store as a run of one
cell whose experiments are the files, joined in time order (a cell moved between
instruments). ``status``, ``export``, ``report`` and the analyses then read the run as any
other: the analysis decides per experiment what applies (GCPL: capacities and coulombic
efficiency of a full cell; PEIS: bulk resistance, and conductivity of a blocking cell ...).

The run directory holds ``run.sqlite``, ``manifest.json`` (``mode: "imported"``, each source
file with its SHA-256, size, format, technique and points) and ``run.log`` (what was read and
how, and where a truncated file ends). Nothing is written before every file has been read.

All run-store writing of an import is here, against :class:`~store.RunStore`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import platform
import re
import sys
import time
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, model_validator

from analysis.errors import AnalysisError
from analysis.readers import ReadFile, Recording, read_recording
from analysis.readers.steps import Segment, segments
from drivers.errors import CellseqError
from protocols.cells import Cathode, CellKind
from protocols.errors import Problem
from protocols.types import FROZEN, HOUR_S, Area, Identifier, Length, PositiveCharge
from store import SERIES_COLUMNS, SPECTRUM_COLUMNS, Chunk, RunStore

MODE = "imported"
MANIFEST = "manifest.json"
LOG_NAME = "run.log"
#: Rows per stored chunk (a chunk is one BLOB; a longer step is stored in parts).
CHUNK_ROWS = 100_000
_PACKAGES = ("cellseq", "numpy", "pandas", "pyarrow", "datalab-org-galvani", "NewareNDA")


class ImportRefused(CellseqError):
    """A file or an argument that cannot be imported; nothing was written."""


class ImportedCell(BaseModel):
    """What is known of the cell whose data is imported; everything may be left out, and
    the analyses that need what is missing say so in the report's notes.

    The same fields, units and bounds as a protocol's cell (``cellseq import --cell-file``
    reads them from YAML, located by line and field like a protocol)."""

    model_config = FROZEN
    id: Identifier | None = None
    kind: CellKind | None = None
    electrolyte: str | None = Field(default=None, min_length=1, max_length=64)
    thickness: Length | None = None
    area: Area | None = None
    diameter: Length | None = None
    cathode: Cathode | None = None
    #: A commercial cell's rated capacity (``2.5 A h``), the 1C of its C-rates and what its
    #: capacities and retention are counted in when the cathode's mass is not known.
    nominal_capacity: PositiveCharge | None = None
    notes: str = ""

    @model_validator(mode="after")
    def _geometry(self) -> ImportedCell:
        if self.area is not None and self.diameter is not None:
            raise ValueError("give area or diameter, not both")
        if self.cathode is not None and self.kind not in (None, CellKind.FULL_CELL):
            raise ValueError(f"a {self.kind.value} cell has no cathode; remove the cathode")
        if self.nominal_capacity is not None:
            if self.kind not in (None, CellKind.FULL_CELL):
                raise ValueError(f"a {self.kind.value} cell has no nominal capacity; give it"
                                 " for a full_cell")
            if self.cathode is not None:
                raise ValueError("give the nominal capacity or the cathode (whose mass and"
                                 " specific capacity define 1C), not both")
        return self

    @property
    def kind_taken(self) -> str:
        """The kind given; a cell given only a nominal capacity is a full cell."""
        if self.kind is not None:
            return self.kind.value
        return CellKind.FULL_CELL.value if self.nominal_capacity is not None else ""

    def capacity_basis(self) -> str:
        """What 1C is for the analyses, as the import says it."""
        if self.nominal_capacity_Ah is not None:
            taken = "" if self.kind else ", the cell taken as a full_cell"
            return (f"1C = {self.nominal_capacity_Ah:.4g} A h (the nominal capacity given):"
                    " C-rates, capacities (mAh) and retention are counted on it" + taken)
        if self.cathode is not None:
            return (f"1C = {self.cathode.capacity_Ah:.4g} A h (the cathode's mass times its"
                    " specific capacity)")
        return ""

    @property
    def nominal_capacity_Ah(self) -> float | None:
        return None if self.nominal_capacity is None else self.nominal_capacity / HOUR_S

    def info(self) -> dict[str, Any]:
        """The cell as the run store keeps it for the analysis (only what is known)."""
        out: dict[str, Any] = {"kind": self.kind_taken}
        if self.electrolyte:
            out["electrolyte"] = self.electrolyte
        if self.thickness is not None:
            out["thickness_m"] = self.thickness
        area = self.area if self.area is not None else (
            math.pi * (self.diameter / 2) ** 2 if self.diameter is not None else None)
        if area is not None:
            out["area_m2"] = area
            out["electrode_area_m2"] = area
        if self.cathode is not None:
            out.update(cathode=self.cathode.material, active_mass_kg=self.cathode.active_mass_kg,
                       capacity_Ah=self.cathode.capacity_Ah,
                       electrode_area_m2=self.cathode.area_m2)
        if self.nominal_capacity_Ah is not None:
            out.update(capacity_Ah=self.nominal_capacity_Ah)
        return out


@dataclass
class ImportOutcome:
    run_dir: Path
    cell: str
    files: list[dict[str, Any]]
    points: int
    steps: int
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def import_files(paths: list[Path], run_dir: Path, cell: ImportedCell,
                 cell_id: str | None = None) -> ImportOutcome:
    """Read every file, then write the run. :class:`ImportRefused` (nothing written) for a
    file that cannot be read or is not what its name claims, files given twice or
    overlapping in time, or a run directory that is not new."""
    wall = time.perf_counter()
    if not paths:
        raise ImportRefused("no file to import")
    run_dir = Path(run_dir)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ImportRefused(f"{run_dir} exists and is not empty; choose a new --out directory")
    read: list[ReadFile] = []
    for path in paths:
        try:
            read.append(read_recording(path))
        except AnalysisError as exc:
            raise ImportRefused(str(exc)) from None
    _refuse_twice(read)
    ordered, order_note = _in_time_order(read)
    name = cell_id or cell.id or _identifier(Path(paths[0]).stem)
    plan = _Plan(name, ordered)
    run_dir.mkdir(parents=True, exist_ok=True)
    outcome = plan.write(run_dir, cell, order_note)
    outcome.wall_s = time.perf_counter() - wall
    return outcome


def _refuse_twice(read: list[ReadFile]) -> None:
    seen: dict[str, str] = {}
    for f in read:
        if f.sha256 in seen:
            raise ImportRefused(f"{f.recording.source} and {seen[f.sha256]} are the same file"
                                " (same SHA-256); give it once")
        seen[f.sha256] = f.recording.source


def _in_time_order(read: list[ReadFile]) -> tuple[list[ReadFile], str]:
    """The files in the order they were recorded; refused where two overlap in time (the
    same measurement given twice, e.g. an .mpr and its .mpt). Files that do not say when they
    started keep the order given, each after the one before."""
    if len(read) == 1:
        return read, ""
    if any(f.recording.start_utc is None for f in read):
        unknown = [f.recording.source for f in read if f.recording.start_utc is None]
        return read, (f"{', '.join(unknown)} do{'es' if len(unknown) == 1 else ''} not say when"
                      " recording started: the files are joined in the order given, each"
                      " following the one before")
    ordered = sorted(read, key=lambda f: f.recording.start_utc or 0.0)
    for before, after in itertools.pairwise(ordered):
        end = before.recording.end_utc or 0.0
        if (after.recording.start_utc or 0.0) < end:
            raise ImportRefused(
                f"{after.recording.source} starts ({_stamp(after.recording.start_utc)}) before"
                f" {before.recording.source} ends ({_stamp(end)}): the files overlap in time."
                " Is one measurement given twice (an .mpr and its .mpt)? Import files of one"
                " cell, each once")
    moved = [f.recording.source for f in ordered] != [f.recording.source for f in read]
    return ordered, ("files joined in the order they were recorded" if moved else "")


def _stamp(utc: float | None) -> str:
    if utc is None:
        return "unknown"
    return dt.datetime.fromtimestamp(utc, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _identifier(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "-", text).strip("-._") or "cell"
    if not cleaned[0].isalnum():
        cleaned = "c" + cleaned
    return cleaned[:64]


class _Plan:
    """Where each file's points go: time and cycle offsets, experiment names."""

    def __init__(self, cell: str, files: list[ReadFile]) -> None:
        self.cell, self.files = cell, files
        starts = [f.recording.start_utc for f in files]
        self.origin_utc = starts[0] if all(s is not None for s in starts) else None

    def write(self, run_dir: Path, cell: ImportedCell, order_note: str) -> ImportOutcome:
        experiments, names = [], set()
        for f in self.files:
            stem = _identifier(Path(f.recording.source).stem)
            unique, k = stem, 2
            while unique in names:
                unique, k = f"{stem}-{k}", k + 1
            names.add(unique)
            experiments.append(unique)
        notes = [order_note] if order_note else []
        if basis := cell.capacity_basis():
            notes.append(basis)
        if not cell.kind_taken:
            notes.append("the cell's kind was not given (--kind or --cell-file): analyses that"
                         " depend on it (conductivity, capacities, coulombic efficiency) are"
                         " not made")
        files_record = [self._file_record(f, exp) for f, exp in zip(self.files, experiments,
                                                                     strict=True)]
        manifest = {"mode": MODE, "campaign": f"import of {self.cell}", "cell": self.cell,
                    "files": files_record, "started_utc": self.origin_utc,
                    "imported_utc": time.time(), "versions": _versions(), "notes": notes}
        log_lines: list[str] = []
        store = RunStore.create(run_dir)
        try:
            with store.transaction():
                store.set_meta("manifest", manifest)
                store.set_meta("cells", {self.cell: cell.info()})
                store.set_meta("experiments", [{"name": e, "cells": [self.cell]}
                                               for e in experiments])
                store.set_meta("expected", [])
                store.set_meta("status", "running")
                outcome = self._write_points(store, experiments, notes, log_lines)
                store.set_meta("manifest", {**manifest, "notes": notes})
                store.set_meta("status", "completed")
        finally:
            store.close()
        manifest["notes"] = notes
        (run_dir / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        (run_dir / LOG_NAME).write_text("".join(line + "\n" for line in log_lines),
                                        encoding="utf-8")
        outcome.run_dir, outcome.files = run_dir, files_record
        return outcome

    def _file_record(self, f: ReadFile, experiment: str) -> dict[str, Any]:
        r = f.recording
        return {"path": str(Path(r.source).resolve()), "sha256": f.sha256,
                "bytes": f.size_bytes, "format": r.format, "technique": r.technique,
                "points": len(r), "start_utc": r.start_utc, "experiment": experiment,
                "truncated": r.truncated}

    def _write_points(self, store: RunStore, experiments: list[str], notes: list[str],
                      log: list[str]) -> ImportOutcome:
        step_count, points, cycle_base = 0, 0, 0
        warnings: list[str] = []
        offset_s, counters = 0.0, dict.fromkeys(("charge_Ah", "discharge_Ah", "charge_Wh",
                                                  "discharge_Wh"), 0.0)
        last: dict[str, Any] = {}
        for f, experiment in zip(self.files, experiments, strict=True):
            r = f.recording
            if self.origin_utc is not None and r.start_utc is not None:
                offset_s = r.start_utc - self.origin_utc
            cut = segments(r)
            cycles = [s.cycle for s in cut]
            shift = cycle_base if cycle_base and max(cycles, default=0) > 0 else 0
            if shift:
                notes.append(f"{experiment}: cycles numbered on from {shift + 1} (the file's"
                             f" cycle 1 follows the {shift} cycles before it)")
            columns = _store_columns(r, offset_s, counters, self.origin_utc)
            for index, segment in enumerate(cut, 1):
                step_count += 1
                self._write_step(store, experiment, step_count, index, segment, columns, shift)
                points += segment.stop - segment.start
            for key in counters:
                counters[key] = float(columns[key][-1])
            cycle_base = max(cycle_base, shift + max(cycles, default=0))
            end_t = float(columns["test_time_s"][-1])
            say = (f"imported {r.source}: {r.format}, technique {r.technique or 'not named'},"
                   f" {len(r):,} points in {len(cut)} steps as experiment {experiment};"
                   f" SHA-256 {f.sha256}")
            log.append(f"{_stamp_now()} t={offset_s:.1f}s import [{self.cell}]: {say}")
            store.event(offset_s, _utc(self.origin_utc, offset_s), self.cell, "imported", say,
                        {"file": r.source, "sha256": f.sha256})
            for note in r.notes:
                log.append(f"{_stamp_now()} t={offset_s:.1f}s note [{self.cell}]: {r.source}:"
                           f" {note}")
            if r.truncated:
                warning = f"{r.source}: {r.truncated}"
                warnings.append(warning)
                notes.append(warning)
                log.append(f"{_stamp_now()} t={end_t:.1f}s file_truncated [{self.cell}]:"
                           f" {warning}")
                store.event(end_t, _utc(self.origin_utc, end_t), self.cell, "file_truncated",
                            warning, {"file": r.source})
            last = {"t": end_t, **{k: float(columns[k][-1]) for k in ("voltage_V", "current_A")
                                   if np.isfinite(columns[k][-1])}}
            if self.origin_utc is None:
                offset_s = end_t
        final = self.files[-1]
        store.set_cell_state(self.cell, "completed", float(last.get("t", 0.0)),
                             experiment=experiments[-1], step_count=step_count,
                             step_index=len(segments(final.recording)),
                             step_kind=None, cycle=cycle_base, last=last)
        return ImportOutcome(Path(), self.cell, [], points, step_count, notes, warnings)

    def _write_step(self, store: RunStore, experiment: str, step_count: int, index: int,
                    segment: Segment, columns: dict[str, np.ndarray], shift: int) -> None:
        sl = slice(segment.start, segment.stop)
        t = columns["test_time_s"][sl]
        cycle = segment.cycle + shift if segment.cycle > 0 else segment.cycle
        params = {**segment.params, "imported": True, "written_kind": segment.kind}
        step_id = store.begin_step(self.cell, experiment, step_count, index, segment.kind,
                                   cycle, float(t[0]), params)
        names = SPECTRUM_COLUMNS if segment.spectrum else SERIES_COLUMNS
        step_time = t - t[0]
        for at in range(0, len(t), CHUNK_ROWS):
            part = slice(segment.start + at, min(segment.start + at + CHUNK_ROWS, segment.stop))
            chunk = {n: columns[n][part] for n in names if n != "step_time_s"}
            chunk["step_time_s"] = step_time[at:at + CHUNK_ROWS]
            store.append(step_id, Chunk(self.cell, step_count, index, cycle,
                                        "spectrum" if segment.spectrum else "series", chunk))
        end = {k: float(columns[k][segment.stop - 1]) for k in ("charge_Ah", "discharge_Ah",
                                                                "charge_Wh", "discharge_Wh")}
        store.end_step(step_id, float(t[-1]), "imported", end)


def _store_columns(r: Recording, offset_s: float, counters: dict[str, float],
                   origin_utc: float | None) -> dict[str, np.ndarray]:
    """The recording's points in the store's columns: test time from the run's first file,
    UTC where known, counters continuing from the files before; NaN for what a file lacks."""
    n = len(r)
    nan = np.full(n, np.nan)
    time_s = r.columns["time_s"]
    out = {"test_time_s": time_s + offset_s,
           "utc_s": time_s + offset_s + origin_utc if origin_utc is not None else nan,
           "voltage_V": r.columns.get("voltage_V", nan),
           "current_A": r.columns.get("current_A", nan),
           "temperature_C": r.columns.get("temperature_C", nan),
           "frequency_Hz": r.columns.get("frequency_Hz", nan),
           "z_real_ohm": r.columns.get("z_real_ohm", nan),
           "z_imag_ohm": r.columns.get("z_imag_ohm", nan)}
    for key, before in counters.items():
        out[key] = r.columns[key] + before if key in r.columns else np.full(n, before)
    return out


def _utc(origin: float | None, t: float) -> float:
    return origin + t if origin is not None else time.time()


def _stamp_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": sys.platform}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def load_cell_file(path: Path) -> ImportedCell:
    """A cell YAML (the fields of :class:`ImportedCell`), validated like a protocol file:
    a problem names the file, line and field."""
    from protocols.loader import load_model

    return load_model(path, ImportedCell)


#: The ``cellseq import`` option that gives each field of :class:`ImportedCell`.
OPTION_OF = {"kind": "--kind", "electrolyte": "--electrolyte", "thickness": "--thickness",
             "area": "--area", "diameter": "--diameter", "cathode": "--cathode",
             "cathode.material": "--cathode", "cathode.loading": "--loading",
             "cathode.diameter": "--cathode-diameter", "cathode.area": "--cathode-area",
             "cathode.specific_capacity": "--specific-capacity",
             "nominal_capacity": "--nominal-capacity"}


def cell_from_options(options: dict[str, Any]) -> ImportedCell:
    """The cell from command-line options (values as in a protocol: '300 um'); a problem
    names the option that gave the value (``--nominal-capacity: expected a charge ...``)."""
    from protocols.errors import ProtocolError
    from protocols.loader import validate

    try:
        return validate({k: v for k, v in options.items() if v is not None}, None,
                        ImportedCell, "the command line")
    except ProtocolError as exc:
        raise ProtocolError([_on_the_command_line(p) for p in exc.problems]) from None


def _on_the_command_line(problem: Problem) -> Problem:
    """A problem of the cell given by options, located by option rather than by field."""
    missing = re.fullmatch(r"missing required field '(\w+)'", problem.message)
    option = OPTION_OF.get(f"{problem.path}.{missing[1]}" if missing else "")
    if missing and option:
        return replace(problem, path="", message=f"missing {option} (the cathode's options"
                       " --cathode, --loading, --cathode-diameter or --cathode-area and"
                       " --specific-capacity go together)")
    return replace(problem, path=OPTION_OF.get(problem.path, problem.path))


__all__ = ["MODE", "ImportOutcome", "ImportRefused", "ImportedCell", "cell_from_options",
           "import_files", "load_cell_file"]
