"""Simulated multi-channel potentiostats and cyclers: what ``--sim`` places cells on.

Their specs and ratings (``sim.potentiostat``, ``sim.cycler``) are declared in
:mod:`simulators.specs`, apart from the channels' physics, so that checking a station does not
load it.
"""

from __future__ import annotations

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
    blocking_io = False

    def __init__(self, model: str, channels: list[SimChannel]) -> None:
        self.model = model
        self._channels = channels
        self._open = False

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        for ch in self._channels:
            ch.stop()
        self._open = False

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    def channels(self) -> list[SimChannel]:
        return list(self._channels)

    def channel(self, index: int) -> SimChannel:
        if not 0 <= index < len(self._channels):
            raise CapabilityError(f"{self.model} has channels 0..{len(self._channels) - 1},"
                                  f" not {index}")
        return self._channels[index]


class SimPotentiostat(_SimMultiChannel, Potentiostat):
    pass


class SimCycler(_SimMultiChannel, Cycler):
    pass
