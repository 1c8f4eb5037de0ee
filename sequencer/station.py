"""Station files: which instrument and channel each cell is on, and which chamber it sits in.

A station is separate from the protocol (what to do to which cell). ``--sim`` builds one from the
protocol alone with :func:`simulated_station`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from drivers.errors import CapabilityError, CellseqError
from drivers.spec import InstrumentSpec, Kind, Options
from drivers.techniques import Technique
from protocols import Campaign, load_model
from protocols.cells import Cell
from protocols.steps import CHAMBER_STEPS, walk
from sequencer import registry
from sequencer.handlers import techniques_of, voltage_window

_STRICT = ConfigDict(extra="forbid", frozen=True)

#: A driver's name, as its spec declares it (``sequencer.registry``).
Driver = str

OptionValue = StrictBool | StrictInt | StrictFloat | Annotated[str, Field(max_length=500)]


class InstrumentConfig(BaseModel):
    """One instrument: its driver, its address (VISA resource, serial port or URL, host:port,
    ``sim://host:port`` for a served simulator), and driver options, all checked against the
    driver's spec. ``password`` is kept out of every copy, log and store (``password_env``
    names an environment variable instead)."""

    model_config = _STRICT
    driver: Driver = Field(min_length=1, max_length=100)
    channels: int | None = Field(default=None, ge=1, le=512)
    address: str | None = Field(default=None, min_length=1, max_length=500)
    options: dict[str, OptionValue] = Field(default_factory=dict, max_length=50)
    username: str | None = Field(default=None, max_length=100)
    password: SecretStr | None = None
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator("driver")
    @classmethod
    def _known(cls, name: str) -> str:
        try:
            registry.spec(name)
        except CellseqError as exc:
            raise ValueError(str(exc)) from None
        return name

    @field_validator("options")
    @classmethod
    def _typed(cls, options: dict[str, OptionValue], info: ValidationInfo) -> dict[str, object]:
        if "driver" in info.data:   # else the driver is refused already
            _parse_options(registry.spec(info.data["driver"]), options)
        return options

    @model_validator(mode="after")
    def _consistent(self) -> InstrumentConfig:
        spec = self.spec
        if spec.channels == "one" and self.channels not in (None, 1):
            raise ValueError(f"a {self.driver} has one channel")
        if spec.channels == "required" and self.channels is None:
            raise ValueError(f"a {self.driver} needs 'channels'")
        if spec.channels == "none" and self.channels is not None:
            raise ValueError(f"a {self.driver} is a {spec.kind}: it has no channels")
        if not spec.simulated and self.address is None:
            raise ValueError(f"a {self.driver} needs an 'address'")
        if not spec.login and (self.username is not None or self.password is not None
                               or self.password_env is not None):
            raise ValueError(f"a {self.driver} takes no username or password")
        return self

    @property
    def spec(self) -> InstrumentSpec:
        return registry.spec(self.driver)

    @property
    def kind(self) -> Kind:
        return self.spec.kind

    def parsed_options(self) -> Options:
        """The options as the driver's spec types them (defaults filled in)."""
        return _parse_options(self.spec, self.options)

    @property
    def channel_count(self) -> int:
        return 1 if self.spec.channels == "one" else (self.channels or 0)

    def secret(self) -> str | None:
        """The password, from the file or the environment; never written anywhere."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_env is not None:
            return os.environ.get(self.password_env)
        return None


def _parse_options(spec: InstrumentSpec, options: dict[str, object]) -> Options:
    """``options`` validated by ``spec``'s model; ValueError naming each option at fault."""
    try:
        return spec.options.model_validate(options)
    except ValidationError as exc:
        known = ", ".join(spec.options.model_fields) or "none"
        problems = []
        for err in exc.errors(include_url=False):
            name = ".".join(map(str, err["loc"])) or "options"
            if err["type"] == "extra_forbidden":
                problems.append(f"{name}: unknown option; {spec.name} takes: {known}")
            elif err["type"] == "missing":
                problems.append(f"{name}: required by {spec.name}")
            else:
                problems.append(f"{name}: {err['msg'].removeprefix('Value error, ')}"
                                f" (got {err['input']!r})")
        raise ValueError("; ".join(problems)) from None


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
        return all(i.spec.simulated for i in self.instruments.values())


