"""C-rates of a measured capacity (``c_rate_reference``): the aging steps' current follows
the capacity the last check-up measured, in the stored points; a run cut short resumes to
the same data; a reference that cannot be resolved is refused at validate (file, line,
field) or, when nothing was measured at run time, faults the cell loudly."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from analysis.cycle_steps import outcomes_of
from analysis.cycles import cycles_of, series_of
from sequencer.cli import app
from sequencer.runner import resume_run, run_simulated
from store import RunStore
from tests.runs import arm_power_cut, assert_same_data, crash, data

HEAD = """
campaign: ref
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

#: A C/3 check-up before the first aging cycle and every third after it; the aging cycles at
#: 1C of the capacity the last check-up's discharge measured.
AGING = HEAD + """
      - kind: loop
        count: 5
        steps:
          - kind: loop
            label: rpt
            every: 3
            count: 1
            steps:
              - {kind: cccv_charge, current: C/3, voltage: 4.3 V, until_current: C/20,
                 record_every: 5 min}
              - {kind: cc_discharge, current: C/3, until_voltage: 2.8 V, record_every: 5 min}
          - {kind: cccv_charge, tag: aging, current: 1C, voltage: 4.3 V, until_current: C/20,
             c_rate_reference: rpt, record_every: 5 min}
          - {kind: cc_discharge, tag: aging, current: 1C, until_voltage: 2.8 V,
             c_rate_reference: rpt, record_every: 5 min}
"""

RPT_DISCHARGE, AGING_STEPS = 4, (5, 6)   # step numbers as users count them


def _rows(run_dir):
    store = RunStore.open(run_dir)
    try:
        return store.steps("c1"), store.read("c1")
    finally:
        store.close()


def _measured_Ah(points, step_count: int) -> float:
    """What the step passed as discharge, from its stored points' counters: the growth from
    the last point of the step before it to its own last point."""
    counts, discharged = points["step_count"], points["discharge_Ah"]
    before = discharged[counts < step_count]
    return float(discharged[counts == step_count][-1] - (before[-1] if before.size else 0.0))


def test_the_aging_current_follows_the_capacity_the_check_up_measured(tmp_path, write_yaml):
    run_dir = tmp_path / "run"
    run_simulated(write_yaml(AGING), run_dir, seed=2)
    steps, points = _rows(run_dir)
    nominal_Ah = steps[0]["params"]["current_A"] * 3   # the first check-up's C/3 charge
    rpt = [s for s in steps if s["step_index"] == RPT_DISCHARGE]
    aging = [s for s in steps if s["step_index"] in AGING_STEPS]
    assert len(rpt) == 2 and len(aging) == 15   # check-ups in iterations 1 and 4
    bases = set()
    for step in aging:
        last_rpt = max((s for s in rpt if s["step_count"] < step["step_count"]),
                       key=lambda s: s["step_count"])
        measured = _measured_Ah(points, last_rpt["step_count"])
        basis = step["params"]["capacity_basis_Ah"]
        assert basis == pytest.approx(measured, rel=1e-9)
        assert step["params"]["c_rate_reference"] == "rpt"
        bases.add(basis)
        if step["kind"] != "constant_current":
            continue
        current = points["current_A"][points["step_count"] == step["step_count"]]
        set_A = step["params"]["current_A"]
        assert abs(set_A) == pytest.approx(measured, rel=1e-9)   # 1C of what was measured
        assert np.median(np.abs(current)) == pytest.approx(measured, rel=1e-3)   # as measured
        assert abs(abs(set_A) - nominal_Ah) > 0.01 * nominal_Ah   # not the nominal 1C
    assert len(bases) == 2   # the second check-up measured another capacity
    # the aging cycles are one 1C series, however the measured capacity moved
    outcomes = outcomes_of(steps, _passed(points), {})
    series = series_of(cycles_of(outcomes), nominal_Ah)
    aging_series = [s for s in series if s.key.tag == "aging"]
    assert len(aging_series) == 1 and aging_series[0].key.c_rate == 1.0
    assert len(aging_series[0].cycles) == 5
    log = (run_dir / "run.log").read_text(encoding="utf-8")
    assert log.count("c_rate_basis") == 4   # each aging step, once per check-up
    assert "1C = " in log and "the discharge capacity measured in step count" in log


def _passed(points) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for count in np.unique(points["step_count"]):
        k = int(count)
        out[k] = {name: _growth(points, k, name) for name in ("charge_Ah", "discharge_Ah")}
    return out


def _growth(points, step_count: int, name: str) -> float:
    counts, values = points["step_count"], points[name]
    before = values[counts < step_count]
    return float(values[counts == step_count][-1] - (before[-1] if before.size else 0.0))


