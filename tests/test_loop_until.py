"""A loop's ``until``: a capacity retention compares like with like (a check-up inside an
aging loop is a series of its own and neither ends the loop nor is summed into its cycles),
checked after every iteration of the loops inside; measured conditions; and a resumed run
decides as the uninterrupted one did."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis.summary_record import summary_of
from sequencer.cli import app
from sequencer.runner import resume_run, run_simulated
from store import RunStore
from tests.conftest import ROOT
from tests.runs import arm_power_cut, assert_same_data, crash, data

from .fakes import FadingCell, ResistorCell
from .test_executor import run

RECIPE = ROOT / "protocols" / "examples" / "rpt_in_aging.yaml"


def _ended(store: RunStore, cell: str) -> list[str]:
    return [e["message"] for e in store.events(cell) if e["kind"] == "loop_ended"]


def _open(run_dir: Path) -> RunStore:
    return RunStore.open(run_dir)


def _results(summary: dict, quantity: str, tag: str) -> list[dict]:
    return [r for r in summary["results"]
            if r["quantity"] == quantity and r["conditions"].get("tag") == tag]


def _variant(tmp_path: Path, threshold: str, every: int, nested: bool = False) -> Path:
    """The recipe, shorter: a higher retention threshold and check-ups more often; ``nested``
    writes the aging cycles as an inner loop of ``every`` cycles and the check-up after it."""
    text = RECIPE.read_text(encoding="utf-8")
    text = text.replace("capacity_retention_below: 80 %", f"capacity_retention_below: {threshold}")
    text = text.replace("every: 50", f"every: {every}")
    if nested:
        aging = text[text.index("          - {kind: cccv_charge, tag: aging"):]
        head = text[:text.index("          - kind: loop                 # the check-up")]
        check_up = text[len(head):text.index("          - {kind: cccv_charge, tag: aging")]
        check_up = check_up.replace(f"            every: {every}\n", "")
        inner = ("          - kind: loop\n            tag: aging\n"
                 f"            count: {every}\n            steps:\n"
                 + "".join("    " + line + "\n" for line in aging.splitlines()))
        text = head + inner + check_up
    path = tmp_path / "variant.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_rpt_in_aging_recipe_stops_near_80_percent_of_its_first_1c_cycle(tmp_path):
    """The issue's protocol as a user writes it: the aging loop ends when a 1C cycle falls
    below 80 % of the first 1C cycle; the C/3 check-ups are their own series."""
    run_dir = tmp_path / "run"
    run_simulated(RECIPE, run_dir, seed=1)
    store = _open(run_dir)
    (ended,) = _ended(store, "pouch-1")
    store.close()
    assert "fell below 80 %" in ended and "'aging, 1C, 25 degC'" in ended
    said = float(re.search(r"capacity retention ([\d.]+) %", ended)[1])
    summary = summary_of(run_dir)
    (aging,) = _results(summary, "capacity_retention", "aging")
    (rpt,) = _results(summary, "capacity_retention", "rpt")
    # the loop and the report compare the same cycles: the aging series' last over its first
    assert aging["value"] == pytest.approx(said, abs=0.05)
    assert 79.0 < aging["value"] < 80.0
    assert aging["conditions"]["c_rate"] == 1.0
    assert rpt["conditions"]["c_rate"] == 0.33 and rpt["conditions"]["cycles"] == 3
    capacities = {tag: [r["value"] for r in _results(summary, "discharge_capacity", tag)]
                  for tag in ("aging", "rpt")}
    # no check-up is summed into an aging cycle: every 1C cycle delivers less than the
    # check-up before it, and none more than the first 1C cycle
    assert len(capacities["rpt"]) == 3
    assert max(capacities["aging"]) < capacities["rpt"][0] < 200.0
    assert capacities["aging"][0] == pytest.approx(max(capacities["aging"]), rel=0.01)
    # the check-ups alone never ended the loop although they fade too; the aging cycles ran
    # well past the second check-up
    assert aging["conditions"]["cycles"] > 100


def test_nested_loops_compare_with_the_first_cycle_of_the_whole_nest(tmp_path):
    """Aging written as an inner loop of 5 cycles with a check-up after it, the retention on
    the outer loop: the nest ends inside the inner loop at the cycle that fell below, against
    the very first 1C cycle, and the check-up of that iteration is not run."""
    run_dir = tmp_path / "run"
    run_simulated(_variant(tmp_path, "97 %", 5, nested=True), run_dir, seed=1)
    store = _open(run_dir)
    (ended,) = _ended(store, "pouch-1")
    steps = store.steps("pouch-1")
    store.close()
    assert ended.startswith("aging-with-check-ups step 3: loop ended")   # the outer loop
    assert "fell below 97 %" in ended
    assert steps[-1]["kind"] == "constant_current" and steps[-1]["params"]["tag"] == "aging"
    summary = summary_of(run_dir)
    (aging,) = _results(summary, "capacity_retention", "aging")
    assert aging["conditions"]["first_cycle"] == 1   # not the first of the inner loop's run
    assert 96.5 < aging["value"] < 97.0
    assert aging["value"] == pytest.approx(
        float(re.search(r"capacity retention ([\d.]+) %", ended)[1]), abs=0.05)


def test_a_run_cut_inside_the_aging_loop_resumes_to_the_same_decisions(tmp_path, monkeypatch):
    """The replay feeds the loop's cycles and the retention again from the store's rows, read
    a stretch of step counts at a time (here 3, so the replay crosses many stretches)."""
    from sequencer.resume import DoneSteps

    monkeypatch.setattr(DoneSteps, "STRETCH", 3)
    protocol = _variant(tmp_path, "97 %", 4)
    reference_dir = tmp_path / "reference"
    cut = arm_power_cut(monkeypatch)
    counter = cut(None)
    run_simulated(protocol, reference_dir, seed=2)
    reference = data(reference_dir)
    commits = counter["count"]
    for n in sorted(random.Random(5).sample(range(commits // 3, commits - 2), 2)):
        run_dir = tmp_path / f"cut-{n}"
        cut(n)
        crash(protocol, run_dir, seed=2)
        cut(None)
        resume_run(run_dir)
        resumed = data(run_dir)
        assert_same_data(reference, resumed)
        ended = [e["message"] for e in resumed["events"] if e["kind"] == "loop_ended"]
        assert ended == [e["message"] for e in reference["events"]
                         if e["kind"] == "loop_ended"]
        assert len(ended) == 1


def test_until_a_measured_voltage_and_a_discharge_capacity(tmp_path, write_yaml):
    store, _ = run(tmp_path, write_yaml, """
  - name: by-voltage
    cells: [a]
    steps:
      - kind: loop
        count: 20
        until: {voltage_above: 3.2 V}
        steps:
          - {kind: constant_current, direction: charge, current: 1 mA, duration: 60 s}
          - {kind: rest, duration: 1 min}
  - name: by-capacity
    cells: [b]
    steps:
      - kind: loop
        count: 50
        until: {discharge_capacity_below: 0.2 mAh}
        steps:
          - {kind: constant_current, direction: charge, current: 1 mA, until_voltage: 3.5 V,
             duration: 10 h}
          - {kind: constant_current, direction: discharge, current: 1 mA, until_voltage: 3.0 V,
             duration: 10 h}
