"""A campaign: the cells on the bench and the experiments run on them."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from protocols.cells import Cell
from protocols.steps import CHAMBER_STEPS, CONTAINERS, Step, walk
from protocols.types import FROZEN, CurrentSetpoint, Identifier


class Experiment(BaseModel):
    """A named sequence of steps applied to each of its cells."""

    model_config = FROZEN
    name: Identifier
    description: str = ""
    cells: list[Identifier] = Field(min_length=1)
    steps: list[Step] = Field(min_length=1)

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


class Campaign(BaseModel):
    model_config = FROZEN
    campaign: Identifier
    description: str = ""
    cells: list[Cell] = Field(min_length=1)
    experiments: list[Experiment] = Field(min_length=1)

    @model_validator(mode="after")
    def _references_resolve(self) -> Campaign:
        ids = [c.id for c in self.cells]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"cell ids must be unique; repeated: {', '.join(dupes)}")
        names = [e.name for e in self.experiments]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"experiment names must be unique; repeated: {', '.join(dupes)}")
        cells = {c.id: c for c in self.cells}
        for i, exp in enumerate(self.experiments):
            for cid in exp.cells:
                if cid not in cells:
                    raise ValueError(f"experiments[{i}] ({exp.name}) uses cell {cid!r}, which is"
                                     f" not among the cells ({', '.join(ids)})")
            for step in walk(exp.steps):
                for cid in exp.cells:
                    if _uses_c_rate(step) and cells[cid].capacity_Ah is None:
                        raise ValueError(
                            f"experiments[{i}] ({exp.name}): a {step.kind} step gives a C-rate,"
                            f" but cell {cid!r} ({cells[cid].kind.value}) has no cathode capacity")
        return self

    def cell(self, cell_id: str) -> Cell:
        return next(c for c in self.cells if c.id == cell_id)


def _uses_c_rate(step: Step) -> bool:
    return any(isinstance(v, CurrentSetpoint) and v.kind == "c_rate"
               for v in vars(step).values())
