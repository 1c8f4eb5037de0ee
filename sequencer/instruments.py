"""Build the instruments a station names: simulated ones for dry runs, drivers for hardware."""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.clock import Clock
from drivers.interfaces import Chamber, ChannelCapabilities, MultiChannelInstrument
from protocols import Campaign
from protocols.cells import Cell
from sequencer.station import Station
from simulators.cells.base import CellModel
from simulators.instruments import CYCLER_CAPABILITIES, VSP300_CAPABILITIES
from simulators.lab import SimLab

CAPABILITIES: dict[str, ChannelCapabilities] = {
    "sim.potentiostat": VSP300_CAPABILITIES,
    "sim.cycler": CYCLER_CAPABILITIES,
}


CHAMBER_RANGES_C: dict[str, tuple[float, float]] = {"sim.chamber": (-40.0, 100.0)}


def channel_capabilities(station: Station, cell_id: str) -> ChannelCapabilities:
    return CAPABILITIES[station.instruments[station.cells[cell_id].instrument].driver]


def chamber_range_C(station: Station, chamber: str) -> tuple[float, float]:
    return CHAMBER_RANGES_C[station.instruments[chamber].driver]


@dataclass
class Instruments:
    channels: dict[str, MultiChannelInstrument] = field(default_factory=dict)
    chambers: dict[str, Chamber] = field(default_factory=dict)

    def all(self) -> list[MultiChannelInstrument | Chamber]:
        return [*self.channels.values(), *self.chambers.values()]


def build_simulated(station: Station, campaign: Campaign, clock: Clock,
                    seed: int) -> tuple[Instruments, SimLab]:
    """The station's instruments on simulators, and the lab that holds them (whose snapshot a
    resumed dry run restores)."""
    lab = SimLab(clock, seed)
    out = Instruments()
    for name, cfg in station.instruments.items():
        if cfg.driver == "sim.chamber":
            out.chambers[name] = lab.add_chamber(name)
        elif cfg.driver == "sim.potentiostat":
            out.channels[name] = lab.add_potentiostat(name, cfg.channels or 1)
        elif cfg.driver == "sim.cycler":
            out.channels[name] = lab.add_cycler(name, cfg.channels or 1)
        else:
            raise ValueError(f"instrument {name}: unknown driver {cfg.driver!r}")
    for cell_id, placement in station.cells.items():
        cell = campaign.cell(cell_id)
        lab.place(_cell_model(cell), placement.instrument, placement.channel, placement.chamber)
    return out, lab


def _cell_model(cell: Cell) -> CellModel:
    from simulators.cells import build_cell

    cathode = None
    if cell.cathode is not None:
        cathode = {"material": cell.cathode.material, "active_mass_kg": cell.cathode.active_mass_kg,
                   "capacity_Ah": cell.cathode.capacity_Ah, "area_m2": cell.cathode.area_m2}
    return build_cell(cell.kind.value, cell.electrolyte, cell.thickness, cell.membrane_area_m2,
                      cathode)
