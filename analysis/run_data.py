"""A run's raw data, read once from its store and cut per experiment and cell.

The analysis reads only the run store: the cells' descriptions (kind, material, geometry,
capacity) are stored with the run, so nothing here opens a protocol file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sequencer.export import frame
from sequencer.store import RunStore


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
        store = RunStore.open(self.run_dir)
        try:
            meta = store.meta()
            self.campaign: str = meta.get("manifest", {}).get("campaign", "")
            self.cells: dict[str, dict[str, Any]] = meta.get("cells", {})
            self.expected: list[dict[str, Any]] = meta.get("expected", [])
            self.experiments: list[dict[str, Any]] = meta.get("experiments", [])
            self.manifest: dict[str, Any] = meta.get("manifest", {})
            self.status: str = meta.get("status", "")
            #: each cell's final (or last) state: ``state``, ``experiment``, ``step_index``,
            #: ``step_kind``, ``checkpoint`` (with the ``fault``), as the store keeps them
            self.cell_states: dict[str, dict[str, Any]] = {s["cell"]: s
                                                           for s in store.cell_states()}
            self._steps = store.steps()
            self._stored_cells = set(store.cells())
        finally:
            store.close()

    def experiments_run(self, cell: str) -> set[str]:
        """The experiments in which ``cell`` ran at least one step."""
        return {s["experiment"] for s in self._steps if s["cell"] == cell}

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
            store = RunStore.open(self.run_dir)
            try:
                series = frame(store, cell, "series")
                spectra = store.read(cell, "spectrum")
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
