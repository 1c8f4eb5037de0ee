"""Branching on a step's end reason (``on_end: {voltage_limit: goto LABEL}``): bounded where
it is written, refused at validate when it is not, shown by ``cellseq plan`` with its bound,
and replayed exactly by a resumed run."""

from __future__ import annotations

import random

import pytest
from typer.testing import CliRunner

from sequencer.cli import app
from sequencer.plan import prepare
from sequencer.runner import resume_run, run_simulated
from tests.runs import arm_power_cut, assert_same_data, crash, data

from .fakes import ResistorCell
from .test_executor import run

HEAD = """
campaign: br
cells:
  - id: c1
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}
    limits: {max_voltage: 4.45 V, min_voltage: 2.5 V}
experiments:
  - name: e
    cells: [c1]
    steps:
"""

#: A charge that gives up after 2 h goes back to a rest and tries again, at most 3 times; one
#: that reaches 4.3 V goes straight on to the discharge, skipping the rest between.
RETRY = HEAD + """
      - {kind: rest, duration: 10 min, label: start}
      - {kind: constant_current, direction: charge, current: 0.1C, until_voltage: 4.3 V,
         duration: 2 h, label: charge,
         on_end: {duration: {goto: start, at_most: 3}, voltage_limit: goto discharge}}
      - {kind: rest, duration: 10 min}
      - {kind: constant_current, direction: discharge, current: 0.1C, until_voltage: 2.8 V,
         label: discharge}
"""


def _validate(write_yaml, text: str):
    result = CliRunner().invoke(app, ["validate", str(write_yaml(text))])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output


def test_a_jump_back_is_taken_at_most_its_bound_and_a_jump_forward_skips(tmp_path,
                                                                        write_yaml):
    store, _ = run(tmp_path, write_yaml, """
  - name: retry
    cells: [a]
    steps:
      - {kind: rest, duration: 1 min, label: again}
      - {kind: constant_current, direction: charge, current: 1 mA, until_voltage: 3.4 V,
         duration: 100 s, on_end: {duration: {goto: again, at_most: 2},
                                   voltage_limit: goto done}}
      - {kind: rest, duration: 1 h}
      - {kind: rest, duration: 2 min, label: done}
""", cells={"a": ResistorCell(v0=3.0, k_V_per_C=1.0, r_ohm=0.0), "b": ResistorCell()})
    # +0.1 V per 100 s charge from 3.0 V: two retries, then the bound is spent and the third
    # charge's duration goes on to the 1 h rest; no charge reached 3.4 V
    steps = [(s["step_index"], s["end_reason"]) for s in store.steps("a")]
    assert steps == [(1, "duration"), (2, "duration"), (1, "duration"), (2, "duration"),
                     (1, "duration"), (2, "duration"), (3, "duration"), (4, "duration")]
    kinds = [e["kind"] for e in store.events("a")]
    assert kinds.count("branch") == 2 and kinds.count("branch_bound") == 1


def test_a_jump_forward_on_a_voltage_limit(tmp_path, write_yaml):
    store, _ = run(tmp_path, write_yaml, """
  - name: skip
    cells: [a]
    steps:
      - {kind: constant_current, direction: charge, current: 1 mA, until_voltage: 3.2 V,
         duration: 1000 s, on_end: {voltage_limit: goto done}}
      - {kind: rest, duration: 1 h}
      - {kind: rest, duration: 2 min, label: done}
""", cells={"a": ResistorCell(v0=3.0, k_V_per_C=1.0, r_ohm=0.0), "b": ResistorCell()})
    assert [(s["step_index"], s["end_reason"]) for s in store.steps("a")] == \
        [(1, "voltage"), (3, "duration")]


