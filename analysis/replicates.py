"""Replicates: cells of one experiment in the same role, their mean and standard deviation.

**A role** is what a cell is in an experiment, all but its name: its kind, its materials
(electrolyte, cathode, anode and N/P ratio) and its geometry (membrane thickness and area,
electrode area, active mass, nominal capacity; equal to 4 significant digits). (Runs recorded
before the store kept the anode compare the rest.) Cells of one experiment that share
a role are replicates: they ran the same steps on the same kind of cell, so their results for one
quantity under one set of conditions are repeated measurements of one thing.

For each such quantity and set of conditions that every replicate (at least two) reported as a
number: ``n``, ``mean`` and the sample standard deviation ``std`` (n - 1). Conditions that are
measured rather than set (a spectrum's time, a relaxed voltage, a state of charge counted from
the charge, a fit's misfit) differ from cell to cell and are left out of the matching; where a
cell then has two results for one match, that quantity is not averaged (it would be a guess which
to pair).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.results import Result

if TYPE_CHECKING:   # matplotlib once a figure is drawn: not for the numbers alone
    from matplotlib.figure import Figure

#: What makes a cell's role (keys of the cell descriptions the run store keeps).
ROLE_KEYS = ("kind", "electrolyte", "cathode", "anode", "np_ratio", "thickness_m", "area_m2",
             "electrode_area_m2", "active_mass_kg", "capacity_Ah")
#: Conditions measured, not set: left out when results of replicates are matched.
MEASURED_CONDITIONS = frozenset({"time_s", "day", "relaxed_voltage_V", "voltage_V",
                                 "soc_percent", "fit_rmse_percent", "circuit", "cycles",
                                 "first_cycle", "last_cycle", "pulses"})
#: Replicate traces drawn with a band against these conditions.
BAND_AXES = ("cycle", "temperature_degC")


def role(info: Mapping[str, Any]) -> dict[str, Any]:
    """A cell's role: its description without its name, numbers to 4 significant digits."""
    out: dict[str, Any] = {}
    for key in ROLE_KEYS:
        value = info.get(key)
        if value is None:
            continue
        out[key] = float(f"{value:.4g}") if isinstance(value, float) else value
    return out


def replicate_summary(experiments: Sequence[Mapping[str, Any]],
                      cells: Mapping[str, Mapping[str, Any]],
                      results: Sequence[Result]) -> list[dict[str, Any]]:
    """One record per experiment, role, quantity and conditions with two or more replicates:
    ``experiment``, ``role``, ``cells``, ``quantity``, ``unit``, ``conditions``, ``n``,
    ``mean``, ``std``."""
    out = []
    for exp in experiments:
        groups: dict[str, list[str]] = {}
        for cell in exp["cells"]:
            groups.setdefault(json.dumps(role(cells.get(cell, {})), sort_keys=True),
                              []).append(cell)
        for key, members in groups.items():
            if len(members) < 2:
                continue
            out.extend(_group(exp["name"], json.loads(key), members, results))
    return out


def _group(experiment: str, role_: dict[str, Any], members: list[str],
           results: Sequence[Result]) -> list[dict[str, Any]]:
    values: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for r in results:
        if r.experiment != experiment or r.cell not in members or r.value is None:
            continue
        kept = {k: v for k, v in r.conditions.items() if k not in MEASURED_CONDITIONS}
        key = (r.quantity, r.unit, json.dumps(kept, sort_keys=True))
        values.setdefault(key, {}).setdefault(r.cell, []).append(float(r.value))
    out = []
    for (quantity, unit, conditions), by_cell in values.items():
        if len(by_cell) < 2 or any(len(v) != 1 for v in by_cell.values()):
            continue
        numbers = np.array([v[0] for v in by_cell.values()])
        out.append({"experiment": experiment, "role": role_, "cells": sorted(by_cell),
                    "quantity": quantity, "unit": unit, "conditions": json.loads(conditions),
                    "n": int(numbers.size), "mean": float(numbers.mean()),
                    "std": float(numbers.std(ddof=1))})
    return out


def band_figures(replicates: Sequence[Mapping[str, Any]]
                 ) -> list[tuple[str, str, Figure]]:
    """Mean +- std against cycle or temperature, one figure per experiment, quantity and
    unit, one band per role (and per other condition that is not the axis)."""
    from analysis.plots_series import band  # matplotlib: only to draw

    figures = []
    grouped: dict[tuple[str, str, str, str], dict[str, list[tuple[float, float, float]]]] = {}
    for rec in replicates:
        axis = next((a for a in BAND_AXES if a in rec["conditions"]), None)
        if axis is None:
            continue
        rest = {k: v for k, v in rec["conditions"].items() if k not in (axis, "series")}
        label = ", ".join(rec["cells"])
        if rest:
            label += " (" + ", ".join(f"{k}={v}" for k, v in sorted(rest.items())) + ")"
        grouped.setdefault((rec["experiment"], rec["quantity"], rec["unit"], axis), {}) \
            .setdefault(label, []).append((float(rec["conditions"][axis]), rec["mean"],
                                           rec["std"]))
    for (experiment, quantity, unit, axis), traces in grouped.items():
        if not any(len(points) >= 2 for points in traces.values()):
            continue
        shown = sorted(traces.items(), key=lambda kv: -len(kv[1]))[:8]
        groups = [(label, [p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts])
                  for label, pts in shown]
        xlabel = "cycle" if axis == "cycle" else "temperature / degC"
        figures.append((experiment, f"replicates: {quantity} (mean +- std)",
                        band(groups, xlabel, f"{quantity.replace('_', ' ')} / {unit}",
                             title=f"{quantity.replace('_', ' ')}: mean and standard"
                             " deviation of replicate cells", integer_x=axis == "cycle")))
    return figures
