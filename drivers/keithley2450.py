"""Keithley 2450 SMU as a one-channel cycler, over SCPI (raw socket, USB or GPIB).

An SMU has no autonomy: it sources a level until told otherwise. So this driver ends steps itself.
Each :meth:`Keithley2450Channel.poll` takes one reading, records it as a point when ``record_dt_s``
has passed (or V / I moved by ``record_dV_V`` / ``record_dI_A``), checks the technique's end
criteria and, when one is met, turns the output off and reports DONE with the reason. A step
therefore ends at the first poll after its criterion, and the sequencer polls at least every
``next_event_s`` (the next point due).

Choices worth knowing:

* One reading per poll: ``:READ? "defbuffer1", READ, SOUR`` with the current source (the reading
  is the measured voltage, ``SOUR`` the measured source readback current) and ``SOUR, READ`` with
  the voltage source, so the reply is always "V,I" from a single measurement.
* Open circuit is a 0 A current source measuring voltage: the output stays on, so the reading is
  real; "off" is HIMP (``:OUTP:CURR:SMOD HIMP``, ``:OUTP:VOLT:SMOD HIMP``), which opens the output
  relay. No ``*RST`` by default: it restores the NORMal off state, which holds a connected cell at
  0 V; what the driver relies on is set explicitly instead.
* Constant current: VLIM is ``until_voltage_V`` when charging towards it, else the channel's
  maximum (the 2450's limit is a magnitude, it cannot stop a discharge). In compliance the SMU
  holds V at VLIM within its accuracy, so "voltage" is reached within ``voltage_tolerance_V``.
* Constant voltage: ILIM is the channel's maximum current (narrow it with ``max_current_A``).
* After every configuration, before the output goes on: ``:SYST:ERR?`` is read until
  ``0,"No error"`` (a refused setting never reaches the cell), then the source settings are read
  back in one query (a setting lost with a dropped connection, or adjusted by the instrument, is
  caught: a write has no answer, so it is the only way to know).
* The output is switched with ``:OUTP OFF;:OUTP?`` (and ON): one message that is confirmed, so
  the transport's retry after a reconnect sends the switch again rather than only the question.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pydantic import Field

from drivers.errors import CapabilityError, DriverError
from drivers.interfaces import Channel, ChannelCapabilities, Cycler
from drivers.points import ChannelState, Points, Readout
from drivers.short_circuit import ShortWatch
from drivers.spec import Bench, InstrumentSpec, Options, Setup
from drivers.steady import SteadyWatch
from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit, Technique
from drivers.transports import Transport, open_transport

if TYPE_CHECKING:   # numpy where points are handled: not to check a station or plan a run

    from drivers.clock import Clock

#: The 2450's source ranges (its 200 V range needs the interlock; cells never need it).
MAX_CURRENT_A = 1.05
MAX_VOLTAGE_V = 21.0
TECHNIQUES = frozenset({"OpenCircuit", "ConstantCurrent", "ConstantVoltage"})
#: What the 2450 returns for a reading out of range.
OVERFLOW = 9.9e37
#: Errors read from the queue after a configuration before giving up on emptying it.
MAX_QUEUED_ERRORS = 20

READ_V_I = ':READ? "defbuffer1", READ, SOUR'   # current source: reading V, source I
READ_I_V = ':READ? "defbuffer1", SOUR, READ'   # voltage source: source V, reading I
CHECK_CURRENT_SOURCE = ":SOUR:FUNC?;:SENS:FUNC?;:SOUR:CURR:LEV?;:SOUR:CURR:VLIM?"
CHECK_VOLTAGE_SOURCE = ":SOUR:FUNC?;:SENS:FUNC?;:SOUR:VOLT:LEV?;:SOUR:VOLT:ILIM?"
#: On open: HIMP off states, and source readback on (so SOUR is measured, not the set level).
OPEN_SETUP = (":OUTP:CURR:SMOD HIMP", ":OUTP:VOLT:SMOD HIMP", ":SOUR:CURR:READ:BACK ON",
              ":SOUR:VOLT:READ:BACK ON")
#: Relative tolerance of a read-back source setting.
READBACK_REL = 1e-4

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_ERROR = re.compile(r'^([+-]?\d+),"(.*)"$')


@dataclass(frozen=True)
class Keithley2450Config:
    """Limits of this station's SMU (narrow them for small cells) and driver settings."""

    max_current_A: float = MAX_CURRENT_A
    max_voltage_V: float = MAX_VOLTAGE_V
    voltage_tolerance_V: float = 1e-3
    reset_on_open: bool = False   # *RST: only with no cell connected (see the module docstring)

    def __post_init__(self) -> None:
        if not 0 < self.max_current_A <= MAX_CURRENT_A:
            raise CapabilityError(f"max_current_A {self.max_current_A:g} A must be in"
                                  f" (0, {MAX_CURRENT_A:g}] A, the 2450's range")
        if not 0 < self.max_voltage_V <= MAX_VOLTAGE_V:
            raise CapabilityError(f"max_voltage_V {self.max_voltage_V:g} V must be in"
                                  f" (0, {MAX_VOLTAGE_V:g}] V")


