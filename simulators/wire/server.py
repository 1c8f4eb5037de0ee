"""A TCP line server for wire-protocol simulators, with faults on demand and its own time base.

The server runs an asyncio loop in a background thread, so a test (or ``cellseq sim serve``) hosts
it with ``start()`` / ``stop()`` and talks to it through the real transports. Each received line
is one command; a subclass answers it from its instrument model. Clients come and go: the model's
state belongs to the server, not to a connection, so a driver that reconnects finds the instrument
as it left it (several clients may be connected at once, as on a LAN instrument).

Time: simulated seconds = ``speed`` x wall seconds since the first ``start()`` (``time.monotonic``),
so a 1 h charge runs in 3.6 s at ``speed=1000``. :meth:`LineServer.clock` gives a
:class:`drivers.clock.Clock` on the same time base, for the driver under test.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Self

import trio

from drivers.clock import Clock

#: What a garbled line looks like: bytes that are not ASCII, and punctuation, never a number.
GARBAGE = b"\xfe\xff\x15#?\x7f!~"

#: A line longer than this closes the connection (a client sending binary by mistake).
MAX_LINE_BYTES = 64 * 1024

log = logging.getLogger("cellseq.wire")


@dataclass(frozen=True)
class _CommandFaults:
    drop: bool
    refuse: bool
    error: str | None


class Faults:
    """Faults to inject, set from any thread while clients are connected.

    ``delay_replies`` lasts until cleared; ``drop_next``, ``refuse_next`` and ``garbage_next`` fire
    once, on the next command (``garbage_next``: the next command that has a reply). Alarms stay
    raised until cleared; what they mean is the instrument's business (the chamber reports them).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delay_s = 0.0
        self._drop = self._garbage = self._refuse = False
        self._error: str | None = None
        self._alarms: list[int] = []

    def delay_replies(self, seconds: float) -> None:
        """Hold every reply back by ``seconds`` of wall time (0 ends the fault)."""
        if seconds < 0:
            raise ValueError(f"a delay can't be negative, got {seconds}")
        with self._lock:
            self._delay_s = seconds

    def drop_next(self) -> None:
        """Close the connection when the next command arrives, without executing it."""
        with self._lock:
            self._drop = True

    def garbage_next(self) -> None:
        """Answer the next command that has a reply with garbled bytes instead."""
        with self._lock:
            self._garbage = True

    def refuse_next(self, error: str | None = None) -> None:
        """Refuse the next command as the instrument does (ESPEC: ``NA:<error>``; SCPI: the error
        goes to the queue and nothing is executed); None: the instrument's usual refusal."""
        with self._lock:
            self._refuse, self._error = True, error

    def raise_alarm(self, code: int = 1) -> None:
        with self._lock:
            if code not in self._alarms:
                self._alarms.append(code)

    def clear_alarms(self) -> None:
        with self._lock:
            self._alarms.clear()

    def clear(self) -> None:
        """No faults, no alarms."""
        with self._lock:
            self._delay_s = 0.0
            self._drop = self._garbage = self._refuse = False
            self._error = None
            self._alarms.clear()

    @property
    def alarms(self) -> tuple[int, ...]:
        with self._lock:
            return tuple(self._alarms)

    @property
    def reply_delay_s(self) -> float:
        with self._lock:
            return self._delay_s

    def _take_command(self) -> _CommandFaults:
        with self._lock:
            taken = _CommandFaults(self._drop, self._refuse, self._error)
            self._drop = self._refuse = False
            self._error = None
            return taken

    def _take_garbage(self) -> bool:
        with self._lock:
            garbage, self._garbage = self._garbage, False
            return garbage


