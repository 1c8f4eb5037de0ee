"""The BioLogic VSP-300 (and the rest of the VMP-300 family) through easy-biologic.

Only easy-biologic's low-level ``BiologicDevice`` calls are used: connect, channel_info,
load_technique, start_channel, stop_channel, get_values, get_data. Its ``base_programs`` are
avoided: their ``run()`` calls ``asyncio.run`` (which fails inside a running loop), stopping a
program never calls ``stop_channel`` (the channel runs on), with autoconnect the first program to
finish disconnects the device the others share, and none looks at ``DataInfo.IRQskipped``.
EClib is not re-entrant (a call made while another is in progress answers -12, "function in
progress") and easy-biologic has no lock, so every call goes through one lock, whichever worker
thread makes it; EClib is one library per process, so the lock is the process's, shared by every
:class:`VSP300` (two instruments polled from two threads would otherwise collide in the DLL).

A lost link (EClib's ``ERR_GEN_NOTCONNECTED`` or ``ERR_COMM_...`` codes, or a served stand-in's
socket) is a :class:`TransportError`, and the driver connects again through a new device for the
next call: easy-biologic cannot connect a ``BiologicDevice`` again once its disconnect has
failed, as it does on a dead link. What one poll had already drained from the instrument before
a ``get_data`` failed is kept for the next poll, never dropped.

The channel runs each technique with its limits in firmware; :meth:`VSP300Channel.poll` drains
the channel's buffer and reads its state. What the firmware cannot test the driver completes on
the points it polls, and stops the channel at once: a steady current, and the relative part of
the short-circuit rule (:mod:`drivers.short_circuit`; the firmware keeps its absolute floor).
A channel found running at :meth:`VSP300.open` (the sequencer crashed, the instrument did not)
is re-attached: poll works at once, and :meth:`VSP300Channel.adopt` tells it which technique
runs so it can name the end reason.

Points the instrument skipped (``DataInfo.IRQskipped``) are never passed over in silence: by
default the channel is stopped and the poll reports a fault (keeping the points that did
arrive); with ``lost_points="warn"`` the run goes on, with a logged warning and the count in
``Readout.detail["irq_skipped"]``.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import re
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from pydantic import Field

from drivers.biologic import techniques as ecc
from drivers.biologic.data import Block, concat, decode
from drivers.errors import CapabilityError, CellseqError, DriverError, TransportError
from drivers.interfaces import Channel, ChannelCapabilities, Potentiostat
from drivers.points import ChannelState, Points, Readout
from drivers.short_circuit import ShortWatch
from drivers.spec import Bench, InstrumentSpec, Options, Setup
from drivers.steady import SteadyWatch
from drivers.techniques import (
    ConstantCurrent,
    ConstantVoltage,
    Impedance,
    Technique,
    VoltageSweep,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
DeviceFactory = Callable[..., Any]

#: DeviceInfo.DeviceCode of the VMP-300 family: the instruments that run ``*4.ecc`` techniques
VMP300_FAMILY = {12: "VMP-300", 16: "SP-300", 20: "VSP-300", 21: "SP-200", 27: "SP-240",
                 32: "BP-300"}
STATE_STOP, STATE_RUN = 0, 1       # CurrentValues.State / ChannelInfo.State
CONTROL_RANGE_V = 10.0              # E_Range +-10 V
#: The VSP-300 datasheet's EIS range: channel_info only says whether a channel has impedance.
EIS_RANGE_HZ = (10e-6, 7e6)
#: The top current range a driver uses (I_Range 10: 1 A full scale), and what the VSP-300's
#: amplifier drives on it without a booster.
TOP_I_RANGE = 10
MAX_OUTPUT_A = 0.5
DEFAULT_TIMEOUT_S = 5.0
#: EClib takes the connection timeout as an unsigned byte of whole seconds.
MAX_TIMEOUT_S = 255
#: EClib's codes for a link that is gone: ERR_GEN_NOTCONNECTED, ERR_COMM_COMMFAILED,
#: ERR_COMM_CONNECTIONFAILED, ERR_COMM_WAITINGACK (EC-Lab Development Package, error codes).
LINK_LOST_CODES = frozenset({-1, -200, -201, -202})
#: EClib is one library per process and answers -12 to a call made while another is in
#: progress: every VSP300 makes its calls under this one lock.
ECLIB_LOCK = threading.RLock()
MAX_GET_DATA_CALLS = 100_000        # one poll never drains more than this many buffers
#: How close the last point must be to a limit to name it the end reason; how early a technique
#: may stop and still count as having run its time (the last record may precede the end).
VOLTAGE_TOLERANCE_V, CURRENT_TOLERANCE = 0.01, 0.05
DURATION_TOLERANCE_S = 1.0
#: Recorded times are whole timebase ticks (tens of us): comparisons of times allow this much.
TIME_RESOLUTION_S = 1e-3


def easy_biologic_device() -> DeviceFactory:
    """easy-biologic's BiologicDevice, imported only now: importing easy-biologic on anything
    but Windows raises OSError, and it needs BioLogic's EClib DLL. The factory passes the
    timeout in whole seconds: easy-biologic hands it to ``ctypes.c_uint8``, which refuses a
    float."""
    try:
        from easy_biologic import BiologicDevice
    except (ImportError, OSError) as exc:
        raise DriverError(
            "the VSP-300 driver needs easy-biologic, which runs only on Windows with BioLogic's"
            " EClib DLL: install the 'biologic' extra (pip install 'cellseq[biologic]') on the"
            f" Windows PC wired to the instrument ({type(exc).__name__}: {exc})") from None

    def device(address: str, timeout: float = DEFAULT_TIMEOUT_S,
               populate_info: bool = True) -> Any:
        return BiologicDevice(address, timeout=whole_seconds(timeout),
                              populate_info=populate_info)
    return device


def whole_seconds(timeout_s: float) -> int:
    """A timeout as EClib takes it: whole seconds, rounded up, 1 to 255."""
    seconds = max(1, math.ceil(timeout_s))
    if seconds > MAX_TIMEOUT_S:
        raise DriverError(f"EClib's connection timeout is at most {MAX_TIMEOUT_S} s, not"
                          f" {timeout_s:g} s")
    return seconds


def ec_error_code(exc: BaseException) -> int | None:
    """The EClib return code an easy-biologic EcError carries. easy-biologic 0.4's EcError
    keeps it only in its message, "ERR_NAME (code): text"; a stand-in's has ``value``."""
    if type(exc).__name__ != "EcError":
        return None
    value = getattr(exc, "value", None)
    if isinstance(value, int):
        return value
    match = re.match(r"^ERR_\w+ \((-\d+)\)", str(exc))
    return int(match.group(1)) if match else None


