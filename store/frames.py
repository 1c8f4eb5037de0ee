"""A run's points as tables: Battery Data Format style column names (with units).

The export writes these frames and the analysis reads them, so both see one set of names.
"""

from __future__ import annotations

import pandas as pd

from store.run_store import RunStore

#: Store column -> Battery Data Format style name.
BDF_NAMES = {
    "test_time_s": "Test Time / s",
    "step_time_s": "Step Time / s",
    "utc_s": "Unix Time / s",
    "voltage_V": "Voltage / V",
    "current_A": "Current / A",
    "temperature_C": "Temperature T1 / degC",
    "charge_Ah": "Charging Capacity / Ah",
    "discharge_Ah": "Discharging Capacity / Ah",
    "charge_Wh": "Charging Energy / Wh",
    "discharge_Wh": "Discharging Energy / Wh",
    "cycle": "Cycle Count / 1",
    "step_count": "Step Count / 1",
    "step_index": "Step Index / 1",
    "frequency_Hz": "Frequency / Hz",
    "z_real_ohm": "Z Real / Ohm",
    "z_imag_ohm": "Z Imag / Ohm",
}


def frame(store: RunStore, cell: str, kind: str = "series",
          damage: list[str] | None = None) -> pd.DataFrame:
    """One cell's time series (``series``) or impedance points (``spectrum``), BDF names;
    with ``damage``, damaged chunks are left out and listed there."""
    columns = store.read(cell, kind, damage)
    df = pd.DataFrame({BDF_NAMES[k]: v for k, v in columns.items()})
    return df[[BDF_NAMES[k] for k in BDF_NAMES if BDF_NAMES[k] in df.columns]]
