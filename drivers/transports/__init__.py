"""Links to instruments (VISA, serial, TCP), kept apart from what the instruments mean.

A driver gets a :class:`Transport` and speaks its instrument's language over it; it never opens a
socket or a VISA session itself. :func:`open_transport` builds the right one from an address
(``drivers.transports.visa.VisaTransport``, ``drivers.transports.serial.SerialTransport``, imported
only when used). Tests swap in :class:`ExpectedExchange`, which asserts the exact ordered
command/reply exchange, or reach the wire simulators (``simulators.wire``) over the real ones.
"""

from drivers.transports._factory import open_transport
from drivers.transports._line import LineOptions, LineTransport, LinkBroken, TransportTimeout
from drivers.transports.base import ExpectedExchange, Transport

__all__ = ["ExpectedExchange", "LineOptions", "LineTransport", "LinkBroken", "Transport",
           "TransportTimeout", "open_transport"]
