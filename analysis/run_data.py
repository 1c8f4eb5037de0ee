"""A run's raw data, read once from its store and cut per experiment and cell.

The analysis reads only the run store: the cells' descriptions (kind, material, geometry,
capacity) are stored with the run, so nothing here opens a protocol file.

A damaged store is salvaged: every row that can still be read is used, and :attr:`RunData.damage`
lists what could not be (the report shows it, and ``cellseq report`` then exits 2).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.cycle_steps import StepFold, outcomes_of, step_outcomes
from analysis.cycles import StepOutcome
from store import RunStore
from store.frames import BDF_NAMES, frame_of

# pandas is imported where a frame is made: a run's printed summary with nothing to derive
# loads neither it nor pyarrow (tests/test_startup_imports.py)
if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Spectrum:
    step_count: int
    test_time_s: float
    temperature_C: float
    frequency_Hz: np.ndarray
    z_real_ohm: np.ndarray
    z_imag_ohm: np.ndarray


class PointSource:
    """Where a cell's points are: its run store, read on demand (one step's rows, a few
    columns, or chunk by chunk), so an analysis holds what it uses and no more."""

    def __init__(self, run_dir: Path, cell: str, damage: list[str],
                 cell_steps: set[int] | None = None) -> None:
        self.run_dir, self.cell, self.damage = run_dir, cell, damage
        #: every step count the cell has: asked for all of them, the store streams the
        #: cell's chunks from one query instead of one query per chunk
        self.cell_steps = cell_steps

    def frame(self, step_counts: set[int], columns: tuple[str, ...] | None = None
              ) -> pd.DataFrame:
        """The points of these steps, in the order stored (BDF names; with ``columns``, BDF
        names too, only those and the step, cycle and step index)."""
        store_columns = None if columns is None else \
            tuple(k for k, v in BDF_NAMES.items() if v in columns)
        store = RunStore.open(self.run_dir, salvage=True)
        try:
            data = store.read(self.cell, "series", self.damage, store_columns, step_counts)
        finally:
            store.close()
        return frame_of(data)

    def blocks(self, step_counts: set[int]) -> Iterator[tuple[int, int, np.ndarray]]:
        """These steps' chunks one at a time as ``(id, step_count, block)``, ``block`` the
        chunk's columns as the rows of one array (``store.schema.SERIES_COLUMNS``): a fold
        over every chunk of a long run costs no dict per chunk."""
        every = self.cell_steps is not None and step_counts >= self.cell_steps
        store = RunStore.open(self.run_dir, salvage=True)
        try:
            for chunk_id, step_count, _, _, block in store.chunk_blocks(
                    self.cell, "series", self.damage, None if every else step_counts):
                if step_count in step_counts:   # as the store's own filter would
                    yield chunk_id, step_count, block
        finally:
            store.close()


class CellExperiment:
    """One cell's data within one experiment.

    Its points are read from the store when an analysis asks for them: :attr:`series` (every
    column of the experiment's points, read once and kept), :meth:`rows_of` (some steps, some
    columns) and :meth:`outcomes` (what each step passed, folded chunk by chunk). Given a
    ``series`` frame instead of a ``source`` (an imported file, a test), all come from it."""

    def __init__(self, experiment: str, cell: str, info: dict[str, Any],
                 steps: list[dict[str, Any]], series: pd.DataFrame | None = None,
                 spectra: list[Spectrum] | None = None, source: PointSource | None = None
                 ) -> None:
        if series is None and source is None:
            raise ValueError("a cell's experiment needs its series or a source of it")
        self.experiment, self.cell, self.info, self.steps = experiment, cell, info, steps
        self.spectra: list[Spectrum] = spectra or []
        self._series, self._source = series, source
        self._outcomes: list[StepOutcome] | None = None
        self._has_points: bool | None = None

    @property
    def series(self) -> pd.DataFrame:
        """Every point of the experiment (BDF column names), read once."""
        if self._series is None:
            assert self._source is not None
            self._series = self._source.frame(self._counts(self.steps))
        return self._series

    @property
    def kind(self) -> str:
        return str(self.info.get("kind", ""))

    @property
    def material(self) -> str:
        return str(self.info.get("cathode") or self.info.get("electrolyte") or "")

    def steps_of(self, *kinds: str) -> list[dict[str, Any]]:
        return [s for s in self.steps if s["kind"] in kinds]

    def rows_of(self, steps: list[dict[str, Any]], columns: tuple[str, ...] | None = None
                ) -> pd.DataFrame:
        """The points of ``steps`` (with ``columns``: only those BDF columns, and the step,
        cycle and step index), read from the store unless the whole series is at hand."""
        counts = self._counts(steps)
        if self._series is None and self._source is not None:
            return self._source.frame(counts, columns)
        rows = self.series[self.series["Step Count / 1"].isin(counts)]
        return rows if columns is None else rows[[c for c in rows.columns if c in columns or
                                                  c in _COUNT_COLUMNS]]

    def outcomes(self) -> list[StepOutcome]:
        """Each step's :class:`~analysis.cycles.StepOutcome`: what it passed and its
        temperature, folded chunk by chunk from the store (or from :attr:`series`)."""
        if self._outcomes is None:
            if self._series is not None or self._source is None:
                self._outcomes = step_outcomes(self.steps, self.series, self.experiment)
                self._has_points = not self.series.empty
            else:
                fold = StepFold()
                for _, step_count, block in self._source.blocks(self._counts(self.steps)):
                    fold.add(step_count, block)
                fold.finish()
                self._outcomes = outcomes_of(self.steps, fold.passed,
                                             fold.temperatures(), self.experiment)
                self._has_points = fold.points > 0
        return self._outcomes

    @property
    def has_points(self) -> bool:
        """Whether the experiment stored any point of this cell."""
        if self._has_points is None:
            if self._series is not None:
                self._has_points = not self._series.empty
            else:
                self.outcomes()
        return bool(self._has_points)

    @staticmethod
    def _counts(steps: list[dict[str, Any]]) -> set[int]:
        return {int(s["step_count"]) for s in steps}


_COUNT_COLUMNS = ("Cycle Count / 1", "Step Count / 1", "Step Index / 1")


class RunData:
    """A run's index (its cells, experiments, states and which cell ran which steps), read
    once; ``integrity``: SQLite's check of every page of the store first (a read of the whole
    file, for a report that reads it all anyway)."""

    def __init__(self, run_dir: Path, integrity: bool = True) -> None:
        self.run_dir = Path(run_dir)
        #: What of a damaged store could not be read (empty for an intact one).
        self.damage: list[str] = []
        store = RunStore.open(self.run_dir, integrity=integrity, salvage=True)
        try:
            self.damage.extend(store.damage)
            meta = store.meta(self.damage)
            self.manifest: dict[str, Any] = meta.get("manifest", {})
            self.campaign: str = str(self.manifest.get("campaign", ""))
            self.cells: dict[str, dict[str, Any]] = meta.get("cells", {})
            self.expected: list[dict[str, Any]] = meta.get("expected", [])
            self.status: str = meta.get("status", "")
            #: each cell's final (or last) state: ``state``, ``experiment``, ``step_index``,
            #: ``step_kind``, ``checkpoint`` (with the ``fault``), as the store keeps them
            self.cell_states: dict[str, dict[str, Any]] = {
                s["cell"]: s for s in store.cell_states(self.damage)}
            # which cell ran in which experiment: the steps themselves are read a cell at a time
            owners = store.step_owners(self.damage)
            self._ran = list(dict.fromkeys(owners))
            #: how many steps each cell ran (a cell's analysis takes longer the more it has)
            self.step_counts: dict[str, int] = dict(Counter(cell for cell, _ in owners))
            self._stored_cells = set(store.chunk_cells(self.damage))
            self.experiments: list[dict[str, Any]] = meta.get("experiments") or \
                self._experiments_from_steps()
        finally:
            store.close()

    def experiments_run(self, cell: str) -> set[str]:
        """The experiments in which ``cell`` ran at least one step."""
        return {experiment for owner, experiment in self._ran if owner == cell}

    def _experiments_from_steps(self) -> list[dict[str, Any]]:
        """The experiments and their cells as the steps show them: when the store's list of
        them is damaged, what of the analysis can still be made."""
        out: dict[str, list[str]] = {}
        for cell, experiment in self._ran:
            cells = out.setdefault(experiment, [])
            if cell not in cells:
                cells.append(cell)
        return [{"name": name, "cells": cells} for name, cells in out.items()]

    def cells_with_points(self) -> list[str]:
        """The cells of the experiments that stored points, in the order
        :meth:`cell_experiments` takes them."""
        return [cell for cell in self._experiments_by_cell() if cell in self._stored_cells]

    def _experiments_by_cell(self) -> dict[str, list[str]]:
        by_cell: dict[str, list[str]] = {}
        for exp in self.experiments:
            for cell in exp["cells"]:
                by_cell.setdefault(cell, []).append(exp["name"])
        return by_cell

    def cell_experiments(self, only: str | None = None) -> Iterator[CellExperiment]:
        """Each (experiment, cell) pair with data, cell by cell (of the cell ``only``, where
        given). Its points stay in the store until an analysis reads them (see
        :class:`CellExperiment`): at most one experiment's points of one cell are in memory
        at a time, however long the campaign."""
        for cell, experiments in self._experiments_by_cell().items():
            if cell not in self._stored_cells or (only is not None and cell != only):
                continue
            store = RunStore.open(self.run_dir, salvage=True)
            try:
                cell_steps = store.steps(cell, damage=self.damage)
            finally:
                store.close()
            source = PointSource(self.run_dir, cell, self.damage,
                                 {int(s["step_count"]) for s in cell_steps})
            for name in experiments:
                steps = [s for s in cell_steps if s["experiment"] == name]
                if not steps:
                    continue
                counts = {s["step_count"] for s in steps}
                store = RunStore.open(self.run_dir, salvage=True)
                try:
                    spectra = store.read(cell, "spectrum", self.damage, step_counts=counts)
                finally:
                    store.close()
                yield CellExperiment(name, cell, self.cells.get(cell, {}), steps,
                                     spectra=self._spectra_of(spectra, counts), source=source)

    @staticmethod
    def _spectra_of(data: dict[str, np.ndarray], counts: set[int]) -> list[Spectrum]:
        if data is None or not len(data["step_count"]):
            return []
        out = []
        for step in np.unique(data["step_count"]):
            if int(step) not in counts:
                continue
            sel = data["step_count"] == step
            temps = data["temperature_C"][sel]
            out.append(Spectrum(int(step), float(data["test_time_s"][sel][0]),
                                float(np.nanmean(temps)) if np.isfinite(temps).any() else
                                float("nan"),
                                data["frequency_Hz"][sel], data["z_real_ohm"][sel],
                                data["z_imag_ohm"][sel]))
        return out
