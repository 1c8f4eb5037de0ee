"""A serial link through pyserial's ``serial_for_url``: device paths and URLs alike.

``/dev/ttyUSB0`` or ``COM3`` open a serial port; ``socket://host:port`` a raw TCP socket (serial
device servers, the wire simulators); ``loop://`` echoes what is written (pyserial's loopback);
``rfc2217://`` a remote port. The same code serves all of them, so the wire simulators test the
exact path a real serial instrument takes.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Unpack

import serial
from serial.urlhandler import protocol_socket

from drivers.errors import TransportError
from drivers.transports._line import LineOptions, LineTransport, LinkBroken, TransportTimeout


class SerialTransport(LineTransport):
    """One serial port or URL; 8N1 at ``baudrate`` unless told otherwise.

    ``timeout_s`` bounds every read and write (``write_timeout``), so a port blocked by flow
    control cannot hang a driver either.
    """

    def __init__(self, address: str, *, baudrate: int = 9600, bytesize: int = 8,
                 parity: str = "N", stopbits: float = 1, rtscts: bool = False,
                 **options: Unpack[LineOptions]) -> None:
        super().__init__(address, **options)
        self.baudrate, self.bytesize, self.parity = baudrate, bytesize, parity
        self.stopbits, self.rtscts = stopbits, rtscts
        self._port: serial.SerialBase | None = None

    def _connect(self) -> None:
        try:
            port = serial.serial_for_url(
                self.address, do_not_open=True, baudrate=self.baudrate, bytesize=self.bytesize,
                parity=self.parity, stopbits=self.stopbits, rtscts=self.rtscts,
                timeout=self.timeout_s, write_timeout=self.timeout_s)
        except ValueError as exc:   # unknown URL scheme, impossible settings
            raise TransportError(f"{self.address}: not a usable serial port ({exc})") from None
        try:
            port.open()
            port.reset_input_buffer()   # bytes from before this connection answer nothing
        except ValueError as exc:
            raise TransportError(f"{self.address}: not a usable serial port ({exc})") from None
        except (serial.SerialException, OSError) as exc:
            raise LinkBroken(f"{self.address}: cannot open: {exc}") from None
        self._port = port

    def _disconnect(self) -> None:
        port, self._port = self._port, None
        if port is None:
            return
        sock = getattr(port, "_socket", None)
        if isinstance(port, protocol_socket.Serial) and isinstance(sock, socket.socket):
            # pyserial's socket:// close() sleeps 0.3 s "to give the server time"; reconnects
            # here already back off (tenacity), so close the socket without that pause
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            port._socket = None
            port.is_open = False
            return
        with contextlib.suppress(serial.SerialException, OSError):  # it may be dead
            port.close()

    def _send(self, data: bytes) -> None:
        assert self._port is not None
        try:
            self._port.write(data)
        except serial.SerialTimeoutException:
            raise TransportTimeout(f"{self.address}: write timed out after"
                                   f" {self.timeout_s:g} s") from None
        except (serial.SerialException, OSError) as exc:
            raise LinkBroken(f"{self.address}: {exc}") from None

    def _receive(self) -> bytes:
        assert self._port is not None
        try:
            return bytes(self._port.read_until(self.read_termination.encode(self.encoding)))
        except (serial.SerialException, OSError) as exc:
            raise LinkBroken(f"{self.address}: {exc}") from None