def rated_capabilities(max_current_A: float = MAX_CURRENT_A,
                       max_voltage_V: float = MAX_VOLTAGE_V) -> ChannelCapabilities:
    """The SMU's channel as this station narrows it: +-``max_current_A``, +-``max_voltage_V``,
    no impedance and no sweeps."""
    return ChannelCapabilities(max_current_A=max_current_A, min_voltage_V=-max_voltage_V,
                               max_voltage_V=max_voltage_V, techniques=TECHNIQUES)


class Keithley2450(Cycler):
    """The SMU: explicit open/close, one channel. ``clock`` times the points and end criteria."""

    model = "Keithley 2450"
    blocking_io = True

    def __init__(self, transport: Transport, clock: Clock,
                 config: Keithley2450Config | None = None) -> None:
        self._transport, self.clock = transport, clock
        self.config = config or Keithley2450Config()
        self.identity: str | None = None
        self._open = False
        self._channel = Keithley2450Channel(self)

    @classmethod
    def from_address(cls, address: str, clock: Clock, config: Keithley2450Config | None = None,
                     **transport_options: Any) -> Keithley2450:
        """The SMU at ``address`` (``TCPIP0::host::5025::SOCKET``, ``USB0::...::INSTR``);
        nothing is connected yet."""
        return cls(open_transport(address, **transport_options), clock, config)

    def open(self) -> None:
        """Connect, check it is a 2450 speaking SCPI, select HIMP off states, output off."""
        self._transport.open()
        self._open = True
        try:
            self._set_up()
        except BaseException:
            self._open = False
            self._transport.close()
            raise

    def _set_up(self) -> None:
        idn = self.query("*IDN?")
        if "KEITHLEY" not in idn.upper() or "2450" not in idn:
            raise DriverError(f"*IDN? answered {idn!r}: not a Keithley 2450")
        self.identity = idn
        lang = self.query("*LANG?")
        if lang.strip().upper() != "SCPI":
            raise DriverError(f"*LANG? answered {lang!r}: the 2450 must use the SCPI command set"
                              " (front panel: Menu > System > Settings > Command Set)")
        commands = ["*RST"] if self.config.reset_on_open else []
        commands += ["*CLS", *OPEN_SETUP]
        self.configure(commands, "the set-up on open")
        self.output(on=False)

    def close(self) -> None:
        """Output off, then release the link (even when the output command failed)."""
        try:
            self._channel.stop()
        finally:
            self._open = False
            self._transport.close()

    @property
    def channel_count(self) -> int:
        return 1

    def channel(self, index: int) -> Keithley2450Channel:
        if index != 0:
            raise CapabilityError(f"{self.model} has one channel, 0; not {index}")
        return self._channel

    @property
    def is_open(self) -> bool:
        return self._open

    # -- SCPI ---------------------------------------------------------------------------------
    def write(self, command: str) -> None:
        self._transport.write(command)

    def query(self, command: str) -> str:
        return self._transport.query(command)

    def configure(self, commands: list[str], what: str) -> None:
        """Send ``commands``, then empty the error queue: any error refuses ``what``."""
        for command in commands:
            self.write(command)
        errors = []
        for _ in range(MAX_QUEUED_ERRORS):
            reply = self.query(":SYST:ERR?")
            match = _ERROR.match(reply.strip())
            if match is None:
                raise DriverError(f":SYST:ERR? answered an unreadable {reply!r} after {what}")
            if int(match.group(1)) == 0:
                break
            errors.append(reply.strip())
        if errors:
            raise DriverError(f"{self.model} refused {what}: {'; '.join(errors)}"
                              f" (sent: {'; '.join(commands)})")

    def verify(self, setup: _Setup, what: str) -> None:
        """Read the source settings back: a setting lost with a dropped connection, or one the
        instrument adjusted, is found before the output goes on."""
        reply = self.query(setup.check)
        fields = [f.strip().strip('"').upper() for f in reply.split(";")]
        function, sense, level, limit = setup.expected
        ok = len(fields) == 4 and fields[0] == function and fields[1].startswith(sense) \
            and all(_close(f, x) for f, x in zip(fields[2:], (level, limit), strict=True))
        if not ok:
            raise DriverError(f"{setup.check} answered {reply!r} after {what}; expected"
                              f" {function}, {sense}, {_num(level)}, {_num(limit)}")

    def output(self, on: bool) -> None:
        """Switch the output and confirm it in the same message, so a retry after a dropped
        connection sends the switch again."""
        state = "ON" if on else "OFF"
        command = f":OUTP {state};:OUTP?"
        reply = self.query(command)
        if reply.strip().upper() not in (("1", "ON") if on else ("0", "OFF")):
            raise DriverError(f"{command} answered {reply!r}: the output did not switch"
                              f" {state.lower()}")

    def read_v_i(self, command: str) -> tuple[float, float]:
        """One reading as (voltage_V, current_A) from a "V,I" reply."""
        reply = self.query(command)
        fields = [f.strip() for f in reply.split(",")]
        if len(fields) != 2 or not all(_NUMBER.match(f) for f in fields):
            raise DriverError(f"{command} answered {reply!r}: expected two numbers, V and I")
        v, i = float(fields[0]), float(fields[1])
        if abs(v) >= OVERFLOW or abs(i) >= OVERFLOW:
            raise DriverError(f"{command} answered {reply!r}: a reading overflowed its range")
        return v, i