def station_problems(station: Station) -> Iterator[tuple[tuple[object, ...], str]]:
    """Placements that do not resolve, channels out of range or booked twice."""
    kinds = {i.spec.simulated for i in station.instruments.values()}
    if len(kinds) > 1:
        simulated = ", ".join(sorted(n for n, i in station.instruments.items()
                                     if i.spec.simulated))
        yield ("instruments",), (f"in-process simulators ({simulated}) run in virtual time and"
                                 " cannot share a run with instruments at an address")
    taken: dict[tuple[str, int], str] = {}
    for cell, p in station.cells.items():
        inst = station.instruments.get(p.instrument)
        if inst is None or inst.kind == "chamber":
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
            if chamber is None or chamber.kind != "chamber":
                yield ("cells", cell, "chamber"), f"{p.chamber!r} is not a chamber of this station"


def load_station(path: Path) -> Station:
    return load_model(path, Station, station_problems)


#: Channel kinds in the order ``--sim`` tries them: a cell goes on a potentiostat only when a
#: cycler channel cannot run one of its techniques.
PLACEMENT_ORDER: tuple[Kind, ...] = ("cycler", "potentiostat")


def simulated_station(campaign: Campaign) -> Station:
    """A simulated lab for a campaign, on the in-process simulators the registry names for dry
    runs: each cell on a cycler channel if one runs every technique its steps plan to
    (impedance, sweeps, holds relative to the open-circuit voltage and voltages or currents
    beyond a cycler's need a potentiostat), else on a potentiostat
    channel (six per simulated VSP-300, sixteen per cycler), and one chamber per group of
    experiments linked by shared cells (cells that are never in the same experiment need not
    share a chamber, so their temperature schedules cannot clash)."""
    group = {c.id: c.id for c in campaign.cells}

    def root(cid: str) -> str:
        while group[cid] != cid:
            group[cid] = group[group[cid]]
            cid = group[cid]
        return cid

    heated: set[str] = set()
    planned: dict[str, list[Technique]] = {c.id: [] for c in campaign.cells}
    for exp in campaign.experiments:
        for cid in exp.cells:
            planned[cid].extend(techniques_of(exp.steps, campaign.cell(cid)))
        for cid in exp.cells[1:]:
            group[root(cid)] = root(exp.cells[0])
        if any(isinstance(s, CHAMBER_STEPS) for s in walk(exp.steps)):
            heated.add(exp.cells[0])
    chamber_spec = registry.dry_run_spec("chamber")
    chambers = {root(c): f"{_prefix(chamber_spec)}-{k + 1}" for k, c in enumerate(sorted(
        {root(c) for c in heated}, key=[c.id for c in campaign.cells].index))}
    instruments: dict[str, InstrumentConfig] = {
        name: InstrumentConfig(driver=chamber_spec.name) for name in chambers.values()}
    specs = {kind: registry.dry_run_spec(kind) for kind in PLACEMENT_ORDER}
    kind_of = {c.id: _channel_kind(specs, planned[c.id], c) for c in campaign.cells}
    cells: dict[str, Placement] = {}
    for kind in sorted(PLACEMENT_ORDER, key=lambda k: k != "potentiostat"):
        spec = specs[kind]
        per = spec.dry_run.channels if spec.dry_run and spec.dry_run.channels else 1
        ids = [c.id for c in campaign.cells if kind_of[c.id] == kind]
        for k in range(math.ceil(len(ids) / per)):
            name = f"{_prefix(spec)}-{k + 1}"
            instruments[name] = InstrumentConfig(driver=spec.name, channels=per)
            for ch, cid in enumerate(ids[k * per:(k + 1) * per]):
                cells[cid] = Placement(instrument=name, channel=ch,
                                       chamber=chambers.get(root(cid)))
    return Station(station="simulated", instruments=instruments, cells=cells)


def _prefix(spec: InstrumentSpec) -> str:
    return spec.dry_run.prefix if spec.dry_run else spec.name


def _channel_kind(specs: dict[Kind, InstrumentSpec], techniques: list[Technique],
                  cell: Cell) -> Kind:
    """The first kind in :data:`PLACEMENT_ORDER` whose dry-run channel runs every technique
    planned, values and all; failing that, the last (most capable) that has every kind of
    technique: the plan then names the values even it cannot reach."""
    window = voltage_window(cell)
    offered: list[Kind] = []
    for kind, spec in specs.items():
        assert spec.capabilities is not None
        caps = spec.capabilities(spec.options())
        if not all(caps.offers(t) for t in techniques):
            continue
        offered.append(kind)
        try:
            for technique in techniques:
                caps.check(technique, window)
        except CapabilityError:
            continue
        return kind
    return offered[-1] if offered else PLACEMENT_ORDER[-1]
