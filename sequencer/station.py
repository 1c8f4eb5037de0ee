"""Station files: which instrument and channel each cell is on, and which chamber it sits in.

A station is separate from the protocol (what to do to which cell). ``--sim`` builds one from the
protocol alone with :func:`simulated_station`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocols import Campaign, load_model
from protocols.steps import (
    CHAMBER_STEPS,
    GEIS,
    PEIS,
    Chronoamperometry,
    CyclicVoltammetry,
    LinearSweep,
    walk,
)

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

    def chamber_of(self, cell: str) -> str | None:
        return self.cells[cell].chamber


def station_problems(station: Station) -> Iterator[tuple[tuple[object, ...], str]]:
    """Placements that do not resolve, channels out of range or booked twice."""
    taken: dict[tuple[str, int], str] = {}
    for cell, p in station.cells.items():
        inst = station.instruments.get(p.instrument)
        if inst is None or inst.driver not in CHANNEL_DRIVERS:
            yield ("cells", cell, "instrument"), (f"{p.instrument!r} is not a potentiostat or"
                                                  " cycler of this station")
            continue
        assert inst.channels is not None
        if p.channel >= inst.channels:
            yield ("cells", cell, "channel"), (f"{p.instrument} has channels"
                                               f" 0..{inst.channels - 1}, not {p.channel}")
        elif (p.instrument, p.channel) in taken:
            yield ("cells", cell, "channel"), (f"{p.instrument} channel {p.channel} is already"
                                               f" used by {taken[(p.instrument, p.channel)]}")
        taken[(p.instrument, p.channel)] = cell
        if p.chamber is not None:
            chamber = station.instruments.get(p.chamber)
            if chamber is None or chamber.driver not in CHAMBER_DRIVERS:
                yield ("cells", cell, "chamber"), f"{p.chamber!r} is not a chamber of this station"


def load_station(path: Path) -> Station:
    return load_model(path, Station, station_problems)


SIM_POTENTIOSTAT_CHANNELS = 6
SIM_CYCLER_CHANNELS = 16
#: Steps only a potentiostat channel can run; cells with any of them go on a VSP-300.
POTENTIOSTAT_STEPS = (PEIS, GEIS, Chronoamperometry, LinearSweep, CyclicVoltammetry)


def simulated_station(campaign: Campaign) -> Station:
    """A simulated lab for a campaign: one six-channel VSP-300 per six cells that need a
    potentiostat, 16-channel cyclers for the rest, and one chamber per group of experiments
    linked by shared cells (cells that are never in the same experiment need not share a
    chamber, so their temperature schedules cannot clash)."""
    needs_pot: set[str] = set()
    group = {c.id: c.id for c in campaign.cells}

    def root(cid: str) -> str:
        while group[cid] != cid:
            group[cid] = group[group[cid]]
            cid = group[cid]
        return cid

    heated: set[str] = set()
    for exp in campaign.experiments:
        steps = list(walk(exp.steps))
        if any(isinstance(s, POTENTIOSTAT_STEPS) for s in steps):
            needs_pot.update(exp.cells)
        for cid in exp.cells[1:]:
            group[root(cid)] = root(exp.cells[0])
        if any(isinstance(s, CHAMBER_STEPS) for s in steps):
            heated.add(exp.cells[0])
    chambers = {root(c): f"chamber-{k + 1}" for k, c in enumerate(sorted({root(c) for c in heated},
                key=[c.id for c in campaign.cells].index))}
    instruments: dict[str, InstrumentConfig] = {
        name: InstrumentConfig(driver="sim.chamber") for name in chambers.values()}
    cells: dict[str, Placement] = {}
    pot_cells = [c.id for c in campaign.cells if c.id in needs_pot]
    dc_cells = [c.id for c in campaign.cells if c.id not in needs_pot]
    for prefix, driver, per, ids in (("vsp300", "sim.potentiostat", SIM_POTENTIOSTAT_CHANNELS,
                                      pot_cells),
                                     ("cycler", "sim.cycler", SIM_CYCLER_CHANNELS, dc_cells)):
        for k in range(math.ceil(len(ids) / per)):
            name = f"{prefix}-{k + 1}"
            instruments[name] = InstrumentConfig(driver=driver, channels=per)
            for ch, cid in enumerate(ids[k * per:(k + 1) * per]):
                cells[cid] = Placement(instrument=name, channel=ch,
                                       chamber=chambers.get(root(cid)))
    return Station(station="simulated", instruments=instruments, cells=cells)
