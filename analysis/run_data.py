"""A run's raw data, read once from its store and cut per experiment and cell.

The analysis reads only the run store: the cells' descriptions (kind, material, geometry,
capacity) are stored with the run, so nothing here opens a protocol file.

A damaged store is salvaged: every row that can still be read is used, and :attr:`RunData.damage`
lists what could not be (the report shows it, and ``cellseq report`` then exits 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from store import RunStore
from store.frames import frame


@dataclass(frozen=True)
class Spectrum:
    step_count: int
    test_time_s: float
    temperature_C: float
    frequency_Hz: np.ndarray
    z_real_ohm: np.ndarray
    z_imag_ohm: np.ndarray


@dataclass
class CellExperiment:
    """One cell's data within one experiment."""

    experiment: str
    cell: str
    info: dict[str, Any]
    steps: list[dict[str, Any]]
    series: pd.DataFrame            # BDF column names, this experiment's rows only
    spectra: list[Spectrum] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(self.info.get("kind", ""))

    @property
    def material(self) -> str:
        return str(self.info.get("cathode") or self.info.get("electrolyte") or "")

    def steps_of(self, *kinds: str) -> list[dict[str, Any]]:
        return [s for s in self.steps if s["kind"] in kinds]

    def rows_of(self, steps: list[dict[str, Any]]) -> pd.DataFrame:
        counts = {s["step_count"] for s in steps}
        return self.series[self.series["Step Count / 1"].isin(counts)]


class RunData:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        #: What of a damaged store could not be read (empty for an intact one).
        self.damage: list[str] = []
        store = RunStore.open(self.run_dir, integrity=True, salvage=True)
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
            self._steps = store.steps(damage=self.damage)
            self._stored_cells = set(store.chunk_cells(self.damage))
            self.experiments: list[dict[str, Any]] = meta.get("experiments") or \
                self._experiments_from_steps()
        finally:
            store.close()

    def experiments_run(self, cell: str) -> set[str]:
        """The experiments in which ``cell`` ran at least one step."""
        return {s["experiment"] for s in self._steps if s["cell"] == cell}

    def _experiments_from_steps(self) -> list[dict[str, Any]]:
        """The experiments and their cells as the steps show them: when the store's list of
        them is damaged, what of the analysis can still be made."""
        out: dict[str, list[str]] = {}
        for s in self._steps:
            cells = out.setdefault(s["experiment"], [])
            if s["cell"] not in cells:
                cells.append(s["cell"])
        return [{"name": name, "cells": cells} for name, cells in out.items()]

    def cell_experiments(self) -> Iterator[CellExperiment]:
        """Each (experiment, cell) pair with data, cell by cell: one cell's points are in
        memory at a time, however long the campaign."""
        by_cell: dict[str, list[str]] = {}
        for exp in self.experiments:
            for cell in exp["cells"]:
                by_cell.setdefault(cell, []).append(exp["name"])
        for cell, experiments in by_cell.items():
            if cell not in self._stored_cells:
                continue
            store = RunStore.open(self.run_dir, salvage=True)
            try:
                series = frame(store, cell, "series", self.damage)
                spectra = store.read(cell, "spectrum", self.damage)
            finally:
                store.close()
            for name in experiments:
                steps = [s for s in self._steps if s["cell"] == cell and s["experiment"] == name]
                if not steps:
                    continue
                counts = {s["step_count"] for s in steps}
                rows = series[series["Step Count / 1"].isin(counts)] if len(series) else series
                yield CellExperiment(name, cell, self.cells.get(cell, {}), steps,
                                     rows.reset_index(drop=True),
                                     self._spectra_of(spectra, counts))

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
