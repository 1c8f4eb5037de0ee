"""Chamber temperature: one setpoint, or a sweep with a block of steps at each temperature."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from protocols.steps.base import StepBase
from protocols.types import Duration, Temperature, TemperatureDifference

if TYPE_CHECKING:
    from protocols.steps import Step


class SetTemperature(StepBase):
    """Soak: |PV - SV| within ``tolerance`` for ``hold`` (restarting on any excursion),
    failing the step after ``timeout``."""

    kind: Literal["set_temperature"] = "set_temperature"
    target: Temperature
    tolerance: TemperatureDifference = 0.5
    hold: Duration = 600.0
    timeout: Duration = 4 * 3600.0

    @model_validator(mode="after")
    def _timeout_longer_than_hold(self) -> SetTemperature:
        if self.timeout <= self.hold:
            raise ValueError("timeout must be longer than hold")
        return self


class TemperatureSweep(StepBase):
    """For each temperature: soak as :class:`SetTemperature`, then run ``steps`` on every cell."""

    kind: Literal["temperature_sweep"] = "temperature_sweep"
    temperatures: list[Temperature] = Field(min_length=1, max_length=200)
    tolerance: TemperatureDifference = 0.5
    hold: Duration = 600.0
    timeout: Duration = 4 * 3600.0
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _timeout_longer_than_hold(self) -> TemperatureSweep:
        if self.timeout <= self.hold:
            raise ValueError("timeout must be longer than hold")
        return self

    def setpoints(self) -> list[SetTemperature]:
        """One soak per temperature, with the sweep's criteria (values already in SI)."""
        return [SetTemperature.model_construct(target=t, tolerance=self.tolerance,
                                               hold=self.hold, timeout=self.timeout,
                                               label=self.label)
                for t in self.temperatures]


STEPS = (SetTemperature, TemperatureSweep)
