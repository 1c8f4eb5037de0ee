"""What a run is doing, read from its store (safe while another process writes it).

The store is opened read-only (also on a read-only disk). A damaged store gives a
:class:`~sequencer.store_rows.StoreDamaged` whose message names the run, what is damaged and
what can still be read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sequencer.locks import RUN_LOCK, run_dir_in_use
from sequencer.store import RunStore
from sequencer.store_rows import StoreDamaged
from sequencer.store_survey import survey


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
        cells = []
        for s in store.cell_states():
            elapsed = s["updated_t"] - s["step_started_t"] if s["step_started_t"] else None
            remaining = None
            if s["step_estimate_s"] is not None and elapsed is not None and \
                    s["state"] == "running":
                remaining = max(s["step_estimate_s"] - elapsed, 0.0)
            cells.append({
                "cell": s["cell"], "state": s["state"], "experiment": s["experiment"],
                "step": s["step_count"], "step_index": s["step_index"],
                "step_kind": s["step_kind"], "cycle": s["cycle"],
                "step_elapsed_s": elapsed, "step_remaining_at_most_s": remaining,
                "last": s["last"], "points": store.point_count(s["cell"]),
                "fault": s["checkpoint"].get("fault"),
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
                if c["state"] in ("running", "paused", "pending", "suspended"):
                    c["state"] = "interrupted"
        return {
            "run_dir": str(run_dir), "campaign": manifest.get("campaign"),
            "mode": manifest.get("mode"), "seed": manifest.get("seed"),
            "status": status, "cells": cells,
            "events": len(events), "last_event": events[-1] if events else None,
            "notes": notes,
        }
    finally:
        store.close()
