"""Checks across a whole campaign (all its files): unique names, references that resolve,
C-rates only for cells with a capacity. Each problem names the file, line and field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocols.campaign import Experiment
from protocols.cells import Cell
from protocols.errors import Problem
from protocols.steps import walk
from protocols.types import CurrentSetpoint


@dataclass(frozen=True)
class Placed:
    """An item of a campaign and where it was written."""

    item: Cell | Experiment
    file: str
    index: int
    locate: Callable[[tuple[object, ...]], tuple[int | None, str]]

    def problem(self, loc: tuple[object, ...], message: str) -> Problem:
        line, path = self.locate(loc)
        return Problem(self.file, line, path, message)


def check_campaign(top_file: str, cells: list[Placed], experiments: list[Placed]
                   ) -> list[Problem]:
    problems: list[Problem] = []
    if not cells:
        problems.append(Problem(top_file, None, "cells", "the campaign has no cells"))
    seen_cells: dict[str, Placed] = {}
    for p in cells:
        cid = p.item.id
        if cid in seen_cells:
            first = seen_cells[cid]
            problems.append(p.problem(("cells", p.index, "id"), f"cell id {cid!r} is already used"
                                      f" in {first.file} (cells[{first.index}])"))
        else:
            seen_cells[cid] = p
    seen_exps: dict[str, Placed] = {}
    for p in experiments:
        name = p.item.name
        if name in seen_exps:
            first = seen_exps[name]
            problems.append(p.problem(("experiments", p.index, "name"), f"experiment name"
                                      f" {name!r} is already used in {first.file}"
                                      f" (experiments[{first.index}])"))
        else:
            seen_exps[name] = p
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
        for step in walk(exp.steps):
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


def _uses_c_rate(step: object) -> bool:
    return any(isinstance(v, CurrentSetpoint) and v.kind == "c_rate"
               for v in vars(step).values())
