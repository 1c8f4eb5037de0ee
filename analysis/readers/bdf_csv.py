"""Battery Data Format CSV: cellseq's own export, and other software that writes BDF names.

Columns are named ``Quantity / unit`` (``Test Time / s``, ``Voltage / V``, ``Current / A``,
``Cycle Count / 1``, ``Step Count / 1``, ``Unix Time / s``, ``Temperature T1 / degC``,
``Charging Capacity / Ah`` ... and for impedance ``Frequency / Hz``, ``Z Real / Ohm``,
``Z Imag / Ohm``). ``Test Time / s`` is required, and ``Voltage / V`` and ``Current / A``
for a time series; a file without them is not a BDF file.
"""

from __future__ import annotations

import io

import numpy as np

from analysis.errors import AnalysisError
from analysis.readers.recording import Recording, cumulative_counters

COLUMNS = {"Test Time / s": "time_s", "Voltage / V": "voltage_V", "Current / A": "current_A",
           "Temperature T1 / degC": "temperature_C", "Charging Capacity / Ah": "charge_Ah",
           "Discharging Capacity / Ah": "discharge_Ah", "Charging Energy / Wh": "charge_Wh",
           "Discharging Energy / Wh": "discharge_Wh", "Frequency / Hz": "frequency_Hz",
           "Z Real / Ohm": "z_real_ohm", "Z Imag / Ohm": "z_imag_ohm"}
COUNTERS = {"Cycle Count / 1": "cycle", "Step Count / 1": "step"}
UNIX_TIME = "Unix Time / s"


def read_bdf_csv(raw: bytes, name: str) -> Recording:
    import pyarrow as pa
    from pyarrow import csv

    first = raw.split(b"\n", 1)[0].decode("utf-8-sig", "replace").rstrip("\r")
    header = [h.strip().strip('"') for h in first.split(",")]
    missing = [c for c in ("Test Time / s",) if c not in header]
    if not missing and "Frequency / Hz" not in header:
        missing = [c for c in ("Voltage / V", "Current / A") if c not in header]
    if missing:
        wanted = ", ".join(repr(m) for m in missing)
        found = ", ".join(repr(h) for h in header[:8])
        raise AnalysisError(f"{name}: not a BDF CSV file: no {wanted} column in its header"
                            f" (found {found})")
    notes: list[str] = []
    truncated = None
    body = raw
    end = raw.rstrip(b"\r\n").rfind(b"\n") + 1
    last = raw[end:].rstrip(b"\r\n")
    if end and last and last.count(b",") < first.count(","):
        lines = raw[:end].count(b"\n")
        truncated = (f"the file is cut off in line {lines + 1} (a partial line); its"
                     f" {lines - 1:,} whole lines of points are read")
        body = raw[:end]
    wanted = [c for c in (*COLUMNS, *COUNTERS, UNIX_TIME) if c in header]
    try:
        table = csv.read_csv(io.BytesIO(body), read_options=csv.ReadOptions(block_size=16 << 20),
                             convert_options=csv.ConvertOptions(
                                 include_columns=wanted,
                                 column_types={c: pa.float64() for c in wanted}))
    except (pa.ArrowInvalid, ValueError) as exc:
        said = " ".join(str(exc).split())[:300]
        raise AnalysisError(f"{name}: the BDF table cannot be read: {said}") from None
    values = {c: table.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
              for c in wanted}
    columns = {COLUMNS[c]: v for c, v in values.items() if c in COLUMNS}
    counters = {COUNTERS[c]: np.nan_to_num(v).astype(np.int64)
                for c, v in values.items() if c in COUNTERS}
    start = None
    if UNIX_TIME in values and len(values[UNIX_TIME]) and np.isfinite(values[UNIX_TIME][0]):
        start = float(values[UNIX_TIME][0] - columns["time_s"][0])
    else:
        notes.append("no 'Unix Time / s' column: the file does not say when it started")
    counted = {"charge_Ah", "discharge_Ah"} <= set(columns)
    if "current_A" in columns and not counted:
        cumulative, how = cumulative_counters(name, columns["time_s"], columns["current_A"],
                                              columns.get("voltage_V"), None)
        columns.update(cumulative)
        notes.append(how)
    for key in ("frequency_Hz", "z_real_ohm", "z_imag_ohm"):
        if key in columns and not {"frequency_Hz", "z_real_ohm", "z_imag_ohm"} <= set(columns):
            columns.pop(key)
    return Recording(name, "BDF CSV", "", columns, counters, start_utc=start,
                     truncated=truncated, notes=notes)
