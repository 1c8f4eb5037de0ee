"""One spec per instrument: everything the rest of cellseq knows of it, declared by its module.

A driver module (or a simulator module, for the in-process simulators) says what its instrument
is in an ``INSTRUMENTS`` tuple of :class:`InstrumentSpec`: its name in station files, its kind,
the options a station may give it (a typed pydantic model: an unknown or mistyped option is
refused with its name), its channel rule, a builder that makes it without I/O, the capabilities
of its channels for the options given (what pre-flight checks every technique against) and a
chamber's range. Station validation, pre-flight, the dry run's placement and ``sim serve`` read
these specs and nothing else (``sequencer.registry`` finds them), so adding an instrument
touches its own module, its simulator and its tests. What ``cellseq sim serve`` starts in an
instrument's place is the simulators' to say (``simulators.served``): a driver knows nothing
of simulators.

Builders import what is heavy (pyvisa, pyserial, easy-biologic) only when called; a spec
itself is cheap to import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from drivers.interfaces import Chamber, ChannelCapabilities, MultiChannelInstrument

if TYPE_CHECKING:
    from drivers.clock import Clock

Kind = Literal["potentiostat", "cycler", "chamber"]
#: ``one``: a single output whatever the station says (channels may be omitted, or 1);
#: ``required``: the station says how many channels; ``none``: a chamber.
ChannelRule = Literal["one", "required", "none"]


class Options(BaseModel):
    """A driver's station options: no unknown keys, no conversion (a string is not a number;
    an integer is a valid float). Field names carry their unit (``timeout_s``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


class NoOptions(Options):
    """An instrument that takes no options."""


@dataclass(frozen=True)
class Setup:
    """One instrument as a station names it, handed to a builder."""

    name: str
    address: str | None
    channels: int
    options: Any                     # the spec's own Options model, validated
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: For an address a served stand-in answers (``sim://``): what reaches it in the place of
    #: the instrument's vendor library (a driver whose link is a library takes it as its
    #: device factory). None for a real instrument.
    link: Any = None


@dataclass(frozen=True)
class Bench:
    """What builders share: the run's clock and, for in-process simulators, the simulated lab
    (a ``simulators.lab.SimLab``) that wires them to their cells."""

    clock: Clock
    lab: Any = None


Instrument = MultiChannelInstrument | Chamber


@dataclass(frozen=True)
class DryRun:
    """For an in-process simulator: ``--sim`` places cells of this kind on instruments of
    ``channels`` channels named ``prefix-1``, ``prefix-2``, ..."""

    prefix: str
    channels: int | None = None


@dataclass(frozen=True)
class InstrumentSpec:
    """An instrument, once. ``capabilities`` (channel instruments) and ``chamber_range_C``
    (chambers) take the validated options; ``simulated``: an in-process simulator on the
    run's virtual clock (no address); ``login``: takes a username and password."""

    name: str
    kind: Kind
    build: Callable[[Setup, Bench], Instrument]
    options: type[Options] = NoOptions
    channels: ChannelRule = "required"
    capabilities: Callable[[Any], ChannelCapabilities] | None = None
    chamber_range_C: Callable[[Any], tuple[float, float]] | None = None
    simulated: bool = False
    login: bool = False
    dry_run: DryRun | None = None
    description: str = ""

    def __post_init__(self) -> None:
        chamber = self.kind == "chamber"
        if chamber != (self.channels == "none"):
            raise ValueError(f"{self.name}: a chamber, and only a chamber, has no channels")
        if chamber and (self.chamber_range_C is None or self.capabilities is not None):
            raise ValueError(f"{self.name}: a chamber has a range and no channel capabilities")
        if not chamber and (self.capabilities is None or self.chamber_range_C is not None):
            raise ValueError(f"{self.name}: a {self.kind} has channel capabilities")
        if self.dry_run is not None and not self.simulated:
            raise ValueError(f"{self.name}: only an in-process simulator serves dry runs")
        if self.dry_run is not None and (self.dry_run.channels is None) != chamber:
            raise ValueError(f"{self.name}: a dry run's {self.kind}s need a channel count")
