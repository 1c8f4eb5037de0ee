"""The real transports (pyserial ``socket://``, pyvisa-py SOCKET) against a local line server."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from drivers.errors import TransportError
from drivers.transports import LineTransport, LinkBroken, TransportTimeout, open_transport
from drivers.transports.serial import SerialTransport
from drivers.transports.visa import VisaTransport
from simulators.wire import LineServer

FAST: dict[str, Any] = {"timeout_s": 0.2, "backoff_s": 0.01}


class EchoServer(LineServer):
    """Answers ``echo:<command>``; ``count?`` says how many commands it has answered, so a
    test can tell that its state outlived a connection."""

    name = "echo"

    def __init__(self) -> None:
        super().__init__(speed=10.0)
        self.answered = 0

    def respond(self, command: str, now_s: float) -> str | None:
        if command == "silent":
            return None
        self.answered += 1
        if command == "count?":
            return str(self.answered)
        return f"echo:{command}"

    def refuse(self, command: str, error: str | None) -> str | None:
        return f"refused:{error}"


@pytest.fixture
def server() -> Iterator[EchoServer]:
    with EchoServer() as srv:
        yield srv


def _serial(srv: LineServer, **options: Any) -> LineTransport:
    return SerialTransport(srv.socket_url, **(FAST | options))


def _visa(srv: LineServer, **options: Any) -> LineTransport:
    return VisaTransport(srv.visa_address, **(FAST | options))


KINDS = [pytest.param(_serial, id="serial"), pytest.param(_visa, id="visa")]
Make = Callable[..., LineTransport]


@pytest.mark.parametrize("make", KINDS)
def test_query_and_write_round_trip(server: EchoServer, make: Make) -> None:
    with make(server) as link:
        assert link.query("*IDN?") == "echo:*IDN?"
        link.write("silent")           # no reply expected, none read
        assert link.query("a b, c") == "echo:a b, c"


@pytest.mark.parametrize("make", KINDS)
def test_traffic_is_logged_at_debug_with_repr(server: EchoServer, make: Make,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cellseq.traffic")
    with make(server) as link:
        link.query("TEMP?")
    lines = [r.getMessage() for r in caplog.records if r.name == "cellseq.traffic"]
    assert lines == [f"{link.address} >> 'TEMP?'", f"{link.address} << 'echo:TEMP?'"]
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "cellseq.traffic")


@pytest.mark.parametrize("make", KINDS)
def test_a_silent_instrument_times_out_quickly(server: EchoServer, make: Make) -> None:
    server.faults.delay_replies(1.0)
    with make(server, attempts=1) as link:
        began = time.monotonic()
        with pytest.raises(TransportTimeout, match=r"no reply to 'x' within 0\.2 s$") as err:
            link.query("x")
        assert time.monotonic() - began < 0.6
        assert link.address in str(err.value)


@pytest.mark.parametrize("make", KINDS)
def test_a_late_reply_never_answers_the_next_command(server: EchoServer, make: Make) -> None:
    server.faults.delay_replies(0.3)
    with make(server, attempts=1) as link:
        with pytest.raises(TransportTimeout):
            link.query("first")
        server.faults.delay_replies(0)
        time.sleep(0.2)                        # "echo:first" arrives on the old connection
        assert link.query("second") == "echo:second"


@pytest.mark.parametrize("make", KINDS)
def test_reconnects_after_the_server_drops_the_connection(server: EchoServer,
                                                          make: Make) -> None:
    with make(server, attempts=3) as link:
        assert link.query("one") == "echo:one"
        server.faults.drop_next()
        assert link.query("two") == "echo:two"   # retried on a new connection
        assert link.query("count?") == "3"       # the server's state outlived the connection


@pytest.mark.parametrize("make", KINDS)
def test_retries_end_in_a_transport_error_naming_the_address(make: Make) -> None:
    with EchoServer() as srv:
        link = make(srv, attempts=2)
    began = time.monotonic()
    with pytest.raises(TransportError, match=rf"127\.0\.0\.1.*{srv.port}"):
        link.open()
        link.query("anyone?")
    assert time.monotonic() - began < 1.5
    link.close()


@pytest.mark.parametrize("make", KINDS)
def test_garbage_bytes_reach_the_driver_as_text_it_cannot_read(server: EchoServer,
                                                               make: Make) -> None:
    server.faults.garbage_next()
    with make(server) as link:
        reply = link.query("x")
        assert "\ufffd" in reply and "echo" not in reply
        assert link.query("y") == "echo:y"


@pytest.mark.parametrize("make", KINDS)
def test_a_reply_cut_short_is_never_returned(make: Make) -> None:
    with _OneShotServer(b"3.6123") as port:
        address = {"serial": f"socket://127.0.0.1:{port}",
                   "visa": f"TCPIP0::127.0.0.1::{port}::SOCKET"}
        kind = "serial" if make is _serial else "visa"
        link = open_transport(address[kind], attempts=1, **FAST)
        link.open()
        # serial sees the close (LinkBroken); pyvisa-py drops the partial reply and times out
        with pytest.raises((LinkBroken, TransportTimeout)):
            link.query("READ?")
        link.close()


def test_refusal_fault_lets_the_protocol_answer(server: EchoServer) -> None:
    server.faults.refuse_next("busy")
    with _serial(server) as link:
        assert link.query("x") == "refused:busy"
        assert link.query("x") == "echo:x"


def test_one_lock_per_connection_keeps_replies_with_their_commands(server: EchoServer) -> None:
    errors: list[str] = []
    with _serial(server, timeout_s=2.0) as link:
        def worker(name: str) -> None:
            for k in range(30):
                reply = link.query(f"{name}{k}")
                if reply != f"echo:{name}{k}":
                    errors.append(reply)
        threads = [threading.Thread(target=worker, args=(n,)) for n in "abc"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_using_a_link_before_open_says_so() -> None:
    link = SerialTransport("loop://")
    with pytest.raises(TransportError, match=r"^loop://: the link is not open; call open"):
        link.query("x")


def test_loop_url_echoes() -> None:
    with SerialTransport("loop://", timeout_s=0.1) as link:
        assert link.query("hello") == "hello"


def test_server_keeps_state_across_clients_and_its_own_time(server: EchoServer) -> None:
    with _serial(server) as first:
        first.query("a")
    with _visa(server) as second:
        assert second.query("count?") == "2"
    t1 = server.now_s()
    time.sleep(0.05)
    assert 0.5 <= server.now_s() - t1 < 2.0                   # speed 10
    assert server.clock().now() == pytest.approx(server.now_s(), abs=0.05)


@pytest.mark.parametrize(("address", "kind"), [
    ("TCPIP0::192.168.1.20::5025::SOCKET", VisaTransport),
    ("USB0::0x05E6::0x2450::04000000::INSTR", VisaTransport),
    ("gpib0::5::INSTR", VisaTransport),
    ("socket://127.0.0.1:10001", SerialTransport),
    ("loop://", SerialTransport),
    ("/dev/ttyUSB0", SerialTransport),
    ("COM3", SerialTransport),
])
def test_open_transport_chooses_by_address_without_io(address: str, kind: type) -> None:
    link = open_transport(address, timeout_s=1.5)
    assert isinstance(link, kind) and isinstance(link, LineTransport)
    assert link.timeout_s == 1.5 and not link.is_open


def test_open_transport_refuses_an_unknown_address() -> None:
    with pytest.raises(TransportError, match=r"^address 'espec-1' is neither"):
        open_transport("espec-1")


def test_a_timeout_must_be_set() -> None:
    with pytest.raises(ValueError, match="every read has a timeout"):
        SerialTransport("loop://", timeout_s=0)


class _OneShotServer:
    """Accepts one connection, reads a line, answers ``reply`` without a terminator, closes."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        conn, _ = self._sock.accept()
        with conn:
            conn.recv(100)
            conn.sendall(self.reply)
            time.sleep(0.05)

    def __enter__(self) -> int:
        self._thread.start()
        return int(self._sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._thread.join(2)
        self._sock.close()
