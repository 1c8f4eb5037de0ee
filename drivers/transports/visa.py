"""A VISA link through pyvisa, by default with the pure-Python pyvisa-py backend ("@py").

Resource strings such as ``TCPIP0::192.168.1.20::5025::SOCKET`` (raw SCPI socket),
``TCPIP0::host::INSTR`` (VXI-11) or ``USB0::0x05E6::0x2450::SERIAL::INSTR``.

pyvisa-py notes that shape this module: a SOCKET resource connects without reporting a refused
connection (the first write fails instead), and a peer that closes the socket shows up as a read
timeout, not as an error. Both end in the reconnect-and-retry policy of :class:`LineTransport`.
The ResourceManager is shared per backend by pyvisa itself, so it is never closed here.
"""

from __future__ import annotations

import contextlib
from typing import Unpack

import pyvisa
from pyvisa import constants

from drivers.errors import TransportError
from drivers.transports._line import LineOptions, LineTransport, LinkBroken, TransportTimeout

#: pyvisa exceptions that say the address itself is wrong: retrying cannot help.
_NOT_FOUND = {constants.StatusCode.error_resource_not_found,
              constants.StatusCode.error_invalid_resource_name,
              constants.StatusCode.error_library_not_found}


class VisaTransport(LineTransport):
    """One VISA session; ``open_timeout_s`` bounds the connect, ``timeout_s`` every read."""

    def __init__(self, address: str, *, backend: str = "@py", open_timeout_s: float = 2.0,
                 **options: Unpack[LineOptions]) -> None:
        super().__init__(address, **options)
        self.backend, self.open_timeout_s = backend, open_timeout_s
        self._resource: pyvisa.resources.MessageBasedResource | None = None

    def _connect(self) -> None:
        try:
            rm = pyvisa.ResourceManager(self.backend)
            resource = rm.open_resource(self.address,
                                        open_timeout=round(self.open_timeout_s * 1000))
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code in _NOT_FOUND:
                raise TransportError(f"{self.address}: no such VISA resource ({exc})") from None
            raise LinkBroken(f"{self.address}: cannot open: {exc}") from None
        except (ValueError, pyvisa.errors.Error) as exc:
            raise TransportError(f"{self.address}: not a usable VISA resource ({exc})") from None
        except Exception as exc:   # pyvisa-py raises a bare Exception when it cannot connect
            raise LinkBroken(f"{self.address}: cannot open: {exc}") from None
        if not isinstance(resource, pyvisa.resources.MessageBasedResource):
            resource.close()
            raise TransportError(f"{self.address}: not a message-based VISA resource")
        resource.timeout = round(self.timeout_s * 1000)
        # the terminators are ours (LineTransport); the last read character ends a VISA read
        resource.read_termination = self.read_termination[-1]
        resource.write_termination = ""
        self._resource = resource

    def _disconnect(self) -> None:
        resource, self._resource = self._resource, None
        if resource is not None:
            with contextlib.suppress(pyvisa.errors.Error, OSError):  # it may be dead
                resource.close()

    def _send(self, data: bytes) -> None:
        assert self._resource is not None
        try:
            self._resource.write_raw(data)
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == constants.StatusCode.error_timeout:
                raise TransportTimeout(f"{self.address}: write timed out ({exc})") from None
            raise LinkBroken(f"{self.address}: write failed: {exc}") from None
        except (pyvisa.errors.Error, OSError) as exc:
            raise LinkBroken(f"{self.address}: write failed: {exc}") from None

    def _receive(self) -> bytes:
        assert self._resource is not None
        try:
            return bytes(self._resource.read_raw())
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == constants.StatusCode.error_timeout:
                return b""    # LineTransport reports the timeout with the command
            raise LinkBroken(f"{self.address}: read failed: {exc}") from None
        except (pyvisa.errors.Error, OSError) as exc:
            raise LinkBroken(f"{self.address}: read failed: {exc}") from None
