"""A loop's ``until``: which cycles a capacity retention watches, and whether an iteration
ended the loop.

The retention a loop stops on is the report's (:func:`analysis.cycles.series_retention`): the
executor keeps a :class:`RanStep` for every step a cell ran, as the run store records it, cuts
them into cycles with :func:`analysis.cycles.cycles_of` and compares a cycle with the first
cycle of its series (same tag, C-rate and temperature). So a C/3 check-up run every 100
iterations of a 1C aging loop is its own cycle and series: it is neither summed into an aging
cycle nor compared with one.

Which cycles a loop watches is fixed by the plan (:func:`watched_discharge`): those of the
constant-current discharge that runs most often per iteration of the loop, counting the loops
inside it and steps run only ``every`` N iterations (the aging discharge, not the check-up's;
on a tie, the first in the document). The reference is the first cycle of the same series
since the outermost loop around it began: a loop nested in another compares with the first
cycle of the whole nest, not of its own latest run.

Everything here is re-derived on a resumed run from the store's rows (the replayed steps' end
counters, their last points): the loop's decisions come out as they did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from analysis.cycles import (
    Cycle,
    SeriesKey,
    StepOutcome,
    cycles_of,
    series_key,
    series_retention,
)
from drivers.techniques import ConstantCurrent
from protocols.steps import Loop, LoopUntil
from protocols.units import kelvin_to_celsius
from sequencer.counters import SECONDS_PER_HOUR

if TYPE_CHECKING:
    from sequencer.plan import PlannedStep


@dataclass(frozen=True)
class RanStep:
    """A step a cell ran: what cycles need of it, the plan node it ran (its number) and its
    row in the run store."""

    outcome: StepOutcome
    number: int
    step_id: int | None


def watched_discharge(loop: PlannedStep, cell: str) -> int | None:
    """The number of the constant-current discharge whose cycles ``loop``'s retention watches
    (see the module's docstring); None when the loop discharges nothing at constant current."""
    runs: dict[int, float] = {}

    def visit(nodes: Sequence[PlannedStep], times: float) -> None:
        for node in nodes:
            every = node.step.every
            here = times / every if every else times
            if isinstance(node.step, Loop):
                visit(node.children, here * node.step.count)
                continue
            technique = node.techniques.get(cell)
            if isinstance(technique, ConstantCurrent) and technique.current_A < 0:
                runs[node.number] = runs.get(node.number, 0.0) + here

    visit(loop.children, 1.0)
    if not runs:
        return None
    most = max(runs.values())
    return min(n for n, r in runs.items() if r == most)


@dataclass(frozen=True)
class RetentionCheck:
    """What a capacity retention compares: the cycle and the first of its series."""

    retention: float
    cycle: Cycle
    first: Cycle
    series: str


class CycleTracker:
    """:func:`analysis.cycles.cycles_of` over a cell's growing list of ran steps from one
    scope on, cut again only from the cycle still open: a cycle closes when a later step starts
    the next, and nothing after changes it. A 1000-iteration loop checks its retention after
    every iteration; cutting every step into cycles each time grew with the square of the
    cycles run."""

    def __init__(self, leading: Literal["charge", "discharge"]) -> None:
        self.leading = leading
        self._closed: list[Cycle] = []
        self._tail = 0          # where in ``ran[scope:]`` the open cycle's first step is
        self._where: dict[int, tuple[int, int]] = {}   # id(outcome) -> (index, plan number)
        self._seen = 0
        self._firsts: dict[SeriesKey, Cycle] = {}
        self._firsts_done = 0

    def cycles(self, ran: Sequence[RanStep], scope: int) -> list[Cycle]:
        """The cycles of ``ran[scope:]``, numbered from 1, as ``cycles_of`` cuts them."""
        for i in range(scope + self._seen, len(ran)):
            self._where[id(ran[i].outcome)] = (i - scope, ran[i].number)
        self._seen = len(ran) - scope
        base = len(self._closed)
        fresh = [Cycle(c.number + base, c.tag, c.steps, c.experiment, c.leading)
                 for c in cycles_of([r.outcome for r in ran[scope + self._tail:]],
                                    leading=self.leading)]
        if len(fresh) > 1:
            self._closed.extend(fresh[:-1])
            self._tail = self._where[id(fresh[-1].steps[0])][0]
            fresh = fresh[-1:]
        return [*self._closed, *fresh]

    def check(self, ran: Sequence[RanStep], scope: int, since: int, watched: int,
              one_c_A: float | None) -> RetentionCheck | None:
        """The retention of the last watched cycle of ``ran[scope:]`` that has a step from
        index ``since`` on (counted from ``scope``: one that ended in the iteration just run),
        against the first cycle of its series; None if the iteration completed no watched
        cycle or nothing compares."""
        cycles = self.cycles(ran, scope)
        for cycle in reversed(cycles):
            if not any(self._where[id(s)][1] == watched for s in cycle.discharges):
                continue
            if not any(self._where[id(s)][0] >= since for s in cycle.steps):
                return None
            key = series_key(cycle, one_c_A)
            first = self._first_of(key, cycles, one_c_A) or cycle
            # the report's definition, given the series' first cycle kept rather than sought
            retention = series_retention([first], one_c_A, cycle)
            if retention is None:
                return None
            return RetentionCheck(retention, cycle, first, str(key))
        return None

    def _first_of(self, key: SeriesKey, cycles: list[Cycle],
                  one_c_A: float | None) -> Cycle | None:
        """The first cycle of ``cycles`` that discharged in series ``key``; the closed cycles'
        firsts are kept (one C-rate per tracker: a cell's capacity does not change)."""
        for c in self._closed[self._firsts_done:]:
            if c.discharges:
                self._firsts.setdefault(series_key(c, one_c_A), c)
        self._firsts_done = len(self._closed)
        if key in self._firsts:
            return self._firsts[key]
        return next((c for c in cycles[len(self._closed):]
                     if c.discharges and series_key(c, one_c_A) == key), None)


def measured_reason(until: LoopUntil, last: Callable[[], dict[str, float] | None],
                    last_discharge_Ah: float | None) -> str | None:
    """Why a measured condition of ``until`` ends the loop after an iteration, or None.
    ``last`` gives the iteration's last stored point (voltage_V, temperature_C), read only if
    a voltage or temperature condition needs it; ``last_discharge_Ah`` what its last discharge
    step delivered (None: it discharged nothing)."""
    if until.discharge_capacity_below is not None and last_discharge_Ah is not None:
        below_Ah = until.discharge_capacity_below / SECONDS_PER_HOUR   # written in coulombs
        if last_discharge_Ah < below_Ah:
            return (f"the last discharge delivered {1e3 * last_discharge_Ah:.4g} mAh, below"
                    f" {1e3 * below_Ah:.4g} mAh")
    if all(x is None for x in (until.voltage_below, until.voltage_above,
                               until.temperature_above, until.temperature_below)):
        return None
    point = last()
    if point is None:
        return None
    v, t = point["voltage_V"], point["temperature_C"]
    if until.voltage_below is not None and v < until.voltage_below:
        return f"the cell's voltage {v:.4g} V fell below {until.voltage_below:g} V"
    if until.voltage_above is not None and v > until.voltage_above:
        return f"the cell's voltage {v:.4g} V rose above {until.voltage_above:g} V"
    if until.temperature_above is not None and t > kelvin_to_celsius(until.temperature_above):
        return (f"the cell's temperature {t:.3g} degC rose above"
                f" {kelvin_to_celsius(until.temperature_above):g} degC")
    if until.temperature_below is not None and t < kelvin_to_celsius(until.temperature_below):
        return (f"the cell's temperature {t:.3g} degC fell below"
                f" {kelvin_to_celsius(until.temperature_below):g} degC")
    return None