@dataclass(frozen=True)
class _Setup:
    """A technique's configuration: what to send, how to check it, how to read."""

    commands: list[str]
    check: str
    expected: tuple[str, str, float, float]   # source function, sense function, level, limit
    read_command: str


@dataclass
class _Run:
    """The running technique and what the channel remembers of its readings."""

    technique: OpenCircuit | ConstantCurrent | ConstantVoltage
    t0: float
    read_command: str
    points: list[tuple[float, float, float]] = field(default_factory=list)
    last: tuple[float, float, float] | None = None   # the last recorded (t, V, I)
    steady: SteadyWatch | None = field(init=False)
    short: ShortWatch | None = field(init=False)

    def __post_init__(self) -> None:
        self.steady = SteadyWatch.of(self.technique)
        self.short = ShortWatch.of(self.technique)


class Keithley2450Channel(Channel):
    """The SMU's one output; ends each technique itself (see the module docstring)."""

    def __init__(self, smu: Keithley2450) -> None:
        self._smu = smu
        self._caps = rated_capabilities(smu.config.max_current_A, smu.config.max_voltage_V)
        self._lock = threading.RLock()
        self._state = ChannelState.IDLE
        self._end_reason: str | None = None
        self._run: _Run | None = None

    @property
    def capabilities(self) -> ChannelCapabilities:
        return self._caps

    def start(self, technique: Technique) -> None:
        with self._lock:
            if self._state is ChannelState.RUNNING:
                raise DriverError(f"{self._smu.model}: a technique is already running;"
                                  " stop it first")
            self._caps.check(technique)
            assert isinstance(technique, OpenCircuit | ConstantCurrent | ConstantVoltage)
            if isinstance(technique, ConstantVoltage) and technique.vs_ocv:
                ocv = self._open_circuit_voltage()
                technique = replace(technique, voltage_V=technique.voltage_V + ocv, vs_ocv=False)
                self._caps.check(technique)
            setup = self._configuration(technique)
            self._apply(setup, f"the {type(technique).__name__} configuration")
            self._run = _Run(technique, self._smu.clock.now(), setup.read_command)
            self._state, self._end_reason = ChannelState.RUNNING, None

    def poll(self) -> Readout:
        with self._lock:
            run = self._run
            if run is None or self._state is not ChannelState.RUNNING:
                return Readout(Points.empty(), self._state, self._end_reason)
            v, i = self._smu.read_v_i(run.read_command)
            t = self._smu.clock.now() - run.t0
            reason = self._end(run, t, v, i)
            if reason is not None or _due(run, t, v, i):
                run.points.append((t, v, i))
                run.last = (t, v, i)
            points = _points(run.points)
            run.points = []
            if reason is not None:
                self._smu.output(on=False)
                self._run, self._state, self._end_reason = None, ChannelState.DONE, reason
                return Readout(points, ChannelState.DONE, reason)
            return Readout(points, ChannelState.RUNNING, next_event_s=_next_event(run))

    def stop(self) -> None:
        """Output off, always (while the link is open: before ``open()`` or after ``close()``
        this driver has switched nothing on). A dead link raises TransportError after the
        transport's reconnect attempts; the channel counts as stopped either way."""
        with self._lock:
            if self._state is ChannelState.RUNNING:
                self._end_reason = "stopped"
            self._run, self._state = None, ChannelState.IDLE
            if self._smu.is_open:
                self._smu.output(on=False)

    # -- set-up -------------------------------------------------------------------------------
    def _configuration(self, technique: OpenCircuit | ConstantCurrent | ConstantVoltage
                       ) -> _Setup:
        """The commands that set the technique up (output still off), their read-back and the
        poll's query."""
        v_max, i_max = self._caps.max_voltage_V, self._caps.max_current_A
        if isinstance(technique, ConstantVoltage):
            level = technique.voltage_V
            return _Setup([":SOUR:FUNC VOLT", ':SENS:FUNC "CURR"', f":SOUR:VOLT:ILIM {_num(i_max)}",
                           f":SOUR:VOLT:LEV {_num(level)}"], CHECK_VOLTAGE_SOURCE,
                          ("VOLT", "CURR", level, i_max), READ_I_V)
        current = technique.current_A if isinstance(technique, ConstantCurrent) else 0.0
        vlim = v_max
        if isinstance(technique, ConstantCurrent) and technique.until_voltage_V is not None \
                and current > 0 and technique.until_voltage_V > 0:
            vlim = technique.until_voltage_V
        return _Setup([":SOUR:FUNC CURR", ':SENS:FUNC "VOLT"', f":SOUR:CURR:VLIM {_num(vlim)}",
                       f":SOUR:CURR:LEV {_num(current)}"], CHECK_CURRENT_SOURCE,
                      ("CURR", "VOLT", current, vlim), READ_V_I)

    def _apply(self, setup: _Setup, what: str) -> None:
        """Configure, check the error queue, read the settings back, and only then switch on."""
        self._smu.configure(setup.commands, what)
        self._smu.verify(setup, what)
        self._smu.output(on=True)

    def _open_circuit_voltage(self) -> float:
        """One reading at 0 A, for a hold relative to open circuit; the output ends off."""
        setup = self._configuration(OpenCircuit(1.0, 1.0))
        self._apply(setup, "the open-circuit measurement")
        try:
            v, _ = self._smu.read_v_i(setup.read_command)
        finally:
            self._smu.output(on=False)
        return v

    # -- end criteria -------------------------------------------------------------------------
    def _end(self, run: _Run, t: float, v: float, i: float) -> str | None:
        """The reason the technique ends at this reading, or None."""
        tech = run.technique
        tol = self._smu.config.voltage_tolerance_V
        if isinstance(tech, ConstantCurrent):
            if run.short is not None and run.short.shorted(t, v):
                return "short"
            if tech.until_voltage_V is not None and tech.current_A != 0:
                if tech.current_A > 0 and v >= tech.until_voltage_V - tol:
                    return "voltage"
                if tech.current_A < 0 and v <= tech.until_voltage_V + tol:
                    return "voltage"
        if isinstance(tech, ConstantVoltage):
            if tech.until_abs_current_A is not None and abs(i) <= tech.until_abs_current_A:
                return "current"
            if run.steady is not None and run.steady.reached(t, i):
                return "steady"
        if t >= tech.duration_s:
            return "duration"
        return None


