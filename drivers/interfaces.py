"""The hardware abstraction layer: what the sequencer may ask of an instrument.

Instruments run a step on their own where the real ones do (a VSP-300 runs a technique with its
limits in firmware, a cycler runs its schedule): the shape is start -> poll -> stop. Where an
instrument has no autonomy (an SMU) its driver ends steps itself behind the same interface.

Methods are synchronous: real drivers block on I/O and the sequencer calls them from a worker
thread (``blocking_io``); in-process simulators answer at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from drivers.errors import CapabilityError
from drivers.ranges import at_most, within
from drivers.techniques import (
    ConstantCurrent,
    ConstantPower,
    ConstantResistance,
    ConstantVoltage,
    Impedance,
    OpenCircuit,
    Profile,
    Technique,
    VoltageSweep,
    commanded,
)

if TYPE_CHECKING:   # numpy's arrays: not for a plan, which checks capabilities only
    from drivers.points import Readout

#: What a cell's voltage may be, lowest and highest, as far as known (None: unknown).
VoltageWindow = tuple[float | None, float | None]


@dataclass(frozen=True)
class ChannelCapabilities:
    """Limits of one channel: from a driver's spec and the station's options before a run
    (pre-flight), from what the instrument reports at connect where it can say
    (``channel_info``). Every limit is inclusive (:func:`drivers.ranges.within`)."""

    max_current_A: float
    min_voltage_V: float
    max_voltage_V: float
    eis_min_Hz: float | None = None   # None: the channel cannot do impedance
    eis_max_Hz: float | None = None
    techniques: frozenset[str] = field(default_factory=frozenset)
    #: can hold a voltage relative to the open-circuit voltage at the start (a potentiostat
    #: does it in firmware; a cycler's driver may read the voltage first and hold that plus
    #: the offset, as precisely as the cycler sets a voltage)
    holds_vs_ocv: bool = True
    #: the end conditions (:class:`~drivers.techniques.EndConditions`, by their end reason)
    #: the channel ends a step on by itself; a step asking for another is refused
    ends_on: frozenset[str] = field(default_factory=frozenset)

    def offers(self, technique: Technique) -> bool:
        """The channel has this kind of technique at all (whatever its values): what decides
        whether a cell needs a potentiostat rather than a cycler."""
        if self.techniques and type(technique).__name__ not in self.techniques:
            return False
        match technique:
            case Impedance():
                return self.eis_min_Hz is not None and self.eis_max_Hz is not None
            case ConstantVoltage(vs_ocv=True):
                return self.holds_vs_ocv and self._ends_offered(technique)
            case _:
                return self._ends_offered(technique)

    def _ends_offered(self, technique: Technique) -> bool:
        ends = getattr(technique, "ends", None)
        return ends is None or set(ends.names()) <= self.ends_on

    def check(self, technique: Technique, cell_V: VoltageWindow = (None, None)) -> None:
        """Raise :class:`CapabilityError` for what the real channel would refuse or could not
        do: a technique it lacks, or any voltage or current the technique commands
        (:func:`~drivers.techniques.commanded`) outside its ranges. ``cell_V``: the voltages the
        cell may sit at (its safety limits), against which voltages relative to the
        open-circuit voltage are checked; an unknown side is not checked."""
        name = type(technique).__name__
        if self.techniques and name not in self.techniques:
            raise CapabilityError(f"{name} is not available on this channel"
                                  f" (it offers {', '.join(sorted(self.techniques))})")
        match technique:
            case Impedance():
                self._check_impedance(technique)
            case ConstantVoltage(vs_ocv=True) if not self.holds_vs_ocv:
                raise CapabilityError("this channel cannot hold a voltage relative to the"
                                      " open-circuit voltage (vs: ocv); use a potentiostat")
            case (OpenCircuit() | ConstantCurrent() | ConstantVoltage() | VoltageSweep()
                  | ConstantPower() | ConstantResistance() | Profile()):
                pass
            case _:
                raise CapabilityError(f"{name}: pre-flight has no rule for this technique")
        ends = getattr(technique, "ends", None)
        missing = sorted(set(ends.names()) - self.ends_on) if ends is not None else []
        if missing:
            offered = ", ".join(sorted(self.ends_on)) or "none"
            raise CapabilityError(f"this channel cannot end a step on {', '.join(missing)}"
                                  f" (it ends steps on: {offered})")
        what = commanded(technique)
        for label, current in what.currents_A:
            if not at_most(abs(current), self.max_current_A):
                raise CapabilityError(f"{label} {current:.4g} A exceeds the channel's range of"
                                      f" +-{self.max_current_A:g} A")
        for label, v in what.voltages_V:
            if not self._controls(v):
                raise CapabilityError(f"{label} {v:g} V is outside the channel's control range"
                                      f" {self._range()}")
        for label, offset in what.from_ocv_V:
            for at in cell_V:
                if at is None or self._controls(at + offset):
                    continue
                if offset == 0:
                    raise CapabilityError(f"the cell may sit at {at:g} V (its voltage limit),"
                                          f" outside the channel's range {self._range()}")
                raise CapabilityError(f"{label} {offset:+g} V reaches {at + offset:g} V with"
                                      f" the cell at {at:g} V (its voltage limit), outside the"
                                      f" channel's control range {self._range()}")

    def _controls(self, voltage_V: float) -> bool:
        return within(voltage_V, self.min_voltage_V, self.max_voltage_V)

    def _range(self) -> str:
        return f"{self.min_voltage_V:g}..{self.max_voltage_V:g} V"

    def _check_impedance(self, technique: Impedance) -> None:
        if self.eis_min_Hz is None or self.eis_max_Hz is None:
            raise CapabilityError("this channel cannot measure impedance")
        if technique.galvanostatic and not at_most(
                technique.amplitude_A + abs(technique.bias_A), 0.5 * self.max_current_A):
            raise CapabilityError(
                f"GEIS amplitude {technique.amplitude_A:g} A (+ bias {technique.bias_A:g} A)"
                f" exceeds half the channel's current range ({0.5 * self.max_current_A:g} A)")
        for f in (technique.f_start_Hz, technique.f_end_Hz):
            if not within(f, self.eis_min_Hz, self.eis_max_Hz):
                raise CapabilityError(f"frequency {f:g} Hz is outside the channel's EIS range"
                                      f" {self.eis_min_Hz:g}..{self.eis_max_Hz:g} Hz")


@dataclass(frozen=True)
class SafetyLimits:
    """A cell's hard limits, for instruments that watch them themselves between the points the
    sequencer sees (EC-Lab's safety limits, a cycler's protection). None: no limit."""

    max_voltage_V: float | None = None
    min_voltage_V: float | None = None
    max_abs_current_A: float | None = None


class Channel(ABC):
    """One independent output of a potentiostat or cycler."""

    @property
    @abstractmethod
    def capabilities(self) -> ChannelCapabilities: ...

    @abstractmethod
    def start(self, technique: Technique) -> None:
        """Check the technique against the channel and start it; refuse before any output."""

    @abstractmethod
    def poll(self) -> Readout:
        """Points recorded since the last poll, and the channel's state."""

    @abstractmethod
    def stop(self) -> None:
        """Output off (open circuit / high impedance). Safe to call at any time, repeatedly."""

    def peek(self) -> Readout | None:
        """What :meth:`poll` would bring now, without handing the points out (the next poll
        brings them again, the same values), where the channel can look without polling (a
        simulated one: it knows the whole technique from its start); None where it cannot.
        The step driver peeks at a technique just started and, when nothing in it calls for
        action (no end, no point beyond a limit), sleeps until the next news before its first
        poll: a step's points then come in one poll instead of two."""
        return None

    def set_safety_limits(self, limits: SafetyLimits) -> bool:
        """Have the instrument stop any technique that breaks ``limits`` (end reason
        ``safety_limit``). False where it cannot: the sequencer's checks on the recorded points
        are then the only ones."""
        return False

    def running(self) -> Technique | None:
        """The technique the channel is running on its own, where the instrument can say: after
        a crash the sequencer re-attaches to it instead of starting the step again."""
        return None

    def attachment(self) -> dict[str, str] | None:
        """What identifies the technique just started on the instrument (a test id, a
        barcode), kept with the step so that a later run can find it again, running or
        finished; None where the instrument has nothing of the kind."""
        return None

    def reattach(self, technique: Technique, attachment: dict[str, str] | None) -> bool:
        """After a crash: take up ``technique`` again if the instrument still runs it, or ran
        it to its end meanwhile (then the next polls bring what it recorded, and its end).
        By default only a technique the channel says it runs."""
        return self.running() == technique

    @property
    def running_unknown(self) -> bool:
        """A technique runs that the instrument cannot describe (found running at open)."""
        return False

    def adopt(self, technique: Technique) -> None:
        """Take a technique found running as ``technique``, which the run store says was
        started (after a crash); only where :attr:`running_unknown`."""
        raise CapabilityError("this channel cannot adopt a running technique")

    def read_voltage(self) -> float:
        """The voltage at the terminals now, without changing the output: a resumed run checks
        each cell is still there. :class:`CapabilityError` where the channel cannot tell."""
        raise CapabilityError("this channel cannot read its voltage on demand")