class LineServer(ABC):
    """A threaded asyncio TCP server answering one line with at most one line.

    Subclasses implement :meth:`respond` and :meth:`refuse`; both run under ``self.lock``, which
    also guards any inspection of the model from another thread.
    """

    #: appended to every reply
    terminator = "\n"
    name = "line server"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"speed is simulated seconds per wall second, > 0; got {speed}")
        self.host, self.port, self.speed = host, port, speed
        self.faults = Faults()
        self.lock = threading.RLock()
        self._t0: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    # -- what an instrument provides ----------------------------------------------------------
    @abstractmethod
    def respond(self, command: str, now_s: float) -> str | None:
        """The reply to one command line at simulated time ``now_s`` (None: no reply)."""

    @abstractmethod
    def refuse(self, command: str, error: str | None) -> str | None:
        """The instrument's refusal of ``command`` (see :meth:`Faults.refuse_next`)."""

    # -- hosting ------------------------------------------------------------------------------
    def start(self) -> Self:
        """Listen (on a free port when ``port`` is 0: read ``.port`` afterwards)."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already running on port {self.port}")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"{self.name} server",
                                  daemon=True)
        thread.start()
        try:
            self._server = asyncio.run_coroutine_threadsafe(self._listen(), loop).result(10)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            raise
        self._loop, self._thread = loop, thread
        self.port = self._server.sockets[0].getsockname()[1]
        if self._t0 is None:   # a restarted server keeps its time: the model's state is in it
            self._t0 = time.monotonic()
        return self

    def stop(self) -> None:
        """Close every connection and stop listening; the model keeps its state."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shut(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def socket_url(self) -> str:
        """The address for the serial transport (pyserial's ``socket://``)."""
        return f"socket://{self.host}:{self.port}"

    @property
    def visa_address(self) -> str:
        """The address for the VISA transport (a raw SCPI socket)."""
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    # -- time ---------------------------------------------------------------------------------
    def now_s(self) -> float:
        """Simulated seconds since the server first started."""
        if self._t0 is None:
            return 0.0
        return self.speed * (time.monotonic() - self._t0)

    def share_time(self, epoch: float) -> None:
        """Run on this ``time.monotonic()`` origin: the servers of one simulated lab share a
        time base, so a cell on one feels the air of a chamber served by another."""
        self._t0 = epoch

    def clock(self) -> ServerClock:
        return ServerClock(self)

    # -- the connection loop ------------------------------------------------------------------
    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, self.host, self.port,
                                          limit=MAX_LINE_BYTES)

    async def _shut(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            while await self._answer_one(reader, writer):
                pass
        except (ConnectionError, ValueError) as exc:   # reset by the client; a line too long
            log.debug("%s: client gone: %s", self.name, exc)
        except asyncio.CancelledError:   # stop(): the server is closing; as if the client left
            log.debug("%s: closing a client connection", self.name)
        finally:
            self._clients.discard(task)
            writer.close()

    async def _answer_one(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> bool:
        """Read and answer one line; False when the connection is to end."""
        line = await reader.readline()
        if not line.endswith(b"\n"):
            return False   # the client closed (or closed mid-line)
        command = line.decode("ascii", errors="replace").strip()
        if not command:
            return True
        faults = self.faults._take_command()
        if faults.drop:
            return False
        with self.lock:
            if faults.refuse:
                reply = self.refuse(command, faults.error)
            else:
                reply = self.respond(command, self.now_s())
        if reply is None:
            return True
        data = GARBAGE if self.faults._take_garbage() else reply.encode("ascii")
        delay = self.faults.reply_delay_s
        if delay > 0:
            await asyncio.sleep(delay)
        writer.write(data + self.terminator.encode("ascii"))
        await writer.drain()
        return True


class ServerClock(Clock):
    """A :class:`Clock` on a server's simulated time base, for the driver under test."""

    def __init__(self, server: LineServer) -> None:
        self._server = server
        self.origin_utc = time.time() - server.now_s() / server.speed

    def now(self) -> float:
        return self._server.now_s()

    async def sleep_until(self, t: float) -> None:
        await trio.sleep(max(0.0, (t - self.now()) / self._server.speed))
