"""Helpers for tests that cut runs short and resume them: a power cut at a chosen commit, and
a run's whole store as plain values to compare.

A power cut is emulated at a commit: the connection closes without committing (SQLite rolls the
open transaction back) and the process's work stops there, so the run directory holds exactly
what a crash at that moment leaves. Commits are made on every block, so any block boundary can
be the last one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sequencer.runner import run_simulated
from store import RunStore
from store import run_store as store_module


class PowerCut(BaseException):
    """Not an Exception: nothing in the run may catch it and carry on."""


def arm_power_cut(monkeypatch):
    """``cut(n)`` arms a power cut at the n-th commit; returns the commit counter."""
    monkeypatch.setattr(store_module, "GROUP_COMMIT_S", 0.0)
    original = RunStore._before_commit
    state = {"at": None, "count": 0}

    def before_commit(self: RunStore) -> None:
        state["count"] += 1
        if state["count"] == state["at"]:
            self._conn.close()   # uncommitted work is lost, as in a crash
            raise PowerCut
        original(self)

    monkeypatch.setattr(RunStore, "_before_commit", before_commit)

    def cut(n: int | None) -> dict:
        state.update(at=n, count=0)
        return state
    return cut


def crash(protocol: Path, run_dir: Path, seed: int, **options: bool) -> None:
    """Run until the armed power cut (``options``: those of ``run_simulated``)."""
    with pytest.raises(BaseException) as info:
        run_simulated(protocol, run_dir, seed, **options)
    assert isinstance(info.value, PowerCut) or "closed database" in str(info.value)


def data(run_dir: Path) -> dict:
    """Every point (absolute times made relative to the run's start), event, step and cell
    state of a run, and its status."""
    store = RunStore.open(run_dir)
    try:
        origin = store.meta()["manifest"]["started_utc"]
        out = {}
        for cell in store.cells():
            for kind in ("series", "spectrum"):
                cols = store.read(cell, kind)
                cols["utc_s"] = cols["utc_s"] - origin
                out[cell, kind] = cols
        return {"data": out, "events": store.events(), "steps": store.steps(),
                "states": store.cell_states(), "status": store.meta()["status"]}
    finally:
        store.close()


def assert_same_data(reference: dict, resumed: dict) -> None:
    assert set(resumed["data"]) == set(reference["data"])
    for key, ref in reference["data"].items():
        got = resumed["data"][key]
        for name, column in ref.items():
            assert got[name].shape == column.shape, (key, name)
            # the same points and counters, bit for bit; the absolute time is the run's
            # start plus its test time, rounded once or twice
            exact = name != "utc_s"
            np.testing.assert_allclose(got[name], column, rtol=0 if exact else 1e-12,
                                       atol=0 if exact else 1e-15, err_msg=f"{key} {name}")


def assert_no_duplicates(run: dict) -> None:
    """Time never goes back; within a step it always moves on (a step's first point may share
    its moment with the previous step's last, as on any cycler)."""
    for (cell, kind), cols in run["data"].items():
        if kind == "series" and len(cols["test_time_s"]):
            t, step = cols["test_time_s"], cols["step_count"]
            assert np.all(np.diff(t) >= 0), f"{cell}: time goes back"
            same_step = np.diff(step) == 0
            assert np.all(np.diff(t)[same_step] > 0), f"{cell}: a repeated row"
            assert np.all(np.isfinite(t)), f"{cell}: a torn row"
