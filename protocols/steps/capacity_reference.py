"""A C-rate taken of a capacity the run measured, as cycler suites allow (Maccor's and
Arbin's "C-rate from the capacity of step N").

``c_rate_reference: rpt`` (or ``{step: rpt, capacity: charge}``) on a step that gives a C-rate:
its 1C is the discharge (or charge) capacity the cell showed in the last run, before this
step, of the step labelled ``rpt`` or of the steps tagged ``rpt`` in the same experiment,
instead of the cathode's nominal capacity. The executor resolves it when the step starts; the
plan checks that the reference exists and comes first. The model only says what was written.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema

from protocols.types import FROZEN

#: Which capacity the reference measured: what its last discharge (or charge) passed.
CapacityKind = Literal["discharge", "charge"]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$"


class CapacityReference(BaseModel):
    """``step``: a label or a tag of earlier steps of the same experiment; ``capacity``: the
    half of their last cycle whose capacity is 1C."""

    model_config = FROZEN
    step: str = Field(min_length=1, max_length=200, pattern=_NAME)
    capacity: CapacityKind = "discharge"

    def __str__(self) -> str:
        return f"the {self.capacity} capacity measured in {self.step!r}"


def _shorthand(value: Any) -> Any:
    """``rpt`` is ``{step: rpt}``."""
    return {"step": value} if isinstance(value, str) else value


ReferenceField = Annotated[
    CapacityReference | None,
    BeforeValidator(_shorthand),
    WithJsonSchema({"anyOf": [
        {"type": "string", "description": "a label or tag of earlier steps"},
        {"type": "object", "additionalProperties": False, "required": ["step"],
         "properties": {"step": {"type": "string"},
                        "capacity": {"enum": ["discharge", "charge"]}}},
        {"type": "null"}],
        "description": "take the step's C-rates of the capacity measured in an earlier"
        " labelled or tagged step of the same experiment instead of the nominal capacity"}),
]
