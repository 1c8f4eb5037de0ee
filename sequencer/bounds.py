"""Plan-time bounds on what a campaign asks of the channels, the simulators and the run store.

A simulated channel computes a step's points in one vectorised call, and the store writes them
in chunks, so a slip such as ``record_every: 1 us`` over an hour (3.6e9 points, 27 GiB) or a
current of 1e-30 A with no duration (a time limit of 1e27 s, beyond numpy's largest array) would
exhaust the machine mid-run. The plan refuses such a campaign before anything starts, naming the
step, the cell and the limit:

- a step records at most :data:`MAX_STEP_POINTS` points on one cell (115 days at 1 s);
- a step's time limit, written or computed (1.5x what the capacity allows at a C-rate, a sweep
  at its scan rate, a spectrum's lowest frequencies), is at most
  :data:`protocols.types.MAX_DURATION_S` (two years), the bound every written duration has;
- a campaign records at most :data:`MAX_TOTAL_POINTS` points (about 16 GB of run store at the
  measured 80 bytes per point; 32 cells recorded every second for 50 days fit),
- runs at most :data:`MAX_STEPS_RUN` steps (loop iterations counted; a dry run spends about
  0.6 ms per step), and is planned to end within :data:`MAX_CAMPAIGN_S` (ten years, by the
  plan's estimate: its bound, every step to its time limit, is several times longer).

Loops are counted in full (as in the plan's bound, ``at most``), so the figures are upper bounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from drivers.techniques import Impedance, Technique, VoltageSweep
from protocols import Problem, ProtocolError
from protocols.steps import Loop, SetTemperature, Step
from protocols.types import DAY_S, MAX_DURATION_S
from sequencer.branches import PlannedBranch, extra_runs
from sequencer.estimate import technique_limit_s as time_limit_s
from simulators.specs import MAX_GRID_POINTS

if TYPE_CHECKING:
    from sequencer.plan import Plan, PlannedExperiment, PlannedStep

MAX_STEP_POINTS = 10_000_000
MAX_TOTAL_POINTS = 200_000_000
MAX_STEPS_RUN = 10_000_000
MAX_CAMPAIGN_S = 10 * 365.25 * DAY_S
#: Loop multiplicities are capped here so nested loops of a million cannot overflow a float.
_HUGE = 10**30


def check_bounds(plan: Plan) -> None:
    """Raise :class:`ProtocolError` listing every bound the plan exceeds."""
    problems = list(bound_problems(plan))
    if problems:
        raise ProtocolError(problems)


def bound_problems(plan: Plan) -> Iterator[Problem]:
    campaign = plan.campaign
    seen: set[tuple[int, int, str]] = set()
    points_by_exp: dict[int, float] = {}
    steps_by_exp: dict[int, int] = {}
    for exp in plan.experiments:
        for cell in exp.cells:
            for node, runs in _runs(exp.steps, 1, exp.branches):
                steps_by_exp[exp.index] = min(steps_by_exp.get(exp.index, 0) + runs, _HUGE)
                step = node.step
                if isinstance(step, SetTemperature):
                    continue
                technique = node.techniques[cell]
                duration = time_limit_s(technique)
                points = step_points(technique)
                points_by_exp[exp.index] = points_by_exp.get(exp.index, 0.0) + runs * points
                position = node.number - 1   # document order, from 0
                if duration > MAX_DURATION_S and (exp.index, position, "s") not in seen:
                    seen.add((exp.index, position, "s"))
                    yield _at(plan, exp, position,
                              f"cell {cell}: the step may run {_span(duration)}; the longest a"
                              f" step may run is {MAX_DURATION_S / DAY_S:g} days"
                              f"{_why_long(step, technique)}")
                if points > MAX_STEP_POINTS and not seen & {(exp.index, position, "n"),
                                                             (exp.index, position, "s")}:
                    seen.add((exp.index, position, "n"))
                    yield _at(plan, exp, position,
                              f"cell {cell}: the step records about {points:.3g} points; the"
                              f" limit is {MAX_STEP_POINTS:,} points per step (raise"
                              " record_every, or split the step)")
    if seen:   # the totals below follow from the steps already named
        return
    total = sum(points_by_exp.values())
    if total > MAX_TOTAL_POINTS:
        worst = max(points_by_exp, key=points_by_exp.__getitem__)
        yield _experiment(plan, worst,
                          f"the campaign records about {total:.3g} points in all (this"
                          f" experiment {points_by_exp[worst]:.3g}); the limit is"
                          f" {MAX_TOTAL_POINTS:,} points (about 16 GB of run store): record"
                          " less often or run fewer cycles")
    steps = sum(steps_by_exp.values())
    if steps > MAX_STEPS_RUN:
        worst = max(steps_by_exp, key=steps_by_exp.__getitem__)
        yield _experiment(plan, worst,
                          f"the campaign runs about {steps:.3g} steps in all, loop iterations"
                          f" counted (this experiment {steps_by_exp[worst]:.3g}); the limit is"
                          f" {MAX_STEPS_RUN:,}")
    # the estimate, not the bound: the bound takes every step to its time limit and every
    # soak to its timeout, several times what a long aging campaign will take
    if plan.makespan_s > MAX_CAMPAIGN_S:
        yield Problem(campaign.sources[0] if campaign.sources else "", None, "",
                      f"the campaign is planned to take {_span(plan.makespan_s)};"
                      f" the limit is {MAX_CAMPAIGN_S / (365.25 * DAY_S):g} years")


def step_points(technique: Technique) -> float:
    """Points the technique records at most: one per frequency of a spectrum; otherwise one
    per ``record_every`` and the end, plus, where it records on a change of V or I, one per
    firmware tick at most."""
    if isinstance(technique, Impedance):
        return float(technique.frequency_count())
    duration = time_limit_s(technique)
    points = duration / technique.record_dt_s + 2
    if getattr(technique, "record_dV_V", None) or getattr(technique, "record_dI_A", None):
        points += min(MAX_GRID_POINTS + 2, duration / min(1.0, technique.record_dt_s) + 2)
    return points


def _runs(steps: Sequence[PlannedStep], times: int = 1,
          branches: Sequence[PlannedBranch] = ()) -> Iterator[tuple[PlannedStep, int]]:
    """Every primitive step and soak of a planned experiment, with how often it runs at
    most (jumps back taken as often as they may)."""
    for node, more in zip(steps, extra_runs(steps, branches), strict=True):
        yield from _node_runs(node, min(times * (1 + more), _HUGE), branches)


def _node_runs(node: PlannedStep, times: int,
               branches: Sequence[PlannedBranch]) -> Iterator[tuple[PlannedStep, int]]:
    if not isinstance(node.step, Loop):
        yield node, times
        return
    count = node.step.count
    for child, more in zip(node.children, extra_runs(node.children, branches), strict=True):
        every = child.step.every
        runs = count if every is None else math.ceil(count / every)
        yield from _node_runs(child, min(times * runs * (1 + more), _HUGE), branches)


def _why_long(step: Step, technique: Technique) -> str:
    if isinstance(technique, Impedance):
        return " (a spectrum's lowest frequencies take longest; raise f_end or lower average)"
    if isinstance(technique, VoltageSweep):
        return " (the sweep's span at its scan rate; raise the scan rate)"
    if getattr(step, "duration", 0.0) is None:
        return (" (the time limit of a step that ends on a limit is 1.5x what the cell's"
                " capacity allows at its current; give a duration or a larger current)")
    return ""


def _span(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "for ever"
    if seconds >= 365.25 * DAY_S:
        return f"{seconds / (365.25 * DAY_S):.3g} years"
    return f"{seconds / DAY_S:.3g} days"


def _at(plan: Plan, exp: PlannedExperiment, position: int, message: str) -> Problem:
    where = plan.campaign.locate_step(exp.index, position)
    return Problem(where.file, where.line, where.path, message, where.via)


def _experiment(plan: Plan, index: int, message: str) -> Problem:
    where = plan.campaign.locate_experiment(index)
    return Problem(where.file, where.line, where.path, message, where.via)
