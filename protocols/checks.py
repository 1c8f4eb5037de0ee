"""Checks across a whole campaign (all its files): unique names, references that resolve,
C-rates only for cells with a capacity, expected values in a unit of their quantity's
dimension. Each problem names the file, line and field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.quantities import reported_units
from protocols.campaign import Experiment, walk_with_locations
from protocols.cells import Cell
from protocols.errors import Problem
from protocols.types import CurrentSetpoint
from protocols.units import UnitError, convert


@dataclass(frozen=True)
class Placed:
    """An item of a campaign and where it was written."""

    item: Cell | Experiment
    file: str
    index: int
    locate: Callable[[tuple[object, ...]], tuple[int | None, str]]
    via: tuple[str, ...] = ()          # the includes that led to ``file`` (Problem.via)

    def problem(self, loc: tuple[object, ...], message: str) -> Problem:
        line, path = self.locate(loc)
        return Problem(self.file, line, path, message, self.via)


def check_campaign(top_file: str, cells: list[Placed], experiments: list[Placed]
                   ) -> list[Problem]:
    problems: list[Problem] = []
    if not cells:
        problems.append(Problem(top_file, None, "cells", "the campaign has no cells"))
    seen_cells = _first_of_each(cells, "cells", "id", "cell id", problems)
    _first_of_each(experiments, "experiments", "name", "experiment name", problems)
    if not experiments:
        problems.append(Problem(top_file, None, "experiments",
                                "the campaign has no experiments"))
    for p in experiments:
        exp: Experiment = p.item  # type: ignore[assignment]
        for k, cid in enumerate(exp.cells):
            if cid not in seen_cells:
                known = ", ".join(seen_cells) or "none"
                problems.append(p.problem(("experiments", p.index, "cells", k),
                                          f"cell {cid!r} is not among the cells ({known})"))
        for k, expectation in enumerate(exp.expected):
            problem = _unit_problem(expectation.quantity, expectation.unit)
            if problem:
                problems.append(p.problem(("experiments", p.index, "expected", k, "unit"),
                                          problem))
        for step, loc in walk_with_locations(exp.steps):
            for cid in exp.cells:   # a step that checks itself against the cell (HPPC pulses)
                cell = seen_cells.get(cid)
                check = getattr(step, "cell_problems", None)
                if cell is not None and check is not None:
                    problems.extend(p.problem(("experiments", p.index, *loc, *field),
                                              f"cell {cid}: {message}")
                                    for field, message in check(cell.item))
            if not _uses_c_rate(step):
                continue
            for cid in exp.cells:
                cell = seen_cells.get(cid)
                if cell is not None and cell.item.capacity_Ah is None:  # type: ignore[union-attr]
                    problems.append(p.problem(
                        ("experiments", p.index, "steps"),
                        f"a {step.kind} step gives a C-rate, but cell {cid!r}"
                        f" ({cell.item.kind.value}) has no cathode capacity"))  # type: ignore[union-attr]
    return problems


def _first_of_each(placed: list[Placed], section: str, key: str, noun: str,
                   problems: list[Problem]) -> dict[str, Placed]:
    """Items by their ``key``; a repeat is a problem pointing at both places."""
    seen: dict[str, Placed] = {}
    for p in placed:
        value = getattr(p.item, key)
        if value in seen:
            first = seen[value]
            problems.append(p.problem((section, p.index, key), f"{noun} {value!r} is already used"
                                      f" in {first.file} ({section}[{first.index}])"))
        else:
            seen[value] = p
    return seen


def _uses_c_rate(step: object) -> bool:
    return any(isinstance(v, CurrentSetpoint) and v.kind == "c_rate"
               for v in vars(step).values())


def _unit_problem(quantity: str, unit: str) -> str | None:
    """Why an expected value's unit cannot be compared with what the analysis reports for its
    quantity, or None. Units are compared through pint, so ``cm^2/s`` and ``cm2/s`` are one."""
    reported = reported_units(quantity)
    if unit in reported:   # compared as written, as the report does: no pint needed
        return None
    reported = reported or (unit,)
    failures = []
    for candidate in reported:
        try:
            convert(1.0, unit, candidate)
        except UnitError as exc:
            failures.append(exc)
            continue
        return None
    if reported == (unit,):
        return str(failures[0])
    return f"{failures[0]}; {quantity} is reported in {' or '.join(reported)}"
