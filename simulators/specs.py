"""The in-process simulators' specs (``sim.potentiostat``, ``sim.cycler``, ``sim.chamber``) and
their ratings, declared apart from their physics.

The instrument registry reads every spec to check a station, hardware or not; declaring the
simulators' specs here, where nothing imports a cell model, a simulated channel or the lab,
keeps a hardware run from loading them. A builder is handed the dry run's lab
(``simulators.lab.SimLab``, in :class:`~drivers.spec.Bench`) and asks it for the instrument.

Their ratings are the real instruments', from the drivers' specs: a simulated potentiostat
channel is a VSP-300's (+-10 V, +-500 mA without booster, EIS 10 uHz - 7 MHz), a simulated
cycler channel a Neware BTS channel's as a station would rate a 5 V / 100 mA unit with bipolar
channels (a station may rate it otherwise with the same options). The simulated cycler holds no
voltage relative to the open-circuit voltage: those holds are small polarisations (10 mV for a
transference number) that a cycler sets no better than to a few mV, so dry runs put them on a
potentiostat.

The simulated cycler also runs what cycler firmware (Neware BTS, Arbin, Maccor) offers beyond a
BTS step file cellseq writes today: constant power, constant resistance, current and power
profiles, and the end conditions of :class:`~drivers.techniques.EndConditions`. No real driver
of cellseq offers them yet, so pre-flight refuses them on real hardware, naming the step.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from drivers.biologic.vsp300 import rated_capabilities as vsp300_capabilities
from drivers.espec import MAX_C, MIN_C
from drivers.interfaces import ChannelCapabilities
from drivers.neware_bts import rated_capabilities as bts_capabilities
from drivers.spec import Bench, DryRun, InstrumentSpec, Options, Setup
from drivers.techniques import END_CONDITIONS

if TYPE_CHECKING:
    from simulators.instruments.chamber import SimChamber
    from simulators.instruments.potentiostat import SimCycler, SimPotentiostat

VSP300_CHANNELS = 6
VSP300_CAPABILITIES = vsp300_capabilities()

CYCLER_CHANNELS = 16
CYCLER_MAX_CURRENT_A, CYCLER_MIN_V, CYCLER_MAX_V = 0.1, -5.0, 5.0
_BTS = bts_capabilities(CYCLER_MAX_CURRENT_A, CYCLER_MIN_V, CYCLER_MAX_V)
CYCLER_CAPABILITIES = replace(
    _BTS, holds_vs_ocv=False,
    techniques=_BTS.techniques | {"ConstantPower", "ConstantResistance", "Profile"},
    ends_on=frozenset(END_CONDITIONS))

#: Resolution of a simulated channel's firmware checks: about one second, coarser for very
#: long steps (the plan bounds a step's points with it too).
MAX_GRID_POINTS = 200_000


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


class SimChamberOptions(Options):
    """The setpoint range (an ESPEC's by default)."""

    min_C: float = Field(default=MIN_C, ge=-273.15, le=1000)
    max_C: float = Field(default=MAX_C, ge=-273.15, le=1000)

    @model_validator(mode="after")
    def _ordered(self) -> SimChamberOptions:
        if self.min_C >= self.max_C:
            raise ValueError(f"min_C {self.min_C:g} must be below max_C {self.max_C:g}")
        return self


def cycler_capabilities(options: SimCyclerOptions) -> ChannelCapabilities:
    return replace(CYCLER_CAPABILITIES, max_current_A=options.max_current_A,
                   min_voltage_V=options.min_voltage_V, max_voltage_V=options.max_voltage_V)


def _build_potentiostat(setup: Setup, bench: Bench) -> SimPotentiostat:
    return bench.lab.add_potentiostat(setup.name, setup.channels, VSP300_CAPABILITIES)


def _build_cycler(setup: Setup, bench: Bench) -> SimCycler:
    return bench.lab.add_cycler(setup.name, setup.channels, cycler_capabilities(setup.options))


def _build_chamber(setup: Setup, bench: Bench) -> SimChamber:
    return bench.lab.add_chamber(setup.name, setup.options.min_C, setup.options.max_C)


INSTRUMENTS = (
    InstrumentSpec(name="sim.potentiostat", kind="potentiostat", build=_build_potentiostat,
                   capabilities=lambda _: VSP300_CAPABILITIES, simulated=True,
                   dry_run=DryRun("vsp300", VSP300_CHANNELS),
                   description="in-process simulated VSP-300"),
    InstrumentSpec(name="sim.cycler", kind="cycler", build=_build_cycler,
                   options=SimCyclerOptions, capabilities=cycler_capabilities, simulated=True,
                   dry_run=DryRun("cycler", CYCLER_CHANNELS),
                   description="in-process simulated cycler"),
    InstrumentSpec(
        name="sim.chamber", kind="chamber", channels="none", build=_build_chamber,
        options=SimChamberOptions, chamber_range_C=lambda o: (o.min_C, o.max_C), simulated=True,
        dry_run=DryRun("chamber"), description="in-process simulated chamber"),
)
