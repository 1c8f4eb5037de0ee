"""HPPC expands into primitive steps before the plan: a loop over the state-of-charge levels of
a rest, the pulse table and an SOC step, so the executor, drivers and simulators need nothing new.

Each pulse is a chronopotentiometry (a current for a time, ended early by the pulse's voltage
limit, which is not a fault), the SOC step a constant current for the time its charge takes,
ended early by the same limit. The store keeps them apart by their kind, which is how the
analysis finds the pulses. A pulse cut by an interruption is run again from its start (half a
pulse measures nothing); the levels' iterations are no cycles.
"""

from __future__ import annotations

from protocols.steps import Chronopotentiometry, ConstantCurrent, Loop, Rest, Step
from protocols.steps.hppc import HPPC


def hppc(step: HPPC) -> list[Step]:
    body: list[Step] = [Rest.model_construct(duration=step.rest, record_every=step.record_every)]
    for pulse in step.pulses:
        limit = step.max_voltage if pulse.direction == "charge" else step.min_voltage
        body.append(Chronopotentiometry.model_construct(
            direction=pulse.direction, current=pulse.current, duration=pulse.duration,
            until_voltage=limit, record_every=step.pulse_record_every,
            on_resume=step.on_resume or "restart"))
        body.append(Rest.model_construct(duration=pulse.rest, record_every=step.record_every))
    limit = step.max_voltage if step.direction == "charge" else step.min_voltage
    body.append(ConstantCurrent.model_construct(
        direction=step.direction, current=step.soc_current, duration=step.soc_step_duration_s(),
        until_voltage=limit, record_every=step.record_every))
    return [Loop.model_construct(count=step.levels, count_cycles=False, steps=body)]


EXPANSIONS = {HPPC: hppc}
