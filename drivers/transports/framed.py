"""A TCP link whose messages end with a multi-byte frame terminator, not a line end.

Some instruments frame whole documents: the Neware BTS API ends every XML message with
``"\\n\\n#\\r\\n"`` and its replies hold CR LF line breaks of their own, so a line transport
would hand the driver a fragment. :class:`FramedTransport` reads up to the terminator with one
buffered ``recv`` per chunk (pyserial's ``read_until`` reads a byte per call, far too slow for
the 100 kB replies of a data download) and keeps the policy of :class:`LineTransport`:
reconnect and repeat the exchange after a timeout or a broken link, one lock, a traffic log.

Two additions, both for instruments with a login:

* ``handshake``: called with a raw exchange function on every (re)connect, before anything
  else is sent, so a reconnect after a dropped link logs in again before the retried command.
  What it raises is passed on: a refused login (a driver error) is not retried.
* ``redact``: applied to every sent message before it reaches the traffic log or an exception
  message, so a password never appears in either.

Addresses: ``tcp://host:port`` or ``socket://host:port``.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from typing import Unpack
from urllib.parse import urlsplit

from drivers.errors import TransportError
from drivers.transports._line import (
    LineOptions,
    LineTransport,
    LinkBroken,
    TransportTimeout,
    traffic_log,
)

#: A reply longer than this is not a reply but a runaway stream: the link is reset.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
_CHUNK = 65536

Exchange = Callable[[str], str]


class FramedTransport(LineTransport):
    """One TCP connection speaking ``terminator``-framed messages (see the module docstring).

    ``timeout_s`` bounds the connect and each whole reply (not each chunk), so a peer that
    trickles bytes cannot hold a driver longer than that either.
    """

    def __init__(self, address: str, *, terminator: str,
                 handshake: Callable[[Exchange], None] | None = None,
                 redact: Callable[[str], str] | None = None,
                 max_message_bytes: int = MAX_MESSAGE_BYTES,
                 **options: Unpack[LineOptions]) -> None:
        if not terminator:
            raise ValueError("terminator must not be empty: it is what ends a message")
        options.setdefault("encoding", "utf-8")
        super().__init__(address, write_termination=terminator, read_termination=terminator,
                         **options)
        self.terminator = terminator
        self.handshake, self.redact = handshake, redact
        self.max_message_bytes = max_message_bytes
        self.host, self.port = _host_port(address)
        self._sock: socket.socket | None = None
        self._buffer = bytearray()

    # -- LineTransport's library layer ------------------------------------------------------
    def _connect(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except socket.gaierror as exc:
            raise TransportError(f"{self.address}: unknown host {self.host!r} ({exc})") from None
        except TimeoutError:
            raise TransportTimeout(f"{self.address}: no answer to the connection request"
                                   f" within {self.timeout_s:g} s") from None
        except OSError as exc:
            raise LinkBroken(f"{self.address}: cannot connect: {exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._buffer = sock, bytearray()
        if self.handshake is None:
            return
        try:
            self.handshake(self._raw_exchange)
        except BaseException:
            self._disconnect()
            raise

    def _disconnect(self) -> None:
        sock, self._sock = self._sock, None
        self._buffer = bytearray()
        if sock is None:
            return
        with contextlib.suppress(OSError):   # it may be dead already
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def _send(self, data: bytes) -> None:
        sock = self._live()
        self._discard_stale(sock)
        sock.settimeout(self.timeout_s)
        try:
            sock.sendall(data)
        except TimeoutError:
            raise TransportTimeout(f"{self.address}: sending timed out after"
                                   f" {self.timeout_s:g} s") from None
        except OSError as exc:
            raise LinkBroken(f"{self.address}: sending failed: {exc}") from None

    def _receive(self) -> bytes:
        """Bytes up to and including the terminator; what arrived before the deadline or the
        peer's close otherwise (the caller tells a cut-short reply from no reply)."""
        sock = self._live()
        end = self.terminator.encode(self.encoding)
        deadline = time.monotonic() + self.timeout_s
        while (cut := self._buffer.find(end)) < 0:
            if len(self._buffer) > self.max_message_bytes:
                raise LinkBroken(f"{self.address}: a reply grew past"
                                 f" {self.max_message_bytes} bytes without its terminator")
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                chunk = sock.recv(_CHUNK)
            except TimeoutError:
                break
            except OSError as exc:
                raise LinkBroken(f"{self.address}: receiving failed: {exc}") from None
            if not chunk:
                if not self._buffer:
                    raise LinkBroken(f"{self.address}: the instrument closed the connection")
                break
            self._buffer += chunk
        if cut < 0:
            data, self._buffer = bytes(self._buffer), bytearray()
            return data
        data = bytes(self._buffer[:cut + len(end)])
        del self._buffer[:cut + len(end)]
        return data

    # -- login and redaction ------------------------------------------------------------------
    def _raw_exchange(self, message: str) -> str:
        """One exchange on the connection being opened (no reconnect: the handshake is part
        of connecting)."""
        self._send_text(message)
        return self._read_once(message)

    def _shown(self, message: str) -> str:
        return self.redact(message) if self.redact is not None else message

    def _live(self) -> socket.socket:
        if self._sock is None:
            raise LinkBroken(f"{self.address}: not connected")
        return self._sock

    def _discard_stale(self, sock: socket.socket) -> None:
        """Drop bytes that arrived unasked (a reply late beyond its timeout): they answer
        nothing we are about to send."""
        stale = len(self._buffer)
        self._buffer = bytearray()
        sock.setblocking(False)
        try:
            while chunk := sock.recv(_CHUNK):
                stale += len(chunk)
            closed = True   # recv returned b"": the peer has closed
        except (BlockingIOError, InterruptedError):
            closed = False  # nothing more waiting: the drain is done
        except OSError as exc:
            raise LinkBroken(f"{self.address}: {exc}") from None
        finally:
            sock.setblocking(True)
        if closed:
            raise LinkBroken(f"{self.address}: the instrument closed the connection")
        if stale:
            traffic_log.debug("%s: %d stale bytes discarded before sending", self.address,
                              stale)


def _host_port(address: str) -> tuple[str, int]:
    parts = urlsplit(address)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("tcp", "socket") or not parts.hostname or port is None:
        raise TransportError(f"address {address!r} is not tcp://host:port"
                             " (or socket://host:port)")
    return parts.hostname, port
