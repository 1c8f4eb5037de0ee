"""End conditions a step may carry besides its own limits, as cycler software offers them.

``until: {charge: 0.5 mAh, soc: 20 %, step_time: 2 h, dV_dt: 1 mV/min, dI_dt: 1 uA/min,
temperature_above: 45 degC, temperature_below: 0 degC}``: the step ends at the first that
holds, and its end reason names it (``charge``, ``soc``, ``step_time``, ``dV_dt``, ``dI_dt``,
``temperature_above``, ``temperature_below``). ``charge`` is the charge the step has passed,
either way; ``soc`` the same as a share of the cell's nominal capacity (the state of charge the
step has moved); ``dV_dt`` and ``dI_dt`` end once |dV/dt| or |dI/dt|, taken over
``slope_window``, has fallen to the value (a relaxation or a hold that has settled).
"""

from __future__ import annotations

from pydantic import BaseModel, model_validator

from protocols.types import (
    FROZEN,
    Charge,
    CurrentRate,
    Duration,
    Fraction,
    ScanRate,
    Temperature,
)


class StepUntil(BaseModel):
    model_config = FROZEN
    charge: Charge | None = None
    soc: Fraction | None = None
    step_time: Duration | None = None
    dV_dt: ScanRate | None = None
    dI_dt: CurrentRate | None = None
    temperature_above: Temperature | None = None
    temperature_below: Temperature | None = None
    slope_window: Duration = 10.0

    @model_validator(mode="after")
    def _some_condition(self) -> StepUntil:
        given = [k for k in ("charge", "soc", "step_time", "dV_dt", "dI_dt",
                             "temperature_above", "temperature_below")
                 if getattr(self, k) is not None]
        if not given:
            raise ValueError("until needs a condition: charge, soc, step_time, dV_dt, dI_dt,"
                             " temperature_above or temperature_below")
        if self.soc is not None and self.soc > 1 + 1e-9:
            raise ValueError(f"soc {100 * self.soc:g} % is more than the whole capacity")
        if (self.temperature_above is not None and self.temperature_below is not None
                and self.temperature_below >= self.temperature_above):
            raise ValueError("temperature_below must be below temperature_above")
        return self
