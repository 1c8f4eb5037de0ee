"""`cellseq analyze eis` on a series: a 2,000-point, 30-spectrum file (target <= 2 s).

Writes 30 PEIS loops of 67 points (1 MHz - 0.1 Hz, an R_b || C arc with a blocking tail whose
R_b grows from 15 to 28 Ohm) in EC-Lab's .mpt layout, and times, best of three:

- the analysis in-process (read, cut into spectra, intercepts, conductivities);
- the whole command, `cellseq analyze eis FILE --thickness --diameter`, as a user runs it
  (a new Python process: imports, reading, JSON), without and with --plot;
- the same on the real 32-loop VSP file in tests/data (.mpr through galvani, and its .mpt).

The fit cross-check is not run on a series by default (a fit takes a second or more per
spectrum); the last line times it on one spectrum. Run: python benchmarks/analyze_eis_series.py
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from analysis.eis_series import Geometry, analyse
from analysis.spectrum_files import read_spectra

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "yadg_eclab"
SPECTRA, POINTS = 30, 67


def write_series(path: Path) -> None:
    f = np.logspace(6, -1, POINTS)
    w = 2 * np.pi * f
    rows = []
    for k in range(SPECTRA):
        r_b = 15 + 13 * k / (SPECTRA - 1)
        z = r_b / (1 + 1j * w * r_b * 2e-10) + 1 / ((1j * w) ** 0.9 * 2e-6)
        t0 = k * 3600.0
        for i in range(POINTS):
            rows.append(f"{f[i]:.7E}\t{z[i].real:.7E}\t{-z[i].imag:.7E}\t{t0 + i:.6E}"
                        f"\t{k + 1:.15E}\t0")
    header = ["EC-Lab ASCII FILE", "Nb header lines : 4",
              "Potentio Electrochemical Impedance Spectroscopy",
              "freq/Hz\tRe(Z)/Ohm\t-Im(Z)/Ohm\ttime/s\tcycle number\tNs"]
    path.write_text("\r\n".join(header + rows) + "\r\n", encoding="latin-1")


def best_of(n: int, run) -> float:
    best = float("inf")
    for _ in range(n):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def command(path: Path, *extra: str) -> float:
    args = [sys.executable, "-m", "sequencer", "analyze", "eis", str(path), "--thickness",
            "300um", "--diameter", "16mm", *extra]

    def run() -> None:
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(done.stderr)
    return best_of(3, run)


def main() -> None:
    geometry = Geometry(300e-6, np.pi * 0.008**2)
    with tempfile.TemporaryDirectory() as folder:
        synthetic = Path(folder) / "series.mpt"
        write_series(synthetic)
        real_mpt = Path(folder) / "vsp_peis_with.mpt"
        real_mpt.write_bytes(gzip.decompress((DATA / "vsp_peis_with.mpt.gz").read_bytes()))
        for label, path in (("synthetic .mpt, 30 x 67 points", synthetic),
                            ("real VSP .mpr, 32 x 70 points", DATA / "vsp_peis_with.mpr"),
                            ("real VSP .mpt, 32 x 70 points", real_mpt)):
            series = read_spectra(path)
            inside = best_of(3, lambda p=path: analyse(read_spectra(p), geometry, None))
            whole = command(path)
            plotted = command(path, "--plot", str(Path(folder) / "plot.png"))
            print(f"{label}: {len(series.spectra)} spectra; analysis {inside:.3f} s; the"
                  f" command {whole:.2f} s, with --plot {plotted:.2f} s")
        one = read_spectra(DATA / "vsp_peis_with.mpr")
        one = type(one)(one.source, one.spectra[:1], one.notes, one.galvanostatic)
        fit = best_of(1, lambda: analyse(one, geometry, True))
        print(f"fit cross-check of one 70-point spectrum: {fit:.2f} s (so --fit on 32: about"
              f" {32 * fit:.0f} s)")


if __name__ == "__main__":
    main()
