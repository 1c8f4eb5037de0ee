"""Build the instruments a station names: simulated ones for dry runs, drivers for hardware.

Drivers are imported only when a station uses them (easy-biologic, pyvisa and the like stay
unloaded otherwise). The capabilities listed here are what planning checks a technique against
before anything is sent; a driver checks again, against what the instrument reports, at connect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.clock import Clock
from drivers.errors import CellseqError
from drivers.interfaces import Chamber, ChannelCapabilities, MultiChannelInstrument
from protocols import Campaign
from protocols.cells import Cell
from sequencer.station import InstrumentConfig, Station
from simulators.cells.base import CellModel
from simulators.instruments import CYCLER_CAPABILITIES, VSP300_CAPABILITIES
from simulators.lab import SimLab

#: A Keithley 2450: +-1.05 A, +-21 V, no impedance.
SMU_CAPABILITIES = ChannelCapabilities(
    max_current_A=1.05, min_voltage_V=-21.0, max_voltage_V=21.0,
    techniques=frozenset({"OpenCircuit", "ConstantCurrent", "ConstantVoltage"}))

CAPABILITIES: dict[str, ChannelCapabilities] = {
    "sim.potentiostat": VSP300_CAPABILITIES,
    "sim.cycler": CYCLER_CAPABILITIES,
    "biologic.vsp300": VSP300_CAPABILITIES,
    "keithley2450": SMU_CAPABILITIES,
    "neware.bts": CYCLER_CAPABILITIES,
}

CHAMBER_RANGES_C: dict[str, tuple[float, float]] = {"sim.chamber": (-40.0, 100.0),
                                                    "espec": (-40.0, 100.0)}


class StationError(CellseqError):
    """A station's instrument cannot be set up (a driver option, a missing password)."""


def channel_capabilities(station: Station, cell_id: str) -> ChannelCapabilities:
    return CAPABILITIES[station.instruments[station.cells[cell_id].instrument].driver]


def chamber_range_C(station: Station, chamber: str) -> tuple[float, float]:
    cfg = station.instruments[chamber]
    lo, hi = CHAMBER_RANGES_C[cfg.driver]
    return float(cfg.options.get("min_C", lo)), float(cfg.options.get("max_C", hi))


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
            raise ValueError(f"instrument {name}: {cfg.driver!r} is not a simulated driver")
    for cell_id, placement in station.cells.items():
        cell = campaign.cell(cell_id)
        lab.place(cell_model(cell), placement.instrument, placement.channel, placement.chamber)
    return out, lab


def build_hardware(station: Station, clock: Clock) -> Instruments:
    """Drivers for every instrument of the station, built without I/O (the executor opens
    them)."""
    out = Instruments()
    for name, cfg in station.instruments.items():
        try:
            instrument = _BUILDERS[cfg.driver](cfg, clock)
        except (TypeError, ValueError, CellseqError) as exc:
            raise StationError(f"instrument {name} ({cfg.driver}): {exc}") from None
        if isinstance(instrument, Chamber):
            out.chambers[name] = instrument
        else:
            out.channels[name] = instrument
    return out


def _options(cfg: InstrumentConfig, allowed: dict[str, type]) -> dict[str, Any]:
    unknown = set(cfg.options) - set(allowed)
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}; it takes {sorted(allowed)}")
    out = {}
    for key, value in cfg.options.items():
        kind = allowed[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind):
            raise ValueError(f"option {key} must be a {kind.__name__}")
        out[key] = value
    return out


def _transport_options(opts: dict[str, Any]) -> dict[str, Any]:
    return {k: opts.pop(k) for k in ("timeout_s",) if k in opts}


def _vsp300(cfg: InstrumentConfig, clock: Clock) -> MultiChannelInstrument:
    from drivers.biologic.vsp300 import VSP300

    assert cfg.address is not None
    opts = _options(cfg, {"timeout_s": float, "max_output_A": float})
    factory = None
    if cfg.address.startswith("sim://"):   # a served stand-in (cellseq sim serve)
        from simulators.wire.biologic import BiologicDeviceProxy
        factory = BiologicDeviceProxy
    return VSP300(cfg.address, device_factory=factory, **opts)


def _keithley2450(cfg: InstrumentConfig, clock: Clock) -> MultiChannelInstrument:
    from drivers.keithley2450 import Keithley2450, Keithley2450Config
    from drivers.transports import open_transport

    assert cfg.address is not None
    opts = _options(cfg, {"timeout_s": float, "max_current_A": float, "max_voltage_V": float})
    transport = open_transport(cfg.address, **_transport_options(opts))
    return Keithley2450(transport, clock, Keithley2450Config(**opts))


def _espec(cfg: InstrumentConfig, clock: Clock) -> Chamber:
    from drivers.espec import EspecChamber, EspecConfig
    from drivers.transports import open_transport

    assert cfg.address is not None
    opts = _options(cfg, {"timeout_s": float, "rs485_address": int, "query_pause_s": float,
                          "setting_pause_s": float, "min_C": float, "max_C": float})
    transport = open_transport(cfg.address, **_transport_options(opts))
    return EspecChamber(transport, EspecConfig(**opts))


def _neware_bts(cfg: InstrumentConfig, clock: Clock) -> MultiChannelInstrument:
    from drivers.neware_bts import DEFAULT_PORT, NewareBTS, NewareBTSConfig

    password = cfg.secret()
    if password is None:
        raise ValueError("no password: give 'password', or 'password_env' naming an"
                         " environment variable that is set")
    opts = _options(cfg, {"timeout_s": float, "max_current_A": float, "min_voltage_V": float,
                          "max_voltage_V": float, "step_dir": str, "bts_step_dir": str,
                          "backup_dir": str})
    if "max_current_A" not in opts:
        raise ValueError("option max_current_A (the channels' current rating) is required")
    transport = _transport_options(opts)
    if "step_dir" in opts:
        opts["step_dir"] = Path(opts["step_dir"])
    assert cfg.address is not None
    host, _, port = cfg.address.removeprefix("tcp://").rpartition(":")
    if not host or not port.isdigit():
        host, port = cfg.address.removeprefix("tcp://"), str(DEFAULT_PORT)
    config = NewareBTSConfig(username=cfg.username or "admin", password=password, **opts)
    return NewareBTS.from_address(host, config, port=int(port), **transport)


_BUILDERS: dict[str, Callable[[InstrumentConfig, Clock], MultiChannelInstrument | Chamber]] = {
    "biologic.vsp300": _vsp300,
    "keithley2450": _keithley2450,
    "espec": _espec,
    "neware.bts": _neware_bts,
}


def cell_model(cell: Cell) -> CellModel:
    """The simulated cell a protocol's cell describes."""
    from simulators.cells import build_cell

    cathode = None
    if cell.cathode is not None:
        cathode = {"material": cell.cathode.material, "active_mass_kg": cell.cathode.active_mass_kg,
                   "capacity_Ah": cell.cathode.capacity_Ah, "area_m2": cell.cathode.area_m2}
    return build_cell(cell.kind.value, cell.electrolyte, cell.thickness, cell.membrane_area_m2,
                      cathode, anode=cell.anode, np_ratio=cell.np_ratio,
                      library=cell.material_library)
