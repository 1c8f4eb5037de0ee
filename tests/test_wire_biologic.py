"""The real VSP-300 driver over :class:`BiologicDeviceProxy`, against a :class:`BiologicServer`.

The server runs the instrument 1000 times faster than wall time, so these tests wait in wall time
(tens of ms each); the instrument's channels live in the server and outlive their clients.
"""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from drivers.biologic import VSP300, decode
from drivers.biologic.data import concat
from drivers.biologic.vsp300 import VSP300Channel
from drivers.errors import DriverError, TransportError
from drivers.points import ChannelState, Points, Readout
from drivers.techniques import ConstantCurrent, Impedance, OpenCircuit
from simulators.instruments.biologic_device import (
    BUFFER_WORDS,
    ChannelInfo,
    CurrentValues,
    DataInfo,
    EcError,
    NotSimulatedError,
)
from simulators.wire.biologic import BiologicDeviceProxy, BiologicServer, proxy_factory

from .fakes import ResistorCell

SPEED = 1000.0   # simulated seconds per wall second


@pytest.fixture
def cell() -> ResistorCell:
    return ResistorCell(v0=3.0, k_V_per_C=1.0, r_ohm=10.0)


@pytest.fixture
def server(cell: ResistorCell) -> Iterator[BiologicServer]:
    with BiologicServer(channels=2, cells={0: cell}, speed=SPEED) as srv:
        yield srv


def driver(server: BiologicServer, timeout_s: float = 2.0, **kwargs: Any) -> VSP300:
    vsp = VSP300(server.address, device_factory=BiologicDeviceProxy, timeout_s=timeout_s,
                 **kwargs)
    vsp.open()
    return vsp


def run_out(channel: VSP300Channel, wall_s: float = 5.0) -> tuple[Points, Readout]:
    """Poll until the technique ends: every point, and the last readout."""
    parts, deadline = [], time.monotonic() + wall_s
    while True:
        readout = channel.poll()
        parts.append(readout.points)
        if readout.state is not ChannelState.RUNNING:
            return concat([p for p in parts if len(p)]), readout
        assert time.monotonic() < deadline, f"still running after {wall_s} s of wall time"
        time.sleep(0.01)


# -- techniques run in the server, the driver in the client ----------------------------------

def test_peis_returns_the_cells_impedance(server: BiologicServer, cell: ResistorCell) -> None:
    vsp = driver(server)
    ch = vsp.channel(0)
    ch.start(Impedance(f_start_Hz=1e5, f_end_Hz=0.1, amplitude_V=0.01, points_per_decade=10))
    points, r = run_out(ch)   # 113 s of instrument time
    assert (r.state, r.end_reason, len(points)) == (ChannelState.DONE, "completed", 61)
    assert points.frequency_Hz is not None and points.z_real_ohm is not None
    assert points.z_imag_ohm is not None
    z = points.z_real_ohm + 1j * points.z_imag_ohm
    assert z == pytest.approx(cell.impedance(points.frequency_Hz, 25.0), rel=0.01)
    vsp.close()


def test_a_charge_ends_at_its_voltage_limit(server: BiologicServer, cell: ResistorCell) -> None:
    vsp = driver(server)
    ch = vsp.channel(0)
    # V = 3 + 0.01 t + 0.1 reaches 3.6 V at t = 50 s
    ch.start(ConstantCurrent(current_A=0.01, duration_s=1000, record_dt_s=7, until_voltage_V=3.6))
    points, r = run_out(ch)
    assert (r.state, r.end_reason) == (ChannelState.DONE, "voltage")
    assert points.time_s == pytest.approx([*range(0, 50, 7), 50], abs=1e-4)
    assert points.voltage_V[-1] == pytest.approx(3.6, abs=1e-3)
    with server.lock:
        assert cell.charge_C == pytest.approx(0.5)
    vsp.close()


