"""``cellseq sim serve``: a simulated lab on the wire, for runs through the real drivers.

The protocol's cells are placed as a dry run would place them (cells that need a potentiostat
on potentiostats, the rest on cyclers, one chamber per group of linked experiments), but each
instrument is a server speaking a real instrument's protocol, the stand-in the simulators
declare for that instrument's driver (:mod:`simulators.served`): by default an ESPEC controller
per chamber, a VSP-300 stand-in per six potentiostat cells (its link is the vendor DLL, so the
real driver reaches it through a BiologicDevice proxy), and a Neware BTS per sixteen cycler
cells; ``cycler`` (and ``potentiostat``, ``chamber``) names another driver of that kind that
can be served (a one-channel instrument, such as a Keithley 2450, gets one server per cell).
All servers share one time base running ``speed`` times faster than the wall clock, and a cell
in a chamber feels that chamber's air. The station file written names every address and the
speed; ``cellseq run FILE --station`` uses it as is. The servers keep their cells' state when a
client dies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from drivers.spec import InstrumentSpec, Kind
from protocols import load_campaign
from sequencer import registry
from sequencer.instruments import cell_model
from sequencer.station import InstrumentConfig, Placement, Station, simulated_station
from simulators.served import STAND_INS, Served, ServedCell, ServeRequest

#: What stands in for each kind of instrument unless told otherwise.
DEFAULT_SERVED: dict[Kind, str] = {"chamber": "espec", "potentiostat": "biologic.vsp300",
                                   "cycler": "neware.bts"}


@dataclass
class ServedLab:
    station: Station
    servers: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


def served_spec(kind: Kind, name: str | None = None) -> InstrumentSpec:
    """The driver whose simulator serves ``kind`` (``name``, or the default); ValueError naming
    the choices the registry offers."""
    choices = registry.served(kind)
    chosen = name or DEFAULT_SERVED.get(kind) or (choices[0] if len(choices) == 1 else None)
    if chosen not in choices:
        raise ValueError(f"the {kind} served is one of {', '.join(choices) or 'none'}, not"
                         f" {chosen!r}")
    return registry.spec(chosen)


def serve(protocol: Path, speed: float, seed: int = 0, host: str = "127.0.0.1",
          cycler: str = "neware.bts", step_dir: Path | None = None,
          potentiostat: str | None = None, chamber: str | None = None) -> ServedLab:
    """Start the servers for the protocol's cells; returns the station that reaches them.
    ``step_dir``: where a driver keeps files between runs (the BTS's step files: re-attaching
    needs them)."""
    chosen = {"cycler": served_spec("cycler", cycler),
              "potentiostat": served_spec("potentiostat", potentiostat),
              "chamber": served_spec("chamber", chamber)}
    campaign = load_campaign(protocol)
    placed = simulated_station(campaign)
    request = ServeRequest(host=host, speed=speed, seed=seed, step_dir=step_dir,
                           epoch=time.monotonic())
    servers: dict[str, Any] = {}
    instruments: dict[str, InstrumentConfig] = {}
    cells: dict[str, Placement] = {}
    airs: dict[str, Callable[[Any], Any]] = {}

    def start(name: str, spec: InstrumentSpec, cells: tuple[ServedCell, ...],
              channels: int) -> None:
        served = STAND_INS[spec.name].serve(replace(request, cells=cells, channels=channels))
        servers[name] = served.server
        instruments[name] = _config(spec, served)
        if served.air is not None:
            airs[name] = served.air

    try:
        for name, cfg in placed.instruments.items():   # chambers first: cells feel their air
            if cfg.kind == "chamber":
                start(name, chosen["chamber"], (), 0)
        for name, cfg in placed.instruments.items():
            if cfg.kind == "chamber":
                continue
            spec = chosen[cfg.kind]
            ours = sorted((p.channel, cid, p) for cid, p in placed.cells.items()
                          if p.instrument == name)

            def served_cell(cid: str, p: Placement) -> ServedCell:
                air = airs.get(p.chamber) if p.chamber is not None else None
                return ServedCell(cell_model(campaign.cell(cid)), air if air else 25.0)

            if spec.channels == "one":
                for _, cid, p in ours:
                    start(f"{name}-{cid}", spec, (served_cell(cid, p),), 1)
                    cells[cid] = Placement(instrument=f"{name}-{cid}", channel=0,
                                           chamber=p.chamber)
            else:
                start(name, spec, tuple(served_cell(cid, p) for _, cid, p in ours),
                      cfg.channel_count)
                cells.update({cid: Placement(instrument=name, channel=k, chamber=p.chamber)
                              for k, (_, cid, p) in enumerate(ours)})
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    station = Station(station=f"served {campaign.campaign}", speed=speed,
                      instruments=instruments, cells=cells)
    return ServedLab(station, servers)


def _config(spec: InstrumentSpec, served: Served) -> InstrumentConfig:
    return InstrumentConfig(driver=spec.name, address=served.address, channels=served.channels,
                            options=served.options, username=served.username,
                            password=served.password)


def write_station(station: Station, path: Path) -> None:
    """The served station, password included: it is the user's file, for this session."""
    record = station.model_dump(mode="json", exclude_none=True)
    for name, inst in station.instruments.items():
        if inst.password is not None:
            record["instruments"][name]["password"] = inst.password.get_secret_value()
    path.write_text(yaml.safe_dump(record, sort_keys=False), encoding="utf-8")
