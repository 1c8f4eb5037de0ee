"""The summary printed at the end of a run: how it ended, each cell's outcome (with the fault
of every cell that faulted), the first derived results, the notes and the expected values
missed. It says what ``summary.json`` and the report say: it is printed from the same record."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rich.console import Console
from rich.table import Table

MAX_LISTED = 8


def print_summary(console: Console, status: dict[str, Any], summary: dict[str, Any]) -> None:
    """``status``: :func:`sequencer.status.run_status`; ``summary``: the report's summary
    record (``summary.json``, or :func:`analysis.summary_record.summary_of`)."""
    run = summary.get("run") or {}
    table = Table("cell", "state", "steps", "cycles", "points", "test time (h)",
                  title=f"{status['campaign']}: {run.get('status') or status['status']}")
    for c in status["cells"]:
        hours = (c["last"] or {}).get("t", 0.0) / 3600
        table.add_row(c["cell"], c["state"], str(c["step_count"]), str(c["cycle"]),
                      str(c["points"]), f"{hours:.2f}")
    console.print(table)
    for c in run.get("cells", []):
        if c["state"] == "faulted":
            console.print(f"[bold red]faulted:[/] {c['cell']} in {c['experiment']}: {c['fault']}")
    for gap in run.get("not_derived", []):
        console.print(f"not derived: {gap['experiment']} on {gap['cell']}: {gap['reason']}")
    grouped: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for r in summary.get("results", []):
        cond = ", ".join(f"{k}={v}" for k, v in r["conditions"].items())
        value = "null" if r["value"] is None else f"{r['value']:.4g}"
        grouped[(r["cell"], r["quantity"], r["unit"])].append(f"{value} ({cond})" if cond
                                                               else value)
    if grouped:
        results = Table("cell", "quantity", "values", title="derived from the raw data")
        for (cell, quantity, unit), values in grouped.items():
            if len(values) > MAX_LISTED:   # long cycling: the first and last few
                shown = [*values[:3], f"... {len(values) - 5} more ...", *values[-2:]]
            else:
                shown = values
            results.add_row(cell, f"{quantity} / {unit}", "; ".join(shown))
        console.print(results)
    elif run.get("status") != "completed":
        console.print("no derived results")
    for note in summary.get("notes", []):
        console.print(f"note: {note}")


def misses(summary: dict[str, Any]) -> list[str]:
    """Each expected value that was not met, as a line: the check's experiment, cell,
    quantity and conditions, what was measured against what was expected, and why."""
    lines = []
    for c in summary.get("checks") or []:
        if c["status"] == "pass":
            continue
        cond = ", ".join(f"{k}={v}" for k, v in (c["conditions"] or {}).items())
        where = f"{c['experiment']}/{c['cell'] or '*'}: {c['quantity']}" + \
            (f" ({cond})" if cond else "")
        measured = "nothing" if c["measured"] is None else f"{c['measured']:.4g} {c['unit']}"
        tolerance = f"+-{100 * c['tolerance']:g} %"
        if c.get("abs_tolerance") is not None:
            tolerance += f" or +-{c['abs_tolerance']:g} {c['unit']}"
        why = f": {c['note']}" if c.get("note") else ""
        lines.append(f"{where}: measured {measured}, expected {c['expected']:.4g} {c['unit']}"
                     f" {tolerance}: {c['status']}{why}")
    return lines
