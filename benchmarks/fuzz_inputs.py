"""Long fuzzing of every input a user hands cellseq: zero tracebacks, no slow answer.

    python benchmarks/fuzz_inputs.py [--examples 20000]

Runs the strategies of ``tests/test_fuzz_inputs.py`` far longer than the test suite does:

- values with units (``parse_quantity`` in every dimension) and currents (``0.1C``, ``C/10``);
- PyBaMM step strings;
- protocol trees of four files with includes (inside and outside the folder, cycles, repeats,
  missing files, junk), loaded with and without ``allow_outside_includes``; every refusal must
  name the top file or carry the include chain from it, and the cell outside the folder must
  never join a campaign unless allowed;
- spectrum files (EC-Lab preambles with right and wrong header counts, decimal commas, odd line
  ends, latin-1 and UTF-16, hostile cells, raw bytes), read, their intercept and conductivity
  taken, and every 20th readable one fitted (the fit takes up to seconds).

Prints, per kind, the inputs tried, how many were accepted and refused, the tracebacks (target
0) and the slowest single answer.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # the strategies live with the tests

from analysis.eis import bulk_resistance, conductivity_S_per_m  # noqa: E402
from analysis.eis_fit import fit_bulk_resistance  # noqa: E402
from analysis.errors import AnalysisError  # noqa: E402
from analysis.spectrum_files import read_spectrum  # noqa: E402
from protocols import ProtocolError, load_campaign  # noqa: E402
from protocols.steps import parse_pybamm  # noqa: E402
from protocols.types import _current_setpoint  # noqa: E402
from protocols.units import DIMENSIONS, UnitError, parse_quantity  # noqa: E402
from tests.test_fuzz_inputs import (  # noqa: E402
    OUTSIDE,
    pybamm_strings,
    spectrum_texts,
    trees,
    values,
)


class Tally:
    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {}
        self.slowest: dict[str, float] = {}
        self.tracebacks: list[str] = []

    def run(self, kind: str, case: Callable[[], str], expected: tuple[type[Exception], ...]
            ) -> None:
        counts = self.counts.setdefault(kind, Counter())
        start = time.perf_counter()
        try:
            outcome = case()
        except expected:
            outcome = "refused"
        except Exception:   # what the fuzzing is for: any other exception is a finding
            outcome = "traceback"
            self.tracebacks.append(f"[{kind}] " + traceback.format_exc(limit=4))
        counts[outcome] += 1
        self.slowest[kind] = max(self.slowest.get(kind, 0.0), time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20_000,
                        help="inputs per kind (trees and spectra: a fifth of it)")
    args = parser.parse_args()
    tally = Tally()
    common = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck)}

    @settings(max_examples=args.examples, **common)
    @given(text=values, dimension=st.sampled_from(sorted(DIMENSIONS)))
    def value(text: str, dimension: str) -> None:
        def case() -> str:
            v = parse_quantity(text, dimension)
            assert math.isfinite(v)
            return "accepted"
        tally.run("value", case, (UnitError,))

    @settings(max_examples=args.examples, **common)
    @given(text=values)
    def current(text: str) -> None:
        tally.run("current", lambda: (_current_setpoint(text), "accepted")[1], (UnitError,))

    @settings(max_examples=args.examples, **common)
    @given(text=pybamm_strings)
    def pybamm(text: str) -> None:
        tally.run("pybamm", lambda: (parse_pybamm(text), "accepted")[1], (ValueError,))

    @settings(max_examples=max(args.examples // 5, 100), **common)
    @given(files=trees(), allow=st.booleans())
    def tree(files: dict[str, str], allow: bool) -> None:
        tally.run("protocol tree", lambda: _load_tree(files, allow), (ProtocolError,))

    fitted = Counter[str]()

    @settings(max_examples=max(args.examples // 5, 100), **common)
    @given(raw=st.one_of(spectrum_texts(), spectrum_texts(), st.binary(max_size=400)))
    def spectrum(raw: bytes) -> None:
        tally.run("spectrum file", lambda: _read_spectrum(raw, fitted), (AnalysisError,))

    wall = time.perf_counter()
    for run in (value, current, pybamm, tree, spectrum):
        run()
    wall = time.perf_counter() - wall
    total = sum(sum(c.values()) for c in tally.counts.values())
    print(f"inputs tried {total:>10,}  ({wall:.0f} s)")
    print(f"{'kind':<16}{'tried':>10}{'accepted':>10}{'refused':>10}{'traceback':>10}"
          f"{'slowest':>10}")
    for kind, counts in tally.counts.items():
        print(f"{kind:<16}{sum(counts.values()):>10,}{counts['accepted']:>10,}"
              f"{counts['refused']:>10,}{counts['traceback']:>10,}"
              f"{tally.slowest[kind] * 1e3:>8.0f}ms")
    print(f"spectra fitted {fitted['fitted']:,} (refused by the fit: {fitted['refused']:,})")
    for text in tally.tracebacks[:5]:
        print("---\n" + text)


def _load_tree(files: dict[str, str], allow: bool) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "outside.yaml").write_text(OUTSIDE, encoding="utf-8")
        folder = root / "protocol"
        for name, body in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(body.replace("{outside}", str(root / "outside.yaml")),
                                       encoding="utf-8")
        try:
            campaign = load_campaign(folder / "top.yaml", allow_outside_includes=allow)
        except ProtocolError as exc:
            for p in exc.problems:
                placed = not p.via if p.file == "top.yaml" else p.via[0].startswith("top.yaml:")
                if not (p.message and placed):
                    raise AssertionError(f"a problem not placed from the top file: {p}") from None
            raise
        if not allow and "stolen" in {c.id for c in campaign.cells}:
            raise AssertionError("a file outside the protocol's folder was read")
        return "accepted"


def _read_spectrum(raw: bytes, fitted: Counter[str]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.mpt"
        path.write_bytes(raw)
        spectrum = read_spectrum(path)
    r_b = bulk_resistance(spectrum.frequency_Hz, spectrum.z_real_ohm, spectrum.z_imag_ohm)
    if r_b > 0:
        conductivity_S_per_m(r_b, 300e-6, 2e-4)
    fitted["readable"] += 1
    if fitted["readable"] % 20 == 1:   # the fit takes up to seconds: every 20th spectrum
        try:
            fit_bulk_resistance(spectrum)
            fitted["fitted"] += 1
        except AnalysisError:
            fitted["refused"] += 1
    return "accepted"


if __name__ == "__main__":
    main()
