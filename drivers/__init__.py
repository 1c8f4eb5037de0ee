"""Hardware abstraction layer: instrument interfaces, techniques, transports and drivers."""

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
from drivers.techniques import ConstantCurrent, ConstantVoltage, Impedance, OpenCircuit, Technique

__all__ = ["CapabilityError", "CellseqError", "Chamber", "ChamberMode", "ChamberReading",
           "Channel", "ChannelCapabilities", "ChannelState", "Clock", "ConstantCurrent",
           "ConstantVoltage", "Cycler", "DriverError", "Impedance", "MultiChannelInstrument",
           "OpenCircuit", "Points", "Potentiostat", "Readout", "Technique", "TransportError",
           "TrioClock"]
