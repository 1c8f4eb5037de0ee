"""The per-cycle table ``cellseq export RUN --cycles`` writes: one row per cycle and cell.

Cycles are :mod:`analysis.cycles`' (a charge and the discharge after it, however the loops
nest), numbered over each cell's run as the report numbers them. Columns are named in the Battery
Data Format's style, a name and its unit:

``Cell``, ``Experiment``, ``Cycle Count / 1``, ``Tag``, ``Series / 1``,
``Charging Capacity / Ah``, ``Discharging Capacity / Ah``, ``Charging Energy / Wh``,
``Discharging Energy / Wh``, ``Coulombic Efficiency / %`` (discharge over charge of the cycle,
charge over discharge for a Li||Cu cell's; empty without both), ``Mean Charge Voltage / V``
and ``Mean Discharge Voltage / V`` (energy over
capacity), ``Charge End Reason`` and ``Discharge End Reason`` (how the half's last step ended),
``Temperature T1 / degC`` (the chamber's set point, else the measured mean), ``C-Rate / 1`` (the
discharge's, the charge's for a cycle without one), ``Charge C-Rate / 1`` and ``Note``: for a
full cell's cycle, the note the report's record carries where it reports its discharge capacity
or coulombic efficiency as null, or its efficiency as not the cell's (above 101 %): the table
keeps the raw numbers, the note says why the report does not take them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from analysis.cycles import Cycle, round_rate, series_of
from analysis.derive_cycling import CapacityChecks, capacity_unit, cell_cycles
from analysis.derived import Derived, Shared
from analysis.errors import AnalysisError
from analysis.run_data import CellExperiment, RunData

COLUMNS = ("Cell", "Experiment", "Cycle Count / 1", "Tag", "Series / 1",
           "Charging Capacity / Ah", "Discharging Capacity / Ah", "Charging Energy / Wh",
           "Discharging Energy / Wh", "Coulombic Efficiency / %", "Mean Charge Voltage / V",
           "Mean Discharge Voltage / V", "Charge End Reason", "Discharge End Reason",
           "Temperature T1 / degC", "C-Rate / 1", "Charge C-Rate / 1", "Note")


def cycle_table(run_dir: Path) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The table, what of a damaged store could not be read, and notes (a cell whose cycles
    could not be made, and why)."""
    data = RunData(run_dir)
    shared = Shared()
    rows: list[dict[str, object]] = []
    notes: list[str] = []
    for ce in data.cell_experiments():
        try:
            cycles = cell_cycles(ce, shared)
        except AnalysisError as exc:
            notes.append(f"{ce.experiment}/{ce.cell}: no cycles: {exc}")
            continue
        if not cycles:
            continue
        shared.cycles_before[ce.cell] = cycles[-1].number
        one_c = ce.info.get("capacity_Ah")
        number_of = {c.number: s.number for s in series_of(cycles, one_c) for c in s.cycles}
        note = _notes(ce)
        rows.extend(_row(ce.cell, ce.experiment, c, number_of[c.number], one_c) | {"Note": note(c)}
                    for c in cycles)
    return pd.DataFrame(rows, columns=list(COLUMNS)), data.damage, notes


def _row(cell: str, experiment: str, c: Cycle, series: int, one_c: float | None
         ) -> dict[str, object]:
    ce = c.coulombic_efficiency
    charge_rate = c.charge_c_rate(one_c)
    return {
        "Cell": cell, "Experiment": experiment, "Cycle Count / 1": c.number, "Tag": c.tag,
        "Series / 1": series,
        "Charging Capacity / Ah": c.charge_Ah, "Discharging Capacity / Ah": c.discharge_Ah,
        "Charging Energy / Wh": c.charge_Wh, "Discharging Energy / Wh": c.discharge_Wh,
        "Coulombic Efficiency / %": None if ce is None else 100 * ce,
        "Mean Charge Voltage / V":
            c.charge_Wh / c.charge_Ah if c.charge_Ah > 0 and c.charge_Wh > 0 else None,
        "Mean Discharge Voltage / V":
            c.discharge_Wh / c.discharge_Ah if c.discharge_Ah > 0 and c.discharge_Wh > 0
            else None,
        "Charge End Reason": c.charges[-1].end_reason if c.charges else "",
        "Discharge End Reason": c.discharges[-1].end_reason if c.discharges else "",
        "Temperature T1 / degC": c.temperature_degC,
        "C-Rate / 1": c.c_rate(one_c),
        "Charge C-Rate / 1": None if charge_rate is None else round_rate(charge_rate),
    }


def _notes(ce: CellExperiment) -> Callable[[Cycle], str]:
    """A cycle's note, as the report's records of a full cell give it (""  where none)."""
    mass, one_c = ce.info.get("active_mass_kg"), ce.info.get("capacity_Ah")
    if ce.kind != "full_cell" or not (mass or one_c):
        return lambda c: ""
    divisor, unit = capacity_unit(mass)
    checks = CapacityChecks(ce, (one_c or 0.0) / divisor, Derived(), unit, per_gram=bool(mass))

    def note(c: Cycle) -> str:
        if not c.discharges:
            return ""   # the report judges only cycles with a discharge
        verdict = checks.judge(c, c.discharge_Ah / divisor, bool(one_c))
        return verdict.ce_note or verdict.capacity_problem or ""

    return note
