"""C-rates taken of a measured capacity (``c_rate_reference``): checked in the plan, resolved
when the step starts.

In the plan, a step's reference becomes a :class:`PlannedReference`: the numbers of the steps
(as users count them) whose last run measures the capacity. ``c_rate_reference: rpt`` names a
label (the labelled step, and for a loop every step inside it) or a tag (every step carrying
it) of the same experiment; the plan refuses, with file, line and field, a name no earlier
step carries, a label two steps carry, a name that is a label of some steps and the tag of
others, a reference that does not end before the step (a loop around it), one that passes no
current in the direction asked, and a step that gives no C-rate to resolve.

As the cell runs, a :class:`ReferenceRun` follows the steps it runs in this experiment (the
record the run store's counters give, replayed exactly on resume) and keeps the reference's
last run: the latest unbroken stretch of its steps. Its capacity is what the last discharge
(or charge) half of that stretch passed: the consecutive steps that discharged, rests between
them included, back to the charge before them. No such stretch, a half skipped on resume, or
nothing passed: :func:`measured_basis` says why, and the cell faults rather than run at a
capacity nobody measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from analysis.cycles import StepOutcome
from protocols import Campaign, Problem
from protocols.steps import CONTAINERS, Step
from protocols.steps.capacity_reference import CapacityKind, CapacityReference
from protocols.types import CurrentSetpoint
from sequencer.loop_conditions import RanStep

#: Step kinds that pass current either way, whatever they are written with.
_EITHER_WAY = frozenset({"constant_voltage", "profile", "plating_stripping", "ccd_ramp"})
_ONE_WAY = {"cc_discharge": "discharge", "cccv_charge": "charge",
            "constant_resistance": "discharge"}
_DIRECTED = frozenset({"constant_current", "chronopotentiometry", "constant_power"})


@dataclass(frozen=True)
class PlannedReference:
    """Step ``source`` takes 1C of the ``capacity`` measured in the last run of the steps
    ``numbers``, named ``name`` (a label or a tag: ``by``)."""

    source: int
    name: str
    by: str
    numbers: frozenset[int]
    capacity: CapacityKind

    def describe(self) -> str:
        return f"step {self.source}: {self._basis()}"

    def _basis(self) -> str:
        first, last = min(self.numbers), max(self.numbers)
        span = f"step {first}" if first == last else f"steps {first}-{last}"
        return (f"1C = the {self.capacity} capacity measured in the last run of {self.by}"
                f" {self.name!r} ({span}) before it")


def describe_references(references: Sequence[PlannedReference]) -> list[str]:
    """One line per measured capacity the references take, naming every step that takes it
    (a rate test's eight steps of one check-up's capacity are one line, not eight)."""
    steps: dict[str, list[int]] = {}
    for r in references:
        steps.setdefault(r._basis(), []).append(r.source)
    return [f"{'step' if len(n) == 1 else 'steps'} {', '.join(map(str, n))}: {basis}"
            for basis, n in steps.items()]


def plan_references(campaign: Campaign, experiment: int, steps: Sequence[Step]
                    ) -> tuple[dict[int, PlannedReference], list[Problem]]:
    """The C-rate references of an experiment's written ``steps`` (by the number of the step
    that gives one), and the problems with them."""
    numbered: list[tuple[int, Step, int]] = []   # (number, step, last number inside it)

    def number(block: Sequence[Step], first: int) -> int:
        k = first
        for step in block:
            here = len(numbered)
            numbered.append((k, step, k))
            last = number(step.steps, k + 1) - 1 if isinstance(step, CONTAINERS) else k
            numbered[here] = (k, step, last)
            k = last + 1
        return k

    number(list(steps), 1)
    out: dict[int, PlannedReference] = {}
    problems: list[Problem] = []
    for n, step, _ in numbered:
        ref: CapacityReference | None = getattr(step, "c_rate_reference", None)
        if ref is None:
            continue
        where = campaign.locate_step(experiment, n - 1, ("c_rate_reference",))
        found = _resolve(numbered, n, ref)
        if isinstance(found, str):
            problems.append(replace(where, message=f"c_rate_reference {ref.step!r}: {found}"))
        elif not _gives_c_rate(step):
            problems.append(replace(where, message=(
                f"c_rate_reference {ref.step!r}: the {step.kind} step gives no C-rate to take"
                " of the measured capacity (write its current as '1C' or 'C/3')")))
        else:
            out[n] = found
    return out, problems


def _resolve(numbered: list[tuple[int, Step, int]], source: int,
             ref: CapacityReference) -> PlannedReference | str:
    """The steps ``ref`` names for the step numbered ``source``, or why it names none."""
    labelled = [(n, last) for n, s, last in numbered if s.label == ref.step]
    tagged = {n for n, s, _ in numbered if s.tag == ref.step}
    if len(labelled) > 1:
        return (f"{len(labelled)} steps carry this label (steps"
                f" {', '.join(str(n) for n, _ in labelled)}); a reference names one")
    if labelled:
        first, last = labelled[0]
        numbers = frozenset(range(first, last + 1))
        if tagged - numbers:
            return ("it is the label of step"
                    f" {first} and the tag of other steps: rename one")
        by = "label"
    elif source in tagged:
        return ("this step carries the tag itself (or a loop around it does): the reference"
                " must end before the step whose C-rate it gives")
    elif tagged:
        numbers = frozenset(n for n in tagged if n < source)
        by = "tag"
        if not numbers:
            return (f"the steps tagged so (step {min(tagged)} on) come after this one: the"
                    " reference must run before")
    else:
        return "no step of this experiment carries this label or tag"
    if max(numbers) >= source:   # only a label can: a tag's steps after this one are left out
        return (f"the labelled step {min(numbers)} contains this step: the reference must"
                " end before the step whose C-rate it gives" if min(numbers) <= source
                else f"the labelled step {min(numbers)} comes after this step: the"
                " reference must run before")
    inside = [s for n, s, _ in numbered if n in numbers]
    if not any(_passes(s, ref.capacity) for s in inside):
        return f"the steps of {by} {ref.step!r} pass no {ref.capacity} to measure"
    return PlannedReference(source, ref.step, by, numbers, ref.capacity)


def _passes(step: Step, capacity: CapacityKind) -> bool:
    """``step`` can pass current in the direction ``capacity`` names (titrations are
    left out: their pulses are not a cycle's half)."""
    if step.kind in _EITHER_WAY:
        return True
    if step.kind in _ONE_WAY:
        return _ONE_WAY[step.kind] == capacity
    return step.kind in _DIRECTED and getattr(step, "direction", None) == capacity


def _gives_c_rate(step: Step) -> bool:
    return any(isinstance(v, CurrentSetpoint) and v.kind == "c_rate"
               for v in vars(step).values())


@dataclass(frozen=True)
class Measured:
    """The capacity the reference's last run measured, and the steps (counts) it came from."""

    capacity_Ah: float
    step_counts: tuple[int, ...]
    end_reason: str


class ReferenceRun:
    """The last run of a reference's steps in an experiment, followed step by step as a cell
    runs (:meth:`add` every step, in order): where it began and the last half it passed, so
    :meth:`measured` needs no list of the steps run before it (a reference run once before a
    10 000-cycle loop is still found at its end)."""

    def __init__(self, experiment: str, ref: PlannedReference) -> None:
        self.experiment, self.ref = experiment, ref
        self._wanted = -1 if ref.capacity == "discharge" else 1
        self._running = False                  # the last step run was one of the reference's
        self._first_count: int | None = None   # step count of its last run's first step
        self._half: list[StepOutcome] = []     # the steps of the last half in that run
        self._half_over = False                # a step the other way came after the half

    def add(self, step: RanStep) -> None:
        """A step the cell ran: the reference's steps extend (or begin) its last run; any
        other step ends it."""
        if step.outcome.experiment != self.experiment or step.number not in self.ref.numbers:
            self._running = False
            return
        if not self._running:
            self._running, self._first_count = True, step.outcome.step_count
            self._half, self._half_over = [], False
        direction = step.outcome.direction
        if direction == self._wanted:
            if self._half_over:
                self._half, self._half_over = [], False
            self._half.append(step.outcome)
        elif direction == -self._wanted and self._half:
            self._half_over = True

    def measured(self) -> Measured | str:
        """What the reference's last run measured (see the module's docstring): the last
        consecutive steps that passed current the way it asks (rests between them included,
        back to a step the other way), or why nothing was measured."""
        ref = self.ref
        if self._first_count is None:
            return f"{ref.by} {ref.name!r} has not run in this experiment yet"
        half = self._half
        if not half:
            return (f"its last run (from step count {self._first_count}) passed no"
                    f" {ref.capacity}")
        skipped = [s.step_count for s in reversed(half) if s.end_reason == "skipped"]
        if skipped:
            return (f"its last {ref.capacity} (step count {skipped[0]}) was skipped on resume:"
                    " its capacity was not measured")
        name = "discharge_Ah" if ref.capacity == "discharge" else "charge_Ah"
        capacity = sum(getattr(s, name) for s in reversed(half))
        if not capacity > 0:
            return f"its last {ref.capacity} passed no charge"
        return Measured(capacity, tuple(s.step_count for s in half), half[-1].end_reason)
