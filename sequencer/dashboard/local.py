"""Runs in local run directories, for the dashboard (a :class:`RunSource`).

Each run's store is opened read-only and kept open; SQLite's WAL mode lets it read while the
run's process writes, and a reader never blocks that writer. Every call on a run holds the
run's lock (one connection, used from the web layer's worker threads one at a time). Only
paths found at start (the directories given, and the subdirectories of ``--runs``) are ever
opened: a run id is a name looked up here, never a path.

A cell's points are read once, oldest first, and only when a page asks for them: each read
feeds the cell's series summary, what its steps passed (its cycles) and its spectra, and the
next request reads only the chunks committed since. A long run's first view reads its
millions of points over several requests (``READ_BUDGET_S`` each, the first less; the run's
lock released in between): each answers at once with what has been read so far, marked
incomplete, so a page draws at once and fills in, and no other request of the run waits
seconds behind it. Nothing is read for a run no page shows.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sequencer.dashboard.envelope import QUANTITIES, Envelope, SeriesView
from sequencer.dashboard.run_dirs import check_run_dirs, found_under
from sequencer.dashboard.source import (
    CellRow,
    ControlReceipt,
    CycleRow,
    Cycles,
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
from store import RunStore, StoreError

if TYPE_CHECKING:   # loaded with the first cycles asked for: pandas is slow to import
    from analysis.cycle_steps import PassedPerStep
    from sequencer.controls import Action

#: How often ``--runs`` is looked through for new runs, and a run's process for being alive;
#: a run id not (yet) known has the folder looked through again at most every RESCAN_ASKED_S.
RESCAN_S = 5.0
RESCAN_ASKED_S = 0.5
LIVE_CHECK_S = 2.0
#: Wall time one request spends reading a cell's points it has not read before; the first
#: request of a cell less, so a long run's page first draws sooner (what it has read then is
#: marked incomplete and fills in with the next requests).
READ_BUDGET_S = 0.15
FIRST_READ_BUDGET_S = 0.05
#: Chunks per read (a chunk is one poll's points: a few to a few thousand).
READ_CHUNKS = 256
#: A cell's points are kept in memory while it has at most this many (a few MB per cell):
#: a live plot of the whole cell is then drawn again each second without reading the store.
KEEP_POINTS = 50_000
#: The report's figure names (analysis.report_html writes no others).
FIGURE_NAME = re.compile(r"^fig\d{3}-[a-z0-9-]*\.png$")
MAX_SUMMARY_BYTES = 64 * 2 ** 20
MAX_FIGURE_BYTES = 32 * 2 ** 20
_COLUMNS = ("test_time_s", *QUANTITIES)
#: The cumulative counters cycles are counted from (analysis.cycle_steps.COUNTERS' keys).
_COUNTER_COLUMNS = ("charge_Ah", "discharge_Ah", "charge_Wh", "discharge_Wh")
_SPECTRUM_COLUMNS = ("step_count", "test_time_s", "temperature_C", "frequency_Hz",
                     "z_real_ohm", "z_imag_ohm")


class _ByRun:
    """The per-run half of :class:`~sequencer.dashboard.source.RunSource`: each call goes to
    the run's own reader, which :meth:`_run` finds (local folders and the lab record alike)."""

    def _run(self, run_id: str) -> _LocalRun:
        raise NotImplementedError

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

    def cycles(self, run_id: str, cell: str) -> Cycles:
        return self._run(run_id).cycles(cell)

    def spectra(self, run_id: str, cell: str, last: int) -> list[Spectrum]:
        return self._run(run_id).spectra(cell, last)

    def results(self, run_id: str) -> Results:
        return self._run(run_id).results()

    def figure(self, run_id: str, name: str) -> bytes:
        return self._run(run_id).figure(name)

    def control(self, run_id: str, action: Action, cell: str | None, who: str,
                address: str) -> ControlReceipt:
        return self._run(run_id).control(action, cell, who, address)


