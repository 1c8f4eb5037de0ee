"""A chamber shared by several experiments fails: every sharer's cells rest (outputs off) or
fault exactly as one experiment's do, whichever sharer happens to watch the chamber; none goes
on silently; a run cut while they rest resumes to the uninterrupted run (virtual time)."""

from __future__ import annotations

import numpy as np
import pytest

from sequencer.plan import prepare
from sequencer.runner import resume_run, run_simulated
from simulators.lab import SimLab
from store import RunStore
from tests.runs import arm_power_cut, assert_no_duplicates, assert_same_data, crash, data

from .test_shared_chamber import CELLS, STATION

#: ``one`` charges cell a for 4 h, ``two`` rests cell b for 6 h: the schedules agree (one soak
#: at 40 degC), so they share the chamber; ``one`` ends 2 h before ``two``.
SHARED = CELLS + """
  - name: one
    cells: [a]
    steps:
      - {kind: set_temperature, target: 40 degC, tolerance: 0.5 K, hold: 10 min, timeout: 2 h}
      - {kind: constant_current, direction: charge, current: 10 uA, duration: 4 h,
         record_every: 10 min}
  - name: two
    cells: [b]
    steps:
      - {kind: set_temperature, target: 40 degC, tolerance: 0.5 K, hold: 10 min, timeout: 2 h}
      - {kind: rest, duration: 6 h, record_every: 10 min}
"""
STEP_S = {"a": 4 * 3600.0, "b": 6 * 3600.0}


@pytest.fixture
def faults(monkeypatch):
    """``faults(...)``: the chamber every simulated lab of the test builds gets these faults
    ((kind, start_s, end_s), clock time): the first run's and a resumed run's alike."""
    injected: list[tuple[str, float, float]] = []
    original = SimLab.add_chamber

    def add_chamber(self, name, min_C=None, max_C=None):
        chamber = original(self, name, min_C, max_C)
        for fault in injected:
            chamber.inject(*fault)
        return chamber

    monkeypatch.setattr(SimLab, "add_chamber", add_chamber)

    def set_faults(*given: tuple[str, float, float]) -> None:
        injected[:] = given
    return set_faults


def _files(write_yaml):
    protocol, station = write_yaml(SHARED), write_yaml(STATION, "station.yaml")
    assert [e.sharing for e in prepare(protocol, station).experiments] == [(0, 1), (0, 1)]
    return protocol, station


def _events(run: dict, kind: str) -> list[dict]:
    return [e for e in run["events"] if e["kind"] == kind]


def _points_between(run: dict, cell: str, t0: float, t1: float) -> int:
    t = run["data"][cell, "series"]["test_time_s"]
    return int(np.count_nonzero((t > t0) & (t < t1)))


def _assert_whole_steps(run: dict, cells: tuple[str, ...]) -> None:
    for cell in cells:
        points = run["data"][cell, "series"]
        last = points["step_count"] == points["step_count"][-1]
        assert points["step_time_s"][last][-1] == pytest.approx(STEP_S[cell])
        assert np.all(np.diff(points["step_time_s"][last]) > 0)


@pytest.mark.parametrize("kind", ["alarm", "no_answer"])
def test_a_fault_while_both_sharers_run_rests_every_sharers_cells(tmp_path, write_yaml, faults,
                                                                  kind):
    faults((kind, 7200.0, 9000.0))
    protocol, station = _files(write_yaml)
    run_simulated(protocol, tmp_path / "run", seed=1, station=station)
    run = data(tmp_path / "run")
    suspended = _events(run, "chamber_suspended")
    assert sorted(e["data"]["experiment"] for e in suspended) == ["one", "two"]
    assert sorted(e["data"]["experiment"] for e in _events(run, "chamber_resumed")) == \
        ["one", "two"]
    assert sorted(e["cell"] for e in _events(run, "cell_suspended")) == ["a", "b"]
    off, on = suspended[0]["t"], _events(run, "chamber_resumed")[0]["t"]
    assert 7200.0 <= off < 9000.0 < on
    for cell in ("a", "b"):   # outputs off meanwhile, for both, and the whole step run after
        assert _points_between(run, cell, off, on) == 0
    _assert_whole_steps(run, ("a", "b"))
    assert run["data"]["a", "series"]["charge_Ah"][-1] == pytest.approx(10e-6 * 4, rel=1e-3)
    assert {s["state"] for s in run["states"]} == {"completed"}
    assert run["status"] == "completed"


