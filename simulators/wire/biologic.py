"""A BioLogic VSP-300 as a served station: the simulated instrument in a server process, the real
driver in the client.

BioLogic's link is the EClib DLL, not a public wire protocol, so nothing can be simulated below
easy-biologic. What can be split is where the channels run: :class:`BiologicServer` hosts one
:class:`SimBiologicInstrument` on an accelerated clock, and :class:`BiologicDeviceProxy` is a
``BiologicDevice`` whose calls travel to it over TCP. As on the real instrument, whose techniques
run in firmware, a channel keeps running and recording when its client crashes, and a new client
(a new VSP300 over a new proxy) re-attaches to it.

A station addresses the server as ``sim://HOST:PORT`` (:attr:`BiologicServer.address`), for a
VSP300 whose device factory is the proxy: ``VSP300(server.address,
device_factory=BiologicDeviceProxy)``; :func:`proxy_factory` makes a factory that reaches a given
server whatever address the driver holds.

Protocol: JSON lines, one request ``{"id": 7, "method": "get_values", "args": [0]}`` answered by
one reply ``{"id": 7, "result": ...}`` or ``{"id": 7, "error": {"type": "EcError", "value": -13,
"detail": "..."}}``. Methods come from a fixed allow-list (:data:`METHODS`) and are called on
that connection's own :class:`BiologicDeviceStandIn`; nothing received is unpickled or evaluated.
ctypes structures travel as ``{field: value}``, the get_data buffer as base64 little-endian
words. Python's ``json`` writes a float with a decimal point and reads it back as a float, so the
parameter types easy-biologic picks the DLL types from (and the stand-in checks) survive.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import ctypes
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypedDict, TypeVar, Unpack

import numpy as np

from drivers.errors import TransportError
from simulators.cells.base import CellModel
from simulators.instruments.biologic_device import (
    EC_ERRORS,
    BiologicDeviceStandIn,
    ChannelInfo,
    CurrentValues,
    DataInfo,
    DeviceInfo,
    EcError,
    NotSimulatedError,
    SimBiologicInstrument,
    TechData,
    TechParams,
    technique_file,
)
from simulators.wire.server import LineServer

T = TypeVar("T")
S = TypeVar("S", bound=ctypes.Structure)
#: degC, fixed or as a function of simulated time
Temperature = float | Callable[[np.ndarray], np.ndarray]
#: a cell on a channel, at 25 degC or at a temperature
Placement = CellModel | tuple[CellModel, Temperature]

#: The stand-in methods a client may call (connect's reply also carries what connect sets).
METHODS = frozenset({"connect", "disconnect", "channel_info", "load_technique", "start_channel",
                     "stop_channel", "get_values", "get_data"})
#: Exceptions the stand-in raises that the proxy raises again as themselves.
_REMOTE_ERRORS: dict[str, type[Exception]] = {
    "NotSimulatedError": NotSimulatedError, "RuntimeError": RuntimeError,
    "TypeError": TypeError, "ValueError": ValueError}
#: The error type of a request the server cannot read: a client out of step with the protocol.
BAD_REQUEST = "BadRequest"
#: The instrument's call log keeps this many calls: a served station runs for weeks.
CALLS_KEPT = 10_000
#: A reply longer than this is not one the server sends (a get_data reply is about 7 kB).
MAX_REPLY_BYTES = 1 << 20
_ADDRESS = re.compile(r"^sim://([^:/\s]+):(\d{1,5})$")
#: This connection's stand-in: LineServer answers each connection in its own asyncio task, and
#: every task has its own copy of the context variables.
_CONNECTION: contextvars.ContextVar[BiologicDeviceStandIn | None] = contextvars.ContextVar(
    "biologic_connection", default=None)


class InstrumentOptions(TypedDict, total=False):
    """What else :class:`SimBiologicInstrument` takes (its defaults: a VSP-300)."""

    max_i_range: int
    min_i_range: int
    zboard: bool
    device_code: int
    max_output_A: float


class BiologicServer(LineServer):
    """One simulated VMP-300-family instrument, served to BiologicDeviceProxy clients.

    ``cells`` maps a channel to its cell, or to ``(cell, temperature_C)`` where the temperature
    is a float or a function of simulated time (a bare cell sits at 25 degC). Simulated seconds
    are ``speed`` x wall seconds since the first start(), on :meth:`clock` (a ServerClock).
    ``options`` go to SimBiologicInstrument. Inspect or change the instrument (``.instrument``,
    the cells) from another thread only under ``.lock``: every request is answered under it.
    """

    name = "BioLogic VSP-300"

    def __init__(self, channels: int = 6, cells: Mapping[int, Placement] | None = None, *,
                 speed: float = 1.0, seed: int = 0, host: str = "127.0.0.1", port: int = 0,
                 **options: Unpack[InstrumentOptions]) -> None:
        super().__init__(host=host, port=port, speed=speed)
        self.instrument = SimBiologicInstrument(self.clock(), channels, seed=seed, **options)
        for channel, placed in (cells or {}).items():
            cell, temperature = placed if isinstance(placed, tuple) else (placed, 25.0)
            self.instrument.place(channel, cell, temperature)

    @property
    def address(self) -> str:
        """The address a VSP300 over :class:`BiologicDeviceProxy` is given."""
        return f"sim://{self.host}:{self.port}"

    def respond(self, command: str, now_s: float) -> str | None:
        request_id: Any = None
        try:
            request = json.loads(command)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            request_id = request.get("id")
            method, args = request.get("method"), request.get("args")
            if method not in METHODS or not isinstance(args, list):
                raise ValueError(f"method must be one of {sorted(METHODS)} and args a list; got"
                                 f" {method!r}, {type(args).__name__}")
        except (ValueError, RecursionError) as exc:   # not JSON, too deeply nested, not ours
            return _reply(request_id, error={"type": BAD_REQUEST, "detail": str(exc)})
        try:
            return _reply(request_id, result=self._call(method, args))
        except EcError as exc:
            return _reply(request_id, error=_ec_error(exc.value, _ec_detail(exc)))
        except Exception as exc:   # the stand-in's refusals, and any simulator bug: to the client
            return _reply(request_id, error={"type": type(exc).__name__, "detail": str(exc)})

    def refuse(self, command: str, error: str | None) -> str | None:
        """EClib's usual refusal, -12 (function in progress); ``error`` may name another code
        ("-13") or be a detail for it."""
        try:
            request_id = json.loads(command).get("id")
        except (ValueError, RecursionError, AttributeError):
            request_id = None
        code, detail = -12, error or "refused (fault injected)"
        if error is not None and error.lstrip("-").isdigit() and int(error) in EC_ERRORS:
            code, detail = int(error), "refused (fault injected)"
        return _reply(request_id, error=_ec_error(code, detail))

    def _call(self, method: str, args: list[Any]) -> Any:
        device = _CONNECTION.get()
        if device is None:
            device = self.instrument.device(f"{self.name} client", populate_info=False)
            _CONNECTION.set(device)
        if len(self.instrument.calls) > 2 * CALLS_KEPT:
            del self.instrument.calls[:-CALLS_KEPT]
        result = getattr(device, method)(*args)
        if method == "connect":
            assert device.info is not None
            return {"idn": device.idn, "info": _fields(device.info), "plugged": device.plugged}
        if method == "get_data":
            data, info, values = _finish_now(result)
            words = np.frombuffer(bytes(data), dtype=np.uint32).astype("<u4")
            return {"data": base64.b64encode(words.tobytes()).decode("ascii"),
                    "info": _fields(info), "values": _fields(values)}
        if isinstance(result, ctypes.Structure):
            return _fields(result)
        return result


class BiologicDeviceProxy:
    """easy-biologic's ``BiologicDevice`` for a :class:`BiologicServer` at ``sim://HOST:PORT``
    (or at ``host``, ``port`` whatever the address): the methods the VSP300 driver calls, with
    the stand-in's signatures, return types and exceptions (EcError with its ``value``).

    A dead link, a reply not back within ``timeout`` seconds, or one it cannot read raises
    TransportError and closes the link (a late reply would answer the wrong request); later
    calls raise TransportError until connect() is called again. ``populate_info`` connects and
    disconnects at once, as BiologicDevice does; the driver passes False.
    """

    def __init__(self, address: str, timeout: float = 5, populate_info: bool = True, *,
                 host: str | None = None, port: int | None = None) -> None:
        if host is None or port is None:
            match = _ADDRESS.match(address)
            if match is None:
                raise ValueError(f"a simulated BioLogic's address is sim://HOST:PORT (see"
                                 f" BiologicServer.address), not {address!r}")
            host, port = match.group(1), int(match.group(2))
        if timeout <= 0:
            raise ValueError(f"timeout is in seconds, > 0; got {timeout}")
        self.address, self.timeout = address, timeout
        self.server = (host, port)
        self.idn: int | None = None
        self.info: DeviceInfo | None = None
        self.plugged: list[bool] | None = None
        self.techniques: list[list[TechParams]] | None = None
        self._lock = threading.RLock()
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._next_id = 0
        self._lost: str | None = None
        if populate_info:
            self.connect()
            self.disconnect()

    def connect(self, bin_file: str | None = None, xlx_file: str | None = None) -> None:
        if self.idn is not None:
            raise RuntimeError("Device already connected.")
        with self._lock:
            try:
                self._sock = socket.create_connection(self.server, timeout=self.timeout)
            except OSError as exc:
                raise TransportError(f"cannot reach the simulated BioLogic at"
                                     f" {self._where()}: {exc}") from None
            self._buffer.clear()
            self._lost = None
            try:
                idn, info, plugged = self._exchange("connect", [bin_file, xlx_file], lambda r: (
                    int(r["idn"]), DeviceInfo(**r["info"]), [bool(p) for p in r["plugged"]]))
            except BaseException:
                self._drop("connect failed")
                raise
        self.idn, self.info, self.plugged = idn, info, plugged
        self.techniques = [[] for _ in plugged]

    def disconnect(self) -> None:
        """Tell the server, then close the link; after a lost link, just forget it."""
        if self.idn is None:
            raise RuntimeError("Device is not connected.")
        try:
            if self._sock is not None:
                self._call("disconnect")
        finally:
            with self._lock:
                self._drop("disconnected")
            self.idn = self.info = self.plugged = self.techniques = None

    def drop(self) -> None:
        """Close the link without a word to the server, as a crashing client does: the server
        forgets this connection, the instrument runs on. connect() may follow."""
        with self._lock:
            self._drop("dropped")
        self.idn = self.info = self.plugged = self.techniques = None

    def is_connected(self) -> bool:
        return self.idn is not None

    def channel_info(self, ch: int) -> ChannelInfo:
        return self._call("channel_info", ch, decode=_struct(ChannelInfo))

    def load_technique(self, ch: int, technique: str, params: dict[str, Any], index: int = 0,
                       last: bool = True, types: Any = None) -> None:
        self._call("load_technique", ch, technique, params, index, last, types)
        assert self.info is not None and self.techniques is not None
        if index == 0:
            self.techniques[ch] = []
        self.techniques[ch].append(TechParams(technique_file(technique, self.info.DeviceCode),
                                              params))

    def load_techniques(self, ch: int, techniques: list[str], parameters: list[dict[str, Any]],
                        types: Any = None) -> None:
        for index, (name, params) in enumerate(zip(techniques, parameters, strict=True)):
            self.load_technique(ch, name, params, index, index == len(techniques) - 1, types)

    def start_channel(self, ch: int) -> None:
        self._call("start_channel", ch)

    def stop_channel(self, ch: int) -> None:
        self._call("stop_channel", ch)

    def get_values(self, ch: int) -> CurrentValues:
        return self._call("get_values", ch, decode=_struct(CurrentValues))

    async def get_data(self, ch: int) -> TechData:
        """Async as easy-biologic's, but never suspends: the exchange blocks (with its
        timeout), as the DLL call does."""
        return self._call("get_data", ch, decode=_tech_data)

    # -- the link -------------------------------------------------------------------------------

    def _where(self) -> str:
        return f"sim://{self.server[0]}:{self.server[1]}"

    def _call(self, method: str, *args: Any, decode: Callable[[Any], Any] | None = None) -> Any:
        if self.idn is None:
            raise RuntimeError("Device is not connected.")
        with self._lock:
            return self._exchange(method, list(args), decode)

    def _exchange(self, method: str, args: list[Any],
                  decode: Callable[[Any], Any] | None = None) -> Any:
        """One request, and its reply's result through ``decode`` (called under the lock)."""
        if self._sock is None:
            raise TransportError(f"{self._where()}: the link was lost ({self._lost}); call"
                                 " connect() again")
        self._next_id += 1
        request_id = self._next_id
        line = json.dumps({"id": request_id, "method": method, "args": args}) + "\n"
        try:
            self._sock.settimeout(self.timeout)
            self._sock.sendall(line.encode("ascii"))
            reply = json.loads(self._read_line(time.monotonic() + self.timeout))
        except TimeoutError:
            self._drop(f"no reply to {method} within {self.timeout:g} s")
            raise TransportError(f"{self._where()}: no reply to {method} within"
                                 f" {self.timeout:g} s") from None
        except OSError as exc:
            self._drop(f"{type(exc).__name__}: {exc}")
            raise TransportError(f"{self._where()}: {method} failed: the link is down"
                                 f" ({type(exc).__name__}: {exc})") from None
        except ValueError as exc:   # not JSON (garbled), or not ASCII
            self._drop(f"unreadable reply to {method}")
            raise TransportError(f"{self._where()}: unreadable reply to {method}: {exc}") \
                from None
        if not isinstance(reply, dict) or reply.get("id") != request_id:
            self._drop(f"reply out of step with {method}")
            raise TransportError(f"{self._where()}: the reply to {method} (id {request_id}) is"
                                 f" out of step: {str(reply)[:200]}")
        if "error" in reply:
            raise self._remote_error(method, reply["error"])
        try:
            return reply.get("result") if decode is None else decode(reply.get("result"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._unreadable(method, exc) from None

    def _read_line(self, deadline: float) -> str:
        assert self._sock is not None
        while (end := self._buffer.find(b"\n")) < 0:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if len(self._buffer) > MAX_REPLY_BYTES:
                raise ValueError(f"a reply longer than {MAX_REPLY_BYTES} bytes")
            self._sock.settimeout(left)
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the server closed the connection")
            self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[:end + 1]
        return line.decode("ascii")

    def _remote_error(self, method: str, error: Any) -> Exception:
        """The exception the stand-in raised, rebuilt; a request the server could not read is
        the link's failure, not the instrument's."""
        try:
            kind, detail = str(error["type"]), str(error.get("detail", ""))
            if kind == "EcError":
                value = int(error["value"])
                if value in EC_ERRORS:
                    return EcError(value, detail)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return self._unreadable(method, exc)
        if kind == BAD_REQUEST:
            self._drop(f"the server refused {method} as a bad request")
            return TransportError(f"{self._where()}: the server could not read the {method}"
                                  f" request: {detail}")
        if kind in _REMOTE_ERRORS:
            return _REMOTE_ERRORS[kind](detail)
        return RuntimeError(f"{kind} in the simulated instrument during {method}: {detail}")

    def _unreadable(self, method: str, exc: Exception) -> TransportError:
        self._drop(f"unreadable reply to {method}")
        return TransportError(f"{self._where()}: unreadable reply to {method}"
                              f" ({type(exc).__name__}: {exc})")

    def _drop(self, why: str) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            self._lost = why
            with contextlib.suppress(OSError):
                sock.close()


def proxy_factory(host: str, port: int) -> Callable[..., BiologicDeviceProxy]:
    """A VSP300 ``device_factory`` for the server at ``host:port``, whatever address the driver
    is given."""
    def factory(address: str, timeout: float = 5,
                populate_info: bool = True) -> BiologicDeviceProxy:
        return BiologicDeviceProxy(address, timeout, populate_info, host=host, port=port)
    return factory


# -- helpers --------------------------------------------------------------------------------------

def _reply(request_id: Any, *, result: Any = None, error: dict[str, Any] | None = None) -> str:
    body = {"id": request_id, "error": error} if error is not None \
        else {"id": request_id, "result": result}
    return json.dumps(body)


def _ec_error(value: int, detail: str) -> dict[str, Any]:
    return {"type": "EcError", "value": value, "detail": detail}


def _ec_detail(exc: EcError) -> str:
    """The detail EcError was made with: its message after "NAME (value): "."""
    head = f"{EC_ERRORS[exc.value]} ({exc.value})"
    return str(exc)[len(head) + 2:] if str(exc).startswith(head + ": ") else ""


def _fields(struct: ctypes.Structure) -> dict[str, Any]:
    return {name: getattr(struct, name) for name, _ in struct._fields_}


def _struct(kind: type[S]) -> Callable[[Any], S]:
    """A reply's ``{field: value}`` as the structure (a missing field is 0, as in ctypes)."""
    def build(fields: Any) -> S:
        if not isinstance(fields, dict) or not set(fields) <= {n for n, _ in kind._fields_}:
            raise ValueError(f"not the fields of a {kind.__name__}: {str(fields)[:200]}")
        return kind(**fields)
    return build


def _tech_data(result: Any) -> TechData:
    raw = base64.b64decode(result["data"], validate=True)
    words = np.frombuffer(raw, dtype="<u4").astype(np.uint32)
    data = (ctypes.c_uint32 * len(words)).from_buffer_copy(words.tobytes())
    return TechData(data, _struct(DataInfo)(result["info"]),
                    _struct(CurrentValues)(result["values"]))


def _finish_now(coro: Coroutine[Any, Any, T]) -> T:
    """The stand-in's get_data never suspends: one step runs it to its end."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the stand-in's get_data suspended")


__all__ = ["METHODS", "BiologicDeviceProxy", "BiologicServer", "InstrumentOptions",
           "proxy_factory"]
