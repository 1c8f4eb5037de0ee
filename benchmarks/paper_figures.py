"""The paper's headline figures against a full dry run of the campaign, side by side.

    python benchmarks/paper_figures.py [--seed N]

Dry-runs ``protocols/aiose/campaign.yaml`` on the simulators, writes the report, and prints
every expected value the protocol files declare (the paper's numbers) beside the value the
analysis derived from the raw data, with the relative difference and pass/fail at 5 %.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from analysis.report import make_report
from sequencer.runner import run_simulated

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--protocol", type=Path, default=ROOT / "protocols/aiose/campaign.yaml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        t = time.perf_counter()
        outcome = run_simulated(args.protocol, run_dir, args.seed)
        t_run = time.perf_counter() - t
        summary_path, _, notes, *_ = make_report(run_dir)
        t_report = time.perf_counter() - t - t_run
        checks = json.loads(summary_path.read_text())["checks"]
    print(f"dry run {t_run:.1f} s, report {t_report:.1f} s, faulted cells: "
          f"{', '.join(outcome.faulted) or 'none'}")
    grouped: dict[tuple, list[dict]] = defaultdict(list)
    for c in checks:
        key = (c["cell"], c["quantity"], json.dumps(
            # repeated measurements of one figure (cycles, a sweep's legs, a series' number)
            # are one row, the worst shown
            {k: v for k, v in (c["conditions"] or {}).items()
             if k not in ("cycle", "sequence", "series")},
            sort_keys=True))
        grouped[key].append(c)
    print(f"{'cell':26} {'quantity':26} {'conditions':44} {'paper':>8} {'dry run':>9}"
          f" {'diff':>7}  ok")
    passed = 0
    for (cell, quantity, cond), rows in grouped.items():
        worst = max(rows, key=lambda c: abs(c["relative_difference"] or 1.0))
        ok = all(c["status"] == "pass" for c in rows)
        passed += ok
        measured = "-" if worst["measured"] is None else f"{worst['measured']:.4g}"
        diff = "-" if worst["relative_difference"] is None else \
            f"{100 * worst['relative_difference']:+.1f}%"
        print(f"{cell:26} {quantity:26} {cond[:44]:44} {worst['expected']:>8.4g}"
              f" {measured:>9} {diff:>7}  {'yes' if ok else 'NO'}")
    print(f"{passed} of {len(grouped)} figures within 5 % (worst cycle shown where several)")
    for note in notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
