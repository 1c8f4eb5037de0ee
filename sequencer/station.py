"""Station files: which instrument and channel each cell is on, and which chamber it sits in.

A station is separate from the protocol (what to do to which cell). ``--sim`` builds one from the
protocol alone with :func:`simulated_station`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictFloat,
    StrictInt,
    model_validator,
)

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

Driver = Literal["sim.potentiostat", "sim.cycler", "sim.chamber", "biologic.vsp300",
                 "keithley2450", "neware.bts", "espec"]
CHANNEL_DRIVERS = {"sim.potentiostat", "sim.cycler", "biologic.vsp300", "keithley2450",
                   "neware.bts"}
CHAMBER_DRIVERS = {"sim.chamber", "espec"}
#: In-process simulators, on the run's virtual clock; every other driver talks to an instrument
#: (or a wire simulator) at its address, in wall time.
SIMULATED_DRIVERS = {"sim.potentiostat", "sim.cycler", "sim.chamber"}
#: Instruments with one output whatever the station says.
SINGLE_CHANNEL = {"keithley2450"}

OptionValue = StrictBool | StrictInt | StrictFloat | Annotated[str, Field(max_length=500)]


class InstrumentConfig(BaseModel):
    """One instrument: its driver, its address (VISA resource, serial port or URL, host:port,
    ``sim://host:port`` for a served simulator), and driver options. ``password`` is kept out of
    every copy, log and store (``password_env`` names an environment variable instead)."""

    model_config = _STRICT
    driver: Driver
    channels: int | None = Field(default=None, ge=1, le=512)
    address: str | None = Field(default=None, min_length=1, max_length=500)
    options: dict[str, OptionValue] = Field(default_factory=dict, max_length=50)
    username: str | None = Field(default=None, max_length=100)
    password: SecretStr | None = None
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @model_validator(mode="after")
    def _consistent(self) -> InstrumentConfig:
        if self.driver in SINGLE_CHANNEL and self.channels not in (None, 1):
            raise ValueError(f"a {self.driver} has one channel")
        elif self.driver in CHANNEL_DRIVERS - SINGLE_CHANNEL and self.channels is None:
            raise ValueError(f"a {self.driver} needs 'channels'")
        if self.driver in CHAMBER_DRIVERS and self.channels is not None:
            raise ValueError("a chamber has no channels")
        if self.driver not in SIMULATED_DRIVERS and self.address is None:
            raise ValueError(f"a {self.driver} needs an 'address'")
        if self.driver in SIMULATED_DRIVERS and (self.options or self.password):
            raise ValueError(f"a {self.driver} takes no options")
        return self

    @property
    def channel_count(self) -> int:
        return 1 if self.driver in SINGLE_CHANNEL else (self.channels or 0)

    def secret(self) -> str | None:
        """The password, from the file or the environment; never written anywhere."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_env is not None:
            return os.environ.get(self.password_env)
        return None


class Placement(BaseModel):
    model_config = _STRICT
    instrument: str
    channel: int = Field(ge=0)
    chamber: str | None = None


class Station(BaseModel):
    model_config = _STRICT
    station: str = "station"
    #: simulated seconds per wall second of the instruments the station reaches (a served
    #: simulator's speed); 1 for real instruments
    speed: float = Field(default=1.0, gt=0, le=1e6)
    instruments: dict[str, InstrumentConfig] = Field(min_length=1)
    cells: dict[str, Placement] = Field(min_length=1)

    def chamber_of(self, cell: str) -> str | None:
        return self.cells[cell].chamber

    @property
    def simulated(self) -> bool:
        """In-process simulators only (a dry run in virtual time)."""
        return all(i.driver in SIMULATED_DRIVERS for i in self.instruments.values())


def station_problems(station: Station) -> Iterator[tuple[tuple[object, ...], str]]:
    """Placements that do not resolve, channels out of range or booked twice."""
    kinds = {i.driver in SIMULATED_DRIVERS for i in station.instruments.values()}
    if len(kinds) > 1:
        yield ("instruments",), ("in-process simulators (sim.*) run in virtual time and cannot"
                                 " share a run with instruments at an address")
    taken: dict[tuple[str, int], str] = {}
    for cell, p in station.cells.items():
        inst = station.instruments.get(p.instrument)
        if inst is None or inst.driver not in CHANNEL_DRIVERS:
            yield ("cells", cell, "instrument"), (f"{p.instrument!r} is not a potentiostat or"
                                                  " cycler of this station")
            continue
        if p.channel >= inst.channel_count:
            yield ("cells", cell, "channel"), (f"{p.instrument} has channels"
                                               f" 0..{inst.channel_count - 1}, not {p.channel}")
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
