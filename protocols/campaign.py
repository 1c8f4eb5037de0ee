"""A campaign: the cells on the bench and the experiments run on them."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator

from core.quantities import DEFAULT_RELATIVE_TOLERANCE, QUANTITY_NAMES
from protocols.cells import Cell
from protocols.errors import Problem
from protocols.steps import CHAMBER_STEPS, CONTAINERS, Step, walk
from protocols.types import FROZEN, Fraction, Identifier

if TYPE_CHECKING:
    from protocols.loader import SourceFile


class Expectation(BaseModel):
    """A value the experiment should give (from a paper, a datasheet, an earlier run); the
    report shows it beside what was measured."""

    model_config = FROZEN
    quantity: Literal[QUANTITY_NAMES]  # type: ignore[valid-type]
    value: float
    unit: str = Field(min_length=1, max_length=20)
    cell: Identifier | None = None
    conditions: dict[str, float | int | str] = Field(default_factory=dict)
    tolerance: Fraction = DEFAULT_RELATIVE_TOLERANCE

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    def record(self, experiment: str) -> dict[str, object]:
        out: dict[str, object] = {"experiment": experiment, "quantity": self.quantity,
                                  "value": self.value, "unit": self.unit,
                                  "tolerance": self.tolerance}
        if self.cell:
            out["cell"] = self.cell
        if self.conditions:
            out["conditions"] = dict(self.conditions)
        return out


class Experiment(BaseModel):
    """A named sequence of steps applied to each of its cells."""

    model_config = FROZEN
    name: Identifier
    description: str = ""
    cells: list[Identifier] = Field(min_length=1)
    steps: list[Step] = Field(min_length=1)
    expected: list[Expectation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _temperature_steps_at_top_level(self) -> Experiment:
        for i, step in enumerate(self.steps):
            if isinstance(step, CONTAINERS):
                inner = next((s for s in walk(step.steps) if isinstance(s, CHAMBER_STEPS)), None)
                if inner is not None:
                    raise ValueError(f"steps[{i}] ({step.kind}): {inner.kind} inside a"
                                     f" {step.kind} is not supported; chamber steps belong at the"
                                     " top level of an experiment")
            if step.every is not None:
                raise ValueError(f"steps[{i}] ({step.kind}): 'every' only applies inside a loop")
        if len(set(self.cells)) != len(self.cells):
            raise ValueError("a cell is listed twice in cells")
        return self


class CampaignFile(BaseModel):
    """One protocol file as written. ``include`` names other protocol files (relative to this
    one, inside the top file's folder: :mod:`protocols.loader`) whose cells and experiments
    join this campaign."""

    model_config = FROZEN
    campaign: Identifier
    description: str = ""
    include: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=list, max_length=100)
    #: A folder of the lab's own material files, relative to this file
    #: (see protocols.material_files)
    materials: str | None = Field(default=None, min_length=1, max_length=500)
    cells: list[Cell] = Field(default_factory=list)
    experiments: list[Experiment] = Field(default_factory=list)


def protocol_json_schema() -> dict[str, Any]:
    """The JSON Schema of one protocol file, as ``cellseq schema`` prints it for editors: it
    accepts every file ``cellseq validate`` accepts (steps as mappings or PyBaMM strings,
    ``include``); what it cannot express (units and dimensions, references between cells and
    experiments, cross-field rules) ``validate`` checks."""
    schema = CampaignFile.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            **schema, "title": "cellseq protocol file"}


class Campaign(BaseModel):
    """The whole campaign, with includes merged and cross-references checked
    (:mod:`protocols.checks`)."""

    model_config = FROZEN
    campaign: Identifier
    description: str = ""
    cells: list[Cell]
    experiments: list[Experiment]
    sources: list[str] = Field(default_factory=list)
    #: Every material file of the lab's own folders that was read (display names, as in
    #: ``sources``): a run depends on them as on its protocol files (see :attr:`files`).
    material_files: list[str] = Field(default_factory=list)
    _origins: list[Origin] = PrivateAttr(default_factory=list)
    _files: tuple[SourceFile, ...] = PrivateAttr(default=())

    def cell(self, cell_id: str) -> Cell:
        return next(c for c in self.cells if c.id == cell_id)

    @property
    def files(self) -> tuple[SourceFile, ...]:
        """Every file the campaign was loaded from, the top file first, each with the bytes
        that were validated (what a run directory keeps a copy of)."""
        return self._files

    def locate_experiment(self, experiment: int, loc: tuple[object, ...] = ()) -> Problem:
        """Where a field of an experiment (``("cells",)``, ``()`` for the experiment itself)
        was written: a Problem template with file, line, field path and include chain."""
        if experiment < len(self._origins):
            origin = self._origins[experiment]
            line, path = origin.locate(("experiments", origin.index, *loc))
            return Problem(origin.file, line, path, "", origin.via)
        return Problem(self.sources[0] if self.sources else "", None,
                       ".".join(map(str, ("experiments", experiment, *loc))), "")

    def locate_step(self, experiment: int, position: int,
                    field: tuple[object, ...] = ()) -> Problem:
        """Where the ``position``-th step (document order) of an experiment was written, or
        a ``field`` of it: a Problem template (file, line, field path) for messages about
        it."""
        exp = self.experiments[experiment]
        loc = next(loc for k, (_, loc) in enumerate(walk_with_locations(exp.steps))
                   if k == position)
        return self.locate_experiment(experiment, (*loc, *field))


@dataclass(frozen=True)
class Origin:
    """The file an experiment was written in, its index there, and how to find a field."""

    file: str
    index: int
    locate: Callable[[tuple[object, ...]], tuple[int | None, str]]
    via: tuple[str, ...] = ()          # the includes that led to ``file`` (Problem.via)


def walk_with_locations(steps: list[Step], prefix: tuple[object, ...] = ("steps",)
                        ) -> Iterator[tuple[Step, tuple[object, ...]]]:
    """Every step in document order with its field location inside the experiment."""
    for i, step in enumerate(steps):
        loc = (*prefix, i)
        yield step, loc
        if isinstance(step, CONTAINERS):
            yield from walk_with_locations(step.steps, (*loc, "steps"))
