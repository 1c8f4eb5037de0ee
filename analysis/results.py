"""One derived result, as ``summary.json`` records it (the results contract, see the README).

The record is flat and typed so that a report, a test or another lab's script can read the numbers
without knowing how they were derived. Quantity names are a closed list: a typo would otherwise
create a new quantity that nothing reads.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from analysis.errors import AnalysisError

#: The quantity names the contract allows, in the contract's order.
QUANTITY_NAMES: tuple[str, ...] = (
    "ionic_conductivity",
    "bulk_resistance",
    "activation_energy",
    "transference_number",
    "overpotential",
    "critical_current_density",
    "interfacial_resistance",
    "coulombic_efficiency",
    "discharge_capacity",
    "capacity_retention",
    "stability_window",
    "diffusion_coefficient",
)

ConditionValue = int | float | str | bool


@dataclass(frozen=True)
class Result:
    """A derived number with what it is, what it was measured on, and under which conditions.

    ``conditions`` uses keys such as ``temperature_degC``, ``current_density_mA_cm2``, ``c_rate``,
    ``cycle``, ``day``; it is copied on construction so the record cannot change under a caller.
    """

    experiment: str
    cell: str
    material: str
    quantity: str
    value: float
    unit: str
    conditions: dict[str, ConditionValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.quantity not in QUANTITY_NAMES:
            raise AnalysisError(
                f"unknown quantity {self.quantity!r}; allowed: {', '.join(QUANTITY_NAMES)}"
            )
        if isinstance(self.value, bool) or not isinstance(self.value, numbers.Real):
            raise AnalysisError(f"value of {self.quantity} must be a number, got {self.value!r}")
        if not math.isfinite(float(self.value)):
            # JSON has no NaN or inf; a result that could not be computed is not reported.
            raise AnalysisError(f"value of {self.quantity} must be finite, got {self.value!r}")
        for key in self.conditions:
            if not isinstance(key, str):
                raise AnalysisError(f"condition keys must be strings, got {key!r}")
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "conditions", dict(self.conditions))

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON-ready record, in the contract's key order."""
        return {
            "experiment": self.experiment,
            "cell": self.cell,
            "material": self.material,
            "quantity": self.quantity,
            "value": self.value,
            "unit": self.unit,
            "conditions": dict(self.conditions),
        }
