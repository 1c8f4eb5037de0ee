"""A loop's ``until``: which cycles a capacity retention watches, and whether an iteration
ended the loop.

The retention a loop stops on is the report's (:func:`analysis.cycles.series_retention`): the
executor passes a :class:`RanStep` for every step a cell ran, as the run store records it, to a
:class:`CycleTracker`, which cuts them into cycles with :func:`analysis.cycles.cycles_of`, and
compares a cycle with the first cycle of its series (same tag, C-rate and temperature). So a
C/3 check-up run every 100 iterations of a 1C aging loop is its own cycle and series: it is
neither summed into an aging cycle nor compared with one.

Which cycles a loop watches is fixed by the plan (:func:`watched_discharge`): those of the
constant-current discharge that runs most often per iteration of the loop, counting the loops
inside it and steps run only ``every`` N iterations (the aging discharge, not the check-up's;
on a tie, the first in the document). The reference is the first cycle of the same series
since the outermost loop around it began: a loop nested in another compares with the first
cycle of the whole nest, not of its own latest run.

Everything here is re-derived on a resumed run from the store's rows (the replayed steps' end
counters, their last points): the loop's decisions come out as they did. Nothing here keeps
every step a cell ran: a run's memory does not grow with its length.
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
    place among the cell's steps run (0 for the first)."""

    outcome: StepOutcome
    number: int
    index: int


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
    """:func:`analysis.cycles.cycles_of` over the steps a cell runs from one scope on (the
    outermost loop around a retention condition), fed a step at a time (:meth:`add`), keeping
    only what a retention check can still look at: the steps of the cycle still open (a cycle
    closes when a later step starts the next, and nothing after changes it), the first closed
    cycle of each series and the last closed cycle of each discharge step. So a 10 000-cycle
    loop keeps as much as a 10-cycle one, and each check cuts only the open cycle again.
    ``one_c_A``: the cell's 1C current the series' C-rates are taken of."""

    def __init__(self, leading: Literal["charge", "discharge"], one_c_A: float | None) -> None:
        self.leading, self.one_c_A = leading, one_c_A
        self._open: list[RanStep] = []   # from the open cycle's first step (or the scope's) on
        self._cut = 0                    # len(_open) when it was last cut
        self._closed = 0                 # cycles closed so far
        self._firsts: dict[SeriesKey, Cycle] = {}
        #: plan number of a discharge step -> the last closed cycle it discharged in, and the
        #: place of that cycle's last step among the steps run
        self._last_of: dict[int, tuple[Cycle, int]] = {}

    def add(self, step: RanStep) -> None:
        """A step the cell ran (in order). Steps that take no part in cycles are not kept
        (``cycles_of`` passes them over); the open steps are cut when they have doubled, so a
        long stretch between checks keeps one cycle."""
        if not step.outcome.direction:
            return
        self._open.append(step)
        if len(self._open) >= 2 * self._cut + 64:
            self._cycles()

    def _cycles(self) -> list[Cycle]:
        """The cycles of the open steps (numbered on from the closed ones); all but the last
        are closed, summarised and dropped."""
        where = {id(r.outcome): k for k, r in enumerate(self._open)}
        fresh = [Cycle(c.number + self._closed, c.tag, c.steps, c.experiment, c.leading)
                 for c in cycles_of([r.outcome for r in self._open], leading=self.leading)]
        for cycle in fresh[:-1]:
            if cycle.discharges:
                self._firsts.setdefault(series_key(cycle, self.one_c_A), cycle)
            last = self._open[where[id(cycle.steps[-1])]].index
            for s in cycle.discharges:
                self._last_of[self._open[where[id(s)]].number] = (cycle, last)
        if len(fresh) > 1:
            self._closed += len(fresh) - 1
            self._open = self._open[where[id(fresh[-1].steps[0])]:]
            fresh = fresh[-1:]
        self._cut = len(self._open)
        return fresh

    def check(self, since: int, watched: int) -> RetentionCheck | None:
        """The retention of the last cycle that discharged in step ``watched`` (a plan number),
        if it has a step run at place ``since`` or later (one that ended in the iteration just
        run), against the first cycle of its series; None if the iteration completed no
        watched cycle or nothing compares."""
        fresh = self._cycles()
        where = {id(r.outcome): r for r in self._open}
        found: tuple[Cycle, int] | None = None
        for cycle in fresh:
            if any(where[id(s)].number == watched for s in cycle.discharges):
                found = cycle, where[id(cycle.steps[-1])].index
        found = found or self._last_of.get(watched)
        if found is None:
            return None
        cycle, last = found
        if last < since:
            return None
        key = series_key(cycle, self.one_c_A)
        first = self._firsts.get(key) or next(
            (c for c in fresh if c.discharges and series_key(c, self.one_c_A) == key), cycle)
        # the report's definition, given the series' first cycle kept rather than sought
        retention = series_retention([first], self.one_c_A, cycle)
        if retention is None:
            return None
        return RetentionCheck(retention, cycle, first, str(key))


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
