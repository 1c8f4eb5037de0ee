"""Shared chambers: experiments in one chamber whose temperature schedules agree run together,
the chamber soaking once for all; others queue (virtual time, small protocols)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sequencer.cli import app
from sequencer.plan import prepare
from sequencer.runner import resume_run, run_simulated
from store import RunStore
from tests.runs import arm_power_cut, assert_no_duplicates, assert_same_data, crash, data

CELLS = """
campaign: shared
cells:
  - {id: a, kind: symmetric_li, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
  - {id: b, kind: symmetric_li, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
experiments:
"""
STATION = """
station: bench
instruments:
  cycler: {driver: sim.cycler, channels: 8}
  chamber: {driver: sim.chamber}
cells:
  a: {instrument: cycler, channel: 0, chamber: chamber}
  b: {instrument: cycler, channel: 1, chamber: chamber}
"""


def two(second_target: str = "25 degC", second_hold: str = "10 min",
        a_rest: str = "2 h", b_rest: str = "3 h") -> str:
    return CELLS + f"""
  - name: one
    cells: [a]
    steps:
      - {{kind: set_temperature, target: 25 degC, hold: 10 min}}
      - {{kind: rest, duration: {a_rest}, record_every: 10 min}}
      - {{kind: set_temperature, target: 30 degC, hold: 10 min}}
      - {{kind: rest, duration: 1 h, record_every: 10 min}}
  - name: two
    cells: [b]
    steps:
      - {{kind: set_temperature, target: {second_target}, hold: {second_hold}}}
      - {{kind: rest, duration: {b_rest}, record_every: 10 min}}
      - {{kind: set_temperature, target: 30 degC, hold: 10 min}}
      - {{kind: rest, duration: 1 h, record_every: 10 min}}
"""


def files(write_yaml, protocol: str):
    return write_yaml(protocol), write_yaml(STATION, "station.yaml")


def soaks(store: RunStore, cell: str) -> list[dict]:
    return [s for s in store.steps(cell) if s["kind"] == "set_temperature"]


def test_agreeing_schedules_share_the_chamber_and_soak_once_for_all(tmp_path, write_yaml):
    protocol, station = files(write_yaml, two())
    plan = prepare(protocol, station)
    one, second = plan.experiments
    assert one.sharing == second.sharing == (0, 1)
    assert one.start_s == second.start_s == 0 and second.after == ()
    # each soak waits for the slowest: one's second soak starts when two's 3 h rest ends
    assert one.end_s == pytest.approx(second.end_s)
    run_simulated(protocol, tmp_path / "run", seed=1, station=station)
    store = RunStore.open(tmp_path / "run")
    try:
        sa, sb = soaks(store, "a"), soaks(store, "b")
        assert len(sa) == len(sb) == 2
        for x, y in zip(sa, sb, strict=True):   # one soak, the same moments, for both
            assert (x["started_t"], x["ended_t"]) == (y["started_t"], y["ended_t"])
            assert x["end_reason"] == y["end_reason"] == "settled"
        # a's second soak waited for b's longer rest (a barrier), then both went on
        rests_b = [s for s in store.steps("b") if s["kind"] == "rest"]
        assert sa[1]["started_t"] >= rests_b[0]["ended_t"]
        first_soak_s = sa[0]["ended_t"] - sa[0]["started_t"]
        total_s = max(s["ended_t"] for s in store.steps()) - sa[0]["started_t"]
        # about one experiment's time (the longer one's), not the two queued
        assert total_s < first_soak_s + 3 * 3600 + 2 * 3600 + 3600
        events = [e for e in store.events() if e["kind"] == "soak_started"]
        assert len(events) == 4   # each of two soaks reported for each experiment
        assert all("shared with" in e["message"] for e in events)
        assert {s["state"] for s in store.cell_states()} == {"completed"}
    finally:
        store.close()


def test_differing_schedules_queue_and_plan_says_why(tmp_path, write_yaml):
    protocol, station = files(write_yaml, two(second_target="40 degC"))
    plan = prepare(protocol, station)
    one, second = plan.experiments
    assert one.sharing == second.sharing == ()
    assert second.after == (0,) and second.start_s == pytest.approx(one.end_s)
    result = CliRunner().invoke(app, ["plan", str(protocol), "--station", str(station)],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "two queued after one:\n  chamber schedule differs at step 1 (40 degC here," \
           " 25 degC there)" in result.output
    mine = result.output[result.output.index("two queued"):].splitlines()
    assert all(len(line) <= 80 for line in mine)
    doc = json.loads(CliRunner().invoke(app, ["plan", str(protocol), "--station",
                                              str(station), "--json"]).output)
    assert doc["experiments"][1]["waits_for"] == [
        "after one: chamber schedule differs at step 1 (40 degC here, 25 degC there)"]
    run_simulated(protocol, tmp_path / "run", seed=1, station=station)
    store = RunStore.open(tmp_path / "run")
    try:   # queued: b's first soak starts after a's last step ended
        assert soaks(store, "b")[0]["started_t"] >= max(s["ended_t"] for s in store.steps("a"))
    finally:
        store.close()


@pytest.mark.parametrize(("change", "why"), [
    ({"second_hold": "20 min"}, "step 1 (hold 20 min here, 10 min there)"),
])
def test_a_different_hold_is_a_different_schedule(write_yaml, change, why):
    protocol, station = files(write_yaml, two(**change))
    assert prepare(protocol, station).experiments[1].waits == (
        f"after one: chamber schedule differs at {why}",)


def test_plan_shows_the_sharers(write_yaml):
    protocol, station = files(write_yaml, two())
    result = CliRunner().invoke(app, ["plan", str(protocol), "--station", str(station)],
                                env={"COLUMNS": "80"})
    assert "chamber shared by one, two:" in result.output
    doc = json.loads(CliRunner().invoke(app, ["plan", str(protocol), "--station",
                                              str(station), "--json"]).output)
    assert [e["shares_chamber_with"] for e in doc["experiments"]] == [["two"], ["one"]]


def test_a_shared_run_cut_and_resumed_gives_the_uninterrupted_result(
        tmp_path, write_yaml, monkeypatch):
    """Cut inside the first shared soak, while one experiment waits at the meeting for the
    other's longer rest, and inside the second shared soak: each resumes to the uninterrupted
    run, point for point, with no soak started twice."""
    protocol, station = files(write_yaml, two(a_rest="1 h", b_rest="90 min"))
    power_cut = arm_power_cut(monkeypatch)
    counter = power_cut(None)
    run_simulated(protocol, tmp_path / "reference", seed=2, station=station)
    reference = data(tmp_path / "reference")
    commits = counter["count"]

    def cut(n: int) -> tuple[Path, list[tuple[str, str]]]:
        run_dir = tmp_path / f"cut-{n}"
        power_cut(n)
        crash(protocol, run_dir, seed=2, station=station)
        open_steps = sorted((s["cell"], s["kind"]) for s in data(run_dir)["steps"]
                            if s["ended_t"] is None)
        return run_dir, open_steps

    first, open_first = cut(commits // 4)
    assert open_first == [("a", "set_temperature"), ("b", "set_temperature")]
    waiting = next(run for run in (cut(n) for n in range(commits * 4 // 10, commits * 6 // 10))
                   if run[1] == [("b", "rest")])[0]   # a's rest ended, b's goes on
    second, open_second = cut(commits * 3 // 4)
    assert open_second == [("a", "set_temperature"), ("b", "set_temperature")]
    power_cut(None)
    for run_dir in (first, waiting, second):
        resume_run(run_dir)
        resumed = data(run_dir)
        assert_same_data(reference, resumed)
        assert_no_duplicates(resumed)
        assert resumed["status"] == "completed"
        kinds = [e["kind"] for e in resumed["events"]]
        assert kinds.count("soak_started") == 4, run_dir   # no soak started twice
        assert kinds.count("run_resumed") == 1
