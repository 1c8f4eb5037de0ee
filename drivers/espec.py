"""ESPEC temperature chambers (SU/SH/PR series, SCP-220 and P-300 controllers) over a transport.

The controller speaks ASCII lines ending in CR LF: queries (``TEMP?``, ``MON?``, ``ALARM?``) answer
comma-separated fields, settings (``TEMP, S25.0``, ``MODE, CONSTANT``) answer ``OK:`` and the echo,
and a refusal starts with ``NA:``. A reading is ``TEMP?`` (process value, setpoint), ``MON?`` (mode,
alarm count) and, only when there are alarms, ``ALARM?``: two exchanges in the normal case.

The controller needs a pause after each command (about 0.2 s after a query, 0.5 s after a
setting). It is wall time the hardware needs whatever the run's clock says, so the driver waits it
out with ``time.sleep`` before the next command, and only as long as still needed; tests set the
pauses to 0. Every reply is checked field by field: a garbled or cut reply raises
:class:`EspecError`, it never becomes a temperature.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from pydantic import Field, model_validator

from drivers.errors import DriverError, TransportError
from drivers.interfaces import Chamber, ChamberMode, ChamberReading
from drivers.spec import Bench, InstrumentSpec, Options, Setup
from drivers.transports import Transport, open_transport

#: The terminator the controllers use both ways.
TERMINATION = "\r\n"
#: The setpoint range of the SU/SH series (narrow it per chamber with options min_C / max_C).
MIN_C, MAX_C = -40.0, 100.0

_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_INTEGER = re.compile(r"^\d+$")
_MODES = {"OFF": ChamberMode.OFF, "STANDBY": ChamberMode.STANDBY,
          "CONSTANT": ChamberMode.CONSTANT}


class EspecError(DriverError):
    """The chamber refused a command or answered something we cannot read."""


@dataclass(frozen=True)
class EspecConfig:
    """``rs485_address``: the controller's address on an RS-485 bus (commands become
    ``1,TEMP?``); None on RS-232 or TCP. The pauses are wall seconds before the next command."""

    rs485_address: int | None = None
    query_pause_s: float = 0.2
    setting_pause_s: float = 0.5
    min_C: float = MIN_C
    max_C: float = MAX_C


class EspecChamber(Chamber):
    """A :class:`Chamber` on an ESPEC controller; no I/O until :meth:`open`.

    ``close`` leaves the chamber as it is (a restarted sequencer finds its cells still at their
    temperature); call :meth:`standby` first for the safe state.
    """

    blocking_io = True

    def __init__(self, transport: Transport, config: EspecConfig | None = None) -> None:
        self._transport = transport
        self.config = config or EspecConfig()
        self.min_C, self.max_C = self.config.min_C, self.config.max_C
        self.type_info: str | None = None
        self._ready_at = 0.0

    @classmethod
    def from_address(cls, address: str, config: EspecConfig | None = None,
                     **transport_options: Any) -> EspecChamber:
        """The chamber at ``address`` (``socket://host:10001``, ``/dev/ttyUSB0``, a VISA
        resource), with the controller's CR LF terminator; nothing is connected yet."""
        options = {"write_termination": TERMINATION, "read_termination": "\n",
                   **transport_options}
        return cls(open_transport(address, **options), config)

    # -- Chamber ------------------------------------------------------------------------------
    def open(self) -> None:
        """Connect and ask the controller's type (``TYPE?``): a chamber that does not answer
        is found here, not in the middle of a run."""
        self._transport.open()
        try:
            self.type_info = self._query("TYPE?")
        except BaseException:
            self._transport.close()
            raise

    def close(self) -> None:
        self._transport.close()

    def set_temperature_C(self, setpoint_C: float) -> None:
        """Setpoint, then CONSTANT mode. The controller's resolution is 0.1 K, so the setpoint
        is rounded to it."""
        self.check_setpoint(setpoint_C)
        self._set(f"TEMP, S{round(setpoint_C, 1) + 0.0:.1f}")
        self._set("MODE, CONSTANT")

    def standby(self) -> None:
        self._set("MODE, STANDBY")

    def power_off(self) -> None:
        """The controller's OFF mode: no heating, cooling or air circulation."""
        self._set("MODE, OFF")

    def read(self) -> ChamberReading:
        temp = self._fields("TEMP?", self._query("TEMP?"), 4)
        pv, sv = _decimal("TEMP?", temp[0]), _decimal("TEMP?", temp[1])
        for limit in temp[2:]:
            _decimal("TEMP?", limit)   # the alarm limits: checked so a garbled line is caught
        mon = self._query("MON?")
        fields = self._fields("MON?", mon, 4)
        mode = _MODES.get(fields[2].strip().upper())
        if mode is None:
            if fields[2].strip().upper() == "RUN":
                raise EspecError("MON?: the chamber runs a program of its own (mode RUN), which"
                                 " cellseq does not control; stop it at the controller")
            raise EspecError(f"MON? answered an unknown mode {fields[2]!r} in {mon!r}")
        count = _count("MON?", fields[3], mon)
        alarms = self._alarms() if count else ()
        return ChamberReading(pv, sv, mode, alarms)

    # -- the protocol -------------------------------------------------------------------------
    def _alarms(self) -> tuple[str, ...]:
        reply = self._query("ALARM?")
        fields = [f.strip() for f in reply.split(",")]
        n = _count("ALARM?", fields[0], reply)
        if len(fields) != n + 1 or not all(_INTEGER.match(f) for f in fields[1:]):
            raise EspecError(f"ALARM? answered {reply!r}: {n} alarm code(s) announced,"
                             f" {len(fields) - 1} given")
        return tuple(fields[1:])

    def _query(self, command: str) -> str:
        reply = self._exchange(command, self.config.query_pause_s)
        if reply.startswith("NA:"):
            raise EspecError(f"{command} refused: {reply!r}")
        return reply

    def _set(self, command: str) -> None:
        reply = self._exchange(command, self.config.setting_pause_s)
        if reply.startswith("NA:"):
            raise EspecError(f"{command} refused: {reply!r}")
        if _squeeze(reply) != _squeeze(f"OK:{command}"):
            raise EspecError(f"{command} answered {reply!r}, not 'OK:{command}'")

    def _exchange(self, command: str, pause_s: float) -> str:
        wait = self._ready_at - time.monotonic()
        if wait > 0:   # the controller's own pace, in wall time (a worker thread waits here)
            time.sleep(wait)
        address = self.config.rs485_address
        line = command if address is None else f"{address},{command}"
        try:
            return self._transport.query(line)
        except TransportError as exc:
            raise type(exc)(f"ESPEC {command}: {exc}") from exc
        finally:
            self._ready_at = time.monotonic() + pause_s

    @staticmethod
    def _fields(command: str, reply: str, n: int) -> list[str]:
        fields = reply.split(",")
        if len(fields) != n:
            raise EspecError(f"{command} answered {reply!r}: expected {n} comma-separated"
                             f" fields, got {len(fields)}")
        return fields


