"""A simulated multi-channel potentiostat with the VSP-300's limits."""

from __future__ import annotations

from drivers.errors import CapabilityError
from drivers.interfaces import ChannelCapabilities, Cycler, Potentiostat
from simulators.instruments.channel import SimChannel

#: VSP-300 without booster: +-10 V control, +-500 mA, EIS 10 uHz - 7 MHz, 6 channels.
VSP300_CHANNELS = 6
VSP300_CAPABILITIES = ChannelCapabilities(
    max_current_A=0.5, min_voltage_V=-10.0, max_voltage_V=10.0, eis_min_Hz=10e-6, eis_max_Hz=7e6,
    techniques=frozenset({"OpenCircuit", "Impedance", "ConstantCurrent", "ConstantVoltage",
                          "VoltageSweep"}))

#: A battery-cycler channel (5 V / 100 mA class): no impedance.
CYCLER_CHANNELS = 16
CYCLER_CAPABILITIES = ChannelCapabilities(
    max_current_A=0.1, min_voltage_V=-5.0, max_voltage_V=5.0,
    techniques=frozenset({"OpenCircuit", "ConstantCurrent", "ConstantVoltage"}))


class _SimMultiChannel:
    blocking_io = False

    def __init__(self, model: str, channels: list[SimChannel]) -> None:
        self.model = model
        self._channels = channels
        self._open = False

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        for ch in self._channels:
            ch.stop()
        self._open = False

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    def channels(self) -> list[SimChannel]:
        return list(self._channels)

    def channel(self, index: int) -> SimChannel:
        if not 0 <= index < len(self._channels):
            raise CapabilityError(f"{self.model} has channels 0..{len(self._channels) - 1},"
                                  f" not {index}")
        return self._channels[index]


class SimPotentiostat(_SimMultiChannel, Potentiostat):
    pass


class SimCycler(_SimMultiChannel, Cycler):
    pass
