"""Derived results of a run, read from its store alone: conductivity per spectrum of blocking
cells, discharge capacity per cycle of full cells. The report (issue-level work) builds on this."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from analysis.cycling import cycle_table
from analysis.eis import bulk_resistance, conductivity_S_per_m
from analysis.errors import AnalysisError
from analysis.results import Result
from sequencer.export import frame
from sequencer.store import RunStore

S_PER_M_TO_MS_PER_CM = 10.0  # 1 S/m = 10 mS/cm


def derive_results(run_dir: Path) -> list[Result]:
    store = RunStore.open(Path(run_dir))
    try:
        cells: dict[str, dict[str, Any]] = store.meta().get("cells", {})
        experiment_of = {(s["cell"], s["step_count"]): s["experiment"] for s in store.steps()}
        results: list[Result] = []
        for cell_id, info in cells.items():
            results += _impedance_results(store, cell_id, info, experiment_of)
            results += _cycling_results(store, cell_id, info, experiment_of)
        return results
    finally:
        store.close()


def _impedance_results(store: RunStore, cell: str, info: dict[str, Any],
                       experiment_of: dict[tuple[str, int], str]) -> list[Result]:
    data = store.read(cell, "spectrum")
    out: list[Result] = []
    for step in np.unique(data["step_count"]):
        sel = data["step_count"] == step
        try:
            r_b = bulk_resistance(data["frequency_Hz"][sel], data["z_real_ohm"][sel],
                                  data["z_imag_ohm"][sel])
        except AnalysisError:
            continue
        temperature = float(np.nanmean(data["temperature_C"][sel]))
        conditions = {"temperature_degC": round(temperature, 1)}
        experiment = experiment_of.get((cell, int(step)), "")
        material = info.get("electrolyte", "")
        out.append(Result(experiment, cell, material, "bulk_resistance", r_b, "Ohm", conditions))
        if info.get("kind") == "blocking":
            sigma = conductivity_S_per_m(r_b, info["thickness_m"], info["area_m2"])
            out.append(Result(experiment, cell, material, "ionic_conductivity",
                              sigma * S_PER_M_TO_MS_PER_CM, "mS/cm", conditions))
    return out


def _cycling_results(store: RunStore, cell: str, info: dict[str, Any],
                     experiment_of: dict[tuple[str, int], str]) -> list[Result]:
    mass = info.get("active_mass_kg")
    if not mass:
        return []
    df = frame(store, cell, "series")
    if df.empty or df["Cycle Count / 1"].max() < 1:
        return []
    table = cycle_table(df, mass)
    out = []
    material = info.get("cathode", "")
    for row in table.itertuples(index=False):
        steps = df.loc[df["Cycle Count / 1"] == row.cycle, "Step Count / 1"]
        experiment = experiment_of.get((cell, int(steps.iloc[0])), "") if len(steps) else ""
        if np.isfinite(row.discharge_capacity_mAh_g) and row.discharge_capacity_mAh_g > 0:
            out.append(Result(experiment, cell, material, "discharge_capacity",
                              row.discharge_capacity_mAh_g, "mAh/g", {"cycle": int(row.cycle)}))
        if np.isfinite(row.coulombic_efficiency):
            out.append(Result(experiment, cell, material, "coulombic_efficiency",
                              100 * row.coulombic_efficiency, "%", {"cycle": int(row.cycle)}))
    return out