def test_a_crashed_client_leaves_the_channel_running_and_a_new_one_reattaches(
        server: BiologicServer) -> None:
    proxies: list[BiologicDeviceProxy] = []

    def keep(address: str, **kwargs: Any) -> BiologicDeviceProxy:
        proxies.append(BiologicDeviceProxy(address, **kwargs))
        return proxies[-1]

    first = VSP300(server.address, device_factory=keep)
    first.open()
    # V = 3.005 + 0.0005 t reaches 3.6 V at t = 1190 s: 1.19 s of wall time
    technique = ConstantCurrent(current_A=5e-4, duration_s=2000, record_dt_s=9,
                                until_voltage_V=3.6)
    first.channel(0).start(technique)
    time.sleep(0.03)
    before = first.channel(0).poll().points
    proxies[0].drop()             # the sequencer dies without a word; the instrument runs on
    time.sleep(0.05)
    second = VSP300("192.168.1.2", device_factory=proxy_factory(server.host, server.port))
    second.open()
    ch = second.channel(0)
    assert ch.running_unknown
    ch.adopt(technique)
    after, r = run_out(ch)
    assert (r.state, r.end_reason) == (ChannelState.DONE, "voltage")
    assert len(before) >= 2 and after.time_s[0] == pytest.approx(before.time_s[-1] + 9, abs=1e-4)
    # every point, those recorded while no client was connected included, once
    assert np.concatenate([before.time_s, after.time_s]) == pytest.approx(
        [*range(0, 1190, 9), 1190], abs=1e-4)
    second.close()


# -- the proxy is the stand-in, over a socket --------------------------------------------------

def test_the_proxy_returns_the_stand_ins_types_and_shapes(server: BiologicServer) -> None:
    proxy = BiologicDeviceProxy(server.address, timeout=2, populate_info=False)
    proxy.connect()
    with server.lock:
        local = server.instrument.device("local", populate_info=False)
        local.connect()
        local_info = local.channel_info(0)
    assert proxy.info is not None and local.info is not None
    assert (proxy.info.DeviceCode, proxy.plugged) == (20, local.plugged)
    info = proxy.channel_info(0)
    assert isinstance(info, ChannelInfo)
    assert bytes(info) == bytes(local_info)
    proxy.load_technique(0, "ocv", {"Rest_time_T": 100.0, "Record_every_dE": 0.0,
                                    "Record_every_dT": 10.0, "E_Range": 2})
    assert proxy.techniques is not None and proxy.techniques[0][0].technique == "ocv4.ecc"
    proxy.start_channel(0)
    time.sleep(0.035)
    coro = proxy.get_data(0)
    assert inspect.iscoroutine(coro)
    data, data_info, values = asyncio.run(coro)
    assert type(data) is ctypes.c_uint32 * BUFFER_WORDS
    assert isinstance(data_info, DataInfo) and isinstance(values, CurrentValues)
    assert (data_info.TechniqueID, data_info.NbCols) == (100, 3)
    assert values.TimeBase == pytest.approx(20e-6)
    times = decode(data, data_info, values.TimeBase).points().time_s
    assert times[:4] == pytest.approx([0, 10, 20, 30], abs=1e-4)
    assert isinstance(proxy.get_values(0), CurrentValues)
    proxy.stop_channel(0)
    proxy.disconnect()
    assert not proxy.is_connected()


def test_an_ec_error_in_the_server_is_an_ec_error_in_the_client(server: BiologicServer) -> None:
    proxy = BiologicDeviceProxy(server.address, timeout=2, populate_info=False)
    proxy.connect()
    with pytest.raises(EcError, match=r"^ERR_GEN_INVALIDPARAMETERS \(-4\): ocv4.ecc: missing"
                       r" parameter\(s\) \['Record_every_dE', 'Record_every_dT'\]$") as caught:
        proxy.load_technique(0, "ocv", {"Rest_time_T": 10.0})
    assert caught.value.value == -4
    with pytest.raises(EcError, match=r"no technique loaded") as caught:
        proxy.start_channel(0)
    assert caught.value.value == -6
    with pytest.raises(NotSimulatedError, match=r"^cv4.ecc is not simulated$"):
        proxy.load_technique(0, "cv", {})
    with pytest.raises(RuntimeError, match=r"^Device already connected\.$"):
        proxy.connect()
    proxy.disconnect()


