"""What a run is doing, read from its store (safe while another process writes it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sequencer.locks import run_dir_in_use
from sequencer.store import RunStore


def run_status(run_dir: Path) -> dict[str, Any]:
    store = RunStore.open(Path(run_dir))
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
        if status == "running" and not run_dir_in_use(Path(run_dir)):
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
        }
    finally:
        store.close()
