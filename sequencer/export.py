"""Export a run to CSV or Parquet with Battery Data Format style column names (with units)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sequencer.store import RunStore

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
FORMATS = ("csv", "parquet")


def frame(store: RunStore, cell: str, kind: str = "series") -> pd.DataFrame:
    """One cell's time series (``series``) or impedance points (``spectrum``), BDF names."""
    columns = store.read(cell, kind)
    df = pd.DataFrame({BDF_NAMES[k]: v for k, v in columns.items()})
    return df[[BDF_NAMES[k] for k in BDF_NAMES if BDF_NAMES[k] in df.columns]]


def export_run(run_dir: Path, fmt: str, out_dir: Path | None = None) -> list[Path]:
    """Write ``<cell>.<fmt>`` (time series) and ``<cell>-eis.<fmt>`` (impedance) per cell."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out_dir = out_dir or Path(run_dir) / "export"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    store = RunStore.open(Path(run_dir))
    try:
        for cell in store.cells():
            for kind, suffix in (("series", ""), ("spectrum", "-eis")):
                df = frame(store, cell, kind)
                if df.empty:
                    continue
                path = out_dir / f"{cell}{suffix}.{fmt}"
                if fmt == "csv":
                    df.to_csv(path, index=False)
                else:
                    df.to_parquet(path, index=False)
                written.append(path)
    finally:
        store.close()
    return written
