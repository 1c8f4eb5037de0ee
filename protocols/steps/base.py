"""What every step shares: frozen, no unknown keys, where it runs in a loop, how it resumes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocols.steps.branch import OnEnd
from protocols.types import FROZEN, Count, Duration, PositiveCurrent, PositiveVoltage

DEFAULT_RECORD_EVERY_S = 10.0

#: After an interruption: run the remaining time, start the step again, or go to the next step.
#: Unset, the executor continues time-based steps and restarts limit-terminated ones.
ResumePolicy = Literal["continue", "restart", "skip"]


def _kind_required(schema: dict[str, Any]) -> None:
    """In the JSON Schema a step names its kind, as validation requires (the model's default
    ``kind`` would otherwise make it optional there)."""
    if "kind" in schema.get("properties", {}):
        required = schema.setdefault("required", [])
        if "kind" not in required:
            required.insert(0, "kind")


_S = TypeVar("_S", bound="StepBase")


def inherit_tag(steps: Sequence[_S], tag: str) -> list[_S]:
    """``steps`` with ``tag`` given to each that carries none, and through containers to the
    steps inside them: what the tag of a loop, a sweep or a compound step means."""
    if not tag:
        return list(steps)
    out = []
    for step in steps:
        if step.tag:
            out.append(step)
            continue
        update: dict[str, Any] = {"tag": tag}
        if "steps" in type(step).model_fields:
            update["steps"] = inherit_tag(step.steps, tag)  # type: ignore[attr-defined]
        out.append(step.model_copy(update=update))
    return out


class StepBase(BaseModel):
    model_config = ConfigDict(**FROZEN, json_schema_extra=_kind_required)
    label: str = Field(default="", max_length=200)
    every: Count | None = Field(default=None, ge=1, le=100_000,
                              description="inside a loop: run on iterations 1, 1+N, 1+2N, ...")
    on_resume: ResumePolicy | None = None
    on_end: OnEnd = Field(default_factory=dict,
                          description="end reason -> 'goto LABEL' or {goto: LABEL, at_most: N}:"
                          " the step labelled LABEL in the same list runs next (a jump back"
                          " needs at_most)")
    tag: str = Field(default="", max_length=64, pattern=r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)?$",
                     description="what the step is for (rpt, aging, formation): a change of tag"
                     " starts a new cycle and a new series in the analysis; on a loop or a"
                     " compound step it holds for the steps inside that carry none")

    @model_validator(mode="after")
    def _body_inherits_the_tag(self) -> StepBase:
        if self.tag and "steps" in type(self).model_fields:
            object.__setattr__(self, "steps", inherit_tag(self.steps, self.tag))  # type: ignore[attr-defined]
        return self


class RecordingStep(StepBase):
    """A step that records a time series. A point is kept every ``record_every`` and, where
    given, whenever V moved by ``record_dV`` or I by ``record_dI`` (as EC-Lab does)."""

    record_every: Duration = DEFAULT_RECORD_EVERY_S
    record_dV: PositiveVoltage | None = None
    record_dI: PositiveCurrent | None = None

    @model_validator(mode="after")
    def _sensible_recording(self) -> RecordingStep:
        duration = getattr(self, "duration", None)
        if duration is not None and self.record_every > duration:
            raise ValueError("record_every is longer than the step's duration")
        return self