def _due(run: _Run, t: float, v: float, i: float) -> bool:
    if run.last is None:
        return True
    t_last, v_last, i_last = run.last
    tech = run.technique
    if t - t_last >= tech.record_dt_s * (1 - 1e-9):
        return True
    dv = getattr(tech, "record_dV_V", None)
    di = getattr(tech, "record_dI_A", None)
    return bool(dv and abs(v - v_last) >= dv) or bool(di and abs(i - i_last) >= di)


def _next_event(run: _Run) -> float:
    """Clock time of the next point due, or of the time limit if that comes first."""
    due = run.last[0] + run.technique.record_dt_s if run.last is not None else 0.0
    return run.t0 + min(due, run.technique.duration_s)


def _points(rows: list[tuple[float, float, float]]) -> Points:
    import numpy as np

    if not rows:
        return Points.empty()
    t, v, i = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    return Points(time_s=t, voltage_V=v, current_A=i)


def _close(text: str, expected: float) -> bool:
    if not _NUMBER.match(text):
        return False
    return abs(float(text) - expected) <= READBACK_REL * abs(expected) + 1e-12


# -- the spec ---------------------------------------------------------------------------------

class Keithley2450Options(Options):
    """Narrow the SMU's limits for small cells; ``timeout_s`` bounds every read."""

    timeout_s: float | None = Field(default=None, gt=0, le=600)
    max_current_A: float = Field(default=MAX_CURRENT_A, gt=0, le=MAX_CURRENT_A)
    max_voltage_V: float = Field(default=MAX_VOLTAGE_V, gt=0, le=MAX_VOLTAGE_V)


def _capabilities(options: Keithley2450Options) -> ChannelCapabilities:
    return rated_capabilities(options.max_current_A, options.max_voltage_V)


def _build(setup: Setup, bench: Bench) -> Keithley2450:
    assert setup.address is not None
    o = setup.options
    link = {} if o.timeout_s is None else {"timeout_s": o.timeout_s}
    return Keithley2450.from_address(setup.address, bench.clock, Keithley2450Config(
        max_current_A=o.max_current_A, max_voltage_V=o.max_voltage_V), **link)


INSTRUMENTS = (InstrumentSpec(
    name="keithley2450", kind="cycler", channels="one", build=_build,
    options=Keithley2450Options, capabilities=_capabilities,
    description="Keithley 2450 SMU as a one-channel cycler"),)


def _num(x: float) -> str:
    return f"{x + 0.0:.7g}"
