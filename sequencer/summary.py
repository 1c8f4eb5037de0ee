"""The summary printed at the end of a run: each cell's outcome and the first derived results."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from analysis.derive import derive
from sequencer.status import run_status

MAX_LISTED = 8


def print_summary(console: Console, run_dir: Path, wall_s: float | None = None) -> None:
    st = run_status(run_dir)
    table = Table("cell", "state", "steps", "cycles", "points", "test time (h)",
                  title=f"{st['campaign']}: {st['status']}")
    for c in st["cells"]:
        hours = (c["last"] or {}).get("t", 0.0) / 3600
        table.add_row(c["cell"], c["state"], str(c["step"]), str(c["cycle"]), str(c["points"]),
                      f"{hours:.2f}")
    console.print(table)
    grouped: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for r in derive(run_dir).results:
        cond = ", ".join(f"{k}={v}" for k, v in r.conditions.items())
        grouped[(r.cell, r.quantity, r.unit)].append(f"{r.value:.4g} ({cond})" if cond
                                                     else f"{r.value:.4g}")
    if grouped:
        results = Table("cell", "quantity", "values", title="derived from the raw data")
        for (cell, quantity, unit), values in grouped.items():
            if len(values) > MAX_LISTED:   # long cycling: the first and last few
                shown = [*values[:3], f"... {len(values) - 5} more ...", *values[-2:]]
            else:
                shown = values
            results.add_row(cell, f"{quantity} / {unit}", "; ".join(shown))
        console.print(results)
    if wall_s is not None:
        console.print(f"wall time {wall_s:.2f} s")
    console.print(f"run directory: {run_dir}")
