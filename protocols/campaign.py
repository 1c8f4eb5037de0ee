"""A campaign: the cells on the bench and the experiments run on them."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from analysis.results import QUANTITY_NAMES
from protocols.cells import Cell
from protocols.steps import CHAMBER_STEPS, CONTAINERS, Step, walk
from protocols.types import FROZEN, Fraction, Identifier


class Expectation(BaseModel):
    """A value the experiment should give (from a paper, a datasheet, an earlier run); the
    report shows it beside what was measured."""

    model_config = FROZEN
    quantity: Literal[QUANTITY_NAMES]  # type: ignore[valid-type]
    value: float
    unit: str = Field(min_length=1, max_length=20)
    cell: Identifier | None = None
    conditions: dict[str, float | int | str] = Field(default_factory=dict)
    tolerance: Fraction = 0.05

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
    one) whose cells and experiments join this campaign."""

    model_config = FROZEN
    campaign: Identifier
    description: str = ""
    include: list[str] = Field(default_factory=list, max_length=100)
    cells: list[Cell] = Field(default_factory=list)
    experiments: list[Experiment] = Field(default_factory=list)


class Campaign(BaseModel):
    """The whole campaign, with includes merged and cross-references checked
    (:mod:`protocols.checks`)."""

    model_config = FROZEN
    campaign: Identifier
    description: str = ""
    cells: list[Cell]
    experiments: list[Experiment]
    sources: list[str] = Field(default_factory=list)

    def cell(self, cell_id: str) -> Cell:
        return next(c for c in self.cells if c.id == cell_id)