class LocalRuns(_ByRun):
    """The runs of the directories given and, with ``runs_root``, of every subdirectory of it
    that holds a run (looked through again every ``RESCAN_S``, so new runs appear)."""

    def __init__(self, run_dirs: Sequence[Path] = (), runs_root: Path | None = None) -> None:
        self._root = runs_root
        self._by_path: dict[Path, _LocalRun] = {}
        self._by_id: dict[str, _LocalRun] = {}
        self._lock = threading.Lock()
        self._scanned = self._asked = -math.inf
        check_run_dirs(run_dirs, runs_root)
        for d in run_dirs:
            self._add(d)
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
        for path in found_under(self._root):
            self._add(path)

    def _run(self, run_id: str) -> _LocalRun:
        with self._lock:
            self._rescan()
            run = self._by_id.get(run_id)
            if run is None and time.monotonic() - self._asked > RESCAN_ASKED_S:
                self._asked, self._scanned = time.monotonic(), -math.inf   # a run just begun
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


    def close(self) -> None:
        with self._lock:
            for run in self._by_id.values():
                run.close()


class _CellPoints:
    """What has been read of one cell's points, in chunk order: its series summary, what each
    experiment's steps passed (cycles are counted from it), and its spectra."""

    def __init__(self) -> None:
        self.envelope = Envelope()
        #: every point read, with its chunk id, while there are at most KEEP_POINTS (then
        #: None for good: views read the store)
        self.kept: tuple[np.ndarray, dict[str, np.ndarray]] | None = (
            np.empty(0), {c: np.empty(0) for c in _COLUMNS})
        self.last_chunk = 0              # the last series chunk read
        self.complete = False            # every series chunk committed so far was read
        self.last_fold_chunk = 0         # the last series chunk folded into ``folds``
        self.folded = False
        self.points_folded = 0
        self.folds: dict[str, PassedPerStep] = {}
        self.fold_error: str | None = None
        self.last_spectrum_chunk = 0
        self.spectra: dict[int, list[dict[str, np.ndarray]]] = {}   # step count -> chunks


