"""Station files: which instrument and channel each cell is on, and which chamber it sits in.

A station is separate from the protocol (what to do to which cell). ``--sim`` builds one from the
protocol alone with :func:`simulated_station`.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocols import Campaign
from protocols.steps import PEIS, SetTemperature, walk

_STRICT = ConfigDict(extra="forbid", frozen=True)

Driver = Literal["sim.potentiostat", "sim.cycler", "sim.chamber"]
CHANNEL_DRIVERS = {"sim.potentiostat", "sim.cycler"}
CHAMBER_DRIVERS = {"sim.chamber"}


class InstrumentConfig(BaseModel):
    model_config = _STRICT
    driver: Driver
    channels: int | None = Field(default=None, ge=1, le=512)
    address: str | None = None

    @model_validator(mode="after")
    def _channels_for_channel_instruments(self) -> InstrumentConfig:
        if self.driver in CHANNEL_DRIVERS and self.channels is None:
            raise ValueError(f"a {self.driver} needs 'channels'")
        if self.driver in CHAMBER_DRIVERS and self.channels is not None:
            raise ValueError("a chamber has no channels")
        return self


class Placement(BaseModel):
    model_config = _STRICT
    instrument: str
    channel: int = Field(ge=0)
    chamber: str | None = None


class Station(BaseModel):
    model_config = _STRICT
    station: str = "station"
    instruments: dict[str, InstrumentConfig] = Field(min_length=1)
    cells: dict[str, Placement] = Field(min_length=1)

    @model_validator(mode="after")
    def _placements_resolve(self) -> Station:
        taken: dict[tuple[str, int], str] = {}
        for cell, p in self.cells.items():
            inst = self.instruments.get(p.instrument)
            if inst is None or inst.driver not in CHANNEL_DRIVERS:
                raise ValueError(f"cells.{cell}: {p.instrument!r} is not a potentiostat or cycler"
                                 " of this station")
            assert inst.channels is not None
            if p.channel >= inst.channels:
                raise ValueError(f"cells.{cell}: {p.instrument} has channels 0..{inst.channels - 1}"
                                 f", not {p.channel}")
            if (p.instrument, p.channel) in taken:
                raise ValueError(f"cells.{cell}: {p.instrument} channel {p.channel} is already"
                                 f" used by {taken[(p.instrument, p.channel)]}")
            taken[(p.instrument, p.channel)] = cell
            if p.chamber is not None:
                ch = self.instruments.get(p.chamber)
                if ch is None or ch.driver not in CHAMBER_DRIVERS:
                    raise ValueError(f"cells.{cell}: {p.chamber!r} is not a chamber of this"
                                     " station")
        return self

    def chamber_of(self, cell: str) -> str | None:
        return self.cells[cell].chamber


SIM_POTENTIOSTAT_CHANNELS = 6
SIM_CYCLER_CHANNELS = 16


def simulated_station(campaign: Campaign) -> Station:
    """One VSP-300 per six cells that need impedance, cyclers for the rest, one chamber."""
    needs_eis: set[str] = set()
    needs_chamber = False
    for exp in campaign.experiments:
        steps = list(walk(exp.steps))
        if any(isinstance(s, PEIS) for s in steps):
            needs_eis.update(exp.cells)
        needs_chamber |= any(isinstance(s, SetTemperature) for s in steps)
    eis_cells = [c.id for c in campaign.cells if c.id in needs_eis]
    dc_cells = [c.id for c in campaign.cells if c.id not in needs_eis]
    instruments: dict[str, InstrumentConfig] = {}
    cells: dict[str, Placement] = {}
    chamber = "chamber" if needs_chamber else None
    if chamber:
        instruments[chamber] = InstrumentConfig(driver="sim.chamber")
    for prefix, driver, per, ids in (("vsp300", "sim.potentiostat", SIM_POTENTIOSTAT_CHANNELS,
                                      eis_cells),
                                     ("cycler", "sim.cycler", SIM_CYCLER_CHANNELS, dc_cells)):
        for k in range(math.ceil(len(ids) / per)):
            name = f"{prefix}-{k + 1}"
            instruments[name] = InstrumentConfig(driver=driver, channels=per)
            for ch, cid in enumerate(ids[k * per:(k + 1) * per]):
                cells[cid] = Placement(instrument=name, channel=ch, chamber=chamber)
    return Station(station="simulated", instruments=instruments, cells=cells)