def _describe(exc: BaseException) -> str:
    """An error from easy-biologic in words. Its ``connect`` catches an EcError from loading
    the firmware and then reads ``err.value``, which its EcError does not have: the
    AttributeError hides the DLL's answer, which is the one worth reporting."""
    context = exc.__context__
    if isinstance(exc, AttributeError) and context is not None \
            and ec_error_code(context) is not None:
        return str(context)
    return str(exc)


def channel_capabilities(info: Any, max_output_A: float) -> ChannelCapabilities:
    """A channel's limits from its ``channel_info``: the largest I range (MaxIRange, capped at
    what the amplifier can drive) and whether it has an impedance board (Zboard)."""
    return rated_capabilities(max_output_A, min(int(info.MaxIRange), TOP_I_RANGE),
                              bool(info.Zboard))


def rated_capabilities(max_output_A: float = MAX_OUTPUT_A, top_i_range: int = TOP_I_RANGE,
                       has_eis: bool = True) -> ChannelCapabilities:
    """A channel's limits: its top I range's full scale capped at what the amplifier drives
    (``max_output_A``), the +-10 V control range, and impedance where it has the board. With
    the defaults, a VSP-300 channel's datasheet ratings (what pre-flight checks against before
    the instrument can say)."""
    kinds = {"OpenCircuit", "ConstantCurrent", "ConstantVoltage", "VoltageSweep"}
    return ChannelCapabilities(
        max_current_A=min(ecc.i_range_full_scale_A(top_i_range), max_output_A),
        min_voltage_V=-CONTROL_RANGE_V, max_voltage_V=CONTROL_RANGE_V,
        eis_min_Hz=EIS_RANGE_HZ[0] if has_eis else None,
        eis_max_Hz=EIS_RANGE_HZ[1] if has_eis else None,
        techniques=frozenset((kinds | {"Impedance"}) if has_eis else kinds))