class _LocalRun:
    def __init__(self, run_id: str, path: Path) -> None:
        self.id, self.path = run_id, path
        self.lock = threading.Lock()
        self._store: RunStore | None = None
        self._fixed: dict[str, Any] = {}     # meta that never changes (manifest, cells)
        self._points: dict[str, _CellPoints] = {}
        self._live, self._live_at = False, -math.inf
        #: answers kept until the store changes (its newest chunk and event ids move)
        self._kept: dict[tuple[object, ...], tuple[object, Any]] = {}
        #: (cell, step count) -> experiment, from the step rows up to ``_last_step_row``
        self._experiments: dict[tuple[str, int], str] = {}
        self._last_step_row = 0

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

    def _read_series(self, store: RunStore, cell: str) -> _CellPoints:
        """The cell's series summary with the chunks committed since it was last used, read
        for at most ``READ_BUDGET_S`` (``complete`` says whether it has them all)."""
        points = self._points.setdefault(cell, _CellPoints())
        budget_s = READ_BUDGET_S if points.last_chunk else FIRST_READ_BUDGET_S
        deadline = time.perf_counter() + budget_s
        while True:
            got = _chunks(store, cell, points.last_chunk, None, READ_CHUNKS, _COLUMNS)
            if got:
                ids, columns = _joined(got)
                points.envelope.add(ids, columns)
                points.last_chunk = got[-1][0]
                _keep_points(points, ids, columns)
            points.complete = len(got) < READ_CHUNKS
            if points.complete or time.perf_counter() > deadline:
                return points

    def _fold_counters(self, store: RunStore, cell: str) -> _CellPoints:
        """What the cell's steps passed, with the chunks committed since (for at most
        ``READ_BUDGET_S``; ``folded`` says whether they are all in)."""
        from analysis.cycle_steps import PassedPerStep  # pandas: loaded with the first cycles
        from analysis.errors import AnalysisError

        points = self._points.setdefault(cell, _CellPoints())
        deadline = time.perf_counter() + READ_BUDGET_S
        while points.fold_error is None:
            got = _chunks(store, cell, points.last_fold_chunk, None, READ_CHUNKS,
                          ("step_count", *_COUNTER_COLUMNS))
            try:
                for count, counters in _by_step(got):
                    experiment = self._experiment(store, cell, count)
                    points.folds.setdefault(experiment, PassedPerStep()).add(count, counters)
            except AnalysisError as exc:
                points.fold_error = f"run {self.id}, cell {cell}: cycles: {exc}"
            if got:
                points.last_fold_chunk = got[-1][0]
                points.points_folded += sum(len(c["step_count"]) for _, c in got)
            points.folded = len(got) < READ_CHUNKS
            if points.folded or time.perf_counter() > deadline:
                break
        return points

    def _experiment(self, store: RunStore, cell: str, count: int) -> str:
        """The experiment of a cell's step, from the step rows as stored (read on, only
        those added since, when a step is not known yet)."""
        key = (cell, count)
        if key not in self._experiments:
            while True:
                rows = store.rows_after("steps", self._last_step_row, 4096)
                for r in rows:
                    self._experiments[(str(r["cell"]), int(r["step_count"]))] = \
                        str(r["experiment"])
                    self._last_step_row = int(r["id"])
                if len(rows) < 4096:
                    break
        if key not in self._experiments:   # the step's row is not committed: the cell's now
            return str(self._state_of(store, cell).get("experiment") or "")
        return self._experiments[key]

    def _state_of(self, store: RunStore, cell: str) -> dict[str, Any]:
        return next((s for s in store.cell_states() if s["cell"] == cell), {})

    def series(self, cell: str, t0: float | None, t1: float | None, width: int
               ) -> SeriesView:
        with self.lock:
            store = self._open()
            self._known(cell)
            points = self._read_series(store, cell)

            def read_raw(first: int, last: int) -> dict[str, np.ndarray]:
                if points.kept is not None:   # every point read is in memory
                    ids, columns = points.kept
                    lo = int(np.searchsorted(ids, first, side="left"))
                    hi = int(np.searchsorted(ids, last, side="right"))
                    return {c: v[lo:hi] for c, v in columns.items()}
                parts, after = [], first - 1
                while True:
                    got = _chunks(store, cell, after, last, 4096, _COLUMNS)
                    if not got:
                        break
                    parts.extend(got)
                    after = got[-1][0]
                return _joined(parts)[1]

            if points.complete:
                return points.envelope.view(t0, t1, width, read_raw)
            # a first view, still reading: over the whole run's span (to the last values the
            # run recorded), from the blocks' extremes
            span = points.envelope.span()
            last_t = _finite((self._state_of(store, cell).get("last") or {}).get("t"))
            t_last = max(span[1] if span else 0.0, last_t or 0.0)
            view = points.envelope.view(t0, t_last if t1 is None else t1, width, read_raw,
                                        coarse=True)
            return replace(view, complete=False, t_last_s=max(view.t_last_s or 0.0, t_last),
                           points_total=store.point_count(cell, "series"))

    def cycles(self, cell: str) -> Cycles:
        with self.lock:
            store = self._open()
            self._known(cell)
            points = self._fold_counters(store, cell)
            if points.fold_error is not None:
                raise SourceError(points.fold_error)
            if not points.folded:
                return Cycles([], False, points.points_folded, store.point_count(cell, "series"))
            state = self._state_of(store, cell)
            stamp = (points.last_fold_chunk, state.get("state"), state.get("updated_t"),
                     state.get("step_count"))
            rows = self._keep(("cycles", cell), stamp,
                              lambda: self._cycles(store, cell, points, state))
            return Cycles(rows, True, points.points_folded, points.points_folded)

    def _cycles(self, store: RunStore, cell: str, points: _CellPoints,
                state: dict[str, Any]) -> list[CycleRow]:
        """The cell's cycles as the report counts them (:mod:`analysis.cycle_steps`), from
        what each step passed, folded in as the cell's points were read."""
        from analysis.cycle_steps import numbered_cycles, outcomes_of

        steps = store.steps(cell)
        info = self._cells()[cell]
        mass = info.get("active_mass_kg")
        finished = state.get("state") in ("completed", "faulted")
        running = None if finished or not state else state.get("experiment")
        out: list[CycleRow] = []
        before = 0
        for experiment in _in_order(steps):
            mine = [s for s in steps if s["experiment"] == experiment]
            fold = points.folds.get(experiment)
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
        """The cell's last ``last`` spectra (a spectrum is a step's impedance points); only
        the spectrum chunks committed since the last call are read."""
        with self.lock:
            store = self._open()
            self._known(cell)
            points = self._points.setdefault(cell, _CellPoints())
            while True:
                got = _chunks(store, cell, points.last_spectrum_chunk, None, READ_CHUNKS,
                              _SPECTRUM_COLUMNS, "spectrum")
                for chunk_id, cols in got:
                    points.spectra.setdefault(int(cols["step_count"][0]), []).append(cols)
                    points.last_spectrum_chunk = chunk_id
                if len(got) < READ_CHUNKS:
                    break
            counts = sorted(points.spectra)[-last:] if last > 0 else []
            experiments = {c: self._experiment(store, cell, c) for c in counts}
        out = []
        for count in counts:
            data = {c: np.concatenate([part[c] for part in points.spectra[count]])
                    for c in _SPECTRUM_COLUMNS}
            temps = data["temperature_C"][np.isfinite(data["temperature_C"])]
            out.append(Spectrum(count, experiments[count],
                                float(data["test_time_s"][0]),
                                float(np.mean(temps)) if len(temps) else None,
                                data["frequency_Hz"].tolist(), data["z_real_ohm"].tolist(),
                                data["z_imag_ohm"].tolist()))
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

    def control(self, action: Action, cell: str | None, who: str,
                address: str) -> ControlReceipt:
        from sequencer.controls import ControlError, write_request

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
            return ControlReceipt(write_request(self.path, action, cell, who, address))
        except ControlError as exc:
            raise SourceError(str(exc)) from None
        except OSError as exc:
            raise SourceError(f"run {self.id}: the request cannot be written:"
                              f" {exc.strerror or exc}") from None


