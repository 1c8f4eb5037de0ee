"""The plan's ``at most`` is a bound the run keeps: soaks are taken to their timeout, steps to
their time limit (an estimate alone may be exceeded; a bound exceeded is a wrong number)."""

from __future__ import annotations

import pytest

from sequencer.runner import prepare, run_simulated
from store import RunStore

#: The new user's campaign: spectra of a blocking cell at five temperatures, 30 min holds;
#: each soak takes about 90 min in a dry run, three times what the estimate allows for.
EIS_SWEEP = """
campaign: eis-sweep
cells:
  - {id: blk-1, kind: blocking, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
experiments:
  - name: eis
    cells: [blk-1]
    steps:
      - kind: temperature_sweep
        temperatures: [-20 degC, 0 degC, 25 degC, 50 degC, 80 degC]
        hold: 30 min
        timeout: 3 h
        steps:
          - {kind: peis, f_start: 1 MHz, f_end: 1 Hz, amplitude: 10 mV,
             points_per_decade: 10}
"""


def test_a_temperature_sweep_runs_within_the_plans_bound(write_yaml, tmp_path):
    protocol = write_yaml(EIS_SWEEP)
    plan = prepare(protocol)
    (exp,) = plan.experiments
    run_simulated(protocol, tmp_path / "run", seed=0)
    store = RunStore.open(tmp_path / "run")
    try:
        ran_s = store.steps("blk-1")[-1]["ended_t"]
    finally:
        store.close()
    assert ran_s > exp.estimate_s            # the estimate undercounts these soaks ...
    assert ran_s <= exp.bound_s              # ... the bound holds
    assert plan.makespan_bound_s >= ran_s
    assert exp.bound_s >= 5 * 3 * 3600       # every soak to its timeout


@pytest.mark.parametrize(("step", "limit_s"), [
    ("{kind: constant_voltage, voltage: 4.2 V, until_current: C/50, duration: 5 h}", 5 * 3600),
    ("{kind: constant_current, direction: charge, current: 0.1C, until_voltage: 4.2 V}",
     1.5 * 10 * 3600),
])
def test_a_limit_terminated_step_is_bounded_by_its_time_limit(write_yaml, step, limit_s):
    (exp,) = prepare(write_yaml(f"""
campaign: c
cells:
  - id: c1
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {{material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
               specific_capacity: 200 mAh/g}}
    limits: {{max_voltage: 4.45 V, min_voltage: 2.5 V}}
experiments:
  - name: e
    cells: [c1]
    steps:
      - {step}
""")).experiments
    assert exp.estimate_s < exp.bound_s == pytest.approx(limit_s)
