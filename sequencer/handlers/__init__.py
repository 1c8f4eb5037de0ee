"""One handler per step type, each module declaring the step types it handles.

A primitive step becomes a driver technique for one cell (a module's ``TECHNIQUES``, step type
-> builder); a compound step expands into primitive steps and loops (a module's
``EXPANSIONS``); a temperature sweep expands in the plan into soaks and its body. Both are pure
(no I/O), so the plan runs them before anything is sent to an instrument and every technique is
checked against its channel's capabilities up front. ``set_temperature`` is run by the executor
itself, on the chamber (:mod:`sequencer.handlers.set_temperature`).

The tables below are gathered from every module of this package, so a new step type's handler
is its own module and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from drivers.interfaces import VoltageWindow
from drivers.techniques import Technique
from protocols.cells import Cell
from protocols.steps import CONTAINERS, Step

TechniqueBuilder = Callable[[Any, Cell], Technique]
Expansion = Callable[[Any], list[Step]]


def _gather(name: str) -> dict[type, Any]:
    """The union of the ``name`` tables of this package's modules; a step type handled twice
    is a mistake in the code, refused at import."""
    table: dict[type, Any] = {}
    owner: dict[type, str] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for step_type, handler in getattr(module, name, {}).items():
            if step_type in table:
                raise TypeError(f"{step_type.__name__} has two handlers: in {owner[step_type]}"
                                f" and in {module.__name__}")
            table[step_type], owner[step_type] = handler, module.__name__
    return table


TECHNIQUES: dict[type, TechniqueBuilder] = _gather("TECHNIQUES")
EXPANSIONS: dict[type, Expansion] = _gather("EXPANSIONS")
_both = set(TECHNIQUES) & set(EXPANSIONS)
if _both:
    raise TypeError(f"{sorted(t.__name__ for t in _both)} both expand and run as a technique")


def technique_for(step: Any, cell: Cell) -> Technique:
    """The technique a channel runs for ``step`` on ``cell``; ValueError if it cannot."""
    try:
        build = TECHNIQUES[type(step)]
    except KeyError:
        raise ValueError(f"{step.kind} steps are not run on a channel") from None
    return build(step, cell)


def techniques_of(steps: Iterable[Step], cell: Cell) -> Iterator[Technique]:
    """Every technique ``steps`` plan to run on ``cell``: compound steps expanded, loop and
    sweep bodies once each. Steps that cannot become a technique for this cell are left out
    (the plan names them)."""
    for step in steps:
        if type(step) in EXPANSIONS:
            yield from techniques_of(EXPANSIONS[type(step)](step), cell)
        elif isinstance(step, CONTAINERS):
            yield from techniques_of(step.steps, cell)
        elif type(step) in TECHNIQUES:
            try:
                technique = technique_for(step, cell)
            except ValueError:   # the plan refuses this step, at its line, with this message
                continue
            yield technique


def voltage_window(cell: Cell) -> VoltageWindow:
    """Where the cell's voltage may be, as far as the protocol says: its safety limits. The
    open-circuit voltage a rest, an impedance or a hold ``vs: ocv`` starts from lies there."""
    return cell.limits.min_voltage, cell.limits.max_voltage


__all__ = ["EXPANSIONS", "TECHNIQUES", "technique_for", "techniques_of", "voltage_window"]
