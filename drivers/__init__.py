"""Hardware abstraction layer: instrument interfaces, techniques, transports and drivers.

The names below are loaded when first used, so importing one module of the package (its
errors, a driver's spec) does not import trio and numpy with the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "Clock": "drivers.clock", "TrioClock": "drivers.clock",
    "CapabilityError": "drivers.errors", "CellseqError": "drivers.errors",
    "DriverError": "drivers.errors", "TransportError": "drivers.errors",
    "Chamber": "drivers.interfaces", "ChamberMode": "drivers.interfaces",
    "ChamberReading": "drivers.interfaces", "Channel": "drivers.interfaces",
    "ChannelCapabilities": "drivers.interfaces", "Cycler": "drivers.interfaces",
    "MultiChannelInstrument": "drivers.interfaces", "Potentiostat": "drivers.interfaces",
    "ChannelState": "drivers.points", "Points": "drivers.points", "Readout": "drivers.points",
    "ConstantCurrent": "drivers.techniques", "ConstantVoltage": "drivers.techniques",
    "Impedance": "drivers.techniques", "OpenCircuit": "drivers.techniques",
    "Technique": "drivers.techniques",
}

if TYPE_CHECKING:
    from drivers.clock import Clock, TrioClock
    from drivers.errors import CapabilityError, CellseqError, DriverError, TransportError
    from drivers.interfaces import (
        Chamber,
        ChamberMode,
        ChamberReading,
        Channel,
        ChannelCapabilities,
        Cycler,
        MultiChannelInstrument,
        Potentiostat,
    )
    from drivers.points import ChannelState, Points, Readout
    from drivers.techniques import (
        ConstantCurrent,
        ConstantVoltage,
        Impedance,
        OpenCircuit,
        Technique,
    )


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'drivers' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


__all__ = ["CapabilityError", "CellseqError", "Chamber", "ChamberMode", "ChamberReading",
           "Channel", "ChannelCapabilities", "ChannelState", "Clock", "ConstantCurrent",
           "ConstantVoltage", "Cycler", "DriverError", "Impedance", "MultiChannelInstrument",
           "OpenCircuit", "Points", "Potentiostat", "Readout", "Technique", "TransportError",
           "TrioClock"]