def test_the_plan_shows_which_capacity_each_reference_takes(write_yaml):
    result = CliRunner().invoke(app, ["plan", str(write_yaml(AGING))])
    assert result.exit_code == 0, result.output
    # the two aging steps take the same capacity: one line names both
    assert ("steps 5, 6: 1C = the discharge capacity measured in the last run of label 'rpt'"
            " (steps 2-4) before it") in " ".join(result.output.split())
    shown = CliRunner().invoke(app, ["plan", "--json", str(write_yaml(AGING))])
    refs = json.loads(shown.output)["experiments"][0]["c_rate_references"]
    assert [(r["step"], r["reference"], r["steps"]) for r in refs] == [
        (5, "rpt", [2, 3, 4]), (6, "rpt", [2, 3, 4])]


def test_a_run_cut_inside_the_aging_resumes_with_the_same_currents(tmp_path, monkeypatch,
                                                                  write_yaml):
    protocol = write_yaml(AGING.replace("count: 5", "count: 4"))
    cut = arm_power_cut(monkeypatch)
    counter = cut(None)
    run_simulated(protocol, tmp_path / "reference", seed=3)
    reference = data(tmp_path / "reference")
    commits = counter["count"]
    cuts_in_a_resolved_step = 0
    for n in sorted(random.Random(5).sample(range(3, commits - 2), 3)):
        run_dir = tmp_path / f"cut-{n}"
        cut(n)
        crash(protocol, run_dir, seed=3)
        cut(None)
        steps, _ = _rows(run_dir)
        cuts_in_a_resolved_step += any(s["ended_t"] is None and "capacity_basis_Ah"
                                       in s["params"] for s in steps)
        resume_run(run_dir)
        assert_same_data(reference, data(run_dir))
    assert cuts_in_a_resolved_step >= 1   # a cut fell inside a step of a measured C-rate


def test_a_reference_that_measured_nothing_faults_the_cell_loudly(tmp_path, write_yaml):
    # the rest's jump forward skips the check-up: the aging step has nothing to take 1C of
    protocol = write_yaml(HEAD + """
      - {kind: rest, duration: 1 min, on_end: {duration: goto age}}
      - {kind: cc_discharge, label: rpt, current: C/3, until_voltage: 2.8 V}
      - {kind: cc_discharge, label: age, current: 1C, until_voltage: 2.8 V,
         c_rate_reference: rpt}
""")
    result = CliRunner().invoke(app, ["run", str(protocol), "--sim", "--out",
                                      str(tmp_path / "run")])
    assert "Traceback" not in result.output
    log = (tmp_path / "run" / "run.log").read_text(encoding="utf-8")
    assert ("e step 3 (constant_current): c_rate_reference 'rpt': label 'rpt' has not run in"
            " this experiment yet; the step does not run at the nominal capacity") in log
    summary = json.loads((tmp_path / "run" / "report" / "summary.json").read_text())
    assert summary["run"]["status"] == "faulted"
    assert "label 'rpt' has not run in this experiment yet" in \
        summary["run"]["cells"][0]["fault"]
    store = RunStore.open(tmp_path / "run")
    try:
        assert [s["state"] for s in store.cell_states()] == ["faulted"]
        assert [s["step_index"] for s in store.steps("c1")] == [1]   # nothing sent after
        assert store.meta()["status"] != "completed"
    finally:
        store.close()


