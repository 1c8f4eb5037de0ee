"""Chamber schedules: when experiments in one chamber may run at the same time.

Experiments whose cells sit in one chamber share it when their temperature schedules agree;
the chamber then soaks once for all of them, and every soak is a meeting point of all their
cells (as it is of one experiment's cells). Otherwise they queue, one after another.

An experiment's *chamber schedule* is its top-level steps in order, each ``set_temperature``
(a temperature sweep's setpoints included) kept as itself, each run of other steps between two
soaks kept only as "steps". Two schedules *agree* when, conservatively:

- both begin with a ``set_temperature`` step (so every step of every sharer runs at a setpoint
  the protocol states, none at whatever the chamber held before);
- they have the same items in the same order: soaks at the same points (no soak in one where
  the other runs steps), each pair of soaks with the same target, tolerance, hold and
  timeout.

What runs between two soaks may differ: the experiment that gets to a soak first waits there
(output off, as at any soak) until the others arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protocols.steps import SetTemperature
from protocols.units import kelvin_to_celsius

if TYPE_CHECKING:
    from sequencer.plan import PlannedStep


@dataclass(frozen=True)
class Soak:
    """A ``set_temperature`` item of a schedule: what must be equal for two soaks to be
    one (``number``, the step's number as users count it, is only for messages)."""

    target_K: float
    tolerance_K: float
    hold_s: float
    timeout_s: float
    number: int

    @property
    def key(self) -> tuple[float, float, float, float]:
        return self.target_K, self.tolerance_K, self.hold_s, self.timeout_s


@dataclass(frozen=True)
class Steps:
    """A run of other steps between soaks (``number``: the first one's)."""

    number: int


Item = Soak | Steps


def items(steps: Sequence[PlannedStep]) -> list[list[PlannedStep]]:
    """The top-level nodes split into schedule items: each soak alone, each run of other
    steps together (the executor walks the same items)."""
    out: list[list[PlannedStep]] = []
    for node in steps:
        if isinstance(node.step, SetTemperature) or not out or \
                isinstance(out[-1][0].step, SetTemperature):
            out.append([node])
        else:
            out[-1].append(node)
    return out


def schedule(steps: Sequence[PlannedStep]) -> list[Item]:
    """The chamber schedule of an experiment's top-level planned steps."""
    out: list[Item] = []
    for group in items(steps):
        step = group[0].step
        if isinstance(step, SetTemperature):
            out.append(Soak(step.target, step.tolerance, step.hold, step.timeout,
                            group[0].number))
        else:
            out.append(Steps(group[0].number))
    return out


def _say(a: Item | None, b: Item | None) -> str:
    """What differs between two items, here (``a``) and there (``b``), briefly."""
    if isinstance(a, Soak) and isinstance(b, Soak):
        for name, unit, x, y in (("", " degC", kelvin_to_celsius(a.target_K),
                                  kelvin_to_celsius(b.target_K)),
                                 ("tolerance ", " K", a.tolerance_K, b.tolerance_K),
                                 ("hold ", " min", a.hold_s / 60, b.hold_s / 60),
                                 ("timeout ", " h", a.timeout_s / 3600, b.timeout_s / 3600)):
            if x != y:
                return f"{name}{x:g}{unit} here, {y:g}{unit} there"

    def one(item: Item | None) -> str:
        if item is None:
            return "nothing"
        return "set_temperature" if isinstance(item, Soak) else "other steps"
    return f"{one(a)} here, {one(b)} there"


def disagreement(mine: list[Item], theirs: list[Item]) -> str | None:
    """Why an experiment with schedule ``mine`` cannot share the chamber with one whose
    schedule is ``theirs``; None when they agree. Names the step of ``mine`` where they part,
    and what each has there."""
    if not mine or not isinstance(mine[0], Soak):
        return "its first step is not set_temperature"
    if not theirs or not isinstance(theirs[0], Soak):
        return "the other's first step is not set_temperature"
    for i in range(max(len(mine), len(theirs))):
        a = mine[i] if i < len(mine) else None
        b = theirs[i] if i < len(theirs) else None
        if isinstance(a, Soak) and isinstance(b, Soak) and a.key == b.key:
            continue
        if isinstance(a, Steps) and isinstance(b, Steps):
            continue
        where = f"step {a.number}" if a is not None else "its end"
        return f"chamber schedule differs at {where} ({_say(a, b)})"
    return None
