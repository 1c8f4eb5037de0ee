"""What a cell's steps run so far leave for the decisions still to come, kept so that it does
not grow with the run.

Three decisions look back at the steps a cell ran: a loop's capacity retention (the cycles
since the outermost loop around it began), a loop's ``discharge_capacity_below`` (its
iteration's last discharge) and a C-rate taken of a measured capacity (the last run of its
reference's steps). Each is fed every step as it ends and keeps only what it can still look
at (:class:`~sequencer.loop_conditions.CycleTracker`,
:class:`~sequencer.capacity_basis.ReferenceRun`): a 50-day run of thousands of cycles keeps as
much as a short one. On a resumed run the replayed steps feed them the same way, so the
decisions come out as they did.
"""

from __future__ import annotations

from collections.abc import Iterable

from analysis.cycles import StepOutcome
from sequencer.capacity_basis import Measured, PlannedReference, ReferenceRun
from sequencer.loop_conditions import CycleTracker, RanStep


class StepsRun:
    """A cell's steps run so far: how many, the last that discharged, the cycles of each loop
    scope that watches a retention, the last run of each C-rate reference."""

    def __init__(self) -> None:
        #: steps run so far: the place the next one takes (a loop's scope and iterations
        #: begin at such a place)
        self.count = 0
        self._last_discharge: tuple[int, float] | None = None   # (place, Ah)
        self._trackers: dict[int, CycleTracker] = {}
        self._references: dict[tuple[str, int], ReferenceRun] = {}

    def add(self, outcome: StepOutcome, number: int,
            references: Iterable[PlannedReference] = ()) -> None:
        """A step that ended (plan node ``number``); ``references``: the C-rate references of
        its experiment, followed from its first step on."""
        step = RanStep(outcome, number, self.count)
        self.count += 1
        if outcome.direction < 0:
            self._last_discharge = (step.index, outcome.discharge_Ah)
        for tracker in self._trackers.values():
            tracker.add(step)
        for ref in references:
            key = (outcome.experiment, ref.source)
            if key not in self._references:
                self._references[key] = ReferenceRun(outcome.experiment, ref)
        for run in self._references.values():
            run.add(step)

    def last_discharge_Ah(self, since: int) -> float | None:
        """What the last step that discharged delivered, if it ran at place ``since`` or
        later; None if none did."""
        if self._last_discharge is None or self._last_discharge[0] < since:
            return None
        return self._last_discharge[1]

    def track(self, scope: int, tracker: CycleTracker) -> None:
        """Cut the steps from now on into cycles, for the retention checks of the loop scope
        beginning at place ``scope``."""
        self._trackers[scope] = tracker

    def untrack(self, scope: int) -> None:
        """The loop scope beginning at ``scope`` has ended: its cycles are no longer cut."""
        self._trackers.pop(scope, None)

    def tracker(self, scope: int) -> CycleTracker:
        return self._trackers[scope]

    def measured(self, experiment: str, ref: PlannedReference) -> Measured | str:
        """What the last run of ``ref`` in ``experiment`` measured, or why nothing was
        measured (see :mod:`sequencer.capacity_basis`)."""
        run = self._references.get((experiment, ref.source))
        return (run or ReferenceRun(experiment, ref)).measured()
