"""Voltage sweeps: linear sweep voltammetry (LSV) and cyclic voltammetry (CV)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from protocols.steps.base import StepBase
from protocols.types import Count, Duration, PositiveCurrentDensity, ScanRate, Voltage


class LinearSweep(StepBase):
    """From open circuit (or ``start``) to ``vertex``; stops early once the current density
    reaches ``until_current_density`` (an oxidation onset, for a stability window)."""

    kind: Literal["lsv"] = "lsv"
    start: Voltage | None = None
    vertex: Voltage
    scan_rate: ScanRate
    until_current_density: PositiveCurrentDensity | None = None
    record_every: Duration = 1.0


class CyclicVoltammetry(StepBase):
    kind: Literal["cv"] = "cv"
    start: Voltage | None = None
    vertices: list[Voltage] = Field(min_length=2, max_length=10)
    scan_rate: ScanRate
    cycles: Count = Field(default=1, ge=1, le=10_000)
    record_every: Duration = 1.0

    @model_validator(mode="after")
    def _vertices_differ(self) -> CyclicVoltammetry:
        if any(a == b for a, b in zip(self.vertices, self.vertices[1:], strict=False)):
            raise ValueError("consecutive vertices must differ")
        return self


STEPS = (LinearSweep, CyclicVoltammetry)
