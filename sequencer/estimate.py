"""How long steps will take, for the plan and for ``cellseq status``.

An estimate, not a promise: limit-terminated steps are taken at the time the cell's nominal
capacity allows at their current (or their time limit, if shorter). A loop bounded by a generous
count is taken at what it will probably run, and its count gives the bound, shown apart:

- a loop that ends on a voltage limit and moves charge each iteration (a GITT's pulses, an
  HPPC-like titration written as a loop) runs about as many iterations as the nominal capacity
  holds of that charge, plus one to reach the limit: 90 pulses of 1/60 of the capacity
  probably run 61, ``max_pulses: 1000`` too;
- every other loop (a retention threshold, a short circuit, a count) runs its count, which is
  then its estimate and its bound alike.

The bound (the plan's ``at most``) is what the run can really take: every loop to its count,
every jump back taken, every step to its time limit (a charge to the limit the plan set, a CV
hold to its duration) and every soak to its ``timeout`` (a soak's hold restarts on any
excursion, so nothing shorter bounds it; at its timeout it fails). Only time spent suspended or
paused lies outside it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from drivers.techniques import (
    ConstantCurrent,
    ConstantPower,
    ConstantResistance,
    ConstantVoltage,
    Impedance,
    OpenCircuit,
    Profile,
    Technique,
    VoltageSweep,
)
from protocols.steps import Loop, SetTemperature
from sequencer.branches import PlannedBranch, extra_runs

if TYPE_CHECKING:
    from sequencer.plan import PlannedStep

#: A soak usually takes the hold plus the time the air and the cell need to get there (the
#: estimate only: the bound is the soak's ``timeout``).
SOAK_APPROACH_S = 1800.0
#: A CV hold to a current threshold usually lasts about this long.
CV_HOLD_TYPICAL_S = 3600.0


def technique_estimate_s(technique: Technique, capacity_Ah: float | None, *,
                         bound: bool = False) -> float:
    """What ``technique`` will probably take, its end conditions included (a charge is taken
    at the technique's current, or its largest one); with ``bound``, at most: its time limit
    (a cell holding more than its nominal capacity, or a CV hold slower to decay, runs longer
    than the estimate)."""
    own = technique_limit_s(technique) if bound else _own_estimate_s(technique, capacity_Ah)
    ends = getattr(technique, "ends", None)
    if ends is None:
        return own
    if bound:
        return own if ends.step_time_s is None else min(own, ends.step_time_s)
    current = abs(getattr(technique, "current_A", 0.0)) or getattr(technique,
                                                                    "peak_current_A", 0.0)
    for limit in (ends.step_time_s,
                  *(q / current * 3600 for q in (ends.charge_Ah, ends.soc_charge_Ah)
                    if q is not None and current > 0)):
        if limit is not None:
            own = min(own, limit)
    return own


def _own_estimate_s(technique: Technique, capacity_Ah: float | None) -> float:
    if isinstance(technique, ConstantPower | ConstantResistance):
        if technique.until_voltage_V is not None and capacity_Ah:
            return min(technique.duration_s, capacity_Ah / technique.peak_current_A * 3600)
        return technique.duration_s
    if isinstance(technique, Profile):
        return technique.duration_s
    if isinstance(technique, Impedance):
        return technique.sweep_duration_s()
    if isinstance(technique, OpenCircuit):
        return technique.duration_s
    if isinstance(technique, ConstantCurrent):
        if technique.until_voltage_V is not None and capacity_Ah:
            return min(technique.duration_s, capacity_Ah / abs(technique.current_A) * 3600)
        return technique.duration_s
    if isinstance(technique, ConstantVoltage):
        if technique.until_abs_current_A is not None:
            return min(technique.duration_s, CV_HOLD_TYPICAL_S)
        return technique.duration_s
    if isinstance(technique, VoltageSweep):
        return sweep_duration_s(technique, start_V=technique.start_V or 0.0)
    raise TypeError(f"no estimate for {type(technique).__name__}")


def technique_limit_s(technique: Technique) -> float:
    """The longest ``technique`` can run: its time limit, or a spectrum's or sweep's length."""
    if isinstance(technique, Impedance):
        return technique.sweep_duration_s()   # without numpy: validate and plan load none
    if isinstance(technique, VoltageSweep):
        return sweep_duration_s(technique, start_V=technique.start_V or 0.0)
    return technique.duration_s


def sweep_duration_s(sweep: VoltageSweep, start_V: float) -> float:
    points = [start_V, *sweep.vertices_V]
    one = sum(abs(b - a) for a, b in itertools.pairwise(points))
    if sweep.cycles > 1 and len(sweep.vertices_V) > 1:
        loop = [*sweep.vertices_V, sweep.vertices_V[0]]
        one += (sweep.cycles - 1) * sum(abs(b - a) for a, b in itertools.pairwise(loop))
    return one / sweep.scan_rate_V_s


def experiment_estimate_s(steps: Iterable[PlannedStep], cell: str,
                          capacity_Ah: float | None = None, *, bound: bool = False,
                          branches: Sequence[PlannedBranch] = ()) -> float:
    """What planned ``steps`` will probably take on ``cell`` (no branch taken); with
    ``bound``, at most (every loop to its count, every jump back of ``branches`` taken as
    often as it may)."""
    steps = list(steps)
    extra = extra_runs(steps, branches) if bound else [0] * len(steps)
    return sum((1 + more) * _node_estimate_s(node, cell, capacity_Ah, bound, branches)
               for node, more in zip(steps, extra, strict=True))


def _node_estimate_s(node: PlannedStep, cell: str, capacity_Ah: float | None, bound: bool,
                     branches: Sequence[PlannedBranch]) -> float:
    if isinstance(node.step, SetTemperature):
        return node.step.timeout if bound else node.step.hold + SOAK_APPROACH_S
    if isinstance(node.step, Loop):
        return _loop_estimate(node, cell, capacity_Ah, bound, branches)
    return technique_estimate_s(node.techniques[cell], capacity_Ah, bound=bound)


def _loop_estimate(loop: PlannedStep, cell: str, capacity_Ah: float | None,
                   bound: bool, branches: Sequence[PlannedBranch] = ()) -> float:
    assert isinstance(loop.step, Loop)
    count = loop.step.count if bound else probable_iterations(loop, cell, capacity_Ah)
    extra = extra_runs(loop.children, branches) if bound else [0] * len(loop.children)
    total = 0.0
    for child, more in zip(loop.children, extra, strict=True):
        runs = count if child.step.every is None else math.ceil(count / child.step.every)
        total += runs * (1 + more) * _node_estimate_s(child, cell, capacity_Ah, bound,
                                                      branches)
    return total


def probable_iterations(loop: PlannedStep, cell: str, capacity_Ah: float | None) -> int:
    """How many iterations the planned ``loop`` will probably run (see the module
    docstring)."""
    assert isinstance(loop.step, Loop)
    until = loop.step.until
    if until is None or not until.voltage_limit or not capacity_Ah:
        return loop.step.count
    net_Ah = 0.0
    for child in loop.children:
        technique = child.techniques.get(cell)
        if isinstance(technique, ConstantCurrent) and child.step.every is None:
            net_Ah += technique.current_A * technique.duration_s / 3600
    if abs(net_Ah) < 1e-9 * capacity_Ah:
        return loop.step.count
    return min(loop.step.count, math.ceil(capacity_Ah / abs(net_Ah)) + 1)