""", cells={"a": ResistorCell(v0=3.0, k_V_per_C=1.0, r_ohm=0.0),
            "b": FadingCell(v0=3.0, k_V_per_C=0.5, r_ohm=0.0)})
    # a: +0.06 V per iteration from 3.0 V: 3.24 V after the 4th
    (ended,) = _ended(store, "a")
    assert "iteration 4 of 20" in ended and "rose above 3.2 V" in ended
    assert len(store.steps("a")) == 8
    # b: 0.2778 mAh first, 10 % less capacity per discharge: 0.2778 / 1.1^4 = 0.190 mAh
    (ended,) = _ended(store, "b")
    assert "iteration 5 of 50" in ended and "below 0.2 mAh" in ended


def test_a_retention_with_no_discharge_to_watch_is_refused(tmp_path, write_yaml):
    path = write_yaml("""
campaign: t
cells:
  - {id: a, kind: symmetric_li, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
experiments:
  - name: e
    cells: [a]
    steps:
      - kind: loop
        count: 5
        until:
          capacity_retention_below: 80 %
        steps:
          - {kind: rest, duration: 1 h}
""")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "protocol.yaml:12: experiments[0].steps[0].until.capacity_retention_below" in \
        result.output
    assert "no constant-current discharge" in result.output
    assert "Traceback" not in result.output


def _random_outcomes(rng: random.Random, n: int, experiment: str = "") -> list:
    """``n`` steps of random kinds, directions, tags and amounts, in the order they ran."""
    from analysis.cycles import StepOutcome

    out = []
    for i in range(n):
        kind, current = rng.choice([("constant_current", 1e-3), ("constant_current", -1e-3),
                                    ("constant_current", -3e-4), ("rest", None),
                                    ("constant_voltage", None)])
        passed = rng.uniform(0.5e-3, 1e-3)
        charging = kind == "constant_voltage" or (current is not None and current > 0)
        discharging = current is not None and current < 0
        out.append(StepOutcome(step_count=i + 1, kind=kind,
                               charge_Ah=passed if charging else 0.0,
                               discharge_Ah=passed if discharging else 0.0,
                               current_A=current, tag=rng.choice(["aging", "aging", "rpt"]),
                               end_reason=rng.choice(["voltage"] * 9 + ["skipped"]),
                               experiment=experiment))
    return out


def _check_at_once(ran: list, scope: int, since: int, watched: int, one_c_A: float):
    """A loop's retention check cut from every step since ``scope`` at once: the last cycle
    that discharged in step ``watched``, if a step of it ran at ``since`` or later, against the
    first cycle of its series."""
    from analysis.cycles import cycles_of, series_key, series_retention
    from sequencer.loop_conditions import RetentionCheck

    number = {id(r.outcome): r for r in ran}
    cycles = cycles_of([r.outcome for r in ran[scope:]])
    for cycle in reversed(cycles):
        if not any(number[id(s)].number == watched for s in cycle.discharges):
            continue
        if not any(number[id(s)].index >= since for s in cycle.steps):
            return None
        key = series_key(cycle, one_c_A)
        first = next(c for c in cycles if c.discharges and series_key(c, one_c_A) == key)
        retention = series_retention([first], one_c_A, cycle)
        return None if retention is None else RetentionCheck(retention, cycle, first, str(key))
    return None


def test_the_cycles_cut_as_steps_come_are_those_cut_at_once():
    """The executor cuts a loop's cycles as its steps come (CycleTracker), keeping only the
    open cycle and what checks still look at; after every step every retention check equals
    one cut from all steps at once, however tags, rests and rates alternate, for a loop from
    the first step and one that began later, checked after every step or only now and then;
    and what it keeps does not grow with the steps."""
    from sequencer.loop_conditions import CycleTracker, RanStep

    rng = random.Random(7)
    ran: list[RanStep] = []
    trackers = {(0, 1): CycleTracker("charge", 1e-3), (5, 1): CycleTracker("charge", 1e-3),
                (0, 37): CycleTracker("charge", 1e-3)}
    checked = 0
    for i, outcome in enumerate(_random_outcomes(rng, 1500)):
        ran.append(RanStep(outcome, number=3 if outcome.current_A == -1e-3 else 4, index=i))
        for (scope, every), tracker in trackers.items():
            if i < scope:
                continue
            tracker.add(ran[-1])
            if i % every:
                continue
            since = max(scope, i - rng.randrange(4))
            expected = _check_at_once(ran, scope, since, 3, 1e-3)
            assert tracker.check(since, 3) == expected
            checked += expected is not None
        assert all(len(t._open) < 150 for t in trackers.values())
    assert checked > 100


def test_a_reference_run_followed_step_by_step_measures_what_its_steps_say():
    """A C-rate reference's last run, followed as the steps come (ReferenceRun, which keeps
    only its last half), measures after every step what a scan back over all the steps run
    finds: the latest unbroken stretch of the reference's steps in the experiment, its last
    half the way the reference asks (back to a step the other way), the capacity summed latest
    first, a half with a skipped step refused."""
    from sequencer.capacity_basis import Measured, PlannedReference, ReferenceRun
    from sequencer.loop_conditions import RanStep

    def at_once(ran: list[RanStep], ref: PlannedReference) -> Measured | str:
        ours = [r.outcome.experiment == "e" and r.number in ref.numbers for r in ran]
        if not any(ours):
            return f"{ref.by} {ref.name!r} has not run in this experiment yet"
        end = max(i for i, o in enumerate(ours) if o) + 1
        start = end
        while start > 0 and ours[start - 1]:
            start -= 1
        wanted = -1 if ref.capacity == "discharge" else 1
        half = []
        for r in reversed(ran[start:end]):
            if r.outcome.direction == wanted:
                half.append(r.outcome)
            elif r.outcome.direction == -wanted and half:
                break
        if not half:
            return (f"its last run (from step count {ran[start].outcome.step_count}) passed"
                    f" no {ref.capacity}")
        skipped = [s.step_count for s in half if s.end_reason == "skipped"]
        if skipped:
            return (f"its last {ref.capacity} (step count {skipped[0]}) was skipped on"
                    " resume: its capacity was not measured")
        name = "discharge_Ah" if ref.capacity == "discharge" else "charge_Ah"
        total = sum(getattr(s, name) for s in half)
        return Measured(total, tuple(s.step_count for s in reversed(half)),
                        half[0].end_reason)

    rng = random.Random(11)
    refs = [PlannedReference(9, "rpt", "tag", frozenset({2, 3}), "discharge"),
            PlannedReference(9, "rpt", "tag", frozenset({1, 2, 3}), "charge")]
    runs = [ReferenceRun("e", ref) for ref in refs]
    ran: list[RanStep] = []
    kinds = {"measured": 0, "refused": 0}
    for i, outcome in enumerate(_random_outcomes(rng, 2000, "e")):
        if rng.random() < 0.05:
            outcome = type(outcome)(**{**vars(outcome), "experiment": "other"})
        ran.append(RanStep(outcome, number=rng.choice([1, 2, 2, 3, 3, 5]), index=i))
        for ref, follower in zip(refs, runs, strict=True):
            follower.add(ran[-1])
            got = follower.measured()
            assert got == at_once(ran, ref)
            kinds["measured" if isinstance(got, Measured) else "refused"] += 1
    assert min(kinds.values()) > 100