def test_a_fault_after_one_sharer_ended_is_watched_for_the_other(tmp_path, write_yaml,
                                                                 faults):
    # ``one`` watched the chamber for both; it has ended when the alarm comes: ``two`` must
    # see it (nobody watching would let b rest on in a warm chamber unseen)
    faults(("alarm", 5.5 * 3600, 6 * 3600))
    protocol, station = _files(write_yaml)
    run_simulated(protocol, tmp_path / "run", seed=1, station=station)
    run = data(tmp_path / "run")
    ended_one = max(s["ended_t"] for s in run["steps"] if s["cell"] == "a")
    suspended = _events(run, "chamber_suspended")
    assert [e["data"]["experiment"] for e in suspended] == ["two"]
    assert suspended[0]["t"] > ended_one
    assert [e["cell"] for e in _events(run, "cell_suspended")] == ["b"]
    on = _events(run, "chamber_resumed")[0]["t"]
    assert _points_between(run, "b", suspended[0]["t"], on) == 0
    _assert_whole_steps(run, ("a", "b"))
    assert run["status"] == "completed"


def test_a_chamber_that_does_not_come_back_faults_every_sharer(tmp_path, write_yaml, faults):
    # the alarm clears, the chamber reads normally, and while it soaks again its heater
    # fails for good: the soak times out and the cells of both experiments fault
    faults(("alarm", 7200.0, 7300.0), ("heater", 9060.0, 1e9))
    protocol, station = _files(write_yaml)
    run_simulated(protocol, tmp_path / "run", seed=1, station=station)
    run = data(tmp_path / "run")
    failed = _events(run, "chamber_failed")
    assert sorted(e["data"]["experiment"] for e in failed) == ["one", "two"]
    states = {s["cell"]: s for s in run["states"]}
    for cell in ("a", "b"):
        assert states[cell]["state"] == "faulted"
        assert "did not come back" in states[cell]["checkpoint"]["fault"]
        assert _points_between(run, cell, failed[0]["t"] - 1, np.inf) == 0
    assert sorted(e["cell"] for e in _events(run, "cell_faulted")) == ["a", "b"]
    assert run["status"] == "faulted"


def test_a_run_cut_while_the_sharers_rest_resumes_to_the_uninterrupted_run(
        tmp_path, write_yaml, faults, monkeypatch):
    faults(("alarm", 7200.0, 9000.0))
    protocol, station = _files(write_yaml)
    power_cut = arm_power_cut(monkeypatch)
    counter = power_cut(None)
    resting_at = []   # the commit that writes both cells resting
    set_state = RunStore.set_cell_state

    def note(self, cell, state, t, **fields):
        set_state(self, cell, state, t, **fields)
        if state == "suspended":
            resting_at.append(counter["count"] + 1)
    monkeypatch.setattr(RunStore, "set_cell_state", note)
    run_simulated(protocol, tmp_path / "reference", seed=2, station=station)
    monkeypatch.setattr(RunStore, "set_cell_state", set_state)
    reference = data(tmp_path / "reference")
    resting = tmp_path / "cut"
    power_cut(max(resting_at) + 1)
    crash(protocol, resting, seed=2, station=station)
    assert {s["state"] for s in data(resting)["states"]} == {"suspended"}
    power_cut(None)
    resume_run(resting)
    resumed = data(resting)
    assert_same_data(reference, resumed)
    assert_no_duplicates(resumed)
    assert resumed["status"] == "completed"
    assert sorted(e["cell"] for e in _events(resumed, "cell_suspended")) == ["a", "b"]
