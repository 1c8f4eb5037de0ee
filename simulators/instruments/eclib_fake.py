"""BioLogic's EClib DLL, faked at the ctypes boundary, over simulated instruments.

easy-biologic loads ``EClib64.dll`` (and ``blfind64.dll``) through ``ctypes.WinDLL`` when it is
imported, binds the exported functions by name, and calls them with ctypes arguments: plain ints
and ``c_int32``/``c_uint8``/``c_bool``/``c_float`` values, ``byref`` pointers to memory it
allocated (the TDeviceInfos, TChannelInfos, TCurrentValues and TDataInfos structures, the
1000-word data buffer, an ``int`` for the connection id) and a TEccParams passed by value.
:class:`FakeEClib` is the object ``ctypes.WinDLL`` would have returned: indexing it by an
export's name gives a function that reads those arguments as the DLL does, answers with EClib's
return codes (0, or a negative ``ERR_...`` code), and writes its results into the caller's memory
byte for byte, in the structure layouts of the EC-Lab Development Package. So everything above
it -- easy-biologic's parameter encoding, its technique file names, its struct declarations and
its error handling, then our driver -- runs as it does on the instrument's PC.

Behind the exports sit :class:`SimBiologicInstrument` channels (the physics core the served
stand-in uses too), one instrument per address: the parameters a technique arrives with are read
back from the TEccParam records (name, DLL type, value bits, index), checked as the instrument
checks them, turned back into our techniques and run on simulated cells; ``BL_GetData`` fills the
buffer as EClib does (``t_high``/``t_low`` words counted in the technique's timebase, IEEE-754
singles, PEIS/GEIS as process 0 then 1, at most 1000 words per call).

What EClib does that the fake reproduces, and tests may provoke:

- ``ERR_GEN_FUNCTIONINPROGRESS`` (-12) for a call made while another is in progress, from any
  thread (EClib is one library per process); :meth:`FakeEClib.hold` parks a call inside the DLL
  so a test can make two calls overlap without timing luck;
- a lost link (:meth:`FakeEClib.cut_link`): every call on a connection to that address answers
  ``ERR_COMM_COMMFAILED`` (-200), also after the link is back, until a new ``BL_Connect``; while
  it is down ``BL_Connect`` answers ``ERR_COMM_CONNECTIONFAILED`` (-201). The channels run on;
- firmware: a technique on a channel whose firmware was never loaded is refused
  (``ERR_FIRM_FIRMWARENOTLOADED``, -308); ``BL_LoadFirmware`` without ``force_reload`` leaves a
  loaded channel (and what it runs) alone;
- a technique file that is not in the DLL's own folder (``ERR_TECH_ECCFILENOTEXISTS``, -400);
- points the instrument skipped (``DataInfo.IRQskipped``, through
  :meth:`SimBiologicInstrument.lose_points`), and any return code on the next calls of an export
  (:meth:`FakeEClib.fail_next`).

What it does not: the wire below EClib, timing (every call answers at once), device discovery
(blfind), hardware configuration (BL_GetHardConf/BL_SetHardConf), BL_UpdateParameters, and
techniques or parameter sets our driver never loads (:class:`NotSimulatedError`, raised, not
returned: a test must not pass on something the fake only pretends to run).
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from simulators.instruments.biologic_device import (
    SPECS,
    ChannelInfo,
    CurrentValues,
    DataInfo,
    DeviceInfo,
    EcError,
    NotSimulatedError,
    SimBiologicInstrument,
)

#: EClib's return codes the fake answers with (EC-Lab Development Package, "error codes")
OK = 0
ERR_GEN_NOTCONNECTED = -1
ERR_GEN_CHANNELNOTPLUGGED = -3
ERR_GEN_INVALIDPARAMETERS = -4
ERR_GEN_FUNCTIONINPROGRESS = -12
ERR_COMM_COMMFAILED = -200
ERR_COMM_CONNECTIONFAILED = -201
ERR_FIRM_FIRMWARENOTLOADED = -308
ERR_TECH_ECCFILENOTEXISTS = -400

#: TEccParam.ParamType
PARAM_INT32, PARAM_BOOLEAN, PARAM_SINGLE = 0, 1, 2
PARAM_TYPES = {PARAM_INT32: "int", PARAM_BOOLEAN: "bool", PARAM_SINGLE: "single"}
#: ChannelInfo.FirmwareCode of a channel running EClib's kernel
KBIO_FIRM_KERNEL = 5
DATA_BUFFER_WORDS = 1000
PLUGGED_SLOTS = 16


class EccParam(ctypes.Structure):
    """TEccParam: a parameter's label, DLL type, value (the bits of an int32, bool or single)
    and index (the step, for multi-step parameters)."""

    _fields_ = (("ParamStr", ctypes.c_char * 64), ("ParamType", ctypes.c_int32),
                ("ParamVal", ctypes.c_int32), ("ParamIndex", ctypes.c_int32))


class EccParams(ctypes.Structure):
    """TEccParams: a count and a pointer to that many TEccParam, 4-byte packed."""

    _pack_ = 4
    _fields_ = (("len", ctypes.c_int32), ("pParams", ctypes.POINTER(EccParam)))


class Param(NamedTuple):
    """One TEccParam as BL_LoadTechnique received it; ``value`` is what its bits say
    (a single as the float it rounds to)."""

    name: str
    type: str      # "int", "bool" or "single"
    value: int | bool | float
    index: int


class Load(NamedTuple):
    """One BL_LoadTechnique call, and what the DLL answered."""

    channel: int
    file: str
    first: bool
    last: bool
    params: tuple[Param, ...]
    code: int


class Call(NamedTuple):
    """One call of an export: its name, the channel it named (None for device-wide calls) and
    the return code."""

    name: str
    channel: int | None
    code: int


class Hold:
    """A call parked inside the DLL: :attr:`entered` is set once it is in (holding EClib's
    "in progress" state), and it returns after :meth:`release`."""

    def __init__(self, export: str) -> None:
        self.export = export
        self.entered = threading.Event()
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    def wait_released(self, timeout_s: float) -> None:
        if not self._released.wait(timeout_s):
            raise RuntimeError(f"a held {self.export} was not released within {timeout_s:g} s")


@dataclass
class _Connection:
    address: str
    instrument: SimBiologicInstrument
    broken: bool = False


@dataclass
class _Fault:
    code: int
    skip: int
    times: int


class FakeEClib:
    """``EClib64.dll`` for the instruments at ``instruments`` (address -> instrument).

    ``technique_dir`` is where the DLL would find its ``.ecc`` files; when
    :func:`fake_windll` loads the fake it is the folder of the DLL path easy-biologic asked for
    (easy-biologic ships the files next to its DLLs). Without one, any file the simulation knows
    is taken.
    """

    #: exports that only compute, and never wait on the instrument (no "in progress" state)
    LOCAL = frozenset({"BL_DefineBoolParameter", "BL_DefineSglParameter",
                       "BL_DefineIntParameter", "BL_ConvertNumericIntoSingle"})

    def __init__(self, instruments: Mapping[str, SimBiologicInstrument], *,
                 technique_dir: Path | None = None, hold_timeout_s: float = 10.0) -> None:
        self.instruments = dict(instruments)
        self.technique_dir = technique_dir
        self.dll_path: str | None = None
        self.hold_timeout_s = hold_timeout_s
        self.calls: list[Call] = []
        self.loads: list[Load] = []
        self.messages: list[str] = []     # the detail of each refusal, newest last
        self.timeouts_s: list[int] = []   # the timeout of each BL_Connect
        self._busy = threading.Lock()
        self._connections: dict[int, _Connection] = {}
        self._next_idn = 1
        self._down: set[str] = set()
        self._firmware: set[tuple[str, int]] = set()
        # techniques loaded on each channel, as the DLL counts them (``first`` restarts at 0)
        self._loaded: dict[tuple[str, int], int] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._holds: dict[str, Hold] = {}
        self._exports: dict[str, Callable[..., Any]] = {
            name[1:]: getattr(self, name) for name in dir(self) if name.startswith("_BL_")}

    # -- the DLL object ---------------------------------------------------------------------

    def __getitem__(self, name: str) -> _Export:
        """The export ``name``, as ``WinDLL(...)[name]`` gives a function pointer."""
        if name not in self._exports:
            raise AttributeError(f"function '{name}' not found")
        return _Export(self, name)

    def __getattr__(self, name: str) -> _Export:
        if name.startswith("BL_"):
            return self[name]
        raise AttributeError(name)

    # -- what tests do to it ----------------------------------------------------------------

    def cut_link(self, address: str) -> None:
        """The link to ``address`` goes down: its open connections are lost for good."""
        self._down.add(address)
        for connection in self._connections.values():
            if connection.address == address:
                connection.broken = True

    def restore_link(self, address: str) -> None:
        """The link is back: ``BL_Connect`` reaches the instrument again."""
        self._down.discard(address)

    def fail_next(self, export: str, code: int, *, times: int = 1, skip: int = 0) -> None:
        """After ``skip`` more calls of ``export`` that go through, the next ``times`` answer
        ``code`` and do nothing else."""
        if export not in self._exports:
            raise ValueError(f"EClib has no export {export!r}")
        self._faults.setdefault(export, []).append(_Fault(code, skip, times))

    def hold(self, export: str) -> Hold:
        """Park the next call of ``export`` inside the DLL until the hold is released."""
        hold = Hold(export)
        self._holds[export] = hold
        return hold

    def codes(self, export: str) -> list[int]:
        """The return codes of every call of ``export`` so far."""
        return [c.code for c in self.calls if c.name == export]

    # -- calling an export ------------------------------------------------------------------

    def call(self, name: str, args: tuple[Any, ...]) -> Any:
        channel = _channel_of(name, args)
        if name in self.LOCAL:
            return self._exports[name](*args)
        if not self._busy.acquire(blocking=False):
            self.messages.append(f"{name}: another call is in progress")
            return self._log(name, channel, ERR_GEN_FUNCTIONINPROGRESS)
        try:
            hold = self._holds.pop(name, None)
            if hold is not None:
                hold.entered.set()
                hold.wait_released(self.hold_timeout_s)
            injected = self._injected(name)
            if injected is not None:
                self.messages.append(f"{name}: fault injected ({injected})")
                result = injected
            else:
                result = self._exports[name](*args)
        finally:
            self._busy.release()
        return self._log(name, channel, result)

    def _log(self, name: str, channel: int | None, result: Any) -> Any:
        code = result if isinstance(result, int) and not isinstance(result, bool) else OK
        self.calls.append(Call(name, channel, code))
        return result

    def _injected(self, name: str) -> int | None:
        faults = self._faults.get(name)
        if not faults:
            return None
        fault = faults[0]
        if fault.skip:
            fault.skip -= 1
            return None
        fault.times -= 1
        if fault.times <= 0:
            faults.pop(0)
        return fault.code

    # -- connection ----------------------------------------------------------------------------

    def _BL_Connect(self, address: Any, timeout: Any, idn: Any, info: Any) -> int:
        where = _string(address)
        self.timeouts_s.append(_int(timeout, ctypes.c_uint8))
        idn_out, info_out = _out(idn, ctypes.c_int32), _out(info, DeviceInfo)
        instrument = self.instruments.get(where)
        if instrument is None or where in self._down:
            return self._refuse(ERR_COMM_CONNECTIONFAILED, f"no instrument answers at {where}")
        number = self._next_idn
        self._next_idn += 1
        self._connections[number] = _Connection(where, instrument)
        n = instrument.channel_count
        _write(info_out, DeviceInfo(
            DeviceCode=instrument.device_code, NumberOfChannels=n, NumberOfSlots=PLUGGED_SLOTS,
            NbOfConnectedPC=sum(c.address == where for c in self._connections.values())))
        idn_out.value = number
        return OK

    def _BL_Disconnect(self, idn: Any) -> int:
        connection = self._connections.pop(_int(idn, ctypes.c_int32), None)
        if connection is None:
            return self._refuse(ERR_GEN_NOTCONNECTED, "no such connection")
        if connection.broken:   # forgotten all the same
            return self._refuse(ERR_COMM_COMMFAILED, "the link was lost")
        return OK

    def _BL_TestConnection(self, idn: Any) -> int:
        return self._connection(idn)[1]

    def _BL_LoadFirmware(self, idn: Any, active: Any, results: Any, length: Any,
                         show_gauge: Any, force_reload: Any, bin_file: Any,
                         xlx_file: Any) -> int:
        connection, code = self._connection(idn)
        if connection is None:
            return code
        n = _int(length, ctypes.c_int32)
        chosen = _out(active, ctypes.c_uint8 * n)
        answers = _out(results, ctypes.c_int32 * n)
        _int(show_gauge, ctypes.c_bool)
        reload = bool(_int(force_reload, ctypes.c_bool))
        for file in (bin_file, xlx_file):
            if not isinstance(file, ctypes.c_void_p) or file.value is not None:
                raise NotSimulatedError("loading firmware from a given bin or xlx file")
        for ch in range(n):
            if not chosen[ch]:
                continue
            if ch >= connection.instrument.channel_count:
                answers[ch] = ERR_GEN_CHANNELNOTPLUGGED
                continue
            key = (connection.address, ch)
            if reload and connection.instrument.channel_info(ch).State != 0:
                answers[ch] = -13   # ERR_GEN_CHANNEL_RUNNING
                continue
            if reload or key not in self._firmware:
                self._firmware.add(key)
                self._loaded.pop(key, None)
            answers[ch] = OK
        return OK

    def _BL_IsChannelPlugged(self, idn: Any, ch: Any) -> bool:
        connection, _ = self._connection(idn)
        return connection is not None and \
            _int(ch, ctypes.c_uint8) < connection.instrument.channel_count

    def _BL_GetChannelsPlugged(self, idn: Any, channels: Any, size: Any) -> int:
        connection, code = self._connection(idn)
        if connection is None:
            return code
        n = _int(size, ctypes.c_int32)
        plugged = _out(channels, ctypes.c_uint8 * n)
        for k in range(n):
            plugged[k] = int(k < connection.instrument.channel_count)
        return OK

    def _BL_GetChannelInfos(self, idn: Any, ch: Any, info: Any) -> int:
        connection, channel, code = self._channel(idn, ch, firmware=False)
        target = _out(info, ChannelInfo)
        if connection is None:
            return code
        described = connection.instrument.channel_info(channel)
        if (connection.address, channel) in self._firmware:
            described.FirmwareCode = KBIO_FIRM_KERNEL
        _write(target, described)
        return OK

    def _BL_GetHardConf(self, *args: Any) -> int:
        raise NotSimulatedError("BL_GetHardConf: the hardware configuration is not simulated")

    def _BL_SetHardConf(self, *args: Any) -> int:
        raise NotSimulatedError("BL_SetHardConf: the hardware configuration is not simulated")

    # -- techniques ---------------------------------------------------------------------------

    def _BL_DefineBoolParameter(self, label: Any, value: Any, index: Any, param: Any) -> int:
        return _define(label, PARAM_BOOLEAN, int(bool(_int(value, ctypes.c_bool))), index,
                       param)

    def _BL_DefineIntParameter(self, label: Any, value: Any, index: Any, param: Any) -> int:
        return _define(label, PARAM_INT32, _int(value, ctypes.c_int32), index, param)

    def _BL_DefineSglParameter(self, label: Any, value: Any, index: Any, param: Any) -> int:
        if not isinstance(value, ctypes.c_float):
            raise TypeError(f"BL_DefineSglParameter takes a c_float, not {type(value).__name__}")
        bits = struct.unpack("<i", struct.pack("<f", value.value))[0]
        return _define(label, PARAM_SINGLE, bits, index, param)

    def _BL_LoadTechnique(self, idn: Any, ch: Any, file: Any, params: Any, first: Any,
                          last: Any, verbose: Any) -> int:
        name = _string(file)
        is_first, is_last = bool(_int(first, ctypes.c_bool)), bool(_int(last, ctypes.c_bool))
        _int(verbose, ctypes.c_bool)
        received = _params(params)
        connection, channel, code = self._channel(idn, ch)

        def answer(result: int) -> int:
            self.loads.append(Load(channel if channel is not None else -1, name, is_first,
                                   is_last, received, result))
            return result

        if connection is None:
            return answer(code)
        if self.technique_dir is not None and not (self.technique_dir / name).is_file():
            return answer(self._refuse(ERR_TECH_ECCFILENOTEXISTS,
                                       f"no {name} in {self.technique_dir}"))
        key = (connection.address, channel)
        index = 0 if is_first else self._loaded.get(key, 0)
        try:
            values = _as_dict(name, received)
            connection.instrument.load(channel, name, values, index, is_last)
        except EcError as exc:
            return answer(self._refuse(exc.value, str(exc)))
        self._loaded[key] = index + 1
        return answer(OK)

    def _BL_UpdateParameters(self, *args: Any) -> int:
        raise NotSimulatedError("BL_UpdateParameters: changing a loaded technique's"
                                " parameters is not simulated")

    def _BL_StartChannel(self, idn: Any, ch: Any) -> int:
        connection, channel, code = self._channel(idn, ch)
        if connection is None:
            return code
        try:
            connection.instrument.start(channel)
        except EcError as exc:
            return self._refuse(exc.value, str(exc))
        return OK

    def _BL_StartChannels(self, idn: Any, active: Any, results: Any, length: Any) -> int:
        return self._each_channel(self._BL_StartChannel, idn, active, results, length)

    def _BL_StopChannel(self, idn: Any, ch: Any) -> int:
        connection, channel, code = self._channel(idn, ch)
        if connection is None:
            return code
        connection.instrument.stop(channel)
        return OK

    def _BL_StopChannels(self, idn: Any, active: Any, results: Any, length: Any) -> int:
        return self._each_channel(self._BL_StopChannel, idn, active, results, length)

    # -- data --------------------------------------------------------------------------------

    def _BL_GetCurrentValues(self, idn: Any, ch: Any, values: Any) -> int:
        target = _out(values, CurrentValues)
        connection, channel, code = self._channel(idn, ch)
        if connection is None:
            return code
        instrument = connection.instrument
        bay = instrument.bay(channel)
        instrument.pump(bay)
        _write(target, instrument.values(bay))
        return OK

    def _BL_GetData(self, idn: Any, ch: Any, data: Any, info: Any, values: Any) -> int:
        buffer = _out(data, ctypes.c_uint32 * DATA_BUFFER_WORDS)
        info_out, values_out = _out(info, DataInfo), _out(values, CurrentValues)
        connection, channel, code = self._channel(idn, ch)
        if connection is None:
            return code
        instrument = connection.instrument
        bay = instrument.bay(channel)
        instrument.pump(bay)
        words, described = instrument.take(bay)
        _write(buffer, words)
        _write(info_out, described)
        _write(values_out, instrument.values(bay))
        return OK

    def _BL_ConvertNumericIntoSingle(self, number: Any, value: Any) -> int:
        """The single a data word holds (VMP-300 boards store singles as their bits)."""
        bits = _int(number, ctypes.c_uint32)
        _out(value, ctypes.c_float).value = struct.unpack("<f", struct.pack("<I", bits))[0]
        return OK

    # -- helpers --------------------------------------------------------------------------------

    def _connection(self, idn: Any) -> tuple[_Connection | None, int]:
        connection = self._connections.get(_int(idn, ctypes.c_int32))
        if connection is None:
            return None, self._refuse(ERR_GEN_NOTCONNECTED, "no such connection")
        if connection.broken:
            return None, self._refuse(ERR_COMM_COMMFAILED, f"the link to {connection.address}"
                                      " was lost")
        return connection, OK

    def _channel(self, idn: Any, ch: Any, firmware: bool = True
                 ) -> tuple[_Connection | None, int | None, int]:
        channel = _int(ch, ctypes.c_uint8)
        connection, code = self._connection(idn)
        if connection is None:
            return None, channel, code
        if channel >= connection.instrument.channel_count:
            return None, channel, self._refuse(ERR_GEN_CHANNELNOTPLUGGED,
                                               f"channel {channel} is not plugged")
        if firmware and (connection.address, channel) not in self._firmware:
            return None, channel, self._refuse(ERR_FIRM_FIRMWARENOTLOADED,
                                               f"channel {channel} has no firmware loaded")
        return connection, channel, OK

    def _each_channel(self, one: Callable[[Any, Any], int], idn: Any, active: Any,
                      results: Any, length: Any) -> int:
        n = _int(length, ctypes.c_int32)
        chosen, answers = _out(active, ctypes.c_uint8 * n), _out(results, ctypes.c_int32 * n)
        for ch in range(n):
            if chosen[ch]:
                answers[ch] = one(idn, ctypes.c_uint8(ch))
        return OK

    def _refuse(self, code: int, detail: str) -> int:
        self.messages.append(detail)
        return code


class _Export:
    """One exported function, as ``WinDLL(...)[name]`` gives it: callable, named, with the
    ``restype`` and ``argtypes`` easy-biologic sets (a ``c_bool`` restype turns the answer into
    a bool, as ctypes does)."""

    def __init__(self, dll: FakeEClib, name: str) -> None:
        self._dll, self.__name__ = dll, name
        self.restype: Any = ctypes.c_int
        self.argtypes: Any = None

    def __call__(self, *args: Any) -> Any:
        if self.argtypes is not None:
            raise NotSimulatedError(f"{self.__name__}: calls through argtypes")
        result = self._dll.call(self.__name__, args)
        return bool(result) if self.restype is ctypes.c_bool else result

    def __repr__(self) -> str:
        return f"<fake EClib export {self.__name__}>"


class FakeBlFind:
    """``blfind64.dll``, BioLogic's device discovery: easy-biologic binds its exports at
    import; calling one raises, since discovery is not simulated."""

    EXPORTS = frozenset({"BL_FindEChemDev", "BL_FindEChemEthDev", "BL_FindEChemUsbDev",
                         "BL_SetConfig", "BL_GetErrorMsg"})

    def __getitem__(self, name: str) -> Callable[..., Any]:
        if name not in self.EXPORTS:
            raise AttributeError(f"function '{name}' not found")

        def refuse(*args: Any) -> int:
            raise NotSimulatedError(f"{name}: device discovery is not simulated")
        refuse.__name__ = name
        return refuse


def fake_windll(eclib: FakeEClib) -> Callable[..., Any]:
    """What ``ctypes.WinDLL`` is replaced with while easy-biologic is imported in a test:
    ``EClib*.dll`` is ``eclib`` (its technique folder the DLL's), ``blfind*.dll`` a
    :class:`FakeBlFind`; any other library is refused as Windows would refuse a missing one."""
    def load(name: str, *args: Any, **kwargs: Any) -> Any:
        base = os.path.basename(str(name)).lower()
        if base.startswith("eclib") and base.endswith(".dll"):
            eclib.dll_path = str(name)
            if eclib.technique_dir is None:
                eclib.technique_dir = Path(name).parent
            return eclib
        if base.startswith("blfind") and base.endswith(".dll"):
            return FakeBlFind()
        raise OSError(f"[WinError 126] The specified module could not be found: {name!r}")
    return load


@contextmanager
def holding(eclib: FakeEClib, export: str) -> Iterator[Hold]:
    """:meth:`FakeEClib.hold`, released when the block ends, whatever happens in it."""
    hold = eclib.hold(export)
    try:
        yield hold
    finally:
        hold.release()


# -- reading ctypes arguments as the DLL does ----------------------------------------------------

def _channel_of(name: str, args: tuple[Any, ...]) -> int | None:
    """The channel a call names: its second argument, for the per-channel exports."""
    if name in ("BL_IsChannelPlugged", "BL_GetChannelInfos", "BL_LoadTechnique",
                "BL_StartChannel", "BL_StopChannel", "BL_GetCurrentValues", "BL_GetData") \
            and len(args) > 1:
        return _int(args[1], ctypes.c_uint8)
    return None


def _int(arg: Any, kind: type) -> int:
    """An integer argument: a Python int or bool (ctypes passes it as a C int), or a ctypes
    integer of the prototype's kind."""
    if isinstance(arg, bool | int):
        return int(arg)
    if isinstance(arg, kind) or (isinstance(arg, ctypes._SimpleCData)
                                 and isinstance(arg.value, bool | int)):
        return int(arg.value)
    raise TypeError(f"expected an integer ({kind.__name__}), got {type(arg).__name__} {arg!r}")


def _out(arg: Any, kind: type) -> Any:
    """The caller's memory a ``byref`` argument points to, checked to be the size of the
    structure or array the prototype names (a struct declared with other fields or packing
    would be written across)."""
    target = getattr(arg, "_obj", None)
    if target is None or type(arg).__name__ != "CArgObject":
        raise TypeError(f"expected a pointer (byref) to {kind.__name__}, got"
                        f" {type(arg).__name__}")
    if ctypes.sizeof(target) != ctypes.sizeof(kind):
        raise TypeError(f"the caller's {type(target).__name__} is {ctypes.sizeof(target)}"
                        f" bytes; EClib writes a {kind.__name__} of {ctypes.sizeof(kind)}")
    return target


def _write(target: Any, source: Any) -> None:
    ctypes.memmove(ctypes.addressof(target), ctypes.addressof(source), ctypes.sizeof(source))


def _string(arg: Any) -> str:
    """A ``const char*`` argument: bytes, or a pointer to a char buffer."""
    if isinstance(arg, bytes):
        return arg.decode("ascii")
    target = getattr(arg, "_obj", None)
    if isinstance(target, ctypes.Array) and target._type_ is ctypes.c_char:
        return target.value.decode("ascii")
    raise TypeError(f"expected a char pointer, got {type(arg).__name__}")


def _define(label: Any, kind: int, bits: int, index: Any, param: Any) -> int:
    """Fill the caller's TEccParam; a label that does not fit is refused (and the record left
    as it was, which easy-biologic, not reading the code, would send as it is)."""
    name = label if isinstance(label, bytes) else _string(label).encode("ascii")
    target = _out(param, EccParam)
    if not name or len(name) >= 64:
        return ERR_GEN_INVALIDPARAMETERS
    record = EccParam(ParamStr=name, ParamType=kind, ParamVal=bits,
                      ParamIndex=_int(index, ctypes.c_int32))
    _write(target, record)
    return OK


def _params(params: Any) -> tuple[Param, ...]:
    """The TEccParam records of a TEccParams passed by value."""
    if not isinstance(params, ctypes.Structure) or ctypes.sizeof(params) != \
            ctypes.sizeof(EccParams):
        raise TypeError(f"BL_LoadTechnique takes a TEccParams by value, not"
                        f" {type(params).__name__}")
    raw = EccParams.from_buffer_copy(params)
    records = ctypes.cast(raw.pParams, ctypes.POINTER(EccParam))
    out = []
    for k in range(raw.len):
        p = records[k]
        kind = PARAM_TYPES.get(p.ParamType, f"type {p.ParamType}")
        value: int | bool | float = p.ParamVal
        if p.ParamType == PARAM_BOOLEAN:
            value = bool(p.ParamVal)
        elif p.ParamType == PARAM_SINGLE:
            value = struct.unpack("<f", struct.pack("<i", p.ParamVal))[0]
        out.append(Param(p.ParamStr.decode("ascii", "replace"), kind, value, p.ParamIndex))
    return tuple(out)


_PYTHON_TYPES: dict[str, type] = {"int": int, "bool": bool, "single": float}


def _as_dict(file: str, params: tuple[Param, ...]) -> dict[str, Any]:
    """The parameters as the simulated instrument checks them: per-step parameters as lists
    in step order, which must be the indices 0..n-1 exactly (an entry at another index sets
    another step, or none); the others single values, sent once."""
    if any(p.type not in _PYTHON_TYPES for p in params):
        raise EcError(ERR_GEN_INVALIDPARAMETERS, f"{file}: unknown parameter type in"
                      f" {[p for p in params if p.type not in _PYTHON_TYPES]}")
    spec = SPECS.get(file)
    per_step = {name for name, (_, step) in spec.params.items() if step} if spec else set()
    grouped: dict[str, list[Param]] = {}
    for p in params:
        grouped.setdefault(p.name, []).append(p)
    out: dict[str, Any] = {}
    for name, entries in grouped.items():
        typed = [_PYTHON_TYPES[p.type](p.value) for p in entries]
        if name in per_step:
            indices = sorted(p.index for p in entries)
            if indices != list(range(len(entries))):
                raise EcError(ERR_GEN_INVALIDPARAMETERS, f"{file}: {name} sets steps"
                              f" {indices}, not 0..{len(entries) - 1}")
            out[name] = [v for _, v in sorted(zip([p.index for p in entries], typed,
                                                  strict=True))]
        elif len(entries) > 1:
            raise EcError(ERR_GEN_INVALIDPARAMETERS, f"{file}: {name} is sent"
                          f" {len(entries)} times")
        else:
            out[name] = typed[0]
    return out


__all__ = ["ERR_COMM_COMMFAILED", "ERR_COMM_CONNECTIONFAILED", "ERR_GEN_FUNCTIONINPROGRESS",
           "ERR_GEN_NOTCONNECTED", "Call", "EccParam", "EccParams", "FakeBlFind", "FakeEClib",
           "Hold", "Load", "Param", "fake_windll", "holding"]
