"""Build the instruments a station names, each through its driver's spec.

Builders import their drivers' heavy dependencies (easy-biologic, pyvisa and the like) only
when a station uses them, and the simulators are imported only for a dry run (or for an address
a served stand-in answers, ``sim://``). The capabilities here are what planning checks a
technique against before anything is sent, from the driver's spec and the station's options; a
driver checks again, against what the instrument reports, at connect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drivers.errors import CellseqError
from drivers.interfaces import Chamber, ChannelCapabilities, MultiChannelInstrument
from drivers.spec import Bench, Setup
from protocols import Campaign
from protocols.cells import Cell
from sequencer.station import InstrumentConfig, Station

if TYPE_CHECKING:
    from drivers.clock import Clock
    from simulators.cells.base import CellModel
    from simulators.lab import SimLab

#: The address scheme of a served stand-in reached through a vendor library's place.
SERVED_SCHEME = "sim://"


class StationError(CellseqError):
    """A station's instrument cannot be set up (a driver option, a missing password)."""


def channel_capabilities(station: Station, cell_id: str) -> ChannelCapabilities:
    """What the channel of ``cell_id`` can do, from its driver's spec and options."""
    cfg = station.instruments[station.cells[cell_id].instrument]
    assert cfg.spec.capabilities is not None   # placements are on channel instruments
    return cfg.spec.capabilities(cfg.parsed_options())


def chamber_range_C(station: Station, chamber: str) -> tuple[float, float]:
    cfg = station.instruments[chamber]
    assert cfg.spec.chamber_range_C is not None   # a placement's chamber is a chamber
    return cfg.spec.chamber_range_C(cfg.parsed_options())


@dataclass
class Instruments:
    channels: dict[str, MultiChannelInstrument] = field(default_factory=dict)
    chambers: dict[str, Chamber] = field(default_factory=dict)

    def all(self) -> list[MultiChannelInstrument | Chamber]:
        return [*self.channels.values(), *self.chambers.values()]


def build_simulated(station: Station, campaign: Campaign, clock: Clock,
                    seed: int) -> tuple[Instruments, SimLab]:
    """The station's in-process simulators, and the lab that holds them (whose snapshot a
    resumed dry run restores)."""
    from simulators.lab import SimLab

    lab = SimLab(clock, seed)
    for name, cfg in station.instruments.items():
        if not cfg.spec.simulated:
            raise ValueError(f"instrument {name}: {cfg.driver!r} is not an in-process simulator")
    out = _build(station, Bench(clock, lab))
    for cell_id, placement in station.cells.items():
        cell = campaign.cell(cell_id)
        lab.place(cell_model(cell), placement.instrument, placement.channel, placement.chamber)
    return out, lab


def build_hardware(station: Station, clock: Clock) -> Instruments:
    """Drivers for every instrument of the station, built without I/O (the executor opens
    them)."""
    return _build(station, Bench(clock))


def _build(station: Station, bench: Bench) -> Instruments:
    out = Instruments()
    for name, cfg in station.instruments.items():
        try:
            instrument = cfg.spec.build(_setup(name, cfg), bench)
        except (TypeError, ValueError, CellseqError) as exc:
            raise StationError(f"instrument {name} ({cfg.driver}): {exc}") from None
        if isinstance(instrument, Chamber):
            out.chambers[name] = instrument
        else:
            out.channels[name] = instrument
    return out


def _setup(name: str, cfg: InstrumentConfig) -> Setup:
    return Setup(name=name, address=cfg.address, channels=cfg.channel_count,
                 options=cfg.parsed_options(), username=cfg.username, password=cfg.secret(),
                 link=_served_link(cfg))


def _served_link(cfg: InstrumentConfig) -> Any:
    """What reaches a served stand-in at a ``sim://`` address in the vendor library's place
    (:mod:`simulators.served`); None for any other address."""
    if cfg.address is None or not cfg.address.startswith(SERVED_SCHEME):
        return None
    from simulators.served import STAND_INS

    stand_in = STAND_INS.get(cfg.driver)
    return stand_in.link() if stand_in is not None and stand_in.link is not None else None


def cell_model(cell: Cell) -> CellModel:
    """The simulated cell a protocol's cell describes, in the state its ``initial_state``
    gives (else fresh, as assembled)."""
    from simulators.cells import build_cell

    cathode = None
    if cell.cathode is not None:
        cathode = {"material": cell.cathode.material, "active_mass_kg": cell.cathode.active_mass_kg,
                   "capacity_Ah": cell.cathode.capacity_Ah, "area_m2": cell.cathode.area_m2}
    model = build_cell(cell.kind.value, cell.electrolyte, cell.thickness,
                       cell.membrane_area_m2, cathode, anode=cell.anode, np_ratio=cell.np_ratio,
                       library=cell.material_library)
    if cell.initial_state is not None:   # the dry run's stand-in only: hardware is what it is
        model.start_formed(cell.initial_state.soc)
    return model
