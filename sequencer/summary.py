"""The summary printed at the end of a run: how it ended, each cell's outcome (with the fault
of every cell that faulted), the first derived results, the notes and the expected values
missed. It says what ``summary.json`` and the report say: it is printed from the same record."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Collection
from typing import Any

from rich.console import Console
from rich.table import Table

from sequencer.breakable import Breakable

MAX_LISTED = 8
#: Below this many columns the results' cell and quantity columns are held to these widths
#: ("discharge_capacity / mAh/g" stays one line, "diffusion_coefficient / cm2/s" wraps after
#: its name; a longer cell id wraps after a hyphen).
WIDE, QUANTITY_WIDTH, CELL_WIDTH = 100, 26, 20


def print_summary(console: Console, status: dict[str, Any], summary: dict[str, Any],
                  said: Collection[str] = ()) -> None:
    """``status``: :func:`sequencer.status.run_status`; ``summary``: the report's summary
    record (``summary.json``, or :func:`analysis.summary_record.summary_of`); ``said``: notes
    this command printed already (a plan's warnings, before the run), not printed again."""
    run = summary.get("run") or {}
    # numbers' headers on two lines: the room goes to the cell ids
    table = Table("cell", "state", "steps", "cycles", "points", "test time\n(h)",
                  title=f"{status['campaign']}: {run.get('status') or status['status']}")
    cycles = cycles_in_results(summary.get("results", []))
    for c in status["cells"]:
        hours = (c["last"] or {}).get("t", 0.0) / 3600
        table.add_row(Breakable(c["cell"]), c["state"], str(c["step_count"]),
                      str(cycles.get(c["cell"], "-")), str(c["points"]), f"{hours:.2f}")
    console.print(table)
    for c in run.get("cells", []):
        if c["state"] == "faulted":
            console.print(f"[bold red]faulted:[/] {c['cell']} in {c['experiment']}: {c['fault']}")
    for gap in run.get("not_derived", []):
        console.print(f"not derived: {gap['experiment']} on {gap['cell']}: {gap['reason']}")
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in summary.get("results", []):
        grouped[(r["cell"], r["quantity"], r["unit"])].append(r)
    if grouped:
        results = Table(title="derived from the raw data")
        # in a narrow terminal a cell id and a quantity's name wrap after a hyphen or an
        # underscore, leaving the values the room they need
        narrow = console.width < WIDE
        results.add_column("cell", max_width=CELL_WIDTH if narrow else None)
        results.add_column("quantity", max_width=QUANTITY_WIDTH if narrow else None)
        results.add_column("values")
        for (cell, quantity, unit), rows in grouped.items():
            if len(rows) > MAX_LISTED:   # pulses, GITT, long cycling: what they span
                shown = [_span(kind, members) for kind, members in _kinds(rows)]
                if len(shown) > MAX_LISTED:
                    shown = [*shown[:MAX_LISTED - 1],
                             f"... {len(shown) - MAX_LISTED + 1} more kinds ..."]
                text = "\n".join(shown)
            else:
                text = "; ".join(_value(r) + (f" ({_conditions(r['conditions'])})"
                                              if r["conditions"] else "") for r in rows)
            results.add_row(Breakable(cell), Breakable(f"{quantity} / {unit}"), text)
        console.print(results)
        if any(len(rows) > MAX_LISTED for rows in grouped.values()):
            console.print("every value with its conditions: the report's summary.json (`cellseq"
                          " report RUN_DIR` writes it)")
    elif run.get("status") != "completed":
        console.print("no derived results")
    for note in summary.get("notes", []):
        if note not in said:
            console.print(f"note: {note}")


def cycles_in_results(results: list[dict[str, Any]]) -> dict[str, int]:
    """Each cell's cycles as its results number them (``cycle=`` in their conditions): a
    charge and a discharge, as cyclers count them (:mod:`analysis.cycles`), whatever loops
    the protocol wrote them in. The executor's own counter (``cellseq status``'s ``loop
    cycle``) counts iterations of cycling loops instead: 0 for a check-up written without a
    loop, one fewer than the results for a formation cycle before the loops. A cell whose
    results number no cycle is left out (printed ``-``, not 0)."""
    seen: dict[str, set[tuple[str, Any]]] = defaultdict(set)
    for r in results:
        cycle = (r.get("conditions") or {}).get("cycle")
        if cycle is not None:
            seen[r["cell"]].add((r.get("experiment", ""), cycle))
    return {cell: len(numbers) for cell, numbers in seen.items()}


def _value(r: dict[str, Any]) -> str:
    return "null" if r["value"] is None else f"{r['value']:.4g}"


def _conditions(conditions: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in conditions.items())


def _kinds(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Results of one quantity split by their conditions that are names or flags (basis,
    statistic, direction, ...), in order of first appearance: a range over a GITT's electrode
    and particle bases together, or a median and the values it is the median of, would mean
    nothing."""
    kinds: dict[tuple[tuple[str, Any], ...], list[dict[str, Any]]] = {}
    for r in rows:
        key = tuple((k, v) for k, v in r["conditions"].items()
                    if isinstance(v, str | bool) or v is None)
        kinds.setdefault(key, []).append(r)
    return [(dict(key), members) for key, members in kinds.items()]


def _span(kind: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """One line for many values of a kind: their number, first and last, range and median,
    and what their numeric conditions span (a value alone keeps its conditions)."""
    head = f"{_conditions(kind)}: " if kind else ""
    if len(rows) == 1:
        rest = {k: v for k, v in rows[0]["conditions"].items() if k not in kind}
        return head + _value(rows[0]) + (f" ({_conditions(rest)})" if rest else "")
    values = [r["value"] for r in rows if r["value"] is not None]
    nulls = len(rows) - len(values)
    text = f"{len(rows)} values" + (f" ({nulls} null)" if nulls else "")
    if values:
        text += (f", first {_value(rows[0])}, last {_value(rows[-1])}, {min(values):.4g} to"
                 f" {max(values):.4g} (median {statistics.median(values):.4g})")
    spans = []
    for name in dict.fromkeys(k for r in rows for k in r["conditions"] if k not in kind):
        seen = [r["conditions"][name] for r in rows if r["conditions"].get(name) is not None]
        if not seen:
            continue
        low, high = min(seen), max(seen)
        spans.append(f"{name}={low}" if low == high else f"{name} {low} to {high}")
    return head + text + (f"; {', '.join(spans)}" if spans else "")


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
