"""Measured points as columns: what a poll returns and what the run store keeps."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # numpy where points are handled: not to check a station or plan a run
    import numpy as np


@dataclass
class Points:
    """A batch of points; ``time_s`` counts from the start of the technique.

    Impedance points fill ``frequency_Hz`` / ``z_real_ohm`` / ``z_imag_ohm`` (Z = Re + j Im, so a
    capacitive arc has negative ``z_imag_ohm``); time-series points leave them None.
    """

    time_s: np.ndarray
    voltage_V: np.ndarray
    current_A: np.ndarray
    temperature_C: np.ndarray | None = None
    frequency_Hz: np.ndarray | None = None
    z_real_ohm: np.ndarray | None = None
    z_imag_ohm: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.time_s)

    @classmethod
    def empty(cls) -> Points:
        import numpy as np

        e = np.empty(0)
        return cls(e, e.copy(), e.copy())

    def columns(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}

    def select(self, mask: np.ndarray) -> Points:
        return Points(**{k: v[mask] for k, v in self.columns().items()})


class ChannelState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    DONE = "done"
    FAULT = "fault"


@dataclass
class Readout:
    """One poll: the points recorded since the last poll and where the channel is now."""

    points: Points
    state: ChannelState
    end_reason: str | None = None   # set once state is DONE/FAULT: "duration", "voltage", ...
    next_event_s: float | None = None  # clock time of the next state change, when known
    detail: dict[str, float] = field(default_factory=dict)
