"""Impedance spectroscopy: potentiostatic (PEIS) or galvanostatic (GEIS)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from protocols.steps.base import StepBase
from protocols.types import Count, Frequency, PositiveCurrent, PositiveVoltage


class _Sweep(StepBase):
    f_start: Frequency
    f_end: Frequency
    points_per_decade: Count = Field(default=10, ge=1, le=100)
    average: Count = Field(default=1, ge=1, le=100, description="measurements averaged per point")

    @model_validator(mode="after")
    def _distinct_frequencies(self) -> _Sweep:
        if self.f_start == self.f_end:
            raise ValueError("f_start and f_end must differ")
        return self


class PEIS(_Sweep):
    """Around the open-circuit voltage, with a sine of ``amplitude`` (V)."""

    kind: Literal["peis"] = "peis"
    amplitude: PositiveVoltage


class GEIS(_Sweep):
    """Around a DC current (``bias``, default none), with a sine of ``amplitude`` (A)."""

    kind: Literal["geis"] = "geis"
    amplitude: PositiveCurrent
    bias: PositiveCurrent | None = None


STEPS = (PEIS, GEIS)
