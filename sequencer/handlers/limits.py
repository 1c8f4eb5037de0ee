"""Time limits for steps that end on a voltage or current: no step runs unbounded."""

from __future__ import annotations

from protocols.cells import Cell
from protocols.types import HOUR_S

#: A limit-terminated step without a duration may last this multiple of what the capacity allows.
TIME_LIMIT_FACTOR = 1.5


def default_time_limit_s(cell: Cell, current_A: float, field: str) -> float:
    if cell.capacity_Ah is None:
        raise ValueError(f"{field}: give a duration; cell {cell.id!r} has no cathode capacity"
                         " from which to set a time limit")
    return TIME_LIMIT_FACTOR * cell.capacity_Ah / abs(current_A) * HOUR_S
