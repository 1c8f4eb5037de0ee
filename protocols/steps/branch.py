"""Branching on a step's end reason, as cycler suites allow: ``on_end: {voltage_limit: goto
LABEL}``.

A branch jumps to the step labelled LABEL in the same list of steps (the experiment's, or a
loop's body), forward or back. Every branch is bounded where it is written: a jump back needs
``at_most`` (how many times it may be taken, ``{goto: LABEL, at_most: 3}``); after that many
the step goes on to the next as if no branch were written. A jump forward skips the steps
between and needs no bound. The plan refuses a missing label, a label in another list and an
unbounded jump back, naming the file, line and field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field

from protocols.types import FROZEN, Count

#: The end reasons a branch may be keyed by, and the reason the instrument gives for each.
END_REASONS: dict[str, str] = {
    "voltage_limit": "voltage",
    "current_limit": "current",
    "duration": "duration",
    "steady_state": "steady",
    "short_circuit": "short",
    # the end conditions of ``until`` (drivers.techniques.END_CONDITIONS) end a step by name
    **{name: name for name in ("charge", "soc", "step_time", "dV_dt", "dI_dt",
                               "temperature_above", "temperature_below")},
}
EndReason = Literal["voltage_limit", "current_limit", "duration", "steady_state",
                    "short_circuit", "charge", "soc", "step_time", "dV_dt", "dI_dt",
                    "temperature_above", "temperature_below"]
#: The most times one branch may be taken.
MAX_JUMPS = 10_000

_GOTO = re.compile(r"^\s*goto\s+(?P<label>\S(?:.*\S)?)\s*$")


def _parse(value: Any) -> Any:
    """``goto LABEL`` as a mapping; a mapping as it is."""
    if isinstance(value, str):
        m = _GOTO.match(value)
        if m is None:
            raise ValueError(f"expected 'goto LABEL' or {{goto: LABEL, at_most: N}}, got"
                             f" {value!r}")
        return {"goto": m["label"]}
    return value


class Goto(BaseModel):
    """Jump to the step labelled ``goto``; ``at_most``: how many times (needed backwards)."""

    model_config = FROZEN
    goto: str = Field(min_length=1, max_length=200)
    at_most: Count | None = Field(default=None, ge=1, le=MAX_JUMPS)


Branch = Annotated[Goto, BeforeValidator(_parse)]
OnEnd = dict[EndReason, Branch]