class VSP300(Potentiostat):
    """A VMP-300-family potentiostat at ``address`` ("192.168.1.2", or "USB0").

    ``device_factory(address, timeout=..., populate_info=False)`` makes the BiologicDevice; by
    default easy-biologic's, imported in :meth:`open`. ``max_output_A`` caps the current the
    top I range suggests (the VSP-300's 1 A range drives +-500 mA without a booster).
    """

    blocking_io = True
    model = "VSP-300"

    def __init__(self, address: str, device_factory: DeviceFactory | None = None, *,
                 timeout_s: float = DEFAULT_TIMEOUT_S, max_output_A: float = MAX_OUTPUT_A,
                 lost_points: Literal["fault", "warn"] = "fault") -> None:
        if lost_points not in ("fault", "warn"):
            raise ValueError(f"lost_points must be 'fault' or 'warn', not {lost_points!r}")
        self.address = address
        self._factory, self._timeout_s = device_factory, timeout_s
        self._unlinked = False   # the link was lost and connecting again failed so far
        self._max_output_A, self.lost_points = max_output_A, lost_points
        self._lock = ECLIB_LOCK
        self._device: Any = None
        self._make: DeviceFactory | None = None
        self._channels: dict[int, VSP300Channel] = {}

    def open(self) -> None:
        if self._device is not None:
            return
        factory = self._factory or easy_biologic_device()
        device = self._new_device(factory)
        try:
            self._call("connect", "connect", device=device)
            self._channels = self._read_channels(device)
        except BaseException:   # a connect that failed half-way may hold a connection too
            with contextlib.suppress(Exception):
                device.disconnect()
            raise
        self._device, self._make, self._unlinked = device, factory, False

    def close(self) -> None:
        """Stop every channel, then disconnect; one failure does not stop the rest."""
        if self._device is None:
            return
        problems: list[str] = []
        for channel in self._channels.values():
            try:
                channel.stop()
            except CellseqError as exc:   # a lost link too: the rest must still be tried
                problems.append(str(exc))
        try:
            self._call("disconnect", "disconnect")
        except CellseqError as exc:
            problems.append(str(exc))
        finally:
            self._device, self._channels, self._unlinked = None, {}, False
        if problems:
            raise DriverError("; ".join(problems))

    @property
    def channel_count(self) -> int:
        self._link()
        return len(self._channels)

    def channel(self, index: int) -> VSP300Channel:
        self._link()
        if index not in self._channels:
            raise CapabilityError(f"{self.model} at {self.address} has channels"
                                  f" {sorted(self._channels)}, not {index}")
        return self._channels[index]

    # -- the one way to the device ------------------------------------------------------------

    def _link(self) -> Any:
        if self._device is None:
            raise DriverError(f"{self.model} at {self.address} is not open; call open() first")
        return self._device

    def _call(self, what: str, method: str, *args: Any, device: Any = None) -> Any:
        """The device's ``method(*args)`` under the lock (a coroutine, as easy-biologic's
        get_data, run to its end). A lost link is a TransportError, after which the driver
        connects again for the next call; whatever else easy-biologic or the DLL raises
        (EcError, RuntimeError, OSError) becomes a DriverError naming the call."""
        with self._lock:
            if device is None:
                if self._unlinked and what != "disconnect":
                    self._relink(what)   # still unreachable: TransportError
                device = self._link()
            try:
                result = getattr(device, method)(*args)
                return _finish_now(result) if inspect.iscoroutine(result) else result
            except TransportError as exc:
                self._lose(what, exc)
                raise
            except CellseqError:
                raise
            except Exception as exc:
                if ec_error_code(exc) in LINK_LOST_CODES:
                    self._lose(what, exc)
                    raise TransportError(f"{self.model} at {self.address}: {what} failed, the"
                                         f" link is lost: {_describe(exc)}") from exc
                raise DriverError(f"{self.model} at {self.address}: {what} failed:"
                                  f" {_describe(exc)}") from exc

    def _new_device(self, factory: DeviceFactory) -> Any:
        try:
            return factory(self.address, timeout=self._timeout_s, populate_info=False)
        except CellseqError:
            raise
        except Exception as exc:
            raise DriverError(f"{self.model} at {self.address}: BiologicDevice() failed:"
                              f" {_describe(exc)}") from exc

    def _lose(self, what: str, exc: BaseException) -> None:
        """The link died during ``what`` (reported by the caller): try to connect again now,
        so the next call may go through."""
        if self._device is None or what in ("connect", "disconnect"):
            return
        self._unlinked = True
        with contextlib.suppress(CellseqError):
            self._relink(what)

    def _relink(self, what: str) -> None:
        """Connect again through a new device (easy-biologic cannot reconnect one whose
        disconnect failed); the old one is disconnected if it still can be, which frees its
        connection in EClib. The channels ran on in the instrument meanwhile. While the
        instrument stays unreachable, a TransportError says so, and the next call tries
        again."""
        old, make = self._device, self._make
        assert old is not None and make is not None
        with contextlib.suppress(Exception):
            old.disconnect()
        try:
            device = self._new_device(make)
            device.connect()
        except Exception as exc:
            log.warning("%s at %s: cannot connect again after %s failed: %s", self.model,
                        self.address, what, _describe(exc))
            raise TransportError(f"{self.model} at {self.address} is not connected: the link"
                                 f" was lost during {what}, and connecting again failed:"
                                 f" {_describe(exc)}") from exc
        self._device, self._unlinked = device, False
        log.warning("%s at %s: connected again after %s failed", self.model, self.address,
                    what)

    def _read_channels(self, device: Any) -> dict[int, VSP300Channel]:
        code = int(device.info.DeviceCode)
        if code not in VMP300_FAMILY:
            raise DriverError(f"the instrument at {self.address} has device code {code}, not"
                              f" one of the VMP-300 family ({', '.join(VMP300_FAMILY.values())})"
                              " whose *4.ecc techniques this driver loads")
        self.model = VMP300_FAMILY[code]
        channels = {}
        for index, plugged in enumerate(device.plugged):
            if plugged:
                info = self._call(f"channel_info({index})", "channel_info", index,
                                  device=device)
                channels[index] = VSP300Channel(self, index, info, self._max_output_A)
        if not channels:
            raise DriverError(f"{self.model} at {self.address} reports no channel plugged")
        return channels


