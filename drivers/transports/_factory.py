"""Choosing a transport from the form of an address, as a station file gives it."""

from __future__ import annotations

import re
from typing import Any

from drivers.errors import TransportError
from drivers.transports.base import Transport

#: VISA resource strings: TCPIP0::host::5025::SOCKET, USB0::...::INSTR, GPIB0::5::INSTR, ASRL...
_VISA = re.compile(r"^(TCPIP|USB|GPIB|ASRL|VXI|PXI|VICP)\d*::", re.IGNORECASE)
#: pyserial URLs, device paths and Windows COM ports
_SERIAL = re.compile(r"^([a-z0-9]+://|/dev/|COM\d+$|\\\\\.\\COM\d+$)", re.IGNORECASE)


def open_transport(address: str, **options: Any) -> Transport:
    """The transport for ``address``, built but not yet connected (the driver's ``open()``
    connects, so building a station does no I/O).

    VISA resource strings go to :class:`~drivers.transports.visa.VisaTransport`;
    ``socket://``, ``loop://`` and other pyserial URLs, ``/dev/...`` and ``COM3`` to
    :class:`~drivers.transports.serial.SerialTransport`. ``options`` are passed on (``timeout_s``,
    terminators, ``baudrate``, ...). The library of the other kind is never imported.
    """
    if _VISA.match(address):
        from drivers.transports.visa import VisaTransport
        return VisaTransport(address, **options)
    if _SERIAL.match(address):
        from drivers.transports.serial import SerialTransport
        return SerialTransport(address, **options)
    raise TransportError(f"address {address!r} is neither a VISA resource string"
                         " (TCPIP0::host::5025::SOCKET, USB0::...::INSTR) nor a serial port or"
                         " URL (/dev/ttyUSB0, COM3, socket://host:port)")
