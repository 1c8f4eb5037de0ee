"""Simulated instruments behind the driver interfaces, for dry runs."""

from simulators.instruments.chamber import SimChamber
from simulators.instruments.channel import SimChannel
from simulators.instruments.potentiostat import (
    CYCLER_CAPABILITIES,
    CYCLER_CHANNELS,
    VSP300_CAPABILITIES,
    VSP300_CHANNELS,
    SimCycler,
    SimPotentiostat,
)

__all__ = ["CYCLER_CAPABILITIES", "CYCLER_CHANNELS", "VSP300_CAPABILITIES", "VSP300_CHANNELS",
           "SimChamber", "SimChannel", "SimCycler", "SimPotentiostat"]