class VSP300Channel(Channel):
    """One channel; its calls go through the instrument's lock."""

    def __init__(self, owner: VSP300, index: int, info: Any, max_output_A: float) -> None:
        self._owner, self.index = owner, index
        self.name = f"{owner.model} {owner.address} channel {index}"
        low, high = max(int(info.MinIRange), 0), min(int(info.MaxIRange), TOP_I_RANGE)
        if high < low:
            raise DriverError(f"{self.name}: channel_info gives no usable I range"
                              f" (MinIRange {info.MinIRange}, MaxIRange {info.MaxIRange})")
        self._i_ranges = range(low, high + 1)
        self._caps = channel_capabilities(info, max_output_A)
        found_running = int(info.State) != STATE_STOP
        self._state = ChannelState.RUNNING if found_running else ChannelState.IDLE
        self._technique: Technique | None = None
        self._end_reason: str | None = None
        self._last: tuple[float, float, float] | None = None   # t, V, I of the last point
        self._steady: SteadyWatch | None = None
        self._short: ShortWatch | None = None
        # drained from the instrument by a poll that then failed: the next poll's
        self._held: list[Block] = []
        self._held_skipped = 0

    @property
    def capabilities(self) -> ChannelCapabilities:
        return self._caps

    def start(self, technique: Technique) -> None:
        self._caps.check(technique)
        loads = ecc.plan(technique, self._i_ranges)
        self._owner._link()
        with self._owner._lock:
            if self._state is ChannelState.RUNNING:
                raise DriverError(f"{self.name}: a technique is already running; stop it first")
            for k, load in enumerate(loads):
                self._owner._call(f"channel {self.index}: load_technique({load.name!r})",
                                  "load_technique", self.index, load.name, dict(load.params),
                                  k, k == len(loads) - 1)
            self._owner._call(f"start_channel({self.index})", "start_channel", self.index)
            if self._held:
                log.warning("%s: %d blocks of the previous step were never polled; dropped",
                            self.name, len(self._held))
            self._held, self._held_skipped = [], 0
            self._state, self._end_reason, self._last = ChannelState.RUNNING, None, None
            self._know(technique)

    def adopt(self, technique: Technique) -> None:
        """Say which technique a channel found running at open() runs (the run store knows;
        the instrument cannot say): the end reason and :meth:`running` come from it."""
        with self._owner._lock:
            if self._state is not ChannelState.RUNNING or self._technique is not None:
                raise DriverError(f"{self.name}: only a channel found running at open() can"
                                  " adopt a technique")
            self._know(technique)

    def running(self) -> Technique | None:
        return self._technique if self._state is ChannelState.RUNNING else None

    @property
    def running_unknown(self) -> bool:
        """A technique runs that this driver neither started nor was told of (found running at
        open()): poll works, start() refuses until it is stopped or adopted."""
        return self._state is ChannelState.RUNNING and self._technique is None

    def read_voltage(self) -> float:
        values = self._owner._call(f"get_values({self.index})", "get_values", self.index)
        return float(values.Ewe)

    def stop(self) -> None:
        """Always stop_channel, whatever the driver believes the channel is doing."""
        self._owner._link()
        with self._owner._lock:
            self._owner._call(f"stop_channel({self.index})", "stop_channel", self.index)
            if self._state is ChannelState.RUNNING:
                self._end_reason = "stopped"
            self._state = ChannelState.IDLE

    def poll(self) -> Readout:
        with self._owner._lock:
            if self._state is not ChannelState.RUNNING:
                # what a failed poll had drained before the step was stopped
                held, self._held, self._held_skipped = self._held, [], 0
                return Readout(self._points(held), self._state, self._end_reason)
            blocks, values, skipped = self._drain()
            points = self._points(blocks)
            detail: dict[str, float] = {}
            if skipped:
                message = (f"{self.name}: the instrument skipped {skipped} acquisition"
                           " interrupts (DataInfo.IRQskipped): points were lost")
                if self._owner.lost_points == "fault":
                    self._halt()
                    return self._end(points, ChannelState.FAULT, message)
                log.warning("%s", message)
                detail["irq_skipped"] = float(skipped)
            if self._steady is not None:
                steady_at = self._steady.first(points.time_s, points.current_A)
                if steady_at is not None:
                    self._halt()
                    return self._end(points.select(points.time_s <= steady_at),
                                     ChannelState.DONE, "steady", detail)
            if self._short is not None:
                shorted_at = self._short.first(points.time_s, points.voltage_V)
                if shorted_at is not None:   # the relative part the firmware cannot test
                    self._halt()
                    return self._end(points.select(points.time_s <= shorted_at),
                                     ChannelState.DONE, "short", detail)
            if int(values.State) == STATE_STOP:
                state, reason = self._ended(values)
                return self._end(points, state, reason, detail)
            return Readout(points, ChannelState.RUNNING, detail=detail)

    # -- helpers (called under the lock) -------------------------------------------------------

    def _know(self, technique: Technique) -> None:
        self._technique = technique
        self._steady = SteadyWatch.of(technique, TIME_RESOLUTION_S)
        # the firmware tests the absolute floor (a CPLIMIT limit); this watch adds the collapse
        # relative to the step's own peak, on the points each poll brings
        self._short = ShortWatch.of(technique, TIME_RESOLUTION_S)

    def _drain(self) -> tuple[list[Block], Any, int]:
        """Every buffer the channel holds: get_data until it returns no rows while running,
        or no rows and no memory filled once stopped (BioLogic's own examples stop there).
        Each buffer is the instrument's last copy, so what is drained before a call fails is
        held for the next poll."""
        for _ in range(MAX_GET_DATA_CALLS):
            data, info, values = self._owner._call(f"get_data({self.index})", "get_data",
                                                   self.index)
            self._held_skipped += int(info.IRQskipped)
            if int(info.NbRows) > 0:
                self._held.append(decode(data, info, float(values.TimeBase)))
            elif int(values.State) == STATE_RUN or int(values.MemFilled) == 0:
                blocks, skipped = self._held, self._held_skipped
                self._held, self._held_skipped = [], 0
                return blocks, values, skipped
        raise DriverError(f"{self.name}: get_data still returned data after"
                          f" {MAX_GET_DATA_CALLS} calls")

    def _points(self, blocks: list[Block]) -> Points:
        """The blocks of the step's kind: an impedance step's spectrum (the DC hold before it
        lasts 0 s and is not a spectrum), a time-series step's series."""
        if self._technique is not None:
            spectrum = isinstance(self._technique, Impedance)
        else:
            spectrum = any(b.is_spectrum for b in blocks)
        points = concat([b.points() for b in blocks if b.is_spectrum == spectrum])
        if len(points) and not spectrum:
            self._last = (float(points.time_s[-1]), float(points.voltage_V[-1]),
                          float(points.current_A[-1]))
        return points

    def _halt(self) -> None:
        self._owner._call(f"stop_channel({self.index})", "stop_channel", self.index)

    def _end(self, points: Points, state: ChannelState, reason: str,
             detail: dict[str, float] | None = None) -> Readout:
        self._state, self._end_reason = state, reason
        return Readout(points, state, reason, detail=detail or {})

    def _ended(self, values: Any) -> tuple[ChannelState, str]:
        """Why the firmware stopped: an overflow, a limit the last point reached, the time run
        out, or, with none of these, a fault."""
        t = self._technique
        if int(values.Eoverflow) or int(values.Ioverflow):
            return ChannelState.FAULT, "compliance"
        if t is None or isinstance(t, Impedance):
            return ChannelState.DONE, "completed"
        if self._last is not None:
            reason = _limit_reached(t, *self._last)
            if reason is not None:
                return ChannelState.DONE, reason
        if isinstance(t, VoltageSweep):
            return ChannelState.DONE, "completed"
        elapsed = max(float(values.ElapsedTime), self._last[0] if self._last else 0.0)
        if elapsed >= t.duration_s - max(DURATION_TOLERANCE_S, t.record_dt_s):
            return ChannelState.DONE, "duration"
        return ChannelState.FAULT, (f"stopped after {elapsed:.1f} s of {t.duration_s:g} s with"
                                    " no limit reached")


