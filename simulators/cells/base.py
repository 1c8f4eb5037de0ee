"""What a simulated cell offers the simulated instruments.

A cell model is deterministic physics: the instrument that measures it adds measurement noise.
A technique becomes a :class:`Segment` whose voltage and current can be evaluated at any array of
times in one vectorised call, so a poll costs one call however many points it holds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit, VoltageSweep

TimeSeriesTechnique = OpenCircuit | ConstantCurrent | ConstantVoltage | VoltageSweep


class Segment(ABC):
    """A cell's response to one time-series technique, from its start (t = 0)."""

    #: when the segment ends by itself (limit reached) or by the technique's time limit, in s
    duration_s: float
    #: "duration" (time limit), "voltage" (until_voltage reached), "current" (until current),
    #: "completed" (a voltage sweep reached the end of its path)
    end_reason: str
    #: whether each point's value is computed on its own (elementwise), whatever other times
    #: are sampled in the same call: then a channel may evaluate points ahead of its polls and
    #: get the same numbers. False where a sample iterates until all its points converge.
    pointwise: bool = False

    @abstractmethod
    def sample(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(voltage_V, current_A) at times 0 <= t <= duration_s, noise-free."""

    def extremes(self) -> tuple[float, float, float] | None:
        """(lowest V, highest V, largest |I|) over [0, duration_s], where the model knows them
        without sampling (its response is monotone between a few known times), else None.
        The firmware's checks skip their fine time grid when these are clear of every limit."""
        return None

    def magnitude_never_falls(self) -> bool:
        """Whether |V| is non-decreasing over [0, duration_s] (a polarisation that only
        builds up): then a short, whose |V| collapses, cannot happen within the segment unless
        |V| is below the watch's floor when the watch starts."""
        return False

    @abstractmethod
    def finish(self, elapsed_s: float) -> None:
        """Commit the cell's state (charge, history) after ``elapsed_s`` of this segment; called
        once, with elapsed_s <= duration_s (less when the step was stopped early)."""


class CellModel(ABC):
    """A simulated cell of one kind and material set, at the temperature it is given.

    A cell's state is its scalar attributes (charge, offsets, ageing, a short...); parameters
    live in dicts and tuples. A running segment never changes the cell: only ``finish`` does.
    So :meth:`state` taken between finishes is everything a resumed dry run needs.
    """

    def state(self) -> dict[str, float | int | bool]:
        """The cell's scalar attributes, JSON-ready."""
        out: dict[str, float | int | bool] = {}
        for key, value in vars(self).items():
            if isinstance(value, bool | int | float | np.floating | np.integer):
                out[key] = value.item() if isinstance(value, np.generic) else value
        return out

    def restore(self, state: dict[str, float | int | bool]) -> None:
        """Put back what :meth:`state` returned (from a run store, so names are checked)."""
        own = self.state()
        unknown = set(state) - set(own)
        if unknown:
            raise ValueError(f"not attributes of {type(self).__name__}: {sorted(unknown)}")
        for key, value in state.items():
            setattr(self, key, type(own[key])(value))

    def start_formed(self, soc: float) -> None:
        """Put this fresh cell at rest in the state a protocol's ``initial_state`` gives: formed,
        at ``soc`` (0..1) of its capacity. Only cells with a state of charge have one."""
        raise ValueError(f"a simulated {type(self).__name__} has no state of charge to start at")

    @abstractmethod
    def ocv_V(self, temperature_C: float) -> float: ...

    @abstractmethod
    def begin(self, technique: TimeSeriesTechnique, temperature_C: float) -> Segment: ...

    @abstractmethod
    def impedance(self, frequency_Hz: np.ndarray, temperature_C: float) -> np.ndarray:
        """Complex impedance (Ohm, Z = Re + j Im) at the cell's present state."""
