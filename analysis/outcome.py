"""How a run ended, for its report: the run's status, each cell's final state and fault, and
what was not derived because a cell did not complete.

Read from the run store only (through :class:`~analysis.run_data.RunData`): the cells' last
states, the steps they ran and the experiments they were in. A cell that did not complete
leaves two kinds of gap: the experiment it stopped in is cut short (its results, if any, come
from the data before the stop), and its later experiments never ran.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from analysis.results import Result
from analysis.run_data import RunData

#: Cell states of a cell still on its way (shown as interrupted when the run is).
UNFINISHED = ("running", "paused", "pending", "suspended")


def run_outcome(data: RunData, results: Sequence[Result],
                status: str | None = None) -> dict[str, Any]:
    """The ``run`` block of ``summary.json``: ``status`` (``status`` given, or the store's),
    ``cells`` (each cell's ``state``, the ``experiment`` it was last in and the ``fault``
    reason of a faulted one), ``faulted`` (their ids) and ``not_derived`` (per cell and
    experiment, why nothing or only part was derived)."""
    derived = Counter((r.experiment, r.cell) for r in results if r.value is not None)
    cells: list[dict[str, Any]] = []
    not_derived: list[dict[str, Any]] = []
    status = status or data.status
    for cell, st in sorted(data.cell_states.items()):
        state = st["state"]
        if status == "interrupted" and state in UNFINISHED:   # no process holds them now
            state = "interrupted"
        fault = (st.get("checkpoint") or {}).get("fault") if state == "faulted" else None
        cells.append({"cell": cell, "state": state, "experiment": st.get("experiment"),
                      "fault": fault})
        if state == "completed":
            continue
        ran = data.experiments_run(cell)
        for exp in data.experiments:
            name = exp["name"]
            if cell not in exp["cells"]:
                continue
            live = status == "running" and state != "faulted"
            if name == st.get("experiment"):
                where = f" at step {st['step_index']} ({st['step_kind']})" \
                    if st.get("step_index") is not None else ""
                n = derived[(name, cell)]
                reason = (f"under way{where}" if live else
                          f"cut short{where}: the cell {state} there") + "; " + \
                    (f"{n} result(s) derived from the data {'so far' if live else 'before'}"
                     if n else "nothing derived")
            elif name not in ran:
                reason = ("not run: the cell had faulted" if state == "faulted" else
                          "not run yet" if live else
                          f"not run: the run stopped ({status}) before it")
            else:
                continue
            not_derived.append({"cell": cell, "experiment": name, "reason": reason})
    return {"status": status, "cells": cells,
            "faulted": [c["cell"] for c in cells if c["state"] == "faulted"],
            "not_derived": not_derived}