class MultiChannelInstrument(ABC):
    """A potentiostat or cycler: explicit open/close, no I/O in the constructor."""

    blocking_io: bool = True
    model: str = "instrument"

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Turn every output off and release the link."""

    @property
    @abstractmethod
    def channel_count(self) -> int: ...

    @abstractmethod
    def channel(self, index: int) -> Channel:
        """Channel by 0-based index; :class:`CapabilityError` if there is no such channel."""

    def __enter__(self) -> MultiChannelInstrument:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Potentiostat(MultiChannelInstrument):
    """Channels that can also measure impedance (VSP-300 style)."""


class Cycler(MultiChannelInstrument):
    """Many galvanostatic/potentiostatic channels, usually without impedance."""


class ChamberMode(StrEnum):
    OFF = "off"
    STANDBY = "standby"
    CONSTANT = "constant"


@dataclass(frozen=True)
class ChamberReading:
    temperature_C: float
    setpoint_C: float
    mode: ChamberMode
    alarms: tuple[str, ...] = ()


class Chamber(ABC):
    """A temperature chamber holding one or more cells."""

    blocking_io: bool = True
    min_C: float = -40.0
    max_C: float = 100.0

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def set_temperature_C(self, setpoint_C: float) -> None:
        """Run at constant temperature; :class:`CapabilityError` outside the chamber's range."""

    @abstractmethod
    def read(self) -> ChamberReading: ...

    @abstractmethod
    def standby(self) -> None:
        """The safe state: stop heating and cooling."""

    def check_setpoint(self, setpoint_C: float) -> None:
        if not within(setpoint_C, self.min_C, self.max_C):
            raise CapabilityError(f"setpoint {setpoint_C:g} degC is outside the chamber's range"
                                  f" {self.min_C:g}..{self.max_C:g} degC")

    def __enter__(self) -> Chamber:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
