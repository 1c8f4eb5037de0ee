"""``cellseq sim serve``: a simulated lab on the wire, for runs through the real drivers.

The protocol's cells are placed as a dry run would place them (cells that need a potentiostat
on VSP-300s, the rest on cyclers, one chamber per group of linked experiments), but each
instrument is a server speaking its real protocol: an ESPEC controller per chamber, a VSP-300
stand-in per six potentiostat cells (its link is the vendor DLL, so the real driver reaches it
through a BiologicDevice proxy), and a Neware BTS per sixteen cycler cells (or, with
``cycler="keithley2450"``, a Keithley 2450 per cycler cell; an SMU ends steps only when polled,
so at high speeds its cut-offs are coarse). All servers share one
time base running ``speed`` times faster than the wall clock, and a cell in a chamber feels
that chamber's air. The station file written names every address and the speed; ``cellseq
run FILE --station`` uses it as is. The servers keep their cells' state when a client dies.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from protocols import load_campaign
from sequencer.instruments import cell_model
from sequencer.station import InstrumentConfig, Placement, Station, simulated_station
from simulators.wire.biologic import BiologicServer
from simulators.wire.espec import EspecServer
from simulators.wire.keithley2450 import Keithley2450Server
from simulators.wire.neware_bts import NewareBTSServer
from simulators.wire.server import LineServer

#: The served chambers answer at once: the driver needs no pauses between commands.
_ESPEC_OPTIONS = {"query_pause_s": 0.0, "setting_pause_s": 0.0, "timeout_s": 5.0}


@dataclass
class ServedLab:
    station: Station
    servers: dict[str, LineServer] = field(default_factory=dict)

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


def serve(protocol: Path, speed: float, seed: int = 0, host: str = "127.0.0.1",
          cycler: str = "neware.bts", step_dir: Path | None = None) -> ServedLab:
    """Start the servers for the protocol's cells; returns the station that reaches them.
    ``step_dir``: where the BTS driver keeps its step files (re-attaching needs them)."""
    if cycler not in ("neware.bts", "keithley2450"):
        raise ValueError(f"cycler is neware.bts or keithley2450, not {cycler!r}")
    campaign = load_campaign(protocol)
    placed = simulated_station(campaign)
    epoch = time.monotonic()
    servers: dict[str, LineServer] = {}
    instruments: dict[str, InstrumentConfig] = {}
    cells: dict[str, Placement] = {}
    try:
        for name, cfg in placed.instruments.items():
            if cfg.driver == "sim.chamber":
                chamber = _start(EspecServer(host=host, speed=speed, seed=seed), epoch)
                servers[name] = chamber
                instruments[name] = InstrumentConfig(driver="espec", address=chamber.socket_url,
                                                     options=_ESPEC_OPTIONS)

        def air(chamber: str | None) -> Callable[[np.ndarray], np.ndarray] | float:
            if chamber is None:
                return 25.0
            server = servers[chamber]
            assert isinstance(server, EspecServer)
            return server.air.temperature_at

        for name, cfg in placed.instruments.items():
            ours = {cid: p for cid, p in placed.cells.items() if p.instrument == name}
            if cfg.driver == "sim.potentiostat":
                vsp = BiologicServer(cfg.channels or 6, {
                    p.channel: (cell_model(campaign.cell(cid)), air(p.chamber))
                    for cid, p in ours.items()}, speed=speed, seed=seed, host=host)
                servers[name] = _start(vsp, epoch)
                instruments[name] = InstrumentConfig(driver="biologic.vsp300",
                                                     address=vsp.address,
                                                     channels=cfg.channels)
                cells.update({cid: Placement(instrument=name, channel=p.channel,
                                             chamber=p.chamber) for cid, p in ours.items()})
            elif cfg.driver == "sim.cycler" and cycler == "neware.bts":
                ids = sorted(ours, key=lambda c: ours[c].channel)
                password = secrets.token_hex(8)   # a secret, kept out of every run copy

                def now_air(chamber: str | None) -> Callable[[], float] | float:
                    if chamber is None:
                        return 25.0
                    srv = servers[chamber]
                    assert isinstance(srv, EspecServer)
                    return lambda: float(srv.air.temperature_at(srv.now_s()))

                bts = NewareBTSServer([cell_model(campaign.cell(c)) for c in ids], host=host,
                                      speed=speed, password=password,
                                      temperature_C=[now_air(ours[c].chamber) for c in ids])
                servers[name] = _start(bts, epoch)
                options: dict[str, str | float] = {"max_current_A": 0.1}
                if step_dir is not None:
                    options["step_dir"] = str(step_dir)
                instruments[name] = InstrumentConfig(
                    driver="neware.bts", address=f"tcp://{host}:{bts.port}", channels=len(ids),
                    username="admin", password=password, options=options)
                cells.update({cid: Placement(instrument=name, channel=k,
                                             chamber=ours[cid].chamber)
                              for k, cid in enumerate(ids)})
            elif cfg.driver == "sim.cycler":
                for cid, p in ours.items():
                    env = air(p.chamber)
                    smu = Keithley2450Server(
                        cell_model(campaign.cell(cid)), host=host, speed=speed,
                        temperature_C=(lambda t, f=env: float(f(t))) if callable(env) else env)
                    smu_name = f"smu-{cid}"
                    servers[smu_name] = _start(smu, epoch)
                    instruments[smu_name] = InstrumentConfig(driver="keithley2450",
                                                             address=smu.visa_address)
                    cells[cid] = Placement(instrument=smu_name, channel=0, chamber=p.chamber)
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    station = Station(station=f"served {campaign.campaign}", speed=speed,
                      instruments=instruments, cells=cells)
    return ServedLab(station, servers)


def _start(server: LineServer, epoch: float) -> LineServer:
    server.share_time(epoch)
    return server.start()


def write_station(station: Station, path: Path) -> None:
    """The served station, password included: it is the user's file, for this session."""
    record = station.model_dump(mode="json", exclude_none=True)
    for name, inst in station.instruments.items():
        if inst.password is not None:
            record["instruments"][name]["password"] = inst.password.get_secret_value()
    path.write_text(yaml.safe_dump(record, sort_keys=False), encoding="utf-8")