@pytest.mark.parametrize(("steps", "line", "message"), [
    ("""
      - {kind: cc_discharge, current: 1C, until_voltage: 2.8 V, c_rate_reference: rpt}
""", 17, "c_rate_reference 'rpt': no step of this experiment carries this label or tag"),
    ("""
      - {kind: cc_discharge, current: 1C, until_voltage: 2.8 V, c_rate_reference: rpt}
      - {kind: cc_discharge, label: rpt, current: C/3, until_voltage: 2.8 V}
""", 17, "the labelled step 2 comes after this step: the reference must run before"),
    ("""
      - kind: loop
        label: rpt
        count: 2
        steps:
          - {kind: cc_discharge, current: 1C, until_voltage: 2.8 V, c_rate_reference: rpt}
""", 21, "the labelled step 1 contains this step"),
    ("""
      - {kind: cc_discharge, label: rpt, current: C/3, until_voltage: 2.8 V}
      - {kind: cc_discharge, current: 0.4 mA, until_voltage: 2.8 V, c_rate_reference: rpt}
""", 18, "the cc_discharge step gives no C-rate to take of the measured capacity"),
    ("""
      - {kind: rest, label: rpt, duration: 1 h}
      - {kind: cc_discharge, current: 1C, until_voltage: 2.8 V, c_rate_reference: rpt}
""", 18, "the steps of label 'rpt' pass no discharge to measure"),
    ("""
      - {kind: cc_discharge, label: rpt, current: C/3, until_voltage: 2.8 V}
      - {kind: cc_discharge, current: 1C, until_voltage: 2.8 V,
         c_rate_reference: {step: rpt, capacity: charge}}
""", 19, "the steps of label 'rpt' pass no charge to measure"),
    ("""
      - {kind: cc_discharge, label: rpt, current: C/3, until_voltage: 2.8 V}
      - {kind: cc_discharge, label: rpt, current: C/3, until_voltage: 2.8 V}
      - {kind: cc_discharge, current: 1C, until_voltage: 2.8 V, c_rate_reference: rpt}
""", 19, "2 steps carry this label (steps 1, 2)"),
    ("""
      - {kind: cc_discharge, label: rpt, current: C/3, until_voltage: 2.8 V}
      - {kind: cc_discharge, tag: rpt, current: C/3, until_voltage: 2.8 V}
      - {kind: cc_discharge, current: 1C, until_voltage: 2.8 V, c_rate_reference: rpt}
""", 19, "it is the label of step 1 and the tag of other steps"),
    ("""
      - {kind: cc_discharge, current: 1C, until_voltage: 2.8 V, c_rate_reference: rpt}
      - {kind: cc_discharge, tag: rpt, current: C/3, until_voltage: 2.8 V}
""", 17, "the steps tagged so (step 2 on) come after this one"),
    ("""
      - kind: loop
        tag: rpt
        count: 2
        steps:
          - {kind: cc_discharge, current: C/3, until_voltage: 2.8 V}
          - {kind: cc_discharge, current: 1C, until_voltage: 2.8 V, c_rate_reference: rpt}
""", 22, "this step carries the tag itself (or a loop around it does)"),
])
def test_a_bad_reference_is_refused_at_validate_with_file_line_and_field(write_yaml, steps,
                                                                          line, message):
    result = CliRunner().invoke(app, ["validate", str(write_yaml(HEAD + steps))])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    output = " ".join(result.output.split())
    assert re.search(rf"protocol\.yaml:{line}: experiments\[0\]\.steps(\[\d\]\.steps)?\[\d\]"
                     r"\.c_rate_reference: ", output), output
    assert message in output, output


def test_a_tag_names_the_last_check_up_and_the_charge_capacity_may_be_the_basis(
        tmp_path, write_yaml):
    protocol = write_yaml(HEAD + """
      - kind: loop
        tag: rpt
        count: 1
        steps:
          - {kind: cccv_charge, current: C/3, voltage: 4.3 V, until_current: C/20}
          - {kind: rest, duration: 10 min}
      - {kind: cc_discharge, current: C/2, until_voltage: 2.8 V,
         c_rate_reference: {step: rpt, capacity: charge}}
""")
    run_simulated(protocol, tmp_path / "run", seed=1)
    steps, points = _rows(tmp_path / "run")
    charged = _growth(points, 1, "charge_Ah") + _growth(points, 2, "charge_Ah")
    discharge = steps[-1]
    assert discharge["params"]["capacity_basis_Ah"] == pytest.approx(charged, rel=1e-9)
    assert discharge["params"]["current_A"] == pytest.approx(-charged / 2, rel=1e-9)


def test_a_soc_end_is_taken_of_the_measured_capacity_too(tmp_path, write_yaml):
    # full (CC-CV), the check-up discharge measures the capacity, full again, then half of
    # what was measured comes out: the cell is at 50 % of its measured capacity
    protocol = write_yaml(HEAD + """
      - {kind: cccv_charge, current: C/3, voltage: 4.3 V, until_current: C/20}
      - {kind: cc_discharge, label: rpt, current: C/3, until_voltage: 2.8 V}
      - {kind: cccv_charge, current: C/3, voltage: 4.3 V, until_current: C/20}
      - {kind: constant_current, direction: discharge, current: C/2, until: {soc: 50 %},
         c_rate_reference: rpt}
""")
    run_simulated(protocol, tmp_path / "run", seed=1)
    steps, points = _rows(tmp_path / "run")
    measured = _growth(points, 3, "discharge_Ah")
    last = steps[-1]
    assert last["end_reason"] == "soc"
    assert last["params"]["capacity_basis_Ah"] == pytest.approx(measured, rel=1e-9)
    assert _growth(points, last["step_count"], "discharge_Ah") == pytest.approx(
        measured / 2, rel=2e-3)