def test_a_refused_call_reaches_the_driver_as_the_dlls_error(server: BiologicServer) -> None:
    vsp = driver(server)
    server.faults.refuse_next()
    with pytest.raises(DriverError, match=r"get_values\(0\) failed: ERR_GEN_FUNCTIONINPROGRESS"
                       r" \(-12\)") as caught:
        vsp.channel(0).read_voltage()
    assert isinstance(caught.value.__cause__, EcError) and caught.value.__cause__.value == -12
    assert vsp.channel(0).read_voltage() == pytest.approx(3.0, abs=1e-3)   # the link is fine
    server.faults.refuse_next("-13")
    with pytest.raises(DriverError, match=r"ERR_GEN_CHANNEL_RUNNING \(-13\)"):
        vsp.channel(0).read_voltage()
    vsp.close()


# -- a dead link is a TransportError, never a hang ----------------------------------------------

def test_a_killed_server_is_a_transport_error(server: BiologicServer) -> None:
    vsp = driver(server, timeout_s=2.0)
    ch = vsp.channel(0)
    ch.start(OpenCircuit(duration_s=3600.0, record_dt_s=10.0))
    server.stop()
    started = time.monotonic()
    with pytest.raises(TransportError, match=r"get_data failed: the link is down"):
        ch.poll()
    # the driver tried to connect again, in vain: the next call tries again, and says so
    with pytest.raises(TransportError, match=r"is not connected: the link was lost"):
        ch.poll()
    assert time.monotonic() - started < 1.0   # at once, not after the 2 s timeout
    with pytest.raises(TransportError, match=r"^cannot reach the simulated BioLogic at sim://"):
        BiologicDeviceProxy(server.address, timeout=1, populate_info=False).connect()


def test_a_silent_server_is_a_timeout(server: BiologicServer) -> None:
    vsp = driver(server, timeout_s=0.2)
    server.faults.delay_replies(3.0)
    started = time.monotonic()
    with pytest.raises(TransportError, match=r"no reply to get_values within 0.2 s"):
        vsp.channel(0).read_voltage()
    assert time.monotonic() - started < 1.5


def test_a_garbled_reply_is_a_transport_error(server: BiologicServer) -> None:
    vsp = driver(server)
    server.faults.garbage_next()
    with pytest.raises(TransportError, match=r"unreadable reply to get_values"):
        vsp.channel(0).read_voltage()


# -- what the server takes -------------------------------------------------------------------

def test_the_server_calls_only_allowed_methods_on_each_connections_own_device(
        server: BiologicServer) -> None:
    def ask(link: Any, line: bytes) -> dict[str, Any]:
        link.write(line + b"\n")
        link.flush()
        return json.loads(link.readline())

    connect = b'{"id": 3, "method": "connect", "args": []}'
    with socket.create_connection((server.host, server.port), timeout=2) as one, \
            socket.create_connection((server.host, server.port), timeout=2) as two:
        a, b = one.makefile("rwb"), two.makefile("rwb")
        assert ask(a, b"(lambda: 1)()")["error"]["type"] == "BadRequest"
        for method in ("__class__", "_connected", "load_techniques"):
            reply = ask(a, b'{"id": 2, "method": "%s", "args": []}' % method.encode())
            assert (reply["id"], reply["error"]["type"]) == (2, "BadRequest")
        assert ask(a, connect)["result"]["idn"] == 1
        assert ask(a, connect) == {"id": 3, "error": {"type": "RuntimeError",
                                                      "detail": "Device already connected."}}
        assert ask(b, connect)["result"]["idn"] == 2   # the other connection's own device


def test_an_address_that_is_not_sim_is_refused() -> None:
    with pytest.raises(ValueError, match=r"address is sim://HOST:PORT .* not '192.168.1.2'$"):
        BiologicDeviceProxy("192.168.1.2", populate_info=False)


def test_the_driver_connects_again_after_a_dropped_link(server: BiologicServer) -> None:
    vsp = driver(server, timeout_s=2.0)
    ch = vsp.channel(0)
    ch.start(OpenCircuit(duration_s=3600.0, record_dt_s=10.0))
    server.faults.drop_next()
    with pytest.raises(TransportError):
        ch.poll()                       # the failed call is reported...
    time.sleep(0.05)
    readout = ch.poll()                 # ...and the next one goes through a new link
    assert readout.state is ChannelState.RUNNING and len(readout.points) > 0
    vsp.close()
