"""Runs in local run directories, for the dashboard (a :class:`RunSource`).

Each run's store is opened read-only and kept open; SQLite's WAL mode lets it read while the
run's process writes, and a reader never blocks that writer. Every call on a run holds the
run's lock (one connection, used from the web layer's worker threads one at a time). Only
paths found at start (the directories given, and the subdirectories of ``--runs``) are ever
opened: a run id is a name looked up here, never a path.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.cycle_steps import PassedPerStep, numbered_cycles, outcomes_of
from analysis.errors import AnalysisError
from sequencer.controls import Action, ControlError, write_request
from sequencer.dashboard.envelope import QUANTITIES, Envelope, SeriesView
from sequencer.dashboard.source import (
    CellRow,
    CycleRow,
    NotFound,
    Overview,
    Refused,
    Results,
    RunInfo,
    SourceError,
    Spectrum,
)
from sequencer.locks import run_dir_in_use
from sequencer.status import FINISHED, UNFINISHED_CELL_STATES
from store import DB_NAME, RunStore, StoreError

#: How often ``--runs`` is looked through for new runs, and a run's process for being alive.
RESCAN_S = 5.0
LIVE_CHECK_S = 2.0
#: The report's figure names (analysis.report_html writes no others).
FIGURE_NAME = re.compile(r"^fig\d{3}-[a-z0-9-]*\.png$")
MAX_SUMMARY_BYTES = 64 * 2 ** 20
MAX_FIGURE_BYTES = 32 * 2 ** 20
_COLUMNS = ("test_time_s", *QUANTITIES)
#: The cumulative counters cycles are counted from (analysis.cycle_steps.COUNTERS' keys).
_COUNTER_COLUMNS = ("charge_Ah", "discharge_Ah", "charge_Wh", "discharge_Wh")


def is_run_dir(path: Path) -> bool:
    return (path / DB_NAME).is_file()


class LocalRuns:
    """The runs of the directories given and, with ``runs_root``, of every subdirectory of it
    that holds a run (looked through again every ``RESCAN_S``, so new runs appear)."""

    def __init__(self, run_dirs: Sequence[Path] = (), runs_root: Path | None = None) -> None:
        self._root = runs_root
        self._by_path: dict[Path, _LocalRun] = {}
        self._by_id: dict[str, _LocalRun] = {}
        self._lock = threading.Lock()
        self._scanned = -math.inf
        for d in run_dirs:
            if not is_run_dir(d):
                raise SourceError(f"{d} is not a cellseq run directory (no {DB_NAME})")
            self._add(d)
        if runs_root is not None and not runs_root.is_dir():
            raise SourceError(f"--runs {runs_root}: not a folder")
        self._rescan()

    # -- which runs ----------------------------------------------------------------------

    def _add(self, path: Path) -> None:
        path = path.resolve()
        if path in self._by_path:
            return
        name = path.name or "run"
        run_id, k = name, 1
        while run_id in self._by_id:
            k += 1
            run_id = f"{name}-{k}"
        run = _LocalRun(run_id, path)
        self._by_path[path] = run
        self._by_id[run_id] = run

    def _rescan(self) -> None:
        if self._root is None or time.monotonic() - self._scanned < RESCAN_S:
            return
        self._scanned = time.monotonic()
        try:
            children = sorted(p for p in self._root.iterdir() if p.is_dir())
        except OSError:
            return
        candidates = [self._root, *children]
        for path in candidates:
            if is_run_dir(path):
                self._add(path)

    def _run(self, run_id: str) -> _LocalRun:
        with self._lock:
            self._rescan()
            run = self._by_id.get(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r} is served here")
        return run

    def runs(self) -> list[RunInfo]:
        with self._lock:
            self._rescan()
            runs = list(self._by_id.values())
        out = []
        for run in runs:
            try:
                out.append(run.info())
            except SourceError:
                continue   # its store is not readable (yet): the run page says why
        return out

    # -- per run ---------------------------------------------------------------------------

    def overview(self, run_id: str) -> Overview:
        return self._run(run_id).overview()

    def version(self, run_id: str) -> tuple[object, ...]:
        return self._run(run_id).version()

    def events(self, run_id: str, after_id: int, cell: str | None = None,
               limit: int = 200) -> list[dict[str, Any]]:
        return self._run(run_id).events(after_id, cell, limit)

    def series(self, run_id: str, cell: str, t0_s: float | None, t1_s: float | None,
               width: int) -> SeriesView:
        return self._run(run_id).series(cell, t0_s, t1_s, width)

    def cycles(self, run_id: str, cell: str) -> list[CycleRow]:
        return self._run(run_id).cycles(cell)

    def spectra(self, run_id: str, cell: str, last: int) -> list[Spectrum]:
        return self._run(run_id).spectra(cell, last)

    def results(self, run_id: str) -> Results:
        return self._run(run_id).results()

    def figure(self, run_id: str, name: str) -> bytes:
        return self._run(run_id).figure(name)

    def control(self, run_id: str, action: Action, cell: str | None, who: str,
                address: str) -> str:
        return self._run(run_id).control(action, cell, who, address)

    def warm(self) -> None:
        """Build every served cell's series summary, so a first view need not wait for it."""
        with self._lock:
            runs = list(self._by_id.values())
        for run in runs:
            try:
                run.warm()
            except SourceError:
                continue   # its page will say why

    def close(self) -> None:
        with self._lock:
            for run in self._by_id.values():
                run.close()


