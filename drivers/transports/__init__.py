"""Links to instruments (VISA, serial, TCP), kept apart from what the instruments mean.

A driver gets a :class:`Transport` and speaks its instrument's language over it; it never opens a
socket or a VISA session itself. Tests swap in :class:`ExpectedExchange`, which asserts the exact
ordered command/reply exchange.
"""

from drivers.transports.base import ExpectedExchange, Transport

__all__ = ["ExpectedExchange", "Transport"]
