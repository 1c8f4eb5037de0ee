"""What a run is doing, read from its store (safe while another process writes it).

A run's status says how it ended, and never more than its cells did:

- ``running``: a process is working in it;
- ``completed``: every experiment ran and every cell completed;
- ``completed_with_faults``: every experiment ran, and some cells (not all) faulted;
- ``faulted``: every experiment ran, and every cell faulted;
- ``aborted``: the run stopped on an error that was not one cell's (a store that cannot be
  written, an instrument that cannot be reached at the start); ``cellseq resume`` continues it;
- ``interrupted``: Ctrl-C twice, or the process died (a crash, a power cut); ``cellseq resume``
  continues it.

The store is opened read-only (also on a read-only disk). A damaged store gives a
:class:`~store.StoreDamaged` whose message names the run, what is damaged and
what can still be read.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sequencer.locks import RUN_LOCK, run_dir_in_use
from store import RunStore
from store.rows import StoreDamaged
from store.survey import survey

#: Run statuses of a run whose experiments all ran: there is nothing to resume.
FINISHED = ("completed", "completed_with_faults", "faulted")
#: Run statuses ``cellseq resume`` continues.
RESUMABLE = ("aborted", "interrupted")
#: Cell states of a cell that is not done (shown as ``interrupted`` once no process holds it).
UNFINISHED_CELL_STATES = ("running", "paused", "pending", "suspended")


def run_outcome(cell_states: Iterable[str]) -> str:
    """The status of a run whose experiments all ran, from its cells' final states:
    ``completed`` only when none faulted."""
    states = list(cell_states)
    faulted = sum(state == "faulted" for state in states)
    if faulted == 0:
        return "completed"
    return "faulted" if faulted == len(states) else "completed_with_faults"


def run_status(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    try:
        return _status(run_dir)
    except StoreDamaged:
        raise StoreDamaged(survey(run_dir).message(run_dir)) from None


def _status(run_dir: Path) -> dict[str, Any]:
    store = RunStore.open(run_dir)
    try:
        meta = store.meta()
        manifest = meta.get("manifest", {})
        latest = store.latest_steps()
        cells = []
        for s in store.cell_states():
            elapsed = _step_elapsed_s(s, latest.get(s["cell"]))
            remaining = None
            if s["step_estimate_s"] is not None and elapsed is not None and \
                    s["state"] == "running":
                remaining = max(s["step_estimate_s"] - elapsed, 0.0)
            cells.append({
                "cell": s["cell"], "state": s["state"], "experiment": s["experiment"],
                "step": s["step_index"], "step_kind": s["step_kind"],
                "step_count": s["step_count"], "cycle": s["cycle"],
                "step_elapsed_s": elapsed, "step_remaining_at_most_s": remaining,
                "last": s["last"], "points": store.point_count(s["cell"]),
                "fault": s["checkpoint"].get("fault") if s["state"] == "faulted" else None,
            })
        events = store.events()
        status = meta.get("status")
        notes = []
        in_use = run_dir_in_use(run_dir) if status == "running" else True
        if in_use is None:
            notes.append(f"cannot tell whether a process is working in the run: its lock file"
                         f" {run_dir / RUN_LOCK} cannot be opened")
        elif status == "running" and not in_use:
            # the process writing it is gone: a crash or a power cut
            status = "interrupted"
            for c in cells:
                if c["state"] in UNFINISHED_CELL_STATES:
                    c["state"] = "interrupted"
        return {
            "run_dir": str(run_dir), "campaign": manifest.get("campaign"),
            "mode": manifest.get("mode"), "seed": manifest.get("seed"),
            "status": status, "cells": cells,
            "faulted": [c["cell"] for c in cells if c["state"] == "faulted"],
            "events": len(events), "last_event": events[-1] if events else None,
            "notes": notes,
        }
    finally:
        store.close()


def _step_elapsed_s(state: dict[str, Any], latest: dict[str, Any] | None) -> float | None:
    """How long the cell's current (or last) step has run: up to the cell's last update while
    it runs, up to its end once it has ended. A finished cell's state is written when the whole
    run ends, long after its last step did: that time is not the step's."""
    started = state["step_started_t"]
    if started is None:
        return None
    end = state["updated_t"]
    if latest is not None and latest["ended_t"] is not None:
        end = latest["ended_t"]
    return max(end - started, 0.0)
