"""Branches (``on_end: {voltage_limit: goto LABEL}``) in the plan: resolved, checked and
bounded before anything runs.

Each branch becomes a :class:`PlannedBranch` from one step's number (as users count steps) to
the number of the step labelled LABEL in the same list. The plan refuses, naming file, line
and field: a label no step of that list carries (or that two carry), a branch on a step that
does not run on a channel (a loop, a compound step, a soak: their end reasons are their
steps'), a jump back without ``at_most``, and a jump across a temperature step (the cells of
an experiment meet there). The estimate takes no branch (what a run usually does); the bound
takes every jump back as often as it may (:func:`extra_runs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from protocols import Campaign, Problem
from protocols.steps import CHAMBER_STEPS, CONTAINERS, Step
from protocols.steps.branch import END_REASONS
from sequencer.handlers import TECHNIQUES

if TYPE_CHECKING:
    from sequencer.plan import PlannedStep


@dataclass(frozen=True)
class PlannedBranch:
    """Step ``source`` ending on ``reason`` (as written: ``voltage_limit``) goes on at step
    ``target`` (labelled ``label``), at most ``at_most`` times (None: a jump forward)."""

    source: int
    reason: str
    target: int
    label: str
    at_most: int | None

    @property
    def ended(self) -> str:
        """The end reason the instrument gives."""
        return END_REASONS[self.reason]

    @property
    def backward(self) -> bool:
        return self.target <= self.source

    def describe(self) -> str:
        bound = f", at most {self.at_most} times" if self.at_most is not None else ""
        way = "back" if self.backward else "forward"
        return (f"step {self.source} on {self.reason}: goto {self.label!r}"
                f" (step {self.target}, {way}){bound}")


def plan_branches(campaign: Campaign, experiment: int,
                  steps: Sequence[Step]) -> tuple[tuple[PlannedBranch, ...], list[Problem]]:
    """The branches of an experiment's written ``steps``, and the problems with them."""
    branches: list[PlannedBranch] = []
    problems: list[Problem] = []

    def at(position: int, *field: object) -> Problem:
        return campaign.locate_step(experiment, position, field)

    def visit(block: Sequence[Step], first: int, top: bool) -> None:
        numbers, k = [], first
        for step in block:
            numbers.append(k)
            k += _numbers(step)
        labels: dict[str, list[int]] = {}
        for step, number in zip(block, numbers, strict=True):
            if step.label:
                labels.setdefault(step.label, []).append(number)
        for index, (step, number) in enumerate(zip(block, numbers, strict=True)):
            if isinstance(step, CONTAINERS):
                visit(step.steps, number + 1, False)
            for reason, goto in step.on_end.items():
                where = at(number - 1, "on_end", reason)
                if type(step) not in TECHNIQUES:
                    problems.append(replace(where, message=f"{step.kind} steps end as their"
                                            " own steps do: give on_end to a step that runs"
                                            " on a channel"))
                    continue
                found = labels.get(goto.goto, [])
                if len(found) != 1:
                    problems.append(replace(where, message=(
                        f"goto {goto.goto!r}: no step of this list is labelled so (a branch"
                        " goes to a step of its own list)" if not found else
                        f"goto {goto.goto!r}: {len(found)} steps of this list carry that"
                        " label")))
                    continue
                target = found[0]
                branch = PlannedBranch(number, reason, target, goto.goto, goto.at_most)
                if branch.backward and goto.at_most is None:
                    problems.append(replace(where, message=(
                        f"goto {goto.goto!r} jumps back (to step {target}) without a bound:"
                        f" write {{goto: {goto.goto}, at_most: N}}")))
                    continue
                lo, hi = sorted((numbers.index(target), index))
                if top and any(isinstance(s, CHAMBER_STEPS) for s in block[lo:hi + 1]):
                    problems.append(replace(where, message=(
                        f"goto {goto.goto!r} jumps across a temperature step, where the"
                        " experiment's cells meet")))
                    continue
                branches.append(branch)

    visit(list(steps), 1, True)
    return tuple(branches), problems


def _numbers(step: Step) -> int:
    if isinstance(step, CONTAINERS):
        return 1 + sum(_numbers(s) for s in step.steps)
    return 1


def branch_of(branches: Sequence[PlannedBranch], number: int,
              ended: str) -> PlannedBranch | None:
    """The branch step ``number`` takes on the end reason ``ended``, if one is written."""
    return next((b for b in branches if b.source == number and b.ended == ended), None)


def extra_runs(block: Sequence[PlannedStep], branches: Sequence[PlannedBranch]) -> list[int]:
    """How many more times each node of ``block`` (one list of planned steps) may run than
    once: the sum of ``at_most`` of every jump back whose span covers it."""
    extra = [0] * len(block)
    numbers = [n.number for n in block]
    for b in branches:
        if not b.backward or b.at_most is None or b.source not in numbers \
                or b.target not in numbers:
            continue
        lo = numbers.index(b.target)
        hi = len(numbers) - 1 - numbers[::-1].index(b.source)
        for i in range(lo, hi + 1):
            extra[i] += b.at_most
    return extra
