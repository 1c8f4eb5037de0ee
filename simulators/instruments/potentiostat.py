"""Simulated multi-channel potentiostats and cyclers, and their specs (``sim.potentiostat``,
``sim.cycler``): what ``--sim`` places cells on.

Their ratings are the real instruments', from the drivers' specs: a simulated potentiostat
channel is a VSP-300's (+-10 V, +-500 mA without booster, EIS 10 uHz - 7 MHz), a simulated
cycler channel a Neware BTS channel's as a station would rate a 5 V / 100 mA unit with bipolar
channels (a station may rate it otherwise with the same options). The simulated cycler holds no
voltage relative to the open-circuit voltage: those holds are small polarisations (10 mV for a
transference number) that a cycler sets no better than to a few mV, so dry runs put them on a
potentiostat.
"""

from __future__ import annotations

from dataclasses import replace

from pydantic import Field, model_validator

from drivers.biologic.vsp300 import rated_capabilities as vsp300_capabilities
from drivers.errors import CapabilityError
from drivers.interfaces import ChannelCapabilities, Cycler, Potentiostat
from drivers.neware_bts import rated_capabilities as bts_capabilities
from drivers.spec import Bench, DryRun, InstrumentSpec, Options, Setup
from simulators.instruments.channel import SimChannel

VSP300_CHANNELS = 6
VSP300_CAPABILITIES = vsp300_capabilities()

CYCLER_CHANNELS = 16
CYCLER_MAX_CURRENT_A, CYCLER_MIN_V, CYCLER_MAX_V = 0.1, -5.0, 5.0
CYCLER_CAPABILITIES = replace(
    bts_capabilities(CYCLER_MAX_CURRENT_A, CYCLER_MIN_V, CYCLER_MAX_V), holds_vs_ocv=False)


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


class SimCyclerOptions(Options):
    """A simulated cycler's ratings, as a BTS's are given (``neware.bts`` options)."""

    max_current_A: float = Field(default=CYCLER_MAX_CURRENT_A, gt=0, le=1000)
    min_voltage_V: float = Field(default=CYCLER_MIN_V, ge=-100, le=100)
    max_voltage_V: float = Field(default=CYCLER_MAX_V, ge=-100, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> SimCyclerOptions:
        if self.min_voltage_V >= self.max_voltage_V:
            raise ValueError(f"min_voltage_V {self.min_voltage_V:g} must be below max_voltage_V"
                             f" {self.max_voltage_V:g}")
        return self


def _cycler_capabilities(options: SimCyclerOptions) -> ChannelCapabilities:
    return replace(CYCLER_CAPABILITIES, max_current_A=options.max_current_A,
                   min_voltage_V=options.min_voltage_V, max_voltage_V=options.max_voltage_V)


def _build_potentiostat(setup: Setup, bench: Bench) -> SimPotentiostat:
    return bench.lab.add_potentiostat(setup.name, setup.channels, VSP300_CAPABILITIES)


def _build_cycler(setup: Setup, bench: Bench) -> SimCycler:
    return bench.lab.add_cycler(setup.name, setup.channels, _cycler_capabilities(setup.options))


INSTRUMENTS = (
    InstrumentSpec(name="sim.potentiostat", kind="potentiostat", build=_build_potentiostat,
                   capabilities=lambda _: VSP300_CAPABILITIES, simulated=True,
                   dry_run=DryRun("vsp300", VSP300_CHANNELS),
                   description="in-process simulated VSP-300"),
    InstrumentSpec(name="sim.cycler", kind="cycler", build=_build_cycler,
                   options=SimCyclerOptions, capabilities=_cycler_capabilities, simulated=True,
                   dry_run=DryRun("cycler", CYCLER_CHANNELS),
                   description="in-process simulated cycler"),
)
