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
            self._steps = store.steps()
            self._series = {c: frame(store, c, "series") for c in store.cells()}
            self._spectra = {c: store.read(c, "spectrum") for c in store.cells()}
        finally:
            store.close()

    def cell_experiments(self) -> Iterator[CellExperiment]:
        """Each (experiment, cell) pair with data, in the campaign's order."""
        for exp in self.experiments:
            for cell in exp["cells"]:
                steps = [s for s in self._steps
                         if s["cell"] == cell and s["experiment"] == exp["name"]]
                if not steps or cell not in self._series:
                    continue
                counts = {s["step_count"] for s in steps}
                series = self._series[cell]
                rows = series[series["Step Count / 1"].isin(counts)] if len(series) else series
                yield CellExperiment(exp["name"], cell, self.cells.get(cell, {}), steps,
                                     rows.reset_index(drop=True),
                                     self._spectra_of(cell, counts))

    def _spectra_of(self, cell: str, counts: set[int]) -> list[Spectrum]:
        data = self._spectra.get(cell)
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