def _limit_reached(t: Technique, time_s: float, voltage_V: float,
                   current_A: float) -> str | None:
    """The limit the last point shows was reached, if any."""
    if isinstance(t, ConstantCurrent) and t.current_A != 0:
        up = t.current_A > 0
        limit = t.until_voltage_V
        if limit is not None and (voltage_V >= limit - VOLTAGE_TOLERANCE_V if up
                                  else voltage_V <= limit + VOLTAGE_TOLERANCE_V):
            return "voltage"
        if t.short_below_V is not None and time_s >= t.settle_s \
                and abs(voltage_V) <= t.short_below_V + VOLTAGE_TOLERANCE_V:
            return "short"
    if isinstance(t, ConstantVoltage) and t.until_abs_current_A is not None \
            and abs(current_A) <= t.until_abs_current_A * (1 + CURRENT_TOLERANCE):
        return "current"
    if isinstance(t, VoltageSweep) and t.until_abs_current_A is not None \
            and abs(current_A) >= t.until_abs_current_A * (1 - CURRENT_TOLERANCE):
        return "current"
    return None


def _finish_now(coro: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends. easy-biologic's ``get_data`` is async
    but only awaits a plain DLL call, so one step runs it to its end, in any thread, with or
    without an event loop running (where ``asyncio.run`` would fail)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise DriverError("easy-biologic's get_data suspended; this driver expects it to finish at"
                      " once, as in easy-biologic 0.4")


# -- the spec ---------------------------------------------------------------------------------

class VSP300Options(Options):
    """``max_output_A``: what the amplifier drives (0.5 A without a booster); the channels'
    current range is this, capped at the top I range (1 A)."""

    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=MAX_TIMEOUT_S)
    max_output_A: float = Field(default=MAX_OUTPUT_A, gt=0, le=100)


def _capabilities(options: VSP300Options) -> ChannelCapabilities:
    return rated_capabilities(options.max_output_A)


def _build(setup: Setup, bench: Bench) -> VSP300:
    assert setup.address is not None
    # a served stand-in (cellseq sim serve) is reached through the link the station's
    # builder was handed for it, in easy-biologic's place
    return VSP300(setup.address, device_factory=setup.link, timeout_s=setup.options.timeout_s,
                  max_output_A=setup.options.max_output_A)


INSTRUMENTS = (InstrumentSpec(
    name="biologic.vsp300", kind="potentiostat", build=_build, options=VSP300Options,
    capabilities=_capabilities,
    description="BioLogic VSP-300 (VMP-300 family) through easy-biologic"),)


__all__ = ["ECLIB_LOCK", "INSTRUMENTS", "VSP300", "VSP300Channel", "VSP300Options",
           "channel_capabilities", "easy_biologic_device", "ec_error_code", "rated_capabilities",
           "whole_seconds"]