class _LocalRun:
    def __init__(self, run_id: str, path: Path) -> None:
        self.id, self.path = run_id, path
        self.lock = threading.Lock()
        self._store: RunStore | None = None
        self._fixed: dict[str, Any] = {}     # meta that never changes (manifest, cells)
        self._envelopes: dict[str, Envelope] = {}
        self._live, self._live_at = False, -math.inf
        #: answers kept until the store changes (its newest chunk and event ids move)
        self._kept: dict[tuple[object, ...], tuple[object, Any]] = {}
        #: per cell: what each experiment's steps passed so far, and the last chunk folded in
        self._folds: dict[str, tuple[dict[str, PassedPerStep], int]] = {}

    def _keep(self, key: tuple[object, ...], stamp: object, make: Any) -> Any:
        kept = self._kept.get(key)
        if kept is not None and kept[0] == stamp:
            return kept[1]
        value = make()
        self._kept[key] = (stamp, value)
        return value

    def close(self) -> None:
        with self.lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def _open(self) -> RunStore:
        """The store, opened once (under the lock)."""
        if self._store is None:
            try:
                self._store = RunStore.open(self.path)
            except StoreError as exc:
                raise SourceError(f"run {self.id}: {exc}") from None
        return self._store

    def _meta(self, key: str) -> Any:
        """A meta entry that never changes once written (the manifest, the cells): read until
        it is there (a run just starting may not have committed it yet), then kept."""
        if self._fixed.get(key) is None:
            self._fixed[key] = self._open().meta_value(key)
        return self._fixed[key]

    def _alive(self) -> bool:
        if time.monotonic() - self._live_at > LIVE_CHECK_S:
            self._live, self._live_at = run_dir_in_use(self.path), time.monotonic()
        return self._live

    def _status(self, store: RunStore) -> tuple[str, bool]:
        """The run's status as `cellseq status` tells it: ``running`` only while a process
        holds the run (else it was interrupted: a crash, a power cut)."""
        status = store.meta_value("status") or "unknown"
        live = self._alive()
        if status == "running" and not live:
            status = "interrupted"
        return status, live

    def _cells(self) -> dict[str, Any]:
        return self._meta("cells") or {}

    def _known(self, cell: str) -> None:
        if cell not in self._cells():
            raise NotFound(f"run {self.id} has no cell {cell!r}")

    def info(self) -> RunInfo:
        with self.lock:
            return self._info(self._open())

    def _info(self, store: RunStore) -> RunInfo:
        manifest = self._meta("manifest") or {}
        status, live = self._status(store)
        speed = manifest.get("speed")
        return RunInfo(self.id, manifest.get("campaign"), status, manifest.get("mode"),
                       float(speed) if speed else None, live, manifest.get("started_utc"))

    def version(self) -> tuple[object, ...]:
        with self.lock:
            store = self._open()
            states = tuple((s["cell"], s["state"], s["updated_t"], s["step_count"])
                           for s in store.cell_states())
            status, live = self._status(store)
            report = self.path / "report" / "summary.json"
            stamp = report.stat().st_mtime_ns if report.is_file() else None
            return (store.last_ids(), states, status, live, stamp)

    def overview(self) -> Overview:
        with self.lock:
            store = self._open()
            info = self._info(store)
            rows = []
            for s in store.cell_states():
                state = s["state"]
                if info.status == "interrupted" and state in UNFINISHED_CELL_STATES:
                    state = "interrupted"
                last = s["last"] or {}
                rows.append(CellRow(
                    s["cell"], state, s["experiment"], s["step_index"], s["step_kind"],
                    s["cycle"], last.get("t"), _finite(last.get("voltage_V")),
                    _finite(last.get("current_A")), _finite(last.get("temperature_C")),
                    s["checkpoint"].get("fault") if s["state"] == "faulted" else None))
            known = {r.cell for r in rows}
            for cell in self._cells():   # cells the run has not reached yet
                if cell not in known:
                    rows.append(CellRow(cell, "pending", None, None, None, None, None, None,
                                        None, None, None))
            return Overview(info, rows, store.last_ids()[1])

    def events(self, after_id: int, cell: str | None, limit: int) -> list[dict[str, Any]]:
        with self.lock:
            store = self._open()
            if cell is not None:
                self._known(cell)
            return store.events_after(after_id, limit, cell)

    def warm(self) -> None:
        for cell in list(self._cells()):
            with self.lock:
                self._caught_up(self._open(), cell)

    def _caught_up(self, store: RunStore, cell: str) -> Envelope:
        """The cell's series summary with everything committed since it was last used."""
        env = self._envelopes.setdefault(cell, Envelope())
        while True:
            got = _chunks(store, cell, env.last_chunk_id, None, 256)
            if not got:
                return env
            env.add(*_joined(got))

    def series(self, cell: str, t0: float | None, t1: float | None, width: int
               ) -> SeriesView:
        with self.lock:
            store = self._open()
            self._known(cell)
            env = self._caught_up(store, cell)

            def read_raw(first: int, last: int) -> dict[str, np.ndarray]:
                parts, after = [], first - 1
                while True:
                    got = _chunks(store, cell, after, last, 4096)
                    if not got:
                        break
                    parts.extend(got)
                    after = got[-1][0]
                return _joined(parts)[1]

            return env.view(t0, t1, width, read_raw)

    def cycles(self, cell: str) -> list[CycleRow]:
        with self.lock:
            store = self._open()
            self._known(cell)
            states = tuple((s["state"], s["updated_t"]) for s in store.cell_states()
                           if s["cell"] == cell)
            return self._keep(("cycles", cell), (store.last_ids(), states),
                              lambda: self._cycles(store, cell))

    def _cycles(self, store: RunStore, cell: str) -> list[CycleRow]:
        """The cell's cycles as the report counts them (:mod:`analysis.cycle_steps`), from
        what each step passed; the new chunks are folded in, the old ones not read again."""
        steps = store.steps(cell)
        state = next((s for s in store.cell_states() if s["cell"] == cell), None)
        experiment_of = {int(s["step_count"]): str(s["experiment"]) for s in steps}
        folds, after = self._folds.setdefault(cell, ({}, 0))
        try:
            while True:
                got = store.chunk_columns(cell, "series", ("step_count", *_COUNTER_COLUMNS),
                                          after_id=after, limit=256)
                if not got:
                    break
                for chunk_id, cols in got:
                    count = int(cols["step_count"][0]) if cols["step_count"].size else 0
                    experiment = experiment_of.get(count) or (state or {}).get("experiment", "")
                    folds.setdefault(experiment, PassedPerStep()).add(
                        count, {k: cols[k] for k in _COUNTER_COLUMNS})
                    after = chunk_id
        except AnalysisError as exc:
            raise SourceError(f"run {self.id}, cell {cell}: cycles: {exc}") from None
        finally:
            self._folds[cell] = (folds, after)
        info = self._cells()[cell]
        mass = info.get("active_mass_kg")
        finished = state is not None and state["state"] in ("completed", "faulted")
        running = None if finished or state is None else state.get("experiment")
        out: list[CycleRow] = []
        before = 0
        for experiment in _in_order(steps):
            mine = [s for s in steps if s["experiment"] == experiment]
            fold = folds.get(experiment)
            outcomes = outcomes_of(mine, fold.passed if fold else {}, {}, experiment)
            cycles = numbered_cycles(outcomes, mine, str(info.get("kind", "")), before)
            if cycles:
                before = cycles[-1].number
            for i, c in enumerate(cycles):
                complete = experiment != running or i < len(cycles) - 1
                ce = c.coulombic_efficiency
                out.append(CycleRow(
                    c.number, complete, c.charge_Ah, c.discharge_Ah,
                    _finite(ce) if complete and ce is not None else None,
                    c.charge_Ah / mass if mass else None,
                    c.discharge_Ah / mass if mass else None))
        return out

    def spectra(self, cell: str, last: int) -> list[Spectrum]:
        with self.lock:
            store = self._open()
            self._known(cell)
            return self._keep(("spectra", cell, last), store.last_ids(),
                              lambda: self._spectra(store, cell, last))

    def _spectra(self, store: RunStore, cell: str, last: int) -> list[Spectrum]:
        """The cell's last ``last`` spectra (a spectrum is a step's impedance points)."""
        data = store.read(cell, "spectrum")
        experiments = {s["step_count"]: s["experiment"] for s in store.steps(cell)}
        counts = data["step_count"]
        out = []
        for count in (np.unique(counts)[-last:] if last > 0 else []):
            sel = counts == count
            temps = data["temperature_C"][sel]
            temps = temps[np.isfinite(temps)]
            out.append(Spectrum(int(count), experiments.get(int(count), ""),
                                float(data["test_time_s"][sel][0]),
                                float(np.mean(temps)) if len(temps) else None,
                                data["frequency_Hz"][sel].tolist(),
                                data["z_real_ohm"][sel].tolist(),
                                data["z_imag_ohm"][sel].tolist()))
        return out

    def results(self) -> Results:
        with self.lock:
            expected = list(self._meta("expected") or [])
        summary_path = self.path / "report" / "summary.json"
        if not summary_path.is_file():
            return Results(False, expected=expected)
        stamp = summary_path.stat().st_mtime_ns
        with self.lock:
            return self._keep(("results",), stamp, lambda: self._results(summary_path,
                                                                         expected))

    def _results(self, summary_path: Path, expected: list[dict[str, Any]]) -> Results:
        try:
            with summary_path.open("rb") as f:
                raw = f.read(MAX_SUMMARY_BYTES + 1)
            if len(raw) > MAX_SUMMARY_BYTES:
                raise ValueError(f"larger than {MAX_SUMMARY_BYTES} bytes")
            summary = json.loads(raw)
            if not isinstance(summary, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise SourceError(f"run {self.id}: its report's summary.json cannot be read:"
                              f" {exc}") from None
        return Results(True, list(summary.get("results") or []),
                       list(summary.get("checks") or []), expected,
                       [str(n) for n in summary.get("notes") or []], self._figures(),
                       summary.get("run") if isinstance(summary.get("run"), dict) else None)

    def _figures(self) -> list[str]:
        folder = self.path / "report" / "figures"
        try:
            names = sorted(p.name for p in folder.iterdir())
        except OSError:
            return []
        return [n for n in names if FIGURE_NAME.match(n) and self._figure_path(n) is not None]

    def _figure_path(self, name: str) -> Path | None:
        """The figure's file, if ``name`` is a report figure's name and the file is a regular
        file inside the report's figures folder (not a link leading elsewhere)."""
        if not FIGURE_NAME.match(name):
            return None
        folder = self.path / "report" / "figures"
        path = folder / name
        if path.is_symlink() or not path.is_file() or \
                path.resolve().parent != folder.resolve():
            return None
        return path

    def figure(self, name: str) -> bytes:
        path = self._figure_path(name)
        if path is None:
            raise NotFound(f"run {self.id} has no figure {name!r}")
        with path.open("rb") as f:
            data = f.read(MAX_FIGURE_BYTES + 1)
        if len(data) > MAX_FIGURE_BYTES:
            raise SourceError(f"run {self.id}: figure {name} is larger than"
                              f" {MAX_FIGURE_BYTES} bytes")
        return data

    def control(self, action: Action, cell: str | None, who: str, address: str) -> str:
        with self.lock:
            store = self._open()
            if cell is not None:
                self._known(cell)
            self._live_at = -math.inf   # ask the lock itself, now
            status, live = self._status(store)
        if not live:
            raise Refused(f"no process is running {self.id} (it is {status}): it takes no"
                          " controls" + (f"; `cellseq resume {self.path}` continues it"
                                         if status not in FINISHED else ""))
        try:
            return write_request(self.path, action, cell, who, address)
        except ControlError as exc:
            raise SourceError(str(exc)) from None
        except OSError as exc:
            raise SourceError(f"run {self.id}: the request cannot be written:"
                              f" {exc.strerror or exc}") from None


def _chunks(store: RunStore, cell: str, after: int, until: int | None, limit: int
            ) -> list[tuple[int, dict[str, np.ndarray]]]:
    try:
        return store.chunk_columns(cell, "series", _COLUMNS, after, until, limit)
    except StoreError as exc:
        raise SourceError(f"cell {cell}: {exc}") from None


def _joined(got: list[tuple[int, dict[str, np.ndarray]]]
            ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Chunks as one array per column, and each point's chunk id."""
    if not got:
        return np.empty(0), {c: np.empty(0) for c in _COLUMNS}
    ids = np.concatenate([np.full(len(cols["test_time_s"]), cid) for cid, cols in got])
    return ids, {c: np.concatenate([cols[c] for _, cols in got]) for c in _COLUMNS}


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _in_order(steps: list[dict[str, Any]]) -> list[str]:
    """The experiments of a cell's steps, in the order they began."""
    out: list[str] = []
    for s in sorted(steps, key=lambda s: (s["started_t"] or 0.0, s["id"])):
        if s["experiment"] not in out:
            out.append(s["experiment"])
    return out
