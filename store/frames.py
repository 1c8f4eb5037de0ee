"""A run's points as tables: Battery Data Format style column names (with units).

The export writes these frames and the analysis reads them, so both see one set of names.
:func:`batches` gives a cell's points a bounded number of rows at a time, for whatever must
go through all of them (an export) without holding them all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from store.run_store import RunStore
from store.schema import SERIES_COLUMNS, SPECTRUM_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

#: What a chunk holds once for all its points (its step and cycle), stored apart from its blob.
COUNTS = ("cycle", "step_count", "step_index")

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
    return frame_of(store.read(cell, kind, damage))


def frame_of(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Columns read from the store (:meth:`RunStore.read`) as a frame, BDF names in order."""
    import pandas as pd  # here: an export streams its batches to pyarrow without pandas

    return pd.DataFrame({BDF_NAMES[k]: columns[k] for k in BDF_NAMES if k in columns})


#: Rows per batch of :func:`batches`: 13 columns of 8 bytes make a batch about 27 MB.
BATCH_ROWS = 262_144


def batches(store: RunStore, cell: str, kind: str = "series",
            damage: list[str] | None = None, rows: int | None = None
            ) -> Iterator[dict[str, np.ndarray]]:
    """One cell's points of one kind as :func:`frame`'s columns, in the order stored, about
    ``rows`` (:data:`BATCH_ROWS`) at a time (whole chunks: a batch ends at the first chunk
    that fills it). The chunks come from one streamed query and each batch's columns are
    joined in one step apiece, so no Python runs per point, and little per chunk."""
    rows = rows or BATCH_ROWS
    names = SPECTRUM_COLUMNS if kind == "spectrum" else SERIES_COLUMNS
    pending: list[tuple[int, int, int, int, np.ndarray]] = []
    count = 0
    for chunk in store.chunk_blocks(cell, kind, damage):
        pending.append(chunk)
        count += chunk[4].shape[1]
        if count >= rows:
            yield _joined(pending, names)
            pending, count = [], 0
    if pending:
        yield _joined(pending, names)


def _joined(chunks: list[tuple[int, int, int, int, np.ndarray]], names: tuple[str, ...]
            ) -> dict[str, np.ndarray]:
    """The chunks' columns end to end (each a contiguous array), BDF names in order."""
    sizes = [c[4].shape[1] for c in chunks]
    block = np.concatenate([c[4] for c in chunks], axis=1)
    row = {name: i for i, name in enumerate(names)}
    counts = {"step_count": 1, "step_index": 2, "cycle": 3}   # where in a chunk's tuple
    out = {}
    for name, bdf in BDF_NAMES.items():
        if name in counts:
            out[bdf] = np.repeat(np.array([c[counts[name]] for c in chunks], dtype=np.int64),
                                 sizes)
        elif name in row:
            out[bdf] = block[row[name]]
    return out
