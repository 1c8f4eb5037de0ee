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
from core.quantities import (
    ALSO_REPORTED_IN,
    DEFAULT_RELATIVE_TOLERANCE,
    QUANTITY_NAMES,
    QUANTITY_UNITS,
    reported_units,
)

#: The contract's names (:mod:`core.quantities`) are part of this module's public names.
__all__ = ["ALSO_REPORTED_IN", "DEFAULT_RELATIVE_TOLERANCE", "QUANTITY_NAMES", "QUANTITY_UNITS",
           "ConditionValue", "Result", "reported_units"]

ConditionValue = int | float | str | bool


@dataclass(frozen=True)
class Result:
    """A derived number with what it is, what it was measured on, and under which conditions.

    ``conditions`` uses keys such as ``temperature_degC``, ``current_density_mA_cm2``, ``c_rate``,
    ``cycle``, ``day``; it is copied on construction so the record cannot change under a caller.
    ``value`` is None (null in JSON) only with a ``note`` saying why the measurement gave no
    physical number; such a record is never plotted or checked as data. A number may carry a
    ``note`` too: a warning on how far it can be trusted (a GITT pulse that fails the validity
    check of its formula).
    """

    experiment: str
    cell: str
    material: str
    quantity: str
    value: float | None
    unit: str
    conditions: dict[str, ConditionValue] = field(default_factory=dict)
    note: str = ""

    def __post_init__(self) -> None:
        if self.quantity not in QUANTITY_NAMES:
            raise AnalysisError(
                f"unknown quantity {self.quantity!r}; allowed: {', '.join(QUANTITY_NAMES)}"
            )
        if self.value is None:
            # a measurement that gave no physical number (a discharge that ended at once): the
            # record stays, null, and says why
            if not self.note:
                raise AnalysisError(f"value of {self.quantity} must be a number, or None with a"
                                    " note saying why")
        elif isinstance(self.value, bool) or not isinstance(self.value, numbers.Real):
            raise AnalysisError(f"value of {self.quantity} must be a number, got {self.value!r}")
        elif not math.isfinite(float(self.value)):
            # JSON has no NaN or inf; a result that could not be computed is not reported.
            raise AnalysisError(f"value of {self.quantity} must be finite, got {self.value!r}")
        for key in self.conditions:
            if not isinstance(key, str):
                raise AnalysisError(f"condition keys must be strings, got {key!r}")
        if self.value is not None:
            object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "conditions", dict(self.conditions))

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON-ready record, in the contract's key order; ``note`` only when there is
        one (always with a null value, and as a warning on some numbers)."""
        record: dict[str, Any] = {
            "experiment": self.experiment,
            "cell": self.cell,
            "material": self.material,
            "quantity": self.quantity,
            "value": self.value,
            "unit": self.unit,
            "conditions": dict(self.conditions),
        }
        if self.note:
            record["note"] = self.note
        return record