def test_the_plan_shows_branches_and_bounds_them_apart_from_the_estimate(write_yaml):
    plan = prepare(write_yaml(RETRY))
    (exp,) = plan.experiments
    # the bound takes the jump back three times: 3 x (10 min rest + 2 h charge), and the
    # discharge to its time limit (1.5 x the 10 h its nominal capacity holds at 0.1C)
    assert exp.bound_s - exp.estimate_s == pytest.approx(3 * (600 + 7200) + 0.5 * 36000)
    result = CliRunner().invoke(app, ["plan", str(write_yaml(RETRY))], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert "step 2 on duration: goto 'start' (step 1, back), at most 3 times" in result.output
    assert "step 2 on voltage_limit: goto 'discharge' (step 4, forward)" in result.output
    shown = result.output[result.output.index("\ne:"):].splitlines()
    assert len(shown) >= 4 and max(len(line) for line in shown) <= 80
    branches = CliRunner().invoke(app, ["plan", "--json", str(write_yaml(RETRY))])
    assert '"at_most": 3' in branches.output


@pytest.mark.parametrize(("steps", "line", "field", "message"), [
    ("""
      - {kind: rest, duration: 10 min, label: start}
      - {kind: rest, duration: 10 min, on_end: {duration: goto start}}
""", 18, "experiments[0].steps[1].on_end.duration", "jumps back (to step 1) without a bound"),
    ("""
      - {kind: rest, duration: 10 min, on_end: {duration: goto nowhere}}
""", 17, "experiments[0].steps[0].on_end.duration", "no step of this list is labelled so"),
    ("""
      - kind: loop
        count: 2
        steps:
          - {kind: rest, duration: 10 min, on_end: {duration: goto outside}}
      - {kind: rest, duration: 10 min, label: outside}
""", 20, "experiments[0].steps[0].steps[0].on_end.duration",
     "no step of this list is labelled so"),
    ("""
      - kind: loop
        count: 2
        label: l
        on_end: {duration: goto l}
        steps:
          - {kind: rest, duration: 10 min}
""", 20, "experiments[0].steps[0].on_end.duration", "loop steps end as their own steps do"),
    ("""
      - {kind: rest, duration: 10 min, on_end: {duration: goto hot}}
      - {kind: set_temperature, target: 40 degC, hold: 10 min, timeout: 3 h}
      - {kind: rest, duration: 10 min, label: hot}
""", 17, "experiments[0].steps[0].on_end.duration", "jumps across a temperature step"),
    ("""
      - {kind: rest, duration: 10 min, on_end: {duration: jump somewhere}}
""", 17, "experiments[0].steps[0].on_end.duration", "expected 'goto LABEL'"),
])
def test_a_bad_branch_is_refused_at_validate_with_file_line_and_field(
        write_yaml, steps, line, field, message):
    output = _validate(write_yaml, HEAD + steps)
    assert f"protocol.yaml:{line}: {field}" in output, output
    assert message in output


def test_a_run_with_branches_cut_and_resumed_takes_the_same_branches(tmp_path, monkeypatch,
                                                                     write_yaml):
    protocol = write_yaml(RETRY.replace("until_voltage: 4.3 V", "until_voltage: 4.6 V")
                          .replace("max_voltage: 4.45 V", "max_voltage: 4.7 V")
                          .replace("duration: 2 h", "duration: 20 min"))
    cut = arm_power_cut(monkeypatch)
    counter = cut(None)
    run_simulated(protocol, tmp_path / "reference", seed=4)
    reference = data(tmp_path / "reference")
    branches = [e["message"] for e in reference["events"] if e["kind"].startswith("branch")]
    assert len(branches) == 4   # three jumps back, then the bound
    commits = counter["count"]
    for n in sorted(random.Random(3).sample(range(3, commits - 2), 2)):
        run_dir = tmp_path / f"cut-{n}"
        cut(n)
        crash(protocol, run_dir, seed=4)
        cut(None)
        resume_run(run_dir)
        resumed = data(run_dir)
        assert_same_data(reference, resumed)
        assert [e["message"] for e in resumed["events"]
                if e["kind"].startswith("branch")] == branches


def test_every_end_reason_a_step_can_give_can_be_branched_on():
    """A branch on an ``until`` condition (charge, soc, dV_dt ...) is as writable as one on a
    voltage limit: the reasons the language accepts are the ones the instruments give."""
    from typing import get_args

    from drivers.techniques import END_CONDITIONS
    from protocols.steps.branch import END_REASONS, EndReason

    assert set(get_args(EndReason)) == set(END_REASONS)
    assert set(END_CONDITIONS) <= set(END_REASONS)
    assert all(END_REASONS[c] == c for c in END_CONDITIONS)
