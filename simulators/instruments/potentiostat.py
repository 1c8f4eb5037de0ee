"""Simulated multi-channel potentiostats and cyclers: what ``--sim`` places cells on.

Their specs and ratings (``sim.potentiostat``, ``sim.cycler``) are declared in
:mod:`simulators.specs`, apart from the channels' physics, so that checking a station does not
load it.
"""

from __future__ import annotations

from collections.abc import Callable

from drivers.errors import CapabilityError
from drivers.interfaces import Cycler, Potentiostat
from simulators.instruments.channel import SimChannel
from simulators.specs import (
    CYCLER_CAPABILITIES,
    CYCLER_CHANNELS,
    VSP300_CAPABILITIES,
    VSP300_CHANNELS,
)

__all__ = ["CYCLER_CAPABILITIES", "CYCLER_CHANNELS", "VSP300_CAPABILITIES", "VSP300_CHANNELS",
           "SimCycler", "SimPotentiostat"]


class _SimMultiChannel:
    """Channels given, or ``channels`` of them made by ``make(index)`` when first asked for (a
    dry run of one cell on a 16-channel cycler makes one channel and its noise streams)."""

    blocking_io = False

    def __init__(self, model: str, channels: list[SimChannel] | int,
                 make: Callable[[int], SimChannel] | None = None) -> None:
        self.model = model
        if isinstance(channels, int):
            if make is None:
                raise ValueError("a channel count needs a function that makes a channel")
            self._count, self._made = channels, {}
        else:
            self._count, self._made = len(channels), dict(enumerate(channels))
        self._make = make
        self._open = False

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        for ch in self._made.values():   # a channel never made never ran
            ch.stop()
        self._open = False

    @property
    def channel_count(self) -> int:
        return self._count

    def channels(self) -> list[SimChannel]:
        return [self.channel(i) for i in range(self._count)]

    def made_channels(self) -> list[SimChannel]:
        """The channels made so far, in index order (the others hold no cell)."""
        return [self._made[i] for i in sorted(self._made)]

    def channel(self, index: int) -> SimChannel:
        if not 0 <= index < self._count:
            raise CapabilityError(f"{self.model} has channels 0..{self._count - 1},"
                                  f" not {index}")
        ch = self._made.get(index)
        if ch is None:
            assert self._make is not None
            ch = self._made[index] = self._make(index)
        return ch


class SimPotentiostat(_SimMultiChannel, Potentiostat):
    pass


class SimCycler(_SimMultiChannel, Cycler):
    pass
