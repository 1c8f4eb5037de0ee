"""A simulated lab: instruments and cells wired together on one clock, seeded per instrument.

Every random stream is derived from the run's seed and the instrument's name, so the same seed
gives the same data bit for bit, whatever else is in the lab.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from drivers.clock import Clock
from drivers.interfaces import ChannelCapabilities
from simulators.cells.base import CellModel
from simulators.instruments import (
    CYCLER_CAPABILITIES,
    VSP300_CAPABILITIES,
    SimChamber,
    SimChannel,
    SimCycler,
    SimPotentiostat,
)

#: The air a cell outside any chamber feels.
ROOM_TEMPERATURE_C = 25.0


class SimLab:
    def __init__(self, clock: Clock, seed: int) -> None:
        self.clock, self.seed = clock, seed
        self.chambers: dict[str, SimChamber] = {}
        self.instruments: dict[str, SimPotentiostat | SimCycler] = {}

    def rng(self, name: str) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.seed,
                                                            spawn_key=(zlib.crc32(name.encode()),)))

    def add_chamber(self, name: str, min_C: float | None = None,
                    max_C: float | None = None) -> SimChamber:
        """A chamber; its setpoint range an ESPEC's unless given."""
        limits = {k: v for k, v in (("min_C", min_C), ("max_C", max_C)) if v is not None}
        self.chambers[name] = SimChamber(self.clock, self.rng(name), **limits)
        return self.chambers[name]

    def add_potentiostat(
        self, name: str, channels: int, capabilities: ChannelCapabilities = VSP300_CAPABILITIES
    ) -> SimPotentiostat:
        inst = SimPotentiostat("VSP-300 (simulated)", channels,
                               self._channel_maker(name, capabilities))
        self.instruments[name] = inst
        return inst

    def add_cycler(self, name: str, channels: int,
                   capabilities: ChannelCapabilities = CYCLER_CAPABILITIES) -> SimCycler:
        inst = SimCycler("cycler (simulated)", channels, self._channel_maker(name, capabilities))
        self.instruments[name] = inst
        return inst

    def place(self, cell: CellModel, instrument: str, channel: int, chamber: str | None) -> None:
        """Connect a cell to a channel; it feels the chamber's air temperature (or 25 degC)."""
        if chamber:
            air = self.chambers[chamber]
            env, env_now, constant = air.temperature_at, air.temperature_now_C, None
        else:
            env, env_now, constant = (_room_temperature, _room_temperature_now,
                                      ROOM_TEMPERATURE_C)
        self.instruments[instrument].channel(channel).connect(cell, env, env_now, constant)

    def snapshot(self) -> dict[str, Any]:
        """The whole lab, JSON-ready: chambers, and every channel with a cell on it."""
        return {"chambers": {n: c.snapshot() for n, c in self.chambers.items()},
                "channels": {ch.name: ch.snapshot() for ch in self._connected()}}

    def restore(self, snap: dict[str, Any], kept_running: bool = True) -> None:
        """Back to :meth:`snapshot` (chambers first: a technique is rebuilt at the temperature
        it started at)."""
        for name, chamber in snap["chambers"].items():
            self.chambers[name].restore(chamber)
        channels = {ch.name: ch for ch in self._connected()}
        for name, channel in snap["channels"].items():
            channels[name].restore(channel, kept_running)

    def _connected(self) -> list[SimChannel]:
        return [ch for inst in self.instruments.values() for ch in inst.made_channels()
                if ch.connected]

    def _channel_maker(self, name: str, caps: ChannelCapabilities
                       ) -> Callable[[int], SimChannel]:
        """Makes channel ``i`` of instrument ``name`` (its noise streams seeded by its name,
        so whichever channels are made, and in whatever order, each gives the same data)."""
        def make(i: int) -> SimChannel:
            return SimChannel(f"{name}/ch{i}", self.clock, caps, self.rng(f"{name}/ch{i}"))
        return make


def _room_temperature(t: np.ndarray) -> np.ndarray:
    return np.full(np.shape(t), ROOM_TEMPERATURE_C)


def _room_temperature_now(t: float) -> float:
    return ROOM_TEMPERATURE_C