def _chunks(store: RunStore, cell: str, after: int, until: int | None, limit: int,
            columns: tuple[str, ...] = ("step_count", *_COLUMNS, *_COUNTER_COLUMNS),
            kind: str = "series") -> list[tuple[int, dict[str, np.ndarray]]]:
    try:
        return store.chunk_columns(cell, kind, columns, after, until, limit)
    except StoreError as exc:
        raise SourceError(f"cell {cell}: {exc}") from None


def _joined(got: list[tuple[int, dict[str, np.ndarray]]]
            ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Chunks as one array per series column, and each point's chunk id."""
    if not got:
        return np.empty(0), {c: np.empty(0) for c in _COLUMNS}
    ids = np.concatenate([np.full(len(cols["test_time_s"]), cid) for cid, cols in got])
    return ids, {c: np.concatenate([cols[c] for _, cols in got]) for c in _COLUMNS}


def _by_step(got: list[tuple[int, dict[str, np.ndarray]]]
             ) -> list[tuple[int, dict[str, np.ndarray]]]:
    """The chunks' counters, consecutive chunks of one step joined (a step's chunks folded
    at once, as one: the same amounts, fewer calls)."""
    out: list[tuple[int, list[dict[str, np.ndarray]]]] = []
    for _, cols in got:
        count = int(cols["step_count"][0])
        if out and out[-1][0] == count:
            out[-1][1].append(cols)
        else:
            out.append((count, [cols]))
    return [(count, {c: np.concatenate([p[c] for p in parts]) if len(parts) > 1
                     else parts[0][c] for c in _COUNTER_COLUMNS}) for count, parts in out]


def _keep_points(points: _CellPoints, ids: np.ndarray, columns: dict[str, np.ndarray]
                 ) -> None:
    """Points just read, added to those kept in memory (or none kept, past KEEP_POINTS)."""
    if points.kept is None:
        return
    kept_ids, kept = points.kept
    if len(kept_ids) + len(ids) > KEEP_POINTS:
        points.kept = None
        return
    points.kept = (np.concatenate([kept_ids, ids]),
                   {c: np.concatenate([kept[c], columns[c]]) for c in _COLUMNS})


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
