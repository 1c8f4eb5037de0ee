"""What ``cellseq sim serve`` starts in place of a real instrument: one stand-in per driver.

A stand-in is a wire-protocol server (:mod:`simulators.wire`) speaking the instrument's own
protocol, so the real driver talks to it as to the instrument. The table here, keyed by the
driver's name in station files, is the only place that pairs a driver with its stand-in: the
drivers know nothing of simulators. Each ``serve`` imports its server only when called.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ServedCell:
    """A cell a served instrument holds: its simulated model (a ``simulators`` CellModel) and
    the air around it, a temperature (degC) or a function of the simulated time (s) that
    takes an array of times as well."""

    model: Any
    temperature_C: float | Callable[[Any], Any] = 25.0


@dataclass(frozen=True)
class ServeRequest:
    """What ``sim serve`` asks of a stand-in: one instrument with these cells on channels 0,
    1, ... (none for a chamber), on a time base ``speed`` times the wall clock."""

    host: str
    speed: float
    seed: int
    cells: tuple[ServedCell, ...] = ()
    channels: int = 0
    step_dir: Path | None = None
    epoch: float = 0.0   # time.monotonic() at which every server's simulated time is 0

    def start(self, server: Any) -> Any:
        """Start ``server`` on the time base all servers share."""
        server.share_time(self.epoch)
        return server.start()


@dataclass
class Served:
    """A stand-in, built but not started (a ``simulators.wire`` LineServer), and how the real
    driver reaches it: the station entry's address, channels, options and login.
    ``air``: a chamber's air temperature at a simulated time, for the cells inside."""

    server: Any
    address: str
    channels: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    air: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class StandIn:
    """The stand-in for driver ``driver``. ``link``: for a driver whose link is a vendor
    library, what reaches the stand-in at its ``sim://`` address in the library's place
    (handed to the driver's builder as :attr:`drivers.spec.Setup.link`)."""

    driver: str
    serve: Callable[[ServeRequest], Served]
    link: Callable[[], Any] | None = None


#: The served ESPEC answers at once: the driver needs no pauses between commands.
ESPEC_OPTIONS = {"query_pause_s": 0.0, "setting_pause_s": 0.0, "timeout_s": 5.0}
#: The served BTS: a 5 V / 100 mA unit whose channels also go below 0 V (symmetric cells).
BTS_OPTIONS = {"max_current_A": 0.1, "min_voltage_V": -5.0, "max_voltage_V": 5.0}


def _espec(request: ServeRequest) -> Served:
    """An ESPEC controller on a socket; the cells inside feel its air."""
    from simulators.wire.espec import EspecServer

    server = EspecServer(host=request.host, speed=request.speed, seed=request.seed)
    request.start(server)
    return Served(server, server.socket_url, options=dict(ESPEC_OPTIONS),
                  air=server.air.temperature_at)


def _keithley2450(request: ServeRequest) -> Served:
    """A 2450 speaking SCPI on a raw socket, its output wired to the one cell. An SMU ends
    steps only when polled, so at high speeds its cut-offs are coarse."""
    from simulators.wire.keithley2450 import Keithley2450Server

    (cell,) = request.cells
    env = cell.temperature_C
    server = Keithley2450Server(
        cell.model, host=request.host, speed=request.speed,
        temperature_C=(lambda t, f=env: float(f(t))) if callable(env) else env)
    request.start(server)
    return Served(server, server.visa_address)


def _neware_bts(request: ServeRequest) -> Served:
    """A BTS API server with one channel per cell, behind a fresh password (a secret: it is
    kept out of every run copy)."""
    from simulators.wire.neware_bts import NewareBTSServer

    password = secrets.token_hex(8)
    server: NewareBTSServer

    def now_air(cell: ServedCell) -> Callable[[], float] | float:
        env = cell.temperature_C
        if not callable(env):
            return env
        return lambda: float(env(server.now_s()))

    server = NewareBTSServer([c.model for c in request.cells], host=request.host,
                             speed=request.speed, password=password,
                             temperature_C=[now_air(c) for c in request.cells])
    request.start(server)
    options: dict[str, Any] = dict(BTS_OPTIONS)
    if request.step_dir is not None:
        options["step_dir"] = str(request.step_dir)
    return Served(server, f"tcp://{request.host}:{server.port}", channels=len(request.cells),
                  options=options, username="admin", password=password)


def _vsp300(request: ServeRequest) -> Served:
    """A VSP-300 stand-in (its link is the vendor DLL, so the driver reaches it through a
    BiologicDevice proxy), its channels running the simulated cells."""
    from simulators.wire.biologic import BiologicServer

    server = BiologicServer(request.channels, {
        k: (cell.model, cell.temperature_C) for k, cell in enumerate(request.cells)},
        speed=request.speed, seed=request.seed, host=request.host)
    request.start(server)
    return Served(server, server.address, channels=request.channels)


def _biologic_proxy() -> Any:
    """easy-biologic's ``BiologicDevice`` in the shape of a proxy to a served VSP-300."""
    from simulators.wire.biologic import BiologicDeviceProxy

    return BiologicDeviceProxy


STAND_INS: dict[str, StandIn] = {s.driver: s for s in (
    StandIn("espec", _espec),
    StandIn("keithley2450", _keithley2450),
    StandIn("neware.bts", _neware_bts),
    StandIn("biologic.vsp300", _vsp300, link=_biologic_proxy),
)}