def _decimal(command: str, text: str) -> float:
    if not _DECIMAL.match(text.strip()):
        raise EspecError(f"{command} answered an unreadable number {text!r}")
    return float(text)


def _count(command: str, text: str, reply: str) -> int:
    if not _INTEGER.match(text.strip()):
        raise EspecError(f"{command} answered {reply!r}: {text!r} is not an alarm count")
    return int(text)


def _squeeze(text: str) -> str:
    return text.replace(" ", "").upper()


# -- the spec ---------------------------------------------------------------------------------

class EspecOptions(Options):
    """The link's timeout, the controller's RS-485 address and pace, and the setpoint range
    this chamber allows (pre-flight refuses a target outside it)."""

    timeout_s: float | None = Field(default=None, gt=0, le=600)
    rs485_address: int | None = Field(default=None, ge=0, le=99)
    query_pause_s: float = Field(default=0.2, ge=0, le=10)
    setting_pause_s: float = Field(default=0.5, ge=0, le=10)
    min_C: float = Field(default=MIN_C, ge=-273.15, le=1000)
    max_C: float = Field(default=MAX_C, ge=-273.15, le=1000)

    @model_validator(mode="after")
    def _ordered(self) -> EspecOptions:
        if self.min_C >= self.max_C:
            raise ValueError(f"min_C {self.min_C:g} must be below max_C {self.max_C:g}")
        return self


def _build(setup: Setup, bench: Bench) -> EspecChamber:
    assert setup.address is not None
    o = setup.options
    link = {} if o.timeout_s is None else {"timeout_s": o.timeout_s}
    return EspecChamber.from_address(setup.address, EspecConfig(
        rs485_address=o.rs485_address, query_pause_s=o.query_pause_s,
        setting_pause_s=o.setting_pause_s, min_C=o.min_C, max_C=o.max_C), **link)


INSTRUMENTS = (InstrumentSpec(
    name="espec", kind="chamber", channels="none", build=_build, options=EspecOptions,
    chamber_range_C=lambda o: (o.min_C, o.max_C),
    description="ESPEC chambers (SCP-220 / P-300 controllers)"),)
