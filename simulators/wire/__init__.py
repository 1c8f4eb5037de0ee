"""Wire-protocol simulators: instruments on a local TCP port, for the real drivers and transports.

Each server speaks its instrument's protocol byte for byte, backed by the same physics as the
in-process simulators, with faults on demand (:class:`Faults`) and an accelerated time base.
"""

from simulators.wire.espec import EspecServer
from simulators.wire.keithley2450 import Keithley2450Server
from simulators.wire.server import Faults, LineServer, ServerClock

__all__ = ["EspecServer", "Faults", "Keithley2450Server", "LineServer", "ServerClock"]
