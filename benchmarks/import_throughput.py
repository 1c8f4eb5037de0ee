"""`cellseq import` throughput: rows per second for a 1 M-row file (target >= 0.5 M rows/s).

Writes a 1,000,000-row GCPL file in EC-Lab's .mpt text layout (preamble, tab-separated
columns as EC-Lab names them, decimal points) and the same points as a BDF CSV, then times
`import_files` on each (read, cut into steps, write the run store), best of three. Prints
rows/s and MB/s. Run: python benchmarks/import_throughput.py [ROWS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sequencer.importer import ImportedCell, import_files

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
PER_HALF_CYCLE = 2_000


def points(rows: int) -> pd.DataFrame:
    """Half cycles of +-1 mA at 1 s, the voltage a smooth ramp with noise."""
    rng = np.random.default_rng(1)
    k = np.arange(rows)
    half = k // PER_HALF_CYCLE
    current = np.where(half % 2 == 0, 1.0, -1.0)
    phase = (k % PER_HALF_CYCLE) / PER_HALF_CYCLE
    voltage = np.where(current > 0, 3.0 + 1.2 * phase, 4.2 - 1.2 * phase)
    voltage += rng.normal(0, 1e-4, rows)
    return pd.DataFrame({"mode": 1, "ox/red": (current > 0).astype(int), "error": 0,
                         "control changes": 0, "Ns changes": 0, "counter inc.": 0,
                         "Ns": half % 2, "time/s": k * 1.0, "control/V/mA": current,
                         "Ewe/V": voltage, "<I>/mA": current, "dq/mA.h": current / 3600.0,
                         "half cycle": half, "cycle number": half // 2})


def write_mpt(frame: pd.DataFrame, path: Path) -> None:
    preamble = ["EC-Lab ASCII FILE", "Nb header lines : 6", "",
                "Galvanostatic Cycling with Potential Limitation",
                "Acquisition started on : 01/10/2024 11:02:29.886"]
    with path.open("w", encoding="latin-1", newline="\r\n") as out:
        out.write("\n".join(preamble) + "\n")
        out.write("\t".join(frame.columns) + "\t\n")
        frame.to_csv(out, sep="\t", header=False, index=False, float_format="%.6E",
                     lineterminator="\t\n")


def write_bdf(frame: pd.DataFrame, path: Path) -> None:
    pd.DataFrame({"Test Time / s": frame["time/s"], "Voltage / V": frame["Ewe/V"],
                  "Current / A": frame["<I>/mA"] * 1e-3,
                  "Cycle Count / 1": frame["cycle number"] + 1,
                  "Step Count / 1": frame["half cycle"] + 1}).to_csv(path, index=False)


def main() -> None:
    frame = points(ROWS)
    cell = ImportedCell(kind="full_cell")
    with tempfile.TemporaryDirectory() as folder:
        for name, write in (("gcpl.mpt", write_mpt), ("gcpl.csv", write_bdf)):
            path = Path(folder) / name
            write(frame, path)
            size = path.stat().st_size / 1e6
            best = float("inf")
            for k in range(3):
                start = time.perf_counter()
                outcome = import_files([path], Path(folder) / f"run-{name}-{k}", cell)
                best = min(best, time.perf_counter() - start)
                assert outcome.points == ROWS
            print(f"{name}: {ROWS:,} rows ({size:.0f} MB, {outcome.steps} steps) imported in"
                  f" {best:.2f} s: {ROWS / best / 1e6:.2f} M rows/s, {size / best:.0f} MB/s")


if __name__ == "__main__":
    main()
